package reportgen

import (
	"bytes"
	"compress/gzip"
)

// TLSReport returns an SMTP TLS report (RFC 8460) about domain, gzipped as
// receivers send it (application/tlsrpt+gzip): the kind of input Rampart
// recognises and refuses as not a DMARC aggregate report.
func TLSReport(domain string) []byte {
	json := `{"organization-name":"Receiver Inc.","date-range":{"start-datetime":"2026-11-27T00:00:00Z","end-datetime":"2026-11-27T23:59:59Z"},` +
		`"contact-info":"smtp-tls-reporting@receiver.example","report-id":"2026-11-27T00:00:00Z_` + domain + `",` +
		`"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.` + domain + `","max_age: 86400"],` +
		`"policy-domain":"` + domain + `","mx-host":["mx.` + domain + `"]},"summary":{"total-successful-session-count":5326,"total-failure-session-count":0}}]}`
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(json)) // writes to memory do not fail
	_ = zw.Close()
	return b.Bytes()
}
