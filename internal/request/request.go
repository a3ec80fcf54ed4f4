// Package request carries per-request metadata through a context: the
// request id that ties an error shown to a caller to the server's log line,
// the client's address (for throttling) and the bearer credential as sent.
package request

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Info is what the HTTP layer knows about a request.
type Info struct {
	// ID identifies the request in logs and in INTERNAL errors.
	ID string
	// Client is the client's IP address.
	Client string
	// Bearer is the credential from the Authorization header, not yet checked.
	Bearer string
	// UserAgent is the User-Agent header, at most 200 bytes: shown in a
	// user's list of sessions, it proves nothing.
	UserAgent string
}

type key struct{}

// NewContext returns a context carrying info.
func NewContext(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// FromContext returns the request's info (zero if none).
func FromContext(ctx context.Context) Info {
	info, _ := ctx.Value(key{}).(Info)
	return info
}

// NewID returns a fresh random request id.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
