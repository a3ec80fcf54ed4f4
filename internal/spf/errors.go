package spf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Errors returned by this package wrap them, so test for
// them with errors.Is.
var (
	// ErrNotSPF means the text is not an SPF record at all: it does not
	// start with "v=spf1" followed by a space or the end of the text (RFC
	// 7208 §4.5). "v=spf10" and "v=spf1mx" are not SPF records. A caller
	// looking at all TXT records of a name should skip such records.
	ErrNotSPF = errors.New("spf: not an SPF record")

	// ErrDuplicateModifier means redirect= or exp= occurs more than once in
	// a record, which RFC 7208 §6 makes a permerror.
	ErrDuplicateModifier = errors.New("spf: modifier occurs more than once")

	// ErrMultipleRecords means a domain publishes more than one SPF record
	// (RFC 7208 §4.5): the result is permerror.
	ErrMultipleRecords = errors.New("spf: more than one SPF record")

	// ErrNoRecord means the target of an include or redirect has no SPF
	// record (RFC 7208 §5.2, §6.1): the result is permerror.
	ErrNoRecord = errors.New("spf: no SPF record")

	// ErrTooManyLookups means evaluation needed more than the allowed
	// number (10) of DNS-querying terms (RFC 7208 §4.6.4).
	ErrTooManyLookups = errors.New("spf: too many DNS-querying terms")

	// ErrTooManyVoidLookups means more than the allowed number (2) of DNS
	// queries of terms returned no records (RFC 7208 §4.6.4).
	ErrTooManyVoidLookups = errors.New("spf: too many void DNS lookups")

	// ErrTooManyMX means an mx mechanism found more than 10 MX records
	// (RFC 7208 §4.6.4).
	ErrTooManyMX = errors.New("spf: more than 10 MX records")

	// ErrNotFound is what a Resolver returns, wrapped or not, when a name
	// does not exist (NXDOMAIN) or has no records of the requested type
	// (NODATA). The evaluator treats it as an empty answer, a "void lookup";
	// any other resolver error makes the result temperror.
	ErrNotFound = errors.New("spf: no such DNS records")

	// ErrNotFlattenable means an SPF chain cannot be replaced by a list of
	// address ranges, because it depends on the message being checked
	// (exists, ptr, macros) or on qualifiers other than "+".
	ErrNotFlattenable = errors.New("spf: record cannot be flattened")
)

// SyntaxError describes why a record, or one of its terms, is invalid. The
// message is meant to be shown to the owner of the record as is, for example
//
//	spf: term "ip4:192.0.2.1/33": CIDR length 33 is out of range 0-32
type SyntaxError struct {
	// Term is the offending term as written, or "" if the problem is not
	// tied to one term.
	Term string
	// Reason says what is wrong.
	Reason string
	// Err is ErrNotSPF or ErrDuplicateModifier, or nil for other syntax
	// errors.
	Err error
}

// Error formats the error as `spf: term "term": reason`, leaving out the term
// when it is empty.
func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString("spf: ")
	if e.Term != "" {
		b.WriteString("term " + strconv.Quote(e.Term) + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the sentinel error, if any.
func (e *SyntaxError) Unwrap() error { return e.Err }

func termError(term, format string, args ...any) *SyntaxError {
	return &SyntaxError{Term: term, Reason: fmt.Sprintf(format, args...)}
}

// quoteByte quotes one octet of a record for an error message, as 'a' or
// '\x96'.
func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("'\\x%02x'", c)
}
