package upload_test

// Attack tests against the built `rampart serve` binary: uploads go
// through the authorisation every other operation does, file names that
// are not text are refused naming the field, and a body past the limit is
// 413 however it is framed. The resource-bounded ones are in
// bounded_attack_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/attacktest"
)

// reportFor is a one-record aggregate report for domain, dated yesterday.
func reportFor(id, domain string) []byte {
	begin := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	return fmt.Appendf(nil, `<?xml version="1.0"?>
<feedback><version>1.0</version>
<report_metadata><org_name>receiver.test</org_name><email>dmarc@receiver.test</email><report_id>%s</report_id>
<date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
<policy_published><domain>%s</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>3</count>
<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
<identifiers><header_from>%s</header_from></identifiers>
<auth_results><spf><domain>%s</domain><result>pass</result></spf></auth_results></record>
</feedback>
`, id, begin.Unix(), begin.Add(24*time.Hour-time.Second).Unix(), domain, domain, domain)
}

type httpReply struct {
	Status int
	Body   string
	Upload struct {
		AccountID string
		Files     []struct {
			Filename string
			BlobID   *string
			Error    *struct{ Code, Message, Field string }
		}
	}
	Errors []struct {
		Message    string
		Extensions map[string]any
	}
}

// send posts a request and decodes its JSON answer.
func send(t *testing.T, req *http.Request, token string) httpReply {
	t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(req.Context(), time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	rep := httpReply{Status: resp.StatusCode, Body: string(b)}
	var shape struct {
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
		Data json.RawMessage
	}
	require.NoError(t, json.Unmarshal(b, &shape), "%d %s", resp.StatusCode, b)
	rep.Errors = shape.Errors
	if shape.Errors == nil && shape.Data == nil {
		require.NoError(t, json.Unmarshal(b, &rep.Upload), "%s", b)
	}
	return rep
}

type part struct {
	field, filename string
	body            []byte
}

// multipartBody encodes parts. Names go as RFC 2231 extended parameters
// (filename*=UTF-8”a%00b), so that any byte reaches the server: a raw NUL
// would make the part's header line malformed.
func multipartBody(t *testing.T, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := `form-data; name*=UTF-8''` + urlEscape(p.field)
		if p.filename != "" {
			cd += `; filename*=UTF-8''` + urlEscape(p.filename)
		}
		h.Set("Content-Disposition", cd)
		w, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = w.Write(p.body)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return &buf, mw.FormDataContentType()
}

func uploadRequest(t *testing.T, url string, body io.Reader, contentType string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	return req
}

// graphqlUpload builds an uploadReports request with one file per part.
func graphqlUpload(t *testing.T, url string, accountID *uuid.UUID, files ...part) *http.Request {
	t.Helper()
	vars := map[string]any{"f": make([]any, len(files))}
	if accountID != nil {
		vars["a"] = accountID.String()
	}
	ops, err := json.Marshal(map[string]any{
		"query":     `mutation($a: ID, $f: [Upload!]!) { uploadReports(accountId: $a, files: $f) { filename blobId error } }`,
		"variables": vars,
	})
	require.NoError(t, err)
	m := map[string][]string{}
	parts := []part{{field: "operations", body: ops}, {field: "map"}}
	for i, f := range files {
		key := fmt.Sprint(i)
		m[key] = []string{fmt.Sprintf("variables.f.%d", i)}
		parts = append(parts, part{field: key, filename: f.filename, body: f.body})
	}
	parts[1].body, err = json.Marshal(m)
	require.NoError(t, err)
	body, ct := multipartBody(t, parts...)
	return uploadRequest(t, url, body, ct)
}

// addDomain adds a domain its owner has proven, so that it takes reports.
func addDomain(t *testing.T, s *attacktest.Serve, o apitest.Owner, name string) {
	t.Helper()
	s.API.AddVerifiedDomain(t, o, name)
}

// blobOutcome waits (bounded) for the report.ingest job of a blob and
// returns its status and, when refused, why.
func blobOutcome(t *testing.T, s *attacktest.Serve, blobID string) (status, detail string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var d *string
		require.NoError(t, s.Pool.QueryRow(t.Context(),
			`SELECT status, refusal_detail FROM report_blobs WHERE id = $1`, blobID).Scan(&status, &d))
		if status != "pending" {
			if d != nil {
				detail = *d
			}
			return status, detail
		}
		require.True(t, time.Now().Before(deadline), "blob %s still pending", blobID)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUploadWithinWhatTheUploaderMayManage: an owner acts as owner in the
// customer accounts below its account, at every level, but not in the
// account above it (the access rule of every other operation), so a
// customer's owner cannot store reports into its MSP's domain either:
// naming the MSP's account is NOT_FOUND on both upload paths, and a report
// for the MSP's domain uploaded to the customer's own account is refused
// exactly as one for a domain of another tenant, while the domain of the
// customer's own customer takes reports.
func TestUploadWithinWhatTheUploaderMayManage(t *testing.T) {
	t.Parallel()
	s := attacktest.StartServe(t, attacktest.ServeOptions{Workers: 2})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	suffix := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	msp := s.API.NewOwner(t, "msp")
	child := s.API.NewOwnerUnder(t, "customer", &msp.AccountID)
	grandchild := s.API.NewOwnerUnder(t, "customer's customer", &child.AccountID)
	stranger := s.API.NewOwner(t, "stranger")
	mspDomain, grandDomain, strangerDomain := "msp-"+suffix+".com", "grand-"+suffix+".com", "stranger-"+suffix+".com"
	addDomain(t, s, msp, mspDomain)
	addDomain(t, s, grandchild, grandDomain)
	addDomain(t, s, stranger, strangerDomain)

	// The customer's owner cannot see its MSP's domain, as for any read.
	r := s.API.Do(t, child.Token, `query($n: String!) { domain(name: $n) { name } }`, map[string]any{"n": mspDomain})
	require.Contains(t, r.Raw, "NOT_FOUND", r.Raw)

	// Naming the MSP's account: NOT_FOUND, nothing stored.
	rep := send(t, uploadRequest(t, s.Base+"/upload?filename=r.xml&accountId="+msp.AccountID.String(),
		bytes.NewReader(reportFor("m1", mspDomain)), "application/xml"), child.Token)
	require.Equal(t, http.StatusNotFound, rep.Status, rep.Body)
	require.Equal(t, "NOT_FOUND", rep.Errors[0].Extensions["code"])
	rep = send(t, graphqlUpload(t, s.URL, &msp.AccountID, part{filename: "r.xml", body: reportFor("m2", mspDomain)}), child.Token)
	require.Len(t, rep.Errors, 1, rep.Body)
	require.Equal(t, "NOT_FOUND", rep.Errors[0].Extensions["code"], rep.Body)
	var blobs int
	require.NoError(t, s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM report_blobs`).Scan(&blobs))
	require.Zero(t, blobs)

	// Uploaded to the customer's own account, by both paths.
	upload := func(id, domain string, viaGraphQL bool) string {
		t.Helper()
		if viaGraphQL {
			rep := send(t, graphqlUpload(t, s.URL, &child.AccountID, part{filename: id + ".xml", body: reportFor(id, domain)}), child.Token)
			require.Empty(t, rep.Errors, rep.Body)
			var d struct {
				Data struct {
					UploadReports []struct{ BlobID *string }
				}
			}
			require.NoError(t, json.Unmarshal([]byte(rep.Body), &d))
			require.NotNil(t, d.Data.UploadReports[0].BlobID, rep.Body)
			return *d.Data.UploadReports[0].BlobID
		}
		rep := send(t, uploadRequest(t, s.Base+"/upload?filename="+id+".xml&accountId="+child.AccountID.String(),
			bytes.NewReader(reportFor(id, domain)), "application/xml"), child.Token)
		require.Equal(t, http.StatusOK, rep.Status, rep.Body)
		require.NotNil(t, rep.Upload.Files[0].BlobID, rep.Body)
		return *rep.Upload.Files[0].BlobID
	}
	for _, viaGraphQL := range []bool{false, true} {
		path := fmt.Sprintf("graphql=%v", viaGraphQL)
		st, _ := blobOutcome(t, s, upload("g-"+path, grandDomain, viaGraphQL))
		require.Equal(t, "stored", st, "%s: the customer's customer's domain takes the customer's upload", path)
		st, mspDetail := blobOutcome(t, s, upload("m-"+path, mspDomain, viaGraphQL))
		require.Equal(t, "refused", st, "%s: the MSP's domain must not take it", path)
		st, strangerDetail := blobOutcome(t, s, upload("s-"+path, strangerDomain, viaGraphQL))
		require.Equal(t, "refused", st, path)
		require.Equal(t, strings.Replace(strangerDetail, strangerDomain, mspDomain, 1), mspDetail,
			"%s: refused as another tenant's domain is, without saying it exists", path)
	}
	var stored int
	require.NoError(t, s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM reports r JOIN domains d ON d.id = r.domain_id
		WHERE d.name = $1`, mspDomain).Scan(&stored))
	require.Zero(t, stored)

	// The grandchild's owner and the owners above it upload there.
	for _, o := range []apitest.Owner{grandchild, child, msp} {
		rep := send(t, uploadRequest(t, s.Base+"/upload?filename=own.xml&accountId="+grandchild.AccountID.String(),
			bytes.NewReader(reportFor("own-"+o.Email, grandDomain)), "application/xml"), o.Token)
		require.Equal(t, http.StatusOK, rep.Status, rep.Body)
		st, detail := blobOutcome(t, s, *rep.Upload.Files[0].BlobID)
		require.Equal(t, "stored", st, detail)
	}

	// Once authorised, an upload may be larger than the server's 1 MiB
	// pre-authentication limit, on both paths, with or without a length.
	large := func(i int) []byte {
		return append(bytes.Repeat([]byte{' '}, 3<<20), reportFor(fmt.Sprint("large", i), grandDomain)...)
	}
	for i, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(large(i))
		if chunked {
			body = io.MultiReader(body)
		}
		rep := send(t, uploadRequest(t, s.Base+"/upload?filename=large.xml&accountId="+child.AccountID.String(), body, "application/xml"), child.Token)
		require.Equal(t, http.StatusOK, rep.Status, rep.Body)
		require.NotNil(t, rep.Upload.Files[0].BlobID, rep.Body)

		req := graphqlUpload(t, s.URL, &child.AccountID, part{filename: "large.xml", body: large(i + 2)})
		if chunked {
			req.Body = io.NopCloser(io.MultiReader(req.Body))
			req.ContentLength = -1
		}
		rep = send(t, req, child.Token)
		require.Empty(t, rep.Errors, rep.Body)
		require.Contains(t, rep.Body, `"blobId":"`, rep.Body)
	}
}

// TestUploadNamesAndLimits: file names (and form field names) that are not
// text are BAD_USER_INPUT naming the field, on both upload paths, and a
// body past the upload limit is 413 with or without a Content-Length.
func TestUploadNamesAndLimits(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	s := attacktest.StartServe(t, attacktest.ServeOptions{Env: map[string]string{"RAMPART_UPLOAD_MAX_BODY": fmt.Sprint(limit)}})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	o := s.API.NewOwner(t, "names")
	xml := reportFor("1", "example.com")

	for _, name := range []string{"a\x00b.xml", "a\xffb.xml", "\xc3.xml"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			// Raw, named in the query.
			rep := send(t, uploadRequest(t, s.Base+"/upload?filename="+urlEscape(name), bytes.NewReader(xml), "application/xml"), o.Token)
			require.Equal(t, http.StatusBadRequest, rep.Status, rep.Body)
			require.Equal(t, "BAD_USER_INPUT", rep.Errors[0].Extensions["code"])
			require.Equal(t, "filename", rep.Errors[0].Extensions["field"])

			// Multipart: that file is refused, a good one beside it stored.
			body, ct := multipartBody(t, part{field: "file", filename: name, body: xml}, part{field: "file", filename: "good.xml", body: xml})
			rep = send(t, uploadRequest(t, s.Base+"/upload", body, ct), o.Token)
			require.Equal(t, http.StatusBadRequest, rep.Status, rep.Body)
			require.Len(t, rep.Upload.Files, 2, rep.Body)
			bad := rep.Upload.Files[0]
			require.NotNil(t, bad.Error, rep.Body)
			require.Equal(t, "BAD_USER_INPUT", bad.Error.Code)
			require.Equal(t, "filename", bad.Error.Field)
			require.Nil(t, bad.BlobID)
			require.Nil(t, rep.Upload.Files[1].Error, rep.Body)

			// A form field whose name is not text.
			body, ct = multipartBody(t, part{field: name, body: []byte("x")}, part{field: "file", filename: "good.xml", body: xml})
			rep = send(t, uploadRequest(t, s.Base+"/upload", body, ct), o.Token)
			require.Equal(t, http.StatusBadRequest, rep.Status, rep.Body)
			require.Equal(t, "name", rep.Upload.Files[0].Error.Field, rep.Body)

			// Sent raw in the part's header, a NUL makes the MIME framing
			// itself malformed: still BAD_USER_INPUT, for the body.
			if strings.Contains(name, "\x00") {
				raw := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name + "\"\r\n\r\nx\r\n--b--\r\n"
				rep = send(t, uploadRequest(t, s.Base+"/upload", strings.NewReader(raw), "multipart/form-data; boundary=b"), o.Token)
				require.Equal(t, http.StatusBadRequest, rep.Status, rep.Body)
				require.Equal(t, "BAD_USER_INPUT", rep.Errors[0].Extensions["code"], rep.Body)
			}

			// GraphQL: the whole call is refused before anything is stored.
			rep = send(t, graphqlUpload(t, s.URL, nil, part{filename: "ok.xml", body: xml}, part{filename: name, body: xml}), o.Token)
			require.Len(t, rep.Errors, 1, rep.Body)
			require.Equal(t, "BAD_USER_INPUT", rep.Errors[0].Extensions["code"], rep.Body)
			require.Equal(t, "files[1].filename", rep.Errors[0].Extensions["field"], rep.Body)
		})
	}
	var names []string
	rows, err := s.Pool.Query(t.Context(), `SELECT filename FROM report_blobs`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"good.xml"}, names, "only the good file was stored (once: the same bytes again are a duplicate)")

	big := func() io.Reader { return io.LimitReader(zeros{}, 2*limit) }
	chunked := func(r io.Reader) io.Reader { return io.MultiReader(r) } // hides the length
	for _, tc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"raw with length", func() *http.Request {
			return uploadRequest(t, s.Base+"/upload", bytes.NewReader(make([]byte, 2*limit)), "application/xml")
		}},
		{"raw chunked", func() *http.Request { return uploadRequest(t, s.Base+"/upload", chunked(big()), "application/xml") }},
		{"multipart chunked", func() *http.Request {
			body, ct := multipartBody(t, part{field: "file", filename: "big.xml", body: make([]byte, 2*limit)})
			return uploadRequest(t, s.Base+"/upload", chunked(body), ct)
		}},
		{"graphql with length", func() *http.Request {
			return graphqlUpload(t, s.URL, nil, part{filename: "big.xml", body: make([]byte, 2*limit)})
		}},
		{"graphql chunked", func() *http.Request {
			req := graphqlUpload(t, s.URL, nil, part{filename: "big.xml", body: make([]byte, 2*limit)})
			req.Body = io.NopCloser(chunked(req.Body))
			req.ContentLength = -1
			return req
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			rep := send(t, req, o.Token)
			require.Equal(t, http.StatusRequestEntityTooLarge, rep.Status, rep.Body)
			require.Len(t, rep.Errors, 1, rep.Body)
			require.Equal(t, "BAD_USER_INPUT", rep.Errors[0].Extensions["code"], rep.Body)
		})
	}
}

// urlEscape percent-encodes every byte outside the unreserved set, so that
// NUL and invalid UTF-8 survive the trip.
func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
