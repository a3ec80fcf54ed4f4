package report_test

import (
	"bytes"
	"compress/gzip"
	"io"

	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report"
	"github.com/rampartmail/rampart/internal/report/reportgen"
)

// TestExtractTLSReport: an SMTP TLS report, in every form it arrives, is
// refused as a TLS report, not as malformed or as holding no report; other
// JSON holds no report; a TLS report beside an aggregate report leaves the
// aggregate report to be stored.
func TestExtractTLSReport(t *testing.T) {
	t.Parallel()
	tls := reportgen.TLSReport("example.com")
	name := `google.com!example.com!1764201600!1764287999!001.json.gz`
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"gzip file", tls},
		{"json file", gunzip(t, tls)},
		{"json with a byte order mark and space", append([]byte("\xef\xbb\xbf \n"), gunzip(t, tls)...)},
		{"mail, RFC 8460 type", mail(textPart, part("application/tlsrpt+gzip", `attachment; filename="`+name+`"`, "base64", b64(tls)))},
		{"mail, RFC 8460 type, no name", mail(part("application/tlsrpt+json", "", "", string(gunzip(t, tls))))},
		{"mail, octet-stream", mail(part("application/octet-stream", `attachment; filename="`+name+`"`, "base64", b64(tls)))},
		{"zip of the gzip", zipped(t, zipEntry{name, tls})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := report.Extract(tc.in, report.Limits{})
			require.Equal(t, report.TLSReport, reasonOf(t, err), "%v", err)
			require.ErrorContains(t, err, "not a DMARC aggregate report")
		})
	}
	_, err := report.Extract([]byte(`{"hello": "world"}`), report.Limits{})
	require.Equal(t, report.NoReport, reasonOf(t, err), "%v", err)

	got, err := report.Extract(mail(part("application/tlsrpt+gzip", `attachment; filename="`+name+`"`, "base64", b64(tls)),
		part("application/gzip", `attachment; filename="r.xml.gz"`, "base64", b64(gzipped(t, []byte(doc()), "")))), report.Limits{})
	require.NoError(t, err)
	require.Len(t, got, 1)
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}
