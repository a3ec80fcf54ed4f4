package auth

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrUnauthenticated is returned by [Service.Authenticate],
	// [Service.Refresh] and [Service.Logout] for every token that does not
	// prove an identity: malformed, badly signed, expired, revoked, reused,
	// unknown, or belonging to a disabled user. The returned error wraps the
	// reason for logs; callers test only errors.Is(err, ErrUnauthenticated)
	// and show nothing more to the client.
	ErrUnauthenticated = errors.New("unauthenticated")

	// ErrInvalidCredentials is returned by [Service.Login] for a wrong
	// password, an unknown e-mail address and a disabled user alike, so that
	// the answer does not reveal which addresses have accounts.
	ErrInvalidCredentials = errors.New("invalid e-mail address or password")

	// ErrRateLimited is returned by [Service.Login] when too many logins
	// failed recently for the e-mail address or the client address. The
	// error is a [*RateLimitError], which says when to try again.
	ErrRateLimited = errors.New("too many failed logins; try again later")

	// ErrWeakPassword is returned by [HashPassword] and [ValidatePassword]
	// for a password outside the policy; the wrapping error says why.
	ErrWeakPassword = errors.New("password does not meet the policy")

	// ErrNotFound is returned for an API token or account that does not
	// exist in the account given, without saying whether it exists in
	// another.
	ErrNotFound = errors.New("not found")

	// ErrInvalidTokenName is returned by [Service.CreateAPIToken] for an
	// empty or over-long name, or one with control characters.
	ErrInvalidTokenName = errors.New("API token name must be 1 to 200 characters, without control characters")
)

// RateLimitError is the error [Service.Login] returns when it refuses to
// check a password because of too many recent failures. It matches
// [ErrRateLimited] with errors.Is.
type RateLimitError struct {
	// RetryAfter is how long until a login can succeed again, rounded up to
	// whole seconds (for an HTTP Retry-After header). It is advice: other
	// failures in the meantime may extend it.
	RetryAfter time.Duration
}

// Error implements error.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", ErrRateLimited, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// unauthenticated wraps a reason as ErrUnauthenticated.
func unauthenticated(reason error) error {
	return fmt.Errorf("%w: %w", ErrUnauthenticated, reason)
}

// unauthenticatedf is unauthenticated with a formatted reason.
func unauthenticatedf(format string, args ...any) error {
	return unauthenticated(fmt.Errorf(format, args...))
}
