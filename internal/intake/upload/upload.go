// Package upload is the HTTP endpoint through which an account's users and
// API tokens upload DMARC aggregate reports they already have: XML, gzip
// or zip files, or whole e-mail messages.
//
// The lead mounts [Handler] at POST /upload behind the authentication
// middleware, which puts the [access.Principal] in the request context.
//
// # Request
//
// The account is the accountId query parameter or, without one, the
// caller's default account (an API token's own account; a user's only
// account; a user with several must name one). Uploading needs the
// [access.ManageDomains] permission in that account: an upload adds reports
// and changes the figures every viewer of the account's domains sees, so it
// is a change to the domains' data rather than a read, and the same
// permission already governs what the account's domains are.
//
// The body is either one file, sent raw with any content type (its name
// may be given as the filename query parameter or a Content-Disposition
// header), or multipart/form-data where every part with a file name is one
// file and other fields are ignored. Files are read one at a time and
// each is stored whole with [ingest.Store.Accept] (Source upload, scoped
// to the account), so memory holds one file, never the whole request.
//
// # Response
//
// JSON {"accountId": ..., "files": [{"filename", "size", "blobId",
// "duplicate", "error"}]} in request order. A file's error is
// {"code", "message"} with the codes of the GraphQL API (BAD_USER_INPUT
// for a file too large or empty, INTERNAL with a request id otherwise) and
// no blobId. The status is 200 when every file was accepted, 400 when a
// file was refused for its content and 500 when one could not be stored;
// files without an error are stored whatever the status, and uploading
// them again is harmless (duplicate is then true). A file accepted here
// is decoded later by the report.ingest job, which may still refuse it.
//
// Errors about the request itself are GraphQL-shaped, {"errors": [{"message",
// "extensions": {"code", "requestId"}}]}: 401 UNAUTHENTICATED, 404
// NOT_FOUND (no such account, or not the caller's), 403 FORBIDDEN, 400
// BAD_USER_INPUT, 413 BAD_USER_INPUT when the body exceeds MaxBody.
package upload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/request"
)

// Defaults for the zero fields of [Config].
const (
	DefaultMaxBody  = 100 << 20
	DefaultMaxFiles = 100
	DefaultTimeout  = 10 * time.Minute
)

// Config bounds an upload.
type Config struct {
	// MaxBody caps the request body, in bytes (default 100 MiB). The
	// server's general body limit must not be lower for this route.
	MaxBody int64
	// MaxFileSize caps one file (default [ingest.DefaultMaxSize]); it
	// should match the store's limit.
	MaxFileSize int64
	// MaxFiles caps the files of one request (default 100); further files
	// are refused, each with its own error.
	MaxFiles int
	// Timeout is how long an upload may take to arrive and be answered
	// (default 10 minutes): the server's read and write deadlines, made
	// for small API requests, are extended to it for this route.
	Timeout time.Duration
}

// Handler is the upload endpoint.
type Handler struct {
	cfg      Config
	store    *ingest.Store
	accounts *account.Service
	authz    *access.Authorizer
	log      *slog.Logger
}

// New returns the handler. pool is read to resolve and authorise the
// account; store stores the files.
func New(pool *pgxpool.Pool, store *ingest.Store, cfg Config, log *slog.Logger) *Handler {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = ingest.DefaultMaxSize
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, store: store, accounts: account.NewService(pool), authz: access.New(pool), log: log}
}

// Response is the answer to an upload.
type Response struct {
	AccountID uuid.UUID `json:"accountId"`
	Files     []File    `json:"files"`
}

// File is what became of one uploaded file.
type File struct {
	Filename string `json:"filename"`
	// Size is the number of bytes read (up to one more than the limit for
	// a file too large).
	Size      int64      `json:"size"`
	BlobID    *uuid.UUID `json:"blobId"`
	Duplicate bool       `json:"duplicate"`
	Error     *Error     `json:"error"`
}

// Error is a file's error.
type Error struct {
	Code    apperr.Code `json:"code"`
	Message string      `json:"message"`
}

// ServeHTTP handles one upload.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info := request.FromContext(ctx)
	if info.ID == "" {
		info.ID = request.NewID()
	}
	if info.Client == "" {
		info.Client, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	if _, ok := access.FromContext(ctx); !ok {
		h.fail(w, info, &apperr.Error{Code: apperr.Unauthenticated, Message: "authentication required"})
		return
	}
	accountID, err := h.account(r)
	if err != nil {
		h.fail(w, info, err)
		return
	}
	if r.ContentLength > h.cfg.MaxBody {
		h.fail(w, info, h.bodyTooLarge())
		return
	}
	// Best effort: a ResponseWriter wrapper without Unwrap hides the
	// connection, and the server's own deadlines then apply.
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(h.cfg.Timeout)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline.Add(time.Minute))
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)

	u := &upload{h: h, r: r, info: info, account: accountID}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		err = u.multipart()
	} else {
		err = u.raw()
	}
	if err != nil {
		h.fail(w, info, err)
		return
	}
	status := http.StatusOK
	for _, f := range u.files {
		switch {
		case f.Error == nil:
		case f.Error.Code == apperr.Internal:
			status = http.StatusInternalServerError
		case status == http.StatusOK:
			status = http.StatusBadRequest
		}
	}
	writeJSON(w, status, Response{AccountID: accountID, Files: u.files})
}

// account resolves and authorises the account the upload is for.
func (h *Handler) account(r *http.Request) (uuid.UUID, error) {
	ctx := r.Context()
	var id uuid.UUID
	if s := r.URL.Query().Get("accountId"); s != "" {
		var err error
		if id, err = uuid.Parse(s); err != nil {
			return uuid.Nil, apperr.Invalid("accountId", "accountId is not an account id")
		}
	} else {
		acct, err := h.accounts.Default(ctx)
		if err != nil {
			return uuid.Nil, err
		}
		id = acct.ID
	}
	if err := h.authz.Authorize(ctx, id, access.ManageDomains); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

var errBodyTooLarge = errors.New("request body too large")

func (h *Handler) bodyTooLarge() error {
	return &apperr.Error{Code: apperr.BadUserInput, Field: "body",
		Message: "the request is larger than the limit of " + byteSize(h.cfg.MaxBody), Err: errBodyTooLarge}
}

// upload is one request being read.
type upload struct {
	h       *Handler
	r       *http.Request
	info    request.Info
	account uuid.UUID
	files   []File
}

func (u *upload) raw() error {
	name := u.r.URL.Query().Get("filename")
	if name == "" {
		if _, params, err := mime.ParseMediaType(u.r.Header.Get("Content-Disposition")); err == nil {
			name = params["filename"]
		}
	}
	return u.file(cleanName(name), u.r.Body)
}

func (u *upload) multipart() error {
	mr, err := u.r.MultipartReader()
	if err != nil {
		return apperr.Invalid("body", "the multipart body cannot be read: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return u.readError(err)
		}
		if part.FileName() == "" {
			err = drain(part)
		} else {
			err = u.file(cleanName(part.FileName()), part)
		}
		part.Close()
		if err != nil {
			return err
		}
	}
	if len(u.files) == 0 {
		return apperr.Invalid("body", "the request holds no file: send each file as a form-data part with a file name")
	}
	return nil
}

// file reads one file and stores it. Only a failure to read the request
// is returned; what became of the file is recorded in u.files.
func (u *upload) file(name string, body io.Reader) error {
	h := u.h
	f := File{Filename: name}
	if len(u.files) >= h.cfg.MaxFiles {
		f.Error = &Error{Code: apperr.BadUserInput, Message: fmt.Sprintf("too many files: the limit is %d per request", h.cfg.MaxFiles)}
		u.files = append(u.files, f)
		return drain(body)
	}
	raw, err := io.ReadAll(io.LimitReader(body, h.cfg.MaxFileSize+1))
	f.Size = int64(len(raw))
	if err != nil {
		return u.readError(err)
	}
	if f.Size > h.cfg.MaxFileSize {
		f.Error = &Error{Code: apperr.BadUserInput, Message: "the file is larger than the limit of " + byteSize(h.cfg.MaxFileSize)}
		u.files = append(u.files, f)
		return drain(body)
	}
	acc, err := h.store.Accept(u.r.Context(), ingest.Incoming{
		Source: ingest.SourceUpload, Raw: raw, AccountID: &u.account, Remote: u.info.Client, Filename: name,
	})
	switch e, ok := apperr.As(err); {
	case err == nil:
		f.BlobID, f.Duplicate = &acc.BlobID, acc.Duplicate
		h.log.Info("report uploaded", "request_id", u.info.ID, "account", u.account, "filename", name,
			"size", f.Size, "blob", acc.BlobID, "duplicate", acc.Duplicate)
	case ok:
		f.Error = &Error{Code: e.Code, Message: e.Message}
	default:
		h.log.Error("upload not stored", "request_id", u.info.ID, "account", u.account, "filename", name, "err", err)
		f.Error = &Error{Code: apperr.Internal, Message: "internal error (request id " + u.info.ID + ")"}
	}
	u.files = append(u.files, f)
	return nil
}

func (u *upload) readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return u.h.bodyTooLarge()
	}
	return apperr.Invalid("body", "the request body cannot be read: %v", err)
}

// drain reads the rest of a part so that the next one can be read; the
// request's body limit bounds it.
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// cleanName keeps the last element of a client's file name.
func cleanName(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	name = path.Base(name)
	if name == "." || name == "/" {
		return ""
	}
	return name
}

type requestError struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

var statusOf = map[apperr.Code]int{
	apperr.Unauthenticated: http.StatusUnauthorized,
	apperr.Forbidden:       http.StatusForbidden,
	apperr.NotFound:        http.StatusNotFound,
	apperr.BadUserInput:    http.StatusBadRequest,
	apperr.Conflict:        http.StatusConflict,
	apperr.RateLimited:     http.StatusTooManyRequests,
}

// fail answers a request-level error; only apperr messages are shown.
func (h *Handler) fail(w http.ResponseWriter, info request.Info, err error) {
	ext := map[string]any{"requestId": info.ID}
	e, ok := apperr.As(err)
	if !ok {
		h.log.Error("upload failed", "request_id", info.ID, "err", err)
		e = &apperr.Error{Code: apperr.Internal, Message: "internal error"}
	}
	ext["code"] = e.Code
	if e.Field != "" {
		ext["field"] = e.Field
	}
	status, known := statusOf[e.Code]
	if !known {
		status = http.StatusInternalServerError
	}
	if errors.Is(err, errBodyTooLarge) {
		status = http.StatusRequestEntityTooLarge
	}
	if e.Code == apperr.Unauthenticated {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(w, status, requestError{Errors: []errorEntry{{Message: e.Message, Extensions: ext}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
