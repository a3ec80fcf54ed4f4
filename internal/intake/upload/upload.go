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
// account; a user with several must name one). [ingest.Store.BeginUpload]
// authorises the upload with the decision every operation on the account
// goes through (the [access.ManageDomains] permission) before any of the
// body is read; the server reads at most its small general body limit
// before that, and the upload's own limit, MaxBody, only after it. The
// reports of an upload are stored only for domains of accounts in which the
// caller may manage domains account-wide (for an MSP's owner: its own
// account and every customer account below it, to -msp-depth).
//
// The body is either one file, sent raw with any content type (its name
// may be given as the filename query parameter or a Content-Disposition
// header), or multipart/form-data where every part with a file name is one
// file and other fields are ignored. Files are read one at a time and
// each is stored whole with [ingest.Upload.Add], so memory holds one file,
// never the whole request. A file name or form field name that is not
// valid UTF-8 or holds a NUL byte is refused (BAD_USER_INPUT, naming the
// field): a raw file's before its body is read, a part's as that file's
// error.
//
// # Response
//
// JSON {"accountId": ..., "files": [{"filename", "size", "blobId",
// "duplicate", "error"}]} in request order. A file's error is
// {"code", "message", "field"} with the codes of the GraphQL API (BAD_USER_INPUT
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
// BAD_USER_INPUT, 413 BAD_USER_INPUT when the body exceeds MaxBody, with
// or without a Content-Length.
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
	log      *slog.Logger
}

// New returns the handler. pool is read to resolve the caller's default
// account; store authorises the upload and stores the files.
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
	return &Handler{cfg: cfg, store: store, accounts: account.NewService(pool), log: log}
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
	// Field names what was wrong when it was not the content, such as
	// "filename".
	Field string `json:"field,omitempty"`
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
	up, err := h.begin(r)
	if err != nil {
		h.fail(w, info, err)
		return
	}
	if r.ContentLength > h.cfg.MaxBody {
		h.fail(w, info, h.bodyTooLarge())
		return
	}
	multipart := false
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		multipart = true
	} else if err := ingest.CheckFilename("filename", rawName(r)); err != nil {
		h.fail(w, info, err)
		return
	}
	// Only now, with the caller authorised, may the body grow past the
	// server's small pre-authentication limit.
	request.RaiseBodyLimit(r, h.cfg.MaxBody)
	// Best effort: a ResponseWriter wrapper without Unwrap hides the
	// connection, and the server's own deadlines then apply.
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(h.cfg.Timeout)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline.Add(time.Minute))
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)

	u := &upload{h: h, r: r, info: info, up: up}
	if multipart {
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
	writeJSON(w, status, Response{AccountID: up.Account, Files: u.files})
}

// begin resolves the account the upload is for and authorises the upload.
func (h *Handler) begin(r *http.Request) (*ingest.Upload, error) {
	ctx := r.Context()
	var id uuid.UUID
	if s := r.URL.Query().Get("accountId"); s != "" {
		var err error
		if id, err = uuid.Parse(s); err != nil {
			return nil, apperr.Invalid("accountId", "accountId is not an account id")
		}
	} else {
		acct, err := h.accounts.Default(ctx)
		if err != nil {
			return nil, err
		}
		id = acct.ID
	}
	return h.store.BeginUpload(ctx, id)
}

var errBodyTooLarge = errors.New("request body too large")

func (h *Handler) bodyTooLarge() error {
	return &apperr.Error{Code: apperr.BadUserInput, Field: "body",
		Message: "the request is larger than the limit of " + byteSize(h.cfg.MaxBody), Err: errBodyTooLarge}
}

// upload is one request being read.
type upload struct {
	h     *Handler
	r     *http.Request
	info  request.Info
	up    *ingest.Upload
	files []File
}

// rawName is the name of a raw body's file: the filename query parameter
// or the Content-Disposition header's.
func rawName(r *http.Request) string {
	name := r.URL.Query().Get("filename")
	if name == "" {
		if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil {
			name = params["filename"]
		}
	}
	return name
}

func (u *upload) raw() error {
	return u.file(cleanName(rawName(u.r)), u.r.Body)
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
		name := part.FileName()
		nameErr := ingest.CheckFilename("filename", name)
		switch {
		case nameErr != nil:
			err = u.refuse(part, nameErr)
		case apperr.TextProblem(part.FormName()) != "":
			err = u.refuse(part, apperr.Invalid("name", "a form field's name %s", apperr.TextProblem(part.FormName())))
		case name == "":
			err = drain(part)
		default:
			err = u.file(cleanName(name), part)
		}
		_ = part.Close()
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
	acc, err := u.up.Add(u.r.Context(), ingest.UploadedFile{Filename: name, Raw: raw, Remote: u.info.Client})
	switch e, ok := apperr.As(err); {
	case err == nil:
		f.BlobID, f.Duplicate = &acc.BlobID, acc.Duplicate
		h.log.Info("report uploaded", "request_id", u.info.ID, "account", u.up.Account, "filename", name,
			"size", f.Size, "blob", acc.BlobID, "duplicate", acc.Duplicate)
	case ok:
		f.Error = &Error{Code: e.Code, Message: e.Message}
		if e.Field == "filename" {
			f.Error.Field = e.Field
		}
	default:
		h.log.Error("upload not stored", "request_id", u.info.ID, "account", u.up.Account, "filename", name, "err", err)
		f.Error = &Error{Code: apperr.Internal, Message: "internal error (request id " + u.info.ID + ")"}
	}
	u.files = append(u.files, f)
	return nil
}

// refuse records a part refused for its names, which are not shown (they
// are not text), and skips its content.
func (u *upload) refuse(part io.Reader, err error) error {
	e, _ := apperr.As(err)
	u.files = append(u.files, File{Error: &Error{Code: e.Code, Message: e.Message, Field: e.Field}})
	return drain(part)
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
