package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/report"
)

// unnamed builds a one-record report whose org_name is empty, from a
// reporter known only by its contact e-mail.
func unnamed(email, id, domain string, begin time.Time, ip string, count int) []byte {
	return fmt.Appendf(nil, `<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name></org_name><email>%s</email><report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>%s</domain><p>none</p></policy_published>
  <record><row><source_ip>%s</source_ip><count>%d</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results><spf><domain>%s</domain><result>pass</result></spf></auth_results></record>
</feedback>
`, email, id, begin.Unix(), begin.Add(24*time.Hour-time.Second).Unix(), domain, ip, count, domain, domain)
}

// Two reporters that both leave org_name empty and happen to send the same
// generated report id for the same dates are two reporters: both reports
// are stored, with their messages. The same reporter sending again is a
// duplicate.
func TestUnnamedReportersDoNotCollide(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first := e.mustStore(t, unnamed("dmarc@mx.first-isp.example", "20240613", "example.com", day0, "192.0.2.1", 7))
	second := e.mustStore(t, unnamed("noreply@reports.second-isp.example", "20240613", "example.com", day0, "198.51.100.1", 5))
	require.NotEqual(t, first, second)

	reports, _, messages, duplicates := e.stored(t)
	require.EqualValues(t, 2, reports)
	require.EqualValues(t, 12, messages, "both reporters' messages are counted")
	require.Zero(t, duplicates)
	require.EqualValues(t, 2, e.count(t, `SELECT count(DISTINCT reporter) FROM reports`))
	require.Zero(t, e.count(t, `SELECT count(*) FROM reports WHERE reporter = ''`), "a reporter is never empty")

	// The first reporter's report again, from another of its addresses at
	// the same domain: the same reporter, so a duplicate.
	id, err := e.ingest(t, unnamed("dmarc-2@mx.first-isp.example", "20240613", "example.com", day0, "192.0.2.1", 7))
	require.NoError(t, err)
	require.Equal(t, "duplicate", e.blob(t, id).Status)
	reports, _, messages, duplicates = e.stored(t)
	require.EqualValues(t, 2, reports)
	require.EqualValues(t, 12, messages)
	require.EqualValues(t, 1, duplicates)
}

// What real reporters send that the schema does not allow is read, with a
// warning naming it: XML Schema markup around the report, a record whose
// source_ip is not an address (that record is dropped, not the report),
// and no version (no warning at all).
func TestLenientReportsStoredWithWarnings(t *testing.T) {
	t.Parallel()
	e := setup(t)
	raw := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
<feedback>
  <report_metadata><org_name>Retailer</org_name><email>dmarc@retailer.example</email><report_id>r-1</report_id>
    <date_range><begin>` + fmt.Sprint(day0.Unix()) + `</begin><end>` + fmt.Sprint(day0.Add(time.Hour).Unix()) + `</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record><row><source_ip>192.0.2.10</source_ip><count>4</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>
  <record><row><source_ip>not-an-address</source_ip><count>9</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record>
</feedback>
</xs:schema>
`)
	id := e.mustStore(t, raw)
	b := e.blob(t, id)
	var codes []string
	for _, w := range b.Warnings {
		codes = append(codes, fmt.Sprint(w["code"]))
	}
	joined := strings.Join(codes, ",")
	require.Contains(t, joined, "schema", "warnings: %v", b.Warnings)
	require.Contains(t, joined, "bad_record", "warnings: %v", b.Warnings)
	require.NotContains(t, joined, "version", "a missing version is no warning: %v", b.Warnings)
	reports, records, messages, _ := e.stored(t)
	require.EqualValues(t, 1, reports)
	require.EqualValues(t, 1, records, "the bad record is dropped")
	require.EqualValues(t, 4, messages)
}

// A bare XML report is taken up to the inflated-size limit, not the
// compressed-size limit, on intake and in the worker; compressed input is
// still held to the compressed-size limit.
func TestUncompressedUpToInflatedLimit(t *testing.T) {
	t.Parallel()
	const compressed, inflated = 64 << 10, 1 << 20
	e := setup(t, ingest.Options{Limits: report.Limits{MaxCompressed: compressed, MaxInflated: inflated}})
	e.store.SetMaxSize(compressed)

	var recs []rec
	for i := range 2000 {
		recs = append(recs, rec{fmt.Sprintf("192.0.%d.%d", i/250, i%250+1), 1, "none", "pass", "pass", ""})
	}
	raw := xmlReport("big.example", "big-1", "example.com", day0, recs...)
	require.Greater(t, len(raw), compressed)
	require.Less(t, len(raw), inflated)
	e.mustStore(t, raw)
	_, records, messages, _ := e.stored(t)
	require.EqualValues(t, 2000, records)
	require.EqualValues(t, 2000, messages)

	// Compressed bytes past the compressed limit are refused at once.
	noise := make([]byte, compressed+1)
	for i := range noise {
		noise[i] = byte(i*7919 + i/251)
	}
	gz := append([]byte{0x1f, 0x8b}, noise...)
	_, err := e.store.Accept(context.Background(), ingest.Incoming{Source: ingest.SourceUpload, Raw: gz, AccountID: &e.account})
	require.ErrorIs(t, err, ingest.ErrTooLarge)
}
