package graph_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/report/reportgen"
)

// uploadFiles posts files to the upload endpoint as the token's account.
func uploadFiles(t *testing.T, env *apitest.Env, token string, files map[string][]byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, data := range files {
		fw, err := mw.CreateFormFile("file", name)
		require.NoError(t, err)
		_, _ = fw.Write(data)
	}
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(env.URL, "/graphql")+"/upload", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(answer))
}

// pollUntil sends query until done accepts the answer, for 20 seconds.
func pollUntil(t *testing.T, env *apitest.Env, token, query string, done func(*apitest.Response) bool) *apitest.Response {
	t.Helper()
	var r *apitest.Response
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		r = env.Do(t, token, query, nil)
		r.NoErrors(t)
		if done(r) {
			return r
		}
	}
	t.Fatalf("timed out; last answer: %s", r.Raw)
	return nil
}

// TestCountPast32Bits: a report whose record counts sum past 2^32 is
// stored and read back exactly through GraphQL over HTTP, as a JSON number
// (GraphQL's Int would overflow at 2^31).
func TestCountPast32Bits(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	o := env.NewOwner(t, "Counts")
	const d = "counts-example.com"
	env.AddVerifiedDomain(t, o, d)
	xml := strings.Replace(aggregateXML(d, "big-1"), "<count>7</count>", "<count>3000000000</count>", 1)
	xml = strings.Replace(xml, "<count>3</count>", "<count>5000000001</count>", 1)
	uploadFiles(t, env, o.Token, map[string][]byte{"big.xml": []byte(xml)})

	const q = `{ domain(name: "` + d + `") { reports { totalCount nodes { messages records duplicates } } } }`
	r := pollUntil(t, env, o.Token, q, func(r *apitest.Response) bool { return strings.Contains(r.Raw, `"totalCount":1`) })
	require.Contains(t, r.Raw, `"messages":8000000001,`, "a JSON number, exact")
	var got struct {
		Domain struct {
			Reports struct {
				Nodes []struct{ Messages, Records, Duplicates int64 }
			}
		}
	}
	r.Decode(t, &got)
	require.Len(t, got.Domain.Reports.Nodes, 1)
	require.Equal(t, int64(8_000_000_001), got.Domain.Reports.Nodes[0].Messages)
	require.Equal(t, int64(2), got.Domain.Reports.Nodes[0].Records)
}

type problemAnswer struct {
	BlobID, Source, Filename, Status string
	Reason, Detail                   *string
	Message                          *struct{ From, Subject, MessageID string }
}

const problemFields = `blobId source filename status reason detail message { from subject messageId }`

// refusedProblems polls the problems a query lists (at path, e.g. domain
// then ingestProblems) until n are refused.
func refusedProblems(t *testing.T, env *apitest.Env, token, query string, n int, list func(json.RawMessage) []problemAnswer) []problemAnswer {
	t.Helper()
	var got []problemAnswer
	pollUntil(t, env, token, query, func(r *apitest.Response) bool {
		got = list(r.Data)
		refused := 0
		for _, p := range got {
			if p.Status == "refused" {
				refused++
			}
		}
		return refused >= n
	})
	return got
}

func domainProblems(t *testing.T) func(json.RawMessage) []problemAnswer {
	return func(data json.RawMessage) []problemAnswer {
		var d struct {
			Domain struct{ IngestProblems []problemAnswer }
		}
		require.NoError(t, json.Unmarshal(data, &d))
		return d.Domain.IngestProblems
	}
}

func accountProblems(t *testing.T) func(json.RawMessage) []problemAnswer {
	return func(data json.RawMessage) []problemAnswer {
		var d struct {
			Account struct{ IngestProblems []problemAnswer }
		}
		require.NoError(t, json.Unmarshal(data, &d))
		return d.Account.IngestProblems
	}
}

// TestMailRefusalNamesTheMessage: a mail refused after a real SMTP session
// is named in ingestProblems by its From, Subject and Message-ID, decoded
// and cleaned (invalid UTF-8 replaced, control and format characters
// gone), since it has no file name.
func TestMailRefusalNamesTheMessage(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) {
		c.Workers = 1
		c.SMTPAddr = "127.0.0.1:0"
	})
	o := env.NewOwner(t, "Mail names")
	const d = "mail-names-example.com"
	env.AddVerifiedDomain(t, o, d)
	rua := reportAddress(t, env, o.Token, d)
	msg := "From: =?UTF-8?Q?R=C3=A9ceiver_Reports?= <noreply@receiver.example>\r\nTo: " + rua + "\r\n" +
		"Subject: Report\xff Domain: " + d + "\u202e\x01 Id: 42\r\nMessage-ID: <refused-1@receiver.example>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nNo report here.\r\n"
	require.NoError(t, smtp.SendMail(env.SMTPAddr, nil, "noreply@receiver.example", []string{rua}, []byte(msg)))

	got := refusedProblems(t, env, o.Token, `{ domain(name: "`+d+`") { ingestProblems { `+problemFields+` } } }`, 1, domainProblems(t))
	require.Len(t, got, 1)
	p := got[0]
	require.Equal(t, "smtp", p.Source)
	require.Equal(t, "no_report", *p.Reason)
	require.NotNil(t, p.Message, "a mail is named by its headers")
	require.Equal(t, "Réceiver Reports <noreply@receiver.example>", p.Message.From)
	require.Equal(t, "Report\uFFFD Domain: "+d+" Id: 42", p.Message.Subject)
	require.Equal(t, "<refused-1@receiver.example>", p.Message.MessageID)

	// An upload is named by its file name, and has no message.
	uploadFiles(t, env, o.Token, map[string][]byte{"not-a-report.txt": []byte("hello")})
	got = refusedProblems(t, env, o.Token, `{ account { ingestProblems { `+problemFields+` } } }`, 1, accountProblems(t))
	require.Equal(t, "not-a-report.txt", got[0].Filename)
	require.Nil(t, got[0].Message)
}

// TestTLSReportRefused: an SMTP TLS report (RFC 8460, gzipped JSON), mailed
// as application/tlsrpt+gzip over a real SMTP session or uploaded, is
// refused as a TLS report, not as malformed.
func TestTLSReportRefused(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) {
		c.Workers = 1
		c.SMTPAddr = "127.0.0.1:0"
	})
	o := env.NewOwner(t, "TLS")
	const d = "tls-example.com"
	env.AddVerifiedDomain(t, o, d)
	rua := reportAddress(t, env, o.Token, d)
	tls := reportgen.TLSReport(d)
	name := "receiver.example!" + d + "!1764201600!1764287999!001.json.gz"
	msg := "From: tlsrpt@receiver.example\r\nTo: " + rua + "\r\nSubject: Report Domain: " + d + " Submitter: receiver.example Report-ID: <x@receiver.example>\r\n" +
		"TLS-Report-Domain: " + d + "\r\nTLS-Report-Submitter: receiver.example\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=tlsrpt; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report from receiver.example\r\n" +
		"--B\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(tls) + "\r\n--B--\r\n"
	require.NoError(t, smtp.SendMail(env.SMTPAddr, nil, "tlsrpt@receiver.example", []string{rua}, []byte(msg)))
	uploadFiles(t, env, o.Token, map[string][]byte{name: tls})

	for _, got := range [][]problemAnswer{
		refusedProblems(t, env, o.Token, `{ domain(name: "`+d+`") { ingestProblems { `+problemFields+` } } }`, 1, domainProblems(t)),
		refusedProblems(t, env, o.Token, `{ account { ingestProblems { `+problemFields+` } } }`, 1, accountProblems(t)),
	} {
		require.Len(t, got, 1)
		require.Equal(t, "tls_report", *got[0].Reason, *got[0].Detail)
		require.Contains(t, *got[0].Detail, "an SMTP TLS report (RFC 8460), not a DMARC aggregate report")
	}
}

// TestUnmatchedReportsForOperator: reports that match no hosted domain, by
// upload or by mail to a rua address of another domain, are listed by
// unmatchedReports for the instance operator only: their uploader (a
// tenant owner, signed in or by API token) and the operator's own API
// token are FORBIDDEN.
func TestUnmatchedReportsForOperator(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) {
		c.Workers = 1
		c.SMTPAddr = "127.0.0.1:0"
	})
	o := env.NewOwner(t, "Tenant")
	const d = "tenant-unmatched-example.com"
	env.AddVerifiedDomain(t, o, d)
	rua := reportAddress(t, env, o.Token, d)
	uploadFiles(t, env, o.Token, map[string][]byte{"nobody.xml": []byte(aggregateXML("nobody-hosts-example.com", "u-1"))})
	msg := "From: dmarc@receiver.example\r\nTo: " + rua + "\r\nSubject: Report Domain: elsewhere-example.com\r\nMessage-ID: <unmatched-1@receiver.example>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/xml; name=report.xml\r\n\r\n" + strings.ReplaceAll(aggregateXML("elsewhere-example.com", "m-1"), "\n", "\r\n") + "\r\n"
	require.NoError(t, smtp.SendMail(env.SMTPAddr, nil, "dmarc@receiver.example", []string{rua}, []byte(msg)))
	// The tenant sees its own refusals where it always did.
	refusedProblems(t, env, o.Token, `{ account { ingestProblems { `+problemFields+` } } }`, 1, accountProblems(t))
	refusedProblems(t, env, o.Token, `{ domain(name: "`+d+`") { ingestProblems { `+problemFields+` } } }`, 1, domainProblems(t))

	const q = `{ unmatchedReports { ` + problemFields + ` } }`
	env.Do(t, o.Token, q, nil).RequireCode(t, "FORBIDDEN")
	op := env.NewOwner(t, "Operator's own")
	env.Do(t, op.Token, q, nil).RequireCode(t, "FORBIDDEN")
	_, err := access.GrantOperator(context.Background(), env.Pool, op.Email)
	require.NoError(t, err)
	r := env.Do(t, op.Token, q, nil)
	r.NoErrors(t)
	var got struct{ UnmatchedReports []problemAnswer }
	r.Decode(t, &got)
	require.Len(t, got.UnmatchedReports, 2, r.Raw)
	bySource := map[string]problemAnswer{}
	for _, p := range got.UnmatchedReports {
		require.Equal(t, "refused", p.Status)
		require.Equal(t, "not_hosted", *p.Reason)
		bySource[p.Source] = p
	}
	require.Equal(t, "nobody.xml", bySource["upload"].Filename)
	require.Contains(t, *bySource["upload"].Detail, "nobody-hosts-example.com")
	require.NotNil(t, bySource["smtp"].Message)
	require.Equal(t, "<unmatched-1@receiver.example>", bySource["smtp"].Message.MessageID)

	// The operator's API token acts as an account: not as the operator.
	r = env.Do(t, op.Token, `mutation { createApiToken(name: "ops") { secret } }`, nil)
	r.NoErrors(t)
	var tok struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &tok)
	env.Do(t, tok.CreateApiToken.Secret, q, nil).RequireCode(t, "FORBIDDEN")
}
