package request

import (
	"context"
	"io"
	"net/http"
)

// The server reads at most a small amount of any request body before the
// caller is authenticated: it wraps every body in a limit and keeps the
// unlimited body here, so that a route that has authenticated and
// authorised its caller (an upload) may read further. Nothing else can.

type bodyKey struct{}

type rawBody struct {
	w    http.ResponseWriter
	body io.ReadCloser
}

// WithBodyLimit replaces r's body with one that reads at most n bytes (the
// server's pre-authentication limit) and returns the request to serve; see
// [RaiseBodyLimit].
func WithBodyLimit(w http.ResponseWriter, r *http.Request, n int64) *http.Request {
	raw := &rawBody{w: w, body: r.Body}
	r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, raw))
	r.Body = http.MaxBytesReader(w, raw.body, n)
	return r
}

// RaiseBodyLimit lets r's body be read up to n more bytes from where it
// stands, in place of the limit [WithBodyLimit] set; a handler calls it
// once it has authenticated and authorised the caller, before reading the
// body. Without WithBodyLimit in r's past (a handler served on its own, in
// tests) it changes nothing.
func RaiseBodyLimit(r *http.Request, n int64) {
	if raw, ok := r.Context().Value(bodyKey{}).(*rawBody); ok {
		r.Body = http.MaxBytesReader(raw.w, raw.body, n)
	}
}
