// Package apperr defines the errors that domain code returns to API callers.
//
// Each kind maps to one GraphQL extensions.code in the error presenter. Only
// these errors' messages reach a caller; any other error is reported as
// INTERNAL with a request id and logged, so SQL text and internal names never
// leak.
package apperr

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Code is the machine-readable kind of an error, shown as extensions.code.
type Code string

// The codes an API caller can see.
const (
	Unauthenticated Code = "UNAUTHENTICATED"
	Forbidden       Code = "FORBIDDEN"
	NotFound        Code = "NOT_FOUND"
	BadUserInput    Code = "BAD_USER_INPUT"
	Conflict        Code = "CONFLICT"
	RateLimited     Code = "RATE_LIMITED"
	// Readiness refuses a DMARC policy change that the domain's reports do
	// not support yet (internal/readiness); the caller may force it.
	Readiness Code = "READINESS"
	Internal  Code = "INTERNAL"
)

// Error is an error safe to show to the caller.
type Error struct {
	Code    Code
	Message string
	// Field names the input field at fault, for BAD_USER_INPUT.
	Field string
	// RetryAfter is set for RATE_LIMITED.
	RetryAfter time.Duration
	// Extensions are further machine-readable details, added to the
	// GraphQL error's extensions (e.g. a READINESS error's reasons).
	Extensions map[string]any
	// Err is the cause, for logs only.
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, apperr.ErrNotFound) match any error of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is; they match any *Error of their code.
var (
	ErrUnauthenticated = &Error{Code: Unauthenticated}
	ErrForbidden       = &Error{Code: Forbidden}
	ErrNotFound        = &Error{Code: NotFound}
	ErrBadUserInput    = &Error{Code: BadUserInput}
	ErrConflict        = &Error{Code: Conflict}
	ErrRateLimited     = &Error{Code: RateLimited}
	ErrReadiness       = &Error{Code: Readiness}
)

// NotFoundf reports that an object does not exist or is not the caller's to see.
func NotFoundf(format string, args ...any) error {
	return &Error{Code: NotFound, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports bad input in one field.
func Invalid(field, format string, args ...any) error {
	return &Error{Code: BadUserInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Conflictf reports that the change clashes with existing data.
func Conflictf(format string, args ...any) error {
	return &Error{Code: Conflict, Message: fmt.Sprintf(format, args...)}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e, true
	}
	return nil, false
}

// TextProblem says what makes s unfit as text a caller may store:
// PostgreSQL's text holds neither a NUL nor invalid UTF-8. It is "" when
// nothing is, else a phrase such as "contains a NUL character" to follow
// the name of what was checked. Every input path (GraphQL arguments and
// variables, uploaded file and form names) decides with it.
func TextProblem(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL character"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	return ""
}
