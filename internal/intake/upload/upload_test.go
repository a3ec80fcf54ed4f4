package upload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/intake/intaketest"
	"github.com/rampartmail/rampart/internal/intake/upload"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type env struct {
	*intaketest.Env
	h *upload.Handler
}

func setup(t *testing.T, cfg upload.Config) *env {
	t.Helper()
	e := &env{Env: intaketest.New(t)}
	e.h = upload.New(e.Pool, e.Store, cfg, nil)
	return e
}

// server serves the handler as the principal; nil serves it anonymously.
func (e *env) server(t *testing.T, p *access.Principal) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(access.NewContext(r.Context(), *p))
		}
		e.h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/upload"
}

// token makes an API token of the account (the scope of a token made
// before scopes: an owner of the account) and returns its principal.
func (e *env) token(t *testing.T, account uuid.UUID) *access.Principal {
	t.Helper()
	var id uuid.UUID
	hash := uuid.New()
	require.NoError(t, e.Pool.QueryRow(context.Background(), `INSERT INTO api_tokens (account_id, name, hint, token_hash)
		VALUES ($1, 'test', 'test', $2) RETURNING id`, account, hash[:]).Scan(&id))
	return &access.Principal{APITokenID: id, TokenAccountID: account}
}

const report = `<?xml version="1.0"?><feedback><report_metadata><org_name>receiver.test</org_name><report_id>1</report_id></report_metadata></feedback>`

type reply struct {
	status int
	body   upload.Response
	errors []struct {
		Message    string
		Extensions map[string]any
	}
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	rep := reply{status: resp.StatusCode}
	if strings.HasPrefix(string(b), `{"errors"`) {
		var e struct {
			Errors []struct {
				Message    string
				Extensions map[string]any
			}
		}
		require.NoError(t, json.Unmarshal(b, &e), string(b))
		rep.errors = e.Errors
	} else {
		require.NoError(t, json.Unmarshal(b, &rep.body), string(b))
	}
	return rep
}

func rawRequest(t *testing.T, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/xml")
	return req
}

func multipartRequest(t *testing.T, url string, files map[string]string, order ...string) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("note", "a field that is not a file"))
	for _, name := range order {
		w, err := mw.CreateFormFile("file", name)
		require.NoError(t, err)
		_, err = w.Write([]byte(files[name]))
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, url, &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

func TestRawUpload(t *testing.T) {
	t.Parallel()
	e := setup(t, upload.Config{})
	url := e.server(t, e.token(t, e.Account))

	rep := do(t, rawRequest(t, url+"?filename=google.xml", report))
	require.Equal(t, http.StatusOK, rep.status)
	require.Equal(t, e.Account, rep.body.AccountID)
	require.Len(t, rep.body.Files, 1)
	f := rep.body.Files[0]
	require.Nil(t, f.Error)
	require.NotNil(t, f.BlobID)
	require.False(t, f.Duplicate)
	require.Equal(t, "google.xml", f.Filename)
	require.EqualValues(t, len(report), f.Size)

	blobs := e.Blobs(t)
	require.Len(t, blobs, 1)
	b := blobs[0]
	require.Equal(t, *f.BlobID, b.ID)
	require.Equal(t, "upload", b.Source)
	require.Equal(t, report, string(b.Raw))
	require.Equal(t, e.Account, *b.AccountID)
	require.Empty(t, b.Recipients)
	require.Equal(t, "google.xml", b.Filename)
	require.Equal(t, "127.0.0.1", b.Remote)
	require.Equal(t, 1, e.IngestJobs(t))

	// The same file again is a duplicate of the same blob.
	req := rawRequest(t, url, report)
	req.Header.Set("Content-Disposition", `attachment; filename="again.xml"`)
	rep = do(t, req)
	require.Equal(t, http.StatusOK, rep.status)
	require.True(t, rep.body.Files[0].Duplicate)
	require.Equal(t, *f.BlobID, *rep.body.Files[0].BlobID)
	require.Equal(t, "again.xml", rep.body.Files[0].Filename)
	require.Equal(t, 1, e.BlobCount(t))
}

func TestMultipartUpload(t *testing.T) {
	t.Parallel()
	e := setup(t, upload.Config{})
	user := e.AddOwner(t, e.Account, "owner@example.com")
	url := e.server(t, &access.Principal{UserID: user})

	files := map[string]string{"a.xml": report, `C:\reports\b.xml.gz`: "\x1f\x8b not really gzip"}
	rep := do(t, multipartRequest(t, url, files, "a.xml", `C:\reports\b.xml.gz`))
	require.Equal(t, http.StatusOK, rep.status, rep.errors)
	require.Len(t, rep.body.Files, 2)
	require.Equal(t, "a.xml", rep.body.Files[0].Filename)
	require.Equal(t, "b.xml.gz", rep.body.Files[1].Filename, "only the base name is kept")
	for _, f := range rep.body.Files {
		require.Nil(t, f.Error)
		require.NotNil(t, f.BlobID)
	}
	got := map[string]string{}
	for _, b := range e.Blobs(t) {
		require.Equal(t, e.Account, *b.AccountID)
		got[b.Filename] = string(b.Raw)
	}
	require.Equal(t, map[string]string{"a.xml": report, "b.xml.gz": files[`C:\reports\b.xml.gz`]}, got)
	require.Equal(t, 2, e.IngestJobs(t))
}

func TestPerFileRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t, upload.Config{MaxFileSize: 1024, MaxFiles: 3})
	url := e.server(t, e.token(t, e.Account))
	files := map[string]string{"ok.xml": report, "big.xml": strings.Repeat("x", 2000), "empty.xml": "", "fourth.xml": report + " "}
	rep := do(t, multipartRequest(t, url, files, "ok.xml", "big.xml", "empty.xml", "fourth.xml"))
	require.Equal(t, http.StatusBadRequest, rep.status)
	require.Len(t, rep.body.Files, 4)
	require.Nil(t, rep.body.Files[0].Error)
	for i, want := range map[int]string{1: "larger than the limit of 1.0 KB", 2: "empty", 3: "too many files"} {
		f := rep.body.Files[i]
		require.NotNil(t, f.Error, f.Filename)
		require.Equal(t, "BAD_USER_INPUT", string(f.Error.Code))
		require.Contains(t, f.Error.Message, want)
		require.Nil(t, f.BlobID)
	}
	require.Equal(t, 1, e.BlobCount(t), "the good file is stored")
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	e := setup(t, upload.Config{MaxBody: 4096})
	other := e.AddAccount(t, "someone else")
	multi := e.AddOwner(t, e.Account, "multi@example.com")
	_, err := e.Pool.Exec(t.Context(), `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'owner')`, other, multi)
	require.NoError(t, err)
	stranger := e.AddAccount(t, "stranger")

	for _, tc := range []struct {
		name      string
		principal *access.Principal
		query     string
		body      string
		multipart bool
		chunked   bool
		status    int
		code      string
	}{
		{name: "anonymous", status: http.StatusUnauthorized, code: "UNAUTHENTICATED"},
		{name: "another account", principal: e.token(t, e.Account), query: "?accountId=" + stranger.String(), status: http.StatusNotFound, code: "NOT_FOUND"},
		{name: "no such account", principal: e.token(t, e.Account), query: "?accountId=" + uuid.NewString(), status: http.StatusNotFound, code: "NOT_FOUND"},
		{name: "bad account id", principal: e.token(t, e.Account), query: "?accountId=x", status: http.StatusBadRequest, code: "BAD_USER_INPUT"},
		{name: "several accounts, none named", principal: &access.Principal{UserID: multi}, status: http.StatusBadRequest, code: "BAD_USER_INPUT"},
		{name: "body too large", principal: e.token(t, e.Account), body: strings.Repeat("x", 5000), status: http.StatusRequestEntityTooLarge, code: "BAD_USER_INPUT"},
		{name: "body too large, length unknown", principal: e.token(t, e.Account), body: strings.Repeat("x", 5000), chunked: true, status: http.StatusRequestEntityTooLarge, code: "BAD_USER_INPUT"},
		{name: "no file", principal: e.token(t, e.Account), multipart: true, status: http.StatusBadRequest, code: "BAD_USER_INPUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := e.server(t, tc.principal) + tc.query
			req := rawRequest(t, url, tc.body)
			if tc.multipart {
				req = multipartRequest(t, url, nil)
			}
			if tc.chunked {
				req.Body = io.NopCloser(io.MultiReader(strings.NewReader(tc.body)))
				req.ContentLength = -1
			}
			rep := do(t, req)
			require.Equal(t, tc.status, rep.status)
			require.Len(t, rep.errors, 1)
			require.Equal(t, tc.code, rep.errors[0].Extensions["code"], rep.errors[0].Message)
			require.NotEmpty(t, rep.errors[0].Extensions["requestId"])
		})
	}
	require.Zero(t, e.BlobCount(t))

	// Naming one of several accounts works.
	url := e.server(t, &access.Principal{UserID: multi}) + "?accountId=" + other.String()
	rep := do(t, rawRequest(t, url, report))
	require.Equal(t, http.StatusOK, rep.status)
	require.Equal(t, other, rep.body.AccountID)
}

func TestSlowUploadOutlastsServerTimeouts(t *testing.T) {
	t.Parallel()
	e := setup(t, upload.Config{})
	p := e.token(t, e.Account)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.h.ServeHTTP(w, r.WithContext(access.NewContext(r.Context(), *p)))
	}))
	// The API's deadlines are made for small requests.
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	pr, pw := io.Pipe()
	go func() {
		for i := range 5 {
			time.Sleep(100 * time.Millisecond)
			_, _ = fmt.Fprintf(pw, "<!-- %d -->", i)
		}
		_, _ = pw.Write([]byte(report))
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/upload", pr)
	require.NoError(t, err)
	rep := do(t, req)
	require.Equal(t, http.StatusOK, rep.status)
	require.Equal(t, 1, e.BlobCount(t))
}
