package report_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report"
)

const (
	metaXML = `<report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <report_id>12345</report_id>
    <date_range><begin>1718236800</begin><end>1718323199</end></date_range>
  </report_metadata>`
	policyXML = `<policy_published>
    <domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>`
	recordXML = `<record>
    <row>
      <source_ip>192.0.2.1</source_ip>
      <count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>
      <spf><domain>example.com</domain><scope>mfrom</scope><result>fail</result></spf>
    </auth_results>
  </record>`
)

// doc builds a report; replacements are old, new pairs applied in order.
func doc(replacements ...string) string {
	s := `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  ` + metaXML + `
  ` + policyXML + `
  ` + recordXML + `
</feedback>
`
	return strings.NewReplacer(replacements...).Replace(s)
}

func decode(t *testing.T, s string, limits report.Limits) (*report.Report, []report.Warning, error) {
	t.Helper()
	return report.Decode(strings.NewReader(s), limits)
}

func TestDecodeBaseline(t *testing.T) {
	t.Parallel()
	rep, warns, err := decode(t, doc(), report.Limits{})
	require.NoError(t, err)
	require.Empty(t, warns)
	require.Equal(t, "google.com", rep.OrgName)
	require.Equal(t, "12345", rep.ReportID)
	require.Equal(t, "1.0", rep.Version)
	require.Equal(t, int64(1718236800), rep.Begin.Unix())
	require.Len(t, rep.Records, 1)
	rec := rep.Records[0]
	require.Equal(t, "192.0.2.1", rec.SourceIP.String())
	require.Equal(t, int64(3), rec.Count)
	require.Equal(t, report.PolicyEvaluated{Disposition: report.DispositionNone, DKIM: report.DMARCPass, SPF: report.DMARCFail}, rec.PolicyEvaluated)
	require.Equal(t, []report.DKIMAuth{{Domain: "example.com", Selector: "s1", Result: report.DKIMPass}}, rec.AuthResults.DKIM)
	require.Equal(t, []report.SPFAuth{{Domain: "example.com", Scope: "mfrom", Result: report.SPFFail}}, rec.AuthResults.SPF)
}

// TestDecodeQuirks: real-world deviations are accepted with a warning.
func TestDecodeQuirks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		in    string
		warn  report.WarningCode // expected among the warnings; empty: none at all
		check func(t *testing.T, rep *report.Report)
	}{
		{"result in title case", doc("<result>pass</result>", "<result>Pass</result>"), report.WarnCase,
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, report.DKIMPass, rep.Records[0].AuthResults.DKIM[0].Result)
			}},
		{"policy result in upper case", doc("<dkim>pass</dkim>", "<dkim>PASS</dkim>", "<disposition>none", "<disposition>None"), report.WarnCase,
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, report.DMARCPass, rep.Records[0].PolicyEvaluated.DKIM)
				require.Equal(t, report.DispositionNone, rep.Records[0].PolicyEvaluated.Disposition)
			}},
		{"missing version is no warning", doc("<version>1.0</version>", ""), "",
			func(t *testing.T, rep *report.Report) { require.Empty(t, rep.Version) }},
		{"empty org_name", doc("<org_name>google.com</org_name>", "<org_name></org_name>"), report.WarnEmptyOrgName,
			func(t *testing.T, rep *report.Report) { require.Empty(t, rep.OrgName) }},
		{"space-padded org_name", doc("<org_name>google.com</org_name>", "<org_name>\n   google.com  </org_name>"), report.WarnPadded,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "google.com", rep.OrgName) }},
		{"empty reason", doc("<spf>fail</spf></policy_evaluated>", "<spf>fail</spf><reason><type></type><comment/></reason></policy_evaluated>"), report.WarnEmptyReason,
			func(t *testing.T, rep *report.Report) { require.Empty(t, rep.Records[0].PolicyEvaluated.Reasons) }},
		{"reason", doc("<spf>fail</spf></policy_evaluated>", "<spf>fail</spf><reason><type>Forwarded</type><comment>via list</comment></reason></policy_evaluated>"), report.WarnCase,
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, []report.PolicyOverrideReason{{Type: "forwarded", Comment: "via list"}}, rep.Records[0].PolicyEvaluated.Reasons)
			}},
		{"invalid UTF-8", doc("<org_name>google.com</org_name>", "<org_name>Gro\xdfe \xff GmbH</org_name>"), report.WarnInvalidText,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "Gro\uFFFDe \uFFFD GmbH", rep.OrgName) }},
		{"control character", doc("<org_name>google.com</org_name>", "<org_name>goo\x00gle</org_name>"), report.WarnInvalidText,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "goo\uFFFDgle", rep.OrgName) }},
		{"valid UTF-8 kept", doc("<org_name>google.com</org_name>", "<org_name>Müller 郵便</org_name>"), "",
			func(t *testing.T, rep *report.Report) { require.Equal(t, "Müller 郵便", rep.OrgName) }},
		{"byte-order mark", "\xEF\xBB\xBF" + doc(), report.WarnBOM, nil},
		{"byte-order mark without declaration", "\xEF\xBB\xBF" + doc(`<?xml version="1.0" encoding="UTF-8"?>`, ""), report.WarnBOM, nil},
		{"unknown element in record", doc("<identifiers>", "<extensions><x a='1'><y/>text</x></extensions><identifiers>"), report.WarnUnknownElement,
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, "example.com", rep.Records[0].Identifiers.HeaderFrom)
			}},
		{"unknown element in leaf", doc("<org_name>google.com</org_name>", "<org_name>google<b>bold</b>.com</org_name>"), report.WarnUnknownElement,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "google.com", rep.OrgName) }},
		{"extension is silent", doc("</feedback>", "<extension><foo/></extension></feedback>"), "", nil},
		{"date range longer than a day", doc("<end>1718323199</end>", "<end>1718927999</end>"), report.WarnLongDateRange, nil},
		{"CDATA", doc("<org_name>google.com</org_name>", "<org_name><![CDATA[Smith & <Sons>]]></org_name>"), "",
			func(t *testing.T, rep *report.Report) { require.Equal(t, "Smith & <Sons>", rep.OrgName) }},
		{"entities", doc("<org_name>google.com</org_name>", "<org_name>AT&amp;T &lt;&#65;&#x42;&gt; &quot;&apos;</org_name>"), "",
			func(t *testing.T, rep *report.Report) { require.Equal(t, `AT&T <AB> "'`, rep.OrgName) }},
		{"bare ampersand", doc("<org_name>google.com</org_name>", "<org_name>AT&T &nbsp; &#xD800;</org_name>"), report.WarnBadReference,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "AT&T &nbsp; \uFFFD", rep.OrgName) }},
		{"comments and processing instructions", doc("<org_name>google.com</org_name>", "<!-- c --><org_name>google<!-- x -->.com<?pi x?></org_name><?pi?>"), "",
			func(t *testing.T, rep *report.Report) { require.Equal(t, "google.com", rep.OrgName) }},
		{"namespace prefix", doc("<feedback>", `<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">`, "</feedback>", "</d:feedback>"), "",
			func(t *testing.T, rep *report.Report) { require.Equal(t, report.Namespace9990, rep.Namespace) }},
		{"default namespace", doc("<feedback>", `<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0" xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'>`), "",
			func(t *testing.T, rep *report.Report) { require.Equal(t, report.Namespace9990, rep.Namespace) }},
		{"latin-1", doc(`encoding="UTF-8"`, `encoding="ISO-8859-1"`, "<org_name>google.com</org_name>", "<org_name>M\xfcller \x80</org_name>"), report.WarnEncoding,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "Müller €", rep.OrgName) }},
		{"IPv6 source", doc("192.0.2.1", " 2001:DB8::1 "), report.WarnPadded,
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, "2001:db8::1", rep.Records[0].SourceIP.String())
			}},
		{"IPv4-mapped source", doc("192.0.2.1", "::ffff:192.0.2.7"), "",
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, "192.0.2.7", rep.Records[0].SourceIP.String())
			}},
		{"domains lower-cased", doc("<header_from>example.com", "<header_from>Example.COM"), "",
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, "example.com", rep.Records[0].Identifiers.HeaderFrom)
			}},
		{"trailing data", doc("</feedback>\n", "</feedback>\n<feedback>more</feedback>"), report.WarnTrailingData, nil},
		{"trailing garbage", doc("</feedback>\n", "</feedback>\x00\x01junk"), report.WarnTrailingData, nil},
		{"no records", doc(recordXML, ""), report.WarnNoRecords,
			func(t *testing.T, rep *report.Report) { require.Empty(t, rep.Records) }},
		{"bad pct", doc("<pct>100</pct>", "<pct>abc</pct>"), report.WarnBadValue,
			func(t *testing.T, rep *report.Report) { require.Nil(t, rep.Policy.Pct) }},
		{"duplicate org_name", doc("<org_name>google.com</org_name>", "<org_name>google.com</org_name><org_name>other</org_name>"), report.WarnDuplicate,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "google.com", rep.OrgName) }},
		{"unknown disposition", doc("<disposition>none", "<disposition>Discard"), report.WarnUnknownValue,
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, report.Disposition("discard"), rep.Records[0].PolicyEvaluated.Disposition)
			}},
		{"metadata after records", doc("</feedback>", "<report_metadata><org_name>x</org_name></report_metadata></feedback>"), report.WarnLateMetadata,
			func(t *testing.T, rep *report.Report) { require.Equal(t, "google.com", rep.OrgName) }},
		{"stray text", doc("<pct>100</pct>", "<pct>100</pct>11"), report.WarnStrayText, nil},
		{"self-closing empty elements", doc("<envelope_from>", "<envelope_to/><envelope_from>", "<selector>s1</selector>", "<selector/>"), "",
			func(t *testing.T, rep *report.Report) { require.Empty(t, rep.Records[0].AuthResults.DKIM[0].Selector) }},
		{"missing header_from", doc("<header_from>example.com</header_from>", ""), report.WarnMissing, nil},
		{"CRLF line ends", strings.ReplaceAll(doc(), "\n", "\r\n"), "", nil},
		{"RFC 9990 fields", doc("<pct>100</pct>", "<np>Reject</np><testing>y</testing><discovery_method>psl</discovery_method>",
			"</date_range>", "</date_range><generator>gen 1</generator>", "<result>pass</result>\n      </dkim>", "<result>pass</result><human_result>2048-bit</human_result></dkim>"), report.WarnCase,
			func(t *testing.T, rep *report.Report) {
				require.Equal(t, report.DispositionReject, rep.Policy.NP)
				require.Equal(t, "y", rep.Policy.Testing)
				require.Equal(t, "psl", rep.Policy.DiscoveryMethod)
				require.Equal(t, "gen 1", rep.Generator)
			}},
		{"errors", doc("</date_range>", "</date_range><error>one</error><error> two </error>"), report.WarnPadded,
			func(t *testing.T, rep *report.Report) { require.Equal(t, []string{"one", "two"}, rep.Errors) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep, warns, err := decode(t, c.in, report.Limits{})
			require.NoError(t, err)
			if c.warn == "" {
				require.Empty(t, warns)
			} else {
				require.Contains(t, warningCodes(warns), c.warn, "%+v", warns)
			}
			if c.check != nil {
				c.check(t, rep)
			}
		})
	}
}

// TestDecodeRefusals: hard errors carry a reason and, where it applies, the
// element at fault.
func TestDecodeRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		limits  report.Limits
		reason  report.Reason
		element string
	}{
		{"empty", "", report.Limits{}, report.NoReport, ""},
		{"white space only", " \n\t ", report.Limits{}, report.NoReport, ""},
		{"declaration only", `<?xml version="1.0"?>`, report.Limits{}, report.NoReport, ""},
		{"root is not feedback", `<html><body/></html>`, report.Limits{}, report.NoReport, ""},
		{"doctype", `<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><feedback>&b;</feedback>`, report.Limits{}, report.Doctype, ""},
		{"doctype late", doc("<version>", "<!DOCTYPE x><version>"), report.Limits{}, report.Doctype, ""},
		{"deep nesting", "<feedback>" + strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000) + "</feedback>", report.Limits{}, report.TooDeep, ""},
		{"missing report_id", doc("<report_id>12345</report_id>", ""), report.Limits{}, report.Invalid, "feedback/report_metadata/report_id"},
		{"empty report_id", doc("<report_id>12345</report_id>", "<report_id> </report_id>"), report.Limits{}, report.Invalid, "feedback/report_metadata/report_id"},
		{"missing policy domain", doc("<domain>example.com</domain><adkim>", "<adkim>"), report.Limits{}, report.Invalid, "feedback/policy_published/domain"},
		{"missing begin", doc("<begin>1718236800</begin>", ""), report.Limits{}, report.Invalid, "feedback/report_metadata/date_range/begin"},
		{"begin after end", doc("<begin>1718236800</begin>", "<begin>1718323200</begin>"), report.Limits{}, report.Invalid, "feedback/report_metadata/date_range"},
		{"begin not a number", doc("<begin>1718236800</begin>", "<begin>2024-06-13</begin>"), report.Limits{}, report.Invalid, "feedback/report_metadata/date_range/begin"},
		{"negative end", doc("<end>1718323199</end>", "<end>-1</end>"), report.Limits{}, report.Invalid, "feedback/report_metadata/date_range/end"},
		{"bad source_ip", doc("192.0.2.1", "192.0.2.300"), report.Limits{}, report.Invalid, "feedback/record/row/source_ip"},
		{"empty source_ip", doc("<source_ip>192.0.2.1</source_ip>", "<source_ip/>"), report.Limits{}, report.Invalid, "feedback/record/row/source_ip"},
		{"source_ip with zone", doc("192.0.2.1", "fe80::1%eth0"), report.Limits{}, report.Invalid, "feedback/record/row/source_ip"},
		{"missing source_ip", doc("<source_ip>192.0.2.1</source_ip>", ""), report.Limits{}, report.Invalid, "feedback/record/row/source_ip"},
		{"negative count", doc("<count>3</count>", "<count>-3</count>"), report.Limits{}, report.Invalid, "feedback/record/row/count"},
		{"fractional count", doc("<count>3</count>", "<count>3.5</count>"), report.Limits{}, report.Invalid, "feedback/record/row/count"},
		{"huge count", doc("<count>3</count>", "<count>99999999999999999999</count>"), report.Limits{}, report.Invalid, "feedback/record/row/count"},
		{"missing count", doc("<count>3</count>", ""), report.Limits{}, report.Invalid, "feedback/record/row/count"},
		{"mismatched tags", doc("</org_name>", "</org>"), report.Limits{}, report.Malformed, ""},
		{"unclosed document", strings.TrimSuffix(doc(), "</feedback>\n"), report.Limits{}, report.Malformed, ""},
		{"text before root", "hello" + doc(), report.Limits{}, report.Malformed, ""},
		{"tag in value", doc("noreply-dmarc-support@google.com", "<bad-xml@bad-xml.net>"), report.Limits{}, report.Malformed, ""},
		{"unterminated comment", doc("</feedback>", "<!-- </feedback>"), report.Limits{}, report.Malformed, ""},
		{"unquoted attribute", doc("<feedback>", "<feedback a=b>"), report.Limits{}, report.Malformed, ""},
		{"stray end tag", "<feedback></a></feedback>", report.Limits{}, report.Malformed, ""},
		{"UTF-16", "\xFF\xFE<\x00f\x00", report.Limits{}, report.Unsupported, ""},
		{"too many records", doc(recordXML, recordXML+recordXML+recordXML), report.Limits{MaxRecords: 2}, report.TooManyRecords, "feedback/record"},
		{"value too long", doc("google.com", strings.Repeat("g", 70000)), report.Limits{}, report.ValueTooLong, "feedback/report_metadata/org_name"},
		{"tag too long", doc("<feedback>", "<feedback a='"+strings.Repeat("x", 200000)+"'>"), report.Limits{}, report.ValueTooLong, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := decode(t, c.in, c.limits)
			require.Error(t, err)
			var ref *report.Refusal
			require.True(t, errors.As(err, &ref), "%v is not a Refusal", err)
			require.Equal(t, c.reason, ref.Reason, "%v", err)
			require.Equal(t, c.element, ref.Element, "%v", err)
			require.True(t, errors.Is(err, &report.Refusal{Reason: c.reason}))
			reason, ok := report.ReasonOf(fmt.Errorf("wrapped: %w", err))
			require.True(t, ok)
			require.Equal(t, c.reason, reason)
		})
	}
}

// TestDecodeStream checks the order of callbacks and that their errors stop
// decoding.
func TestDecodeStream(t *testing.T) {
	t.Parallel()
	in := doc(recordXML, recordXML+strings.Replace(recordXML, "192.0.2.1", "192.0.2.2", 1))

	t.Run("order", func(t *testing.T) {
		t.Parallel()
		var events []string
		_, err := report.DecodeStream(strings.NewReader(in), report.Limits{},
			func(m *report.Metadata) error { events = append(events, "meta "+m.ReportID); return nil },
			func(r report.Record) error { events = append(events, "record "+r.SourceIP.String()); return nil })
		require.NoError(t, err)
		require.Equal(t, []string{"meta 12345", "record 192.0.2.1", "record 192.0.2.2"}, events)
	})

	t.Run("record callback error", func(t *testing.T) {
		t.Parallel()
		stop := errors.New("stop")
		n := 0
		_, err := report.DecodeStream(strings.NewReader(in), report.Limits{}, nil,
			func(report.Record) error { n++; return stop })
		require.ErrorIs(t, err, stop)
		require.Equal(t, 1, n)
	})

	t.Run("metadata callback error", func(t *testing.T) {
		t.Parallel()
		dup := errors.New("already ingested")
		_, err := report.DecodeStream(strings.NewReader(in), report.Limits{},
			func(*report.Metadata) error { return dup },
			func(report.Record) error { t.Fatal("record after refused metadata"); return nil })
		require.ErrorIs(t, err, dup)
	})

	t.Run("nil callbacks", func(t *testing.T) {
		t.Parallel()
		_, err := report.DecodeStream(strings.NewReader(in), report.Limits{}, nil, nil)
		require.NoError(t, err)
	})

	t.Run("records do not share memory", func(t *testing.T) {
		t.Parallel()
		var recs []report.Record
		_, err := report.DecodeStream(strings.NewReader(in), report.Limits{}, nil,
			func(r report.Record) error { recs = append(recs, r); return nil })
		require.NoError(t, err)
		recs[0].AuthResults.DKIM = append(recs[0].AuthResults.DKIM, report.DKIMAuth{Domain: "x"})
		require.Len(t, recs[1].AuthResults.DKIM, 1)
		require.Equal(t, "example.com", recs[1].AuthResults.DKIM[0].Domain)
	})
}

// TestDecodeChunking feeds input one byte at a time, so every token
// straddles a buffer boundary.
func TestDecodeChunking(t *testing.T) {
	t.Parallel()
	in := doc("<org_name>google.com</org_name>", "<org_name>AT&amp;T <![CDATA[x]]> &#233;</org_name><!-- comment -->")
	want, _, err := decode(t, in, report.Limits{})
	require.NoError(t, err)
	got, _, err := report.Decode(&oneByteReader{r: strings.NewReader(in)}, report.Limits{})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, "AT&T x é", got.OrgName)
}

// TestDecodeLongText checks text, comments and CDATA longer than the
// scanner's buffer.
func TestDecodeLongText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a&amp;b ", 7000) // 56 KB, over a 64 KB buffer once with markup
	in := doc("<org_name>google.com</org_name>",
		"<!--"+strings.Repeat("-x", 100000)+"--><org_name>"+long+"</org_name><?pi "+strings.Repeat("y", 100000)+"?>",
		"<comment/>", "<comment><![CDATA["+strings.Repeat("z", 60000)+"]]></comment>")
	rep, _, err := decode(t, in, report.Limits{})
	require.NoError(t, err)
	require.Equal(t, strings.TrimSpace(strings.ReplaceAll(long, "&amp;", "&")), rep.OrgName)
}

func TestDecodeManyRecords(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString(doc(recordXML, ""))
	b.Truncate(b.Len() - len("</feedback>\n"))
	for i := range 5000 {
		b.WriteString(strings.Replace(recordXML, "192.0.2.1", fmt.Sprintf("10.0.%d.%d", i/256, i%256), 1))
	}
	b.WriteString("</feedback>")
	rep, warns, err := report.Decode(&b, report.Limits{})
	require.NoError(t, err)
	require.Empty(t, warns)
	require.Len(t, rep.Records, 5000)
	require.Equal(t, int64(15000), rep.MessageCount())
	require.Equal(t, "10.0.19.135", rep.Records[4999].SourceIP.String())
}

type oneByteReader struct{ r *strings.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// TestDecodeLeniency: deviations met in real reports that cost at most the
// part that is wrong, each with a warning naming it.
func TestDecodeLeniency(t *testing.T) {
	t.Parallel()
	const xsOpen = `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="http://dmarc.org/dmarc-xml/0.1">`
	const xsDefs = `<xs:element name="feedback"><xs:complexType><xs:sequence><xs:element name="version" type="xs:decimal"/></xs:sequence></xs:complexType></xs:element>`
	badIP := strings.Replace(recordXML, "192.0.2.1", "not-an-address", 1)
	cases := []struct {
		name     string
		in       string
		warn     report.WarningCode
		element  string // of the warning
		records  int
		messages int64
	}{
		{"xs:schema root around the report", doc("<feedback>", xsOpen+xsDefs+"<feedback>", "</feedback>", "</feedback></xs:schema>"),
			report.WarnSchema, "", 1, 3},
		{"xs:schema root never closed", doc("<feedback>", xsOpen+"\n<feedback>"), report.WarnSchema, "", 1, 3},
		{"definitions beside the report", doc("<feedback>", xsOpen+xsDefs+"<feedback>", "</feedback>", "</feedback>"+xsDefs+"</xs:schema>"),
			report.WarnSchema, "xs:element", 1, 3},
		{"xs:schema inside feedback, never closed", doc("<version>", xsOpen+"<version>"), report.WarnSchema, "", 1, 3},
		{"xs:schema inside feedback with definitions", doc("<version>", xsOpen+xsDefs+"</xs:schema><version>"), report.WarnUnknownElement, "feedback/element", 1, 3},
		{"self-closing xsd:schema", doc("<version>", `<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"/><version>`), report.WarnSchema, "", 1, 3},
		{"source_ip not an address", doc(recordXML, recordXML+badIP), report.WarnBadRecord, "feedback/record/row/source_ip", 1, 3},
		{"source_ip empty", doc(recordXML, badIP+recordXML+strings.Replace(recordXML, "<source_ip>192.0.2.1</source_ip>", "<source_ip/>", 1)),
			report.WarnBadRecord, "feedback/record/row/source_ip", 1, 3},
		{"source_ip missing", doc(recordXML, strings.Replace(recordXML, "<source_ip>192.0.2.1</source_ip>", "", 1)+recordXML+recordXML),
			report.WarnBadRecord, "feedback/record/row/source_ip", 2, 6},
		{"count not a number", doc(recordXML, recordXML+strings.Replace(recordXML, "<count>3</count>", "<count>many</count>", 1)),
			report.WarnBadRecord, "feedback/record/row/count", 1, 3},
		{"version missing", doc("<version>1.0</version>", ""), "", "", 1, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep, warns, err := decode(t, c.in, report.Limits{})
			require.NoError(t, err)
			require.Len(t, rep.Records, c.records)
			require.Equal(t, c.messages, rep.MessageCount())
			require.Equal(t, "12345", rep.ReportID)
			require.Equal(t, "example.com", rep.Policy.Domain)
			if c.warn == "" {
				require.Empty(t, warns)
				return
			}
			found := false
			for _, w := range warns {
				if w.Code == c.warn && w.Element == c.element {
					found = true
					require.NotEmpty(t, w.Detail)
				}
			}
			require.True(t, found, "no %s warning on %q in %+v", c.warn, c.element, warns)
		})
	}

	t.Run("bad records counted in one warning", func(t *testing.T) {
		t.Parallel()
		rep, warns, err := decode(t, doc(recordXML, badIP+recordXML+badIP+badIP), report.Limits{})
		require.NoError(t, err)
		require.Len(t, rep.Records, 1)
		require.Equal(t, []report.Warning{{Code: report.WarnBadRecord, Element: "feedback/record/row/source_ip",
			Detail: `record 1: "not-an-address" is not an IP address; the record is dropped`, Count: 3}}, warns)
	})

	t.Run("every record bad refuses the report", func(t *testing.T) {
		t.Parallel()
		_, _, err := decode(t, doc(recordXML, badIP+badIP), report.Limits{})
		var ref *report.Refusal
		require.ErrorAs(t, err, &ref)
		require.Equal(t, report.Invalid, ref.Reason)
		require.Equal(t, "feedback/record/row/source_ip", ref.Element)
		require.Contains(t, ref.Detail, "every record (2)")
	})

	t.Run("xs:schema root without a report", func(t *testing.T) {
		t.Parallel()
		_, _, err := decode(t, `<?xml version="1.0"?>`+xsOpen+xsDefs+"</xs:schema>", report.Limits{})
		require.Equal(t, report.NoReport, reasonOf(t, err))
	})
}

// TestReporter: the reporter's identity, which is part of the dedupe key,
// is never empty for an accepted report.
func TestReporter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		org, email, extra string
		want              string
	}{
		{"google.com", "noreply-dmarc-support@google.com", "", "google.com"},
		{"", "noreply-dmarc-support@google.com", "", "google.com"},
		{"", "DMARC Reports <dmarc@Mail.Example.NET>", "", "mail.example.net"},
		{"", "mailto:dmarc@example.org", "https://example.org/dmarc", "example.org"},
		{"", "dmarc@example.org.", "", "example.org"},
		{"", "postmaster", "https://example.org/dmarc", "postmaster"},
		{"", "postmaster@", "", "postmaster@"},
		{"", "", "https://example.org/dmarc", "https://example.org/dmarc"},
		{"", "", "", ""},
	} {
		m := report.Metadata{OrgName: c.org, Email: c.email, ExtraContactInfo: c.extra}
		require.Equal(t, c.want, m.Reporter(), "%+v", c)
	}

	t.Run("decoded", func(t *testing.T) {
		t.Parallel()
		rep, warns, err := decode(t, doc("<org_name>google.com</org_name>", "<org_name/>"), report.Limits{})
		require.NoError(t, err)
		require.Empty(t, rep.OrgName)
		require.Equal(t, "google.com", rep.Reporter())
		require.Equal(t, []report.Warning{{Code: report.WarnEmptyOrgName, Element: "feedback/report_metadata/org_name",
			Detail: `missing or empty; the reporter is taken to be "google.com"`, Count: 1}}, warns)

		_, _, err = decode(t, doc("<org_name>google.com</org_name>", "", "<email>noreply-dmarc-support@google.com</email>", "<email> </email>"), report.Limits{})
		var ref *report.Refusal
		require.ErrorAs(t, err, &ref)
		require.Equal(t, report.Invalid, ref.Reason)
		require.Equal(t, "feedback/report_metadata/org_name", ref.Element)
	})
}
