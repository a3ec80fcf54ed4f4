package graph_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
)

func aggregateXML(domain, reportID string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>receiver.example</org_name>
    <email>noreply-dmarc@receiver.example</email>
    <report_id>` + reportID + `</report_id>
    <date_range><begin>1764201600</begin><end>1764287999</end></date_range>
  </report_metadata>
  <policy_published><domain>` + domain + `</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record>
    <row><source_ip>192.0.2.10</source_ip><count>7</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>` + domain + `</header_from></identifiers>
    <auth_results><dkim><domain>` + domain + `</domain><result>pass</result></dkim><spf><domain>` + domain + `</domain><result>pass</result></spf></auth_results>
  </record>
  <record>
    <row><source_ip>2001:db8::5</source_ip><count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>` + domain + `</header_from></identifiers>
    <auth_results><spf><domain>spoof.example</domain><result>fail</result></spf></auth_results>
  </record>
</feedback>`
}

// TestReportsEndToEnd: a report mailed to the domain's rua address over a
// real SMTP session is decoded by the workers and shown by the API; the same
// report uploaded again (gzipped, through the upload endpoint) is counted
// once; a broken upload shows in ingestProblems with its reason.
func TestReportsEndToEnd(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) {
		c.Workers = 2
		c.SMTPAddr = "127.0.0.1:0"
	})
	o := env.NewOwner(t, "Reports")
	const d = "reports-example.com"
	env.AddVerifiedDomain(t, o, d)
	rua := reportAddress(t, env, o.Token, d)

	xml := aggregateXML(d, "e2e-1")
	msg := "From: noreply-dmarc@receiver.example\r\nTo: " + rua + "\r\nSubject: Report Domain: " + d + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/xml; name=report.xml\r\n\r\n" + strings.ReplaceAll(xml, "\n", "\r\n") + "\r\n"
	require.NoError(t, smtp.SendMail(env.SMTPAddr, nil, "noreply-dmarc@receiver.example", []string{rua}, []byte(msg)))
	err := smtp.SendMail(env.SMTPAddr, nil, "x@receiver.example", []string{"nobody@" + apitest.ReportsDomain}, []byte(msg))
	require.ErrorContains(t, err, "550")

	const q = `{ domain(name: "` + d + `") { reports { totalCount nodes { reporter reportId policyDomain messages records duplicates status } }
		ingestProblems { source status reason detail warnings { code } } } }`
	var got struct {
		Domain struct {
			Reports struct {
				TotalCount int
				Nodes      []struct {
					Reporter, ReportId, PolicyDomain, Status string
					Messages, Records, Duplicates            int
				}
			}
			IngestProblems []struct {
				Source, Status string
				Reason, Detail *string
			}
		}
	}
	poll := func(done func() bool) {
		t.Helper()
		for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
			r := env.Do(t, o.Token, q, nil)
			r.NoErrors(t)
			r.Decode(t, &got)
			if done() {
				return
			}
		}
		t.Fatalf("timed out; last answer: %+v", got)
	}
	poll(func() bool { return got.Domain.Reports.TotalCount == 1 && len(got.Domain.Reports.Nodes) == 1 })
	n := got.Domain.Reports.Nodes[0]
	require.Equal(t, "receiver.example", n.Reporter)
	require.Equal(t, "e2e-1", n.ReportId)
	require.Equal(t, 10, n.Messages)
	require.Equal(t, 2, n.Records)
	require.Equal(t, "STORED", n.Status)

	// The same report, gzipped, through the upload endpoint: a duplicate.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(xml))
	require.NoError(t, zw.Close())
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "report.xml.gz")
	require.NoError(t, err)
	_, _ = fw.Write(gz.Bytes())
	fw, err = mw.CreateFormFile("file", "broken.xml")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("<feedback><report_metadata>"))
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(env.URL, "/graphql")+"/upload", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+o.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	poll(func() bool { return len(got.Domain.Reports.Nodes) == 1 && got.Domain.Reports.Nodes[0].Duplicates == 1 })
	require.Equal(t, 1, got.Domain.Reports.TotalCount, "a duplicate is not counted twice")

	// The broken file was uploaded to the account: its problem is there.
	var problems struct {
		Account struct {
			IngestProblems []struct {
				Status string
				Reason *string
			}
		}
	}
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		r := env.Do(t, o.Token, `{ account { ingestProblems { status reason } } }`, nil)
		r.NoErrors(t)
		r.Decode(t, &problems)
		if len(problems.Account.IngestProblems) > 0 && problems.Account.IngestProblems[0].Status == "refused" {
			break
		}
	}
	require.NotEmpty(t, problems.Account.IngestProblems)
	require.Equal(t, "refused", problems.Account.IngestProblems[0].Status, fmt.Sprint(problems))
	require.NotNil(t, problems.Account.IngestProblems[0].Reason)

	// Once retention has deleted its bytes (done here directly; the
	// ingest tests run retention itself), the problem says so and keeps
	// its size and reason.
	_, err = env.Pool.Exec(context.Background(), `UPDATE report_blobs SET raw = NULL, purged_at = now() WHERE status = 'refused'`)
	require.NoError(t, err)
	var purged struct {
		Account struct {
			IngestProblems []struct {
				Status   string
				Reason   *string
				Size     int
				PurgedAt *time.Time
			}
		}
	}
	r := env.Do(t, o.Token, `{ account { ingestProblems { status reason size purgedAt } } }`, nil)
	r.NoErrors(t)
	r.Decode(t, &purged)
	require.NotEmpty(t, purged.Account.IngestProblems)
	p := purged.Account.IngestProblems[0]
	require.Equal(t, "refused", p.Status)
	require.NotNil(t, p.Reason)
	require.Equal(t, len("<feedback><report_metadata>"), p.Size)
	require.NotNil(t, p.PurgedAt)

	// Uploads through GraphQL multipart work too, and unauthenticated ones
	// are refused.
	resp, err = http.Post(strings.TrimSuffix(env.URL, "/graphql")+"/upload", "application/xml", strings.NewReader(xml))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
