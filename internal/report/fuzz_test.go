package report_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report"
	"github.com/rampartmail/rampart/internal/report/reportgen"
)

// fuzzLimits keep each fuzz input's work small.
var fuzzLimits = report.Limits{
	MaxCompressed: 1 << 20,
	MaxInflated:   4 << 20,
	RatioGrace:    64 << 10,
	MaxRecords:    10_000,
	MaxValueBytes: 4 << 10,
}

func addTestdataSeeds(f *testing.F) {
	f.Helper()
	require.NoError(f, filepath.WalkDir("testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(filepath.Dir(path)) == "FuzzDecode" || filepath.Base(filepath.Dir(path)) == "FuzzExtract" {
			return err
		}
		data, err := os.ReadFile(path) //nolint:gosec // G122: walks the package's own testdata folder for fuzz seeds
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	}))
}

// FuzzExtract feeds arbitrary bytes to the whole pipeline.
func FuzzExtract(f *testing.F) {
	addTestdataSeeds(f)
	xmlDoc := []byte(doc())
	f.Add(gzipped(f, xmlDoc, "r.xml"))
	f.Add([]byte(doc(recordXML, strings.Repeat(recordXML, 50))))
	f.Add(gzipped(f, []byte(doc(recordXML, strings.Repeat(recordXML, 2000))), ""))
	f.Add(reportgen.TLSReport("example.com"))
	f.Add(mail(part("application/tlsrpt+gzip", `attachment; filename="r.json.gz"`, "base64", b64(reportgen.TLSReport("example.com")))))
	f.Add(gzipped(f, gzipped(f, xmlDoc, ""), ""))
	f.Add(zipped(f, zipEntry{"r.xml.gz", gzipped(f, xmlDoc, "")}, zipEntry{"s.xml", xmlDoc}))
	f.Add(mail(textPart, part("application/zip", `attachment; filename="r.zip"`, "base64", b64(zipped(f, zipEntry{"r.xml", xmlDoc})))))
	f.Add(mail(part("text/xml", `attachment; filename="r.xml"`, "quoted-printable", qp(xmlDoc))))
	f.Add(mail(part("message/rfc822", "", "", "Content-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n"+b64(gzipped(f, xmlDoc, "")))))
	f.Fuzz(func(t *testing.T, raw []byte) {
		atts, err := report.Extract(raw, fuzzLimits)
		if err != nil {
			requireRefusal(t, err)
			return
		}
		require.NotEmpty(t, atts)
		for _, a := range atts {
			r, err := a.Open()
			if err != nil {
				requireRefusal(t, err)
				continue
			}
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				requireRefusal(t, err)
			}
			require.LessOrEqual(t, n, fuzzLimits.MaxInflated)
			if r, err = a.Open(); err != nil {
				continue
			}
			rep, _, err := report.Decode(r, fuzzLimits)
			if err != nil {
				requireRefusal(t, err)
				continue
			}
			checkReport(t, rep)
		}
	})
}

// FuzzDecode feeds arbitrary bytes to the decoder, whole and one byte at a
// time: both must agree, which checks every buffer boundary.
func FuzzDecode(f *testing.F) {
	addTestdataSeeds(f)
	for _, s := range []string{
		doc(),
		doc("<org_name>google.com</org_name>", "<org_name>AT&amp;T <![CDATA[<x>]]> &#233;&bad; \xff</org_name><!-- c --><?pi?>"),
		doc("<feedback>", `<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">`, "</feedback>", "</d:feedback>"),
		doc("<result>pass</result>", "<result>Pass</result>", "192.0.2.1", "2001:db8::1"),
		doc(`encoding="UTF-8"`, `encoding="latin1"`, "google.com", "M\xfcller"),
		"\xEF\xBB\xBF" + doc(),
		`<!DOCTYPE feedback [<!ENTITY a "a">]><feedback>&a;</feedback>`,
		"<feedback><a><b><c/></b></a></feedback>",
		// Found by fuzzing: results must not depend on how input is chunked.
		" \n hello <feedback/>",
		doc("<pct>100</pct>", "<pct>100</pct>11"),
		doc("<org_name>google.com</org_name>", "<org_name> <![CDATA[x]]> a<b/> <c/>d &bad</org_name>"),
		// Leniency: an xs:schema wrapper, closed or not, with definitions;
		// records dropped for a bad source_ip or count; no org_name.
		doc("<feedback>", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a"/><feedback>`, "</feedback>", "</feedback></xs:schema>"),
		doc("<feedback>", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><feedback>`),
		doc("<version>", "<xs:schema><version>"),
		doc(recordXML, recordXML+strings.Replace(recordXML, "192.0.2.1", "192.0.2.300", 1)),
		doc(recordXML, strings.Replace(recordXML, "<count>3</count>", "<count>x</count>", 1)),
		doc("<org_name>google.com</org_name>", "", "<email>noreply-dmarc-support@google.com</email>", "<email>dmarc@Example.ORG</email>"),
		doc("<org_name>google.com</org_name>", "", "<email>noreply-dmarc-support@google.com</email>", ""),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, warns, err := report.Decode(bytes.NewReader(data), fuzzLimits)
		rep1, warns1, err1 := report.Decode(&byteReader{data: data}, fuzzLimits)
		if err != nil {
			requireRefusal(t, err)
			require.Error(t, err1)
			require.Equal(t, err.Error(), err1.Error())
			return
		}
		require.NoError(t, err1)
		require.Equal(t, rep, rep1)
		require.Equal(t, warns, warns1)
		checkReport(t, rep)
	})
}

// requireRefusal checks that err is a *Refusal with a reason.
func requireRefusal(t *testing.T, err error) {
	t.Helper()
	var ref *report.Refusal
	require.True(t, errors.As(err, &ref), "%T %v is not a Refusal", err, err)
	require.NotEmpty(t, ref.Reason)
}

// checkReport checks what Decode promises about an accepted report.
func checkReport(t *testing.T, rep *report.Report) {
	t.Helper()
	require.NotEmpty(t, rep.ReportID)
	require.NotEmpty(t, rep.Policy.Domain)
	require.False(t, rep.Begin.After(rep.End))
	for _, s := range []string{rep.OrgName, rep.ReportID, rep.Email, rep.Policy.Domain, rep.Generator} {
		require.True(t, utf8.ValidString(s))
		require.NotContains(t, s, "\x00")
	}
	for _, rec := range rep.Records {
		require.True(t, rec.SourceIP.IsValid())
		require.GreaterOrEqual(t, rec.Count, int64(0))
		require.True(t, utf8.ValidString(rec.Identifiers.HeaderFrom))
		for _, d := range rec.AuthResults.DKIM {
			require.True(t, utf8.ValidString(d.Domain) && utf8.ValidString(d.Selector) && utf8.ValidString(d.HumanResult))
		}
	}
}

// byteReader hands out its data one byte at a time.
type byteReader struct{ data []byte }

func (b *byteReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = b.data[0]
	b.data = b.data[1:]
	return 1, nil
}
