// Package reportgen builds synthetic DMARC aggregate reports of any size,
// for benchmarks and load tests of report ingestion.
//
// The reports look like the ones large mailbox providers send: pretty-printed,
// with a mix of IPv4 and IPv6 sources, passing and failing records, one or
// two DKIM results, an SPF result, and now and then an override reason. The
// output is deterministic for a given record count.
package reportgen

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// GenerateReport returns an RFC 7489 aggregate report with n records.
func GenerateReport(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 900)
	_ = WriteReport(&b, n)
	return b.Bytes()
}

var (
	domains     = []string{"example.com", "example.net", "example.org", "mail.example.com", "news.example.com"}
	senders     = []string{"sendgrid.net", "amazonses.com", "mailchimpapp.net", "outbound.protection.outlook.com", "google.com", "mcsv.net", "bounces.example.com", "spoof.example.biz"}
	selectors   = []string{"s1", "s2", "google", "selector1", "selector2", "k1", "default", "mta"}
	dkimResults = []string{"pass", "pass", "pass", "fail", "neutral", "none"}
	spfResults  = []string{"pass", "pass", "softfail", "fail", "neutral", "none"}
)

// WriteReport writes an RFC 7489 aggregate report with n records to w.
func WriteReport(w io.Writer, n int) error {
	rng := rand.New(rand.NewPCG(uint64(n), 7489)) //nolint:gosec // G404: synthetic test reports must be the same for the same n
	bw := &errWriter{w: w}
	bw.printf(`<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>synthetic.example</org_name>
    <email>noreply-dmarc-support@synthetic.example</email>
    <extra_contact_info>https://synthetic.example/dmarc</extra_contact_info>
    <report_id>synthetic-%d</report_id>
    <date_range>
      <begin>1718236800</begin>
      <end>1718323199</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>none</sp>
    <pct>100</pct>
    <np>none</np>
  </policy_published>
`, n)
	var buf []byte
	for i := range n {
		buf = appendRecord(buf[:0], rng, i)
		bw.write(buf)
	}
	bw.printf("</feedback>\n")
	return bw.err
}

func appendRecord(b []byte, rng *rand.Rand, i int) []byte {
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	b = append(b, "  <record>\n    <row>\n      <source_ip>"...)
	if i%5 == 4 {
		b = fmt.Appendf(b, "2001:db8:%x:%x::%x", rng.IntN(0x10000), rng.IntN(0x10000), rng.IntN(0x10000))
	} else {
		b = fmt.Appendf(b, "%d.%d.%d.%d", 1+rng.IntN(223), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
	}
	b = append(b, "</source_ip>\n      <count>"...)
	b = strconv.AppendInt(b, int64(1+rng.IntN(500)), 10)
	dkim, spf := pick(dkimResults), pick(spfResults)
	dmarcDKIM, dmarcSPF := "fail", "fail"
	if dkim == "pass" {
		dmarcDKIM = "pass"
	}
	if spf == "pass" {
		dmarcSPF = "pass"
	}
	disposition := "none"
	if dmarcDKIM == "fail" && dmarcSPF == "fail" {
		disposition = "quarantine"
	}
	b = append(b, "</count>\n      <policy_evaluated>\n        <disposition>"...)
	b = append(b, disposition...)
	b = append(b, "</disposition>\n        <dkim>"...)
	b = append(b, dmarcDKIM...)
	b = append(b, "</dkim>\n        <spf>"...)
	b = append(b, dmarcSPF...)
	b = append(b, "</spf>\n"...)
	if i%50 == 0 {
		b = append(b, "        <reason>\n          <type>forwarded</type>\n          <comment>looks forwarded</comment>\n        </reason>\n"...)
	}
	domain, sender := pick(domains), pick(senders)
	b = append(b, "      </policy_evaluated>\n    </row>\n    <identifiers>\n      <header_from>"...)
	b = append(b, domain...)
	b = append(b, "</header_from>\n      <envelope_from>"...)
	b = append(b, sender...)
	b = append(b, "</envelope_from>\n    </identifiers>\n    <auth_results>\n"...)
	for j := range 1 + rng.IntN(2) {
		d := domain
		if j == 1 {
			d = sender
		}
		b = append(b, "      <dkim>\n        <domain>"...)
		b = append(b, d...)
		b = append(b, "</domain>\n        <selector>"...)
		b = append(b, pick(selectors)...)
		b = append(b, "</selector>\n        <result>"...)
		b = append(b, dkim...)
		b = append(b, "</result>\n      </dkim>\n"...)
	}
	b = append(b, "      <spf>\n        <domain>"...)
	b = append(b, sender...)
	b = append(b, "</domain>\n        <scope>mfrom</scope>\n        <result>"...)
	b = append(b, spf...)
	b = append(b, "</result>\n      </spf>\n    </auth_results>\n  </record>\n"...)
	return b
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
