package dkim

import (
	"errors"
	"strconv"
)

// Sentinel errors for the failures callers may want to branch on. They are
// wrapped by an *Error, which carries the message; test with errors.Is.
var (
	// ErrNotDKIM means the input has a v= tag other than DKIM1: it is some
	// other kind of record, such as an SPF or DMARC record pasted by mistake.
	ErrNotDKIM = errors.New("dkim: not a DKIM key record")

	// ErrRevoked means the record has an empty p= tag, which revokes a key
	// (RFC 6376 §3.6.1): there is no key in it to publish. Publish
	// [RevokedRecord] to revoke a key.
	ErrRevoked = errors.New("dkim: the record revokes its key")

	// ErrPrivateKey means the input is a private key. The error message
	// never repeats it.
	ErrPrivateKey = errors.New("dkim: input is a private key")

	// ErrWeakKey means an RSA key is shorter than 1024 bits, which RFC 8301
	// §3.2 forbids signers to use and verifiers to accept.
	ErrWeakKey = errors.New("dkim: RSA key too short")

	// ErrKeyMismatch means the k= tag names one key type and p= holds
	// another.
	ErrKeyMismatch = errors.New("dkim: key type does not match k=")
)

// Error describes why an input is refused. The message is meant to be shown
// to the person who typed or pasted the input, for example
//
//	dkim: tag "p": not valid base64: '!' at character 5 is not a base64 character
//
// Errors never quote key material, so that a private key pasted by mistake
// does not end up in logs.
type Error struct {
	// Tag is the name of the offending tag of a key record ("p", "k", "h",
	// ...), or "" if the problem is not tied to one tag.
	Tag string
	// Reason says what is wrong.
	Reason string
	// Err is one of the sentinel errors, or nil.
	Err error
}

// Error formats the error as `dkim: tag "name": reason`, leaving out the tag
// when it is empty.
func (e *Error) Error() string {
	if e.Tag == "" {
		return "dkim: " + e.Reason
	}
	return "dkim: tag " + strconv.Quote(e.Tag) + ": " + e.Reason
}

// Unwrap returns the sentinel error, if any, so that errors.Is works.
func (e *Error) Unwrap() error { return e.Err }

func errorf(tag string, sentinel error, reason string) *Error {
	return &Error{Tag: tag, Reason: reason, Err: sentinel}
}
