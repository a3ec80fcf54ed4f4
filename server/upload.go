package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/request"
)

// GraphQLUploads wraps the GraphQL handler so that a multipart request (an
// uploadReports call, the only operation that may be larger than the
// server's body limit) authenticates from its Authorization header before
// any of its body is read: without a valid credential it is answered 401
// at once; with one, the principal goes into the context (the GraphQL
// layer then does not authenticate again) and the body may be read up to
// maxBody. An oversized body is answered 413. Other requests pass through
// with the server's small limit.
func GraphQLUploads(authenticate Authenticator, maxBody int64, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
			next.ServeHTTP(w, r)
			return
		}
		info := request.FromContext(r.Context())
		if info.Bearer == "" {
			writeGraphQLError(w, http.StatusUnauthorized, &apperr.Error{Code: apperr.Unauthenticated,
				Message: "authentication required: an upload must carry its credential in the Authorization header"}, info.ID)
			return
		}
		p, err := authenticate(r.Context(), info.Bearer)
		if err != nil {
			ae, ok := apperr.As(err)
			if !ok {
				log.ErrorContext(r.Context(), "authenticate", "err", err, "request_id", info.ID)
				ae = &apperr.Error{Code: apperr.Internal, Message: "internal error (request " + info.ID + ")"}
			}
			status := http.StatusInternalServerError
			switch ae.Code {
			case apperr.Unauthenticated:
				status = http.StatusUnauthorized
			case apperr.RateLimited:
				status = http.StatusTooManyRequests
			}
			writeGraphQLError(w, status, ae, info.ID)
			return
		}
		if r.ContentLength > maxBody {
			writeGraphQLError(w, http.StatusRequestEntityTooLarge, tooLarge(maxBody), info.ID)
			return
		}
		r = r.WithContext(access.NewContext(r.Context(), p))
		request.RaiseBodyLimit(r, maxBody)
		if r.ContentLength < 0 {
			// gqlgen keeps the files of a body shorter than its MaxMemory in
			// memory, and takes a body of unknown length for a short one;
			// this one may be as long as the limit, so it goes to temporary
			// files instead.
			r.ContentLength = maxBody
		}
		body := &limitedBody{ReadCloser: r.Body}
		r.Body = body
		next.ServeHTTP(&tooLargeWriter{ResponseWriter: w, body: body, maxBody: maxBody, requestID: info.ID}, r)
	})
}

func tooLarge(maxBody int64) *apperr.Error {
	return &apperr.Error{Code: apperr.BadUserInput, Field: "body",
		Message: "the request is larger than the upload limit of " + byteSize(maxBody)}
}

// limitedBody notes whether reading hit the body limit.
type limitedBody struct {
	io.ReadCloser
	exceeded bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.exceeded = true
	}
	return n, err
}

// tooLargeWriter answers 413 in place of the error gqlgen's multipart
// transport gives (422, "failed to read file") when a body without a
// Content-Length ran past the limit.
type tooLargeWriter struct {
	http.ResponseWriter
	body      *limitedBody
	maxBody   int64
	requestID string
	replaced  bool
}

func (w *tooLargeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *tooLargeWriter) WriteHeader(code int) {
	if w.body.exceeded && code >= 400 && !w.replaced {
		w.replaced = true
		writeGraphQLError(w.ResponseWriter, http.StatusRequestEntityTooLarge, tooLarge(w.maxBody), w.requestID)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tooLargeWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil // the 413's body is written
	}
	return w.ResponseWriter.Write(p)
}

// writeGraphQLError answers with one error in the shape of GraphQL's.
func writeGraphQLError(w http.ResponseWriter, status int, e *apperr.Error, requestID string) {
	ext := map[string]any{"code": e.Code, "requestId": requestID}
	if e.Field != "" {
		ext["field"] = e.Field
	}
	if e.Code == apperr.Unauthenticated {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{"message": e.Message, "extensions": ext}}})
}

func byteSize(n int64) string {
	if n >= 1<<20 {
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
