package dmarc

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors for the failures that callers are expected to branch on.
// They are wrapped by a *SyntaxError, which carries the details; test for
// them with errors.Is.
var (
	// ErrNotDMARC means the text is not a DMARC record at all: it does not
	// start with the exact tag v=DMARC1. A resolver looking at several TXT
	// records at _dmarc.<domain> should skip such records rather than report
	// them as broken.
	ErrNotDMARC = errors.New("dmarc: not a DMARC record")

	// ErrMissingPolicy means the required p tag is absent.
	ErrMissingPolicy = errors.New("dmarc: required tag p is missing")

	// ErrDuplicateTag means a tag occurs more than once. RFC 6376 §3.2, whose
	// tag-list syntax DMARC reuses, makes the whole record invalid then.
	ErrDuplicateTag = errors.New("dmarc: duplicate tag")
)

// SyntaxError describes why a record, or one of its values, is invalid. The
// message is meant to be shown to the owner of the record as is, for example
//
//	dmarc: tag "pct": "abc" is not an integer between 0 and 100
type SyntaxError struct {
	// Tag is the lowercase name of the offending tag, or "" if the problem
	// is not tied to one tag (or the value was parsed on its own, as by
	// ParsePolicy or ParseURI).
	Tag string
	// Value is the offending value, or "" if the problem is not about a
	// value (a missing or duplicate tag, say).
	Value string
	// Reason says what is wrong. When Value is set it reads as a predicate
	// of the value ("is not ...").
	Reason string
	// Err is one of ErrNotDMARC, ErrMissingPolicy or ErrDuplicateTag, or
	// nil for plain bad values.
	Err error
}

// Error formats the error as `dmarc: tag "name": "value" reason`, leaving out
// the parts that are empty.
func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString("dmarc: ")
	if e.Tag != "" {
		b.WriteString("tag " + strconv.Quote(e.Tag) + ": ")
	}
	if e.Value != "" {
		b.WriteString(strconv.Quote(e.Value) + " ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the sentinel error, if any, so errors.Is works.
func (e *SyntaxError) Unwrap() error { return e.Err }

// valueError reports a bad value. An empty value gets its own wording, since
// `"" is not ...` reads badly and an empty value is usually a typo.
func valueError(value, reason string) *SyntaxError {
	if value == "" {
		return &SyntaxError{Reason: "value is empty"}
	}
	return &SyntaxError{Value: value, Reason: reason}
}

// withTag attributes err, if it is a *SyntaxError without a tag, to tag.
func withTag(tag string, err error) error {
	var se *SyntaxError
	if errors.As(err, &se) && se.Tag == "" {
		se.Tag = tag
	}
	return err
}
