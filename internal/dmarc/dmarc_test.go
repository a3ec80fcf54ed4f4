package dmarc_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dmarc"
)

// validCases are records Parse must accept: the Record it must return and the
// canonical text String must compose. They also seed FuzzParse.
var validCases = []struct {
	name string
	in   string
	want dmarc.Record
	text string
}{
	{
		name: "minimal",
		in:   "v=DMARC1; p=none",
		want: dmarc.Record{Policy: dmarc.None},
		text: "v=DMARC1; p=none",
	},
	{
		name: "real world with two rua and fo",
		in:   "v=DMARC1; p=reject; rua=mailto:dmarc_agg@vali.email,mailto:a@b.example!10m; ruf=mailto:f@example.com; fo=1:d; adkim=s; aspf=r; pct=50",
		want: dmarc.Record{
			Policy:         dmarc.Reject,
			Percent:        new(50),
			ADKIM:          dmarc.Strict,
			ASPF:           dmarc.Relaxed,
			RUA:            []dmarc.URI{{Address: "mailto:dmarc_agg@vali.email"}, {Address: "mailto:a@b.example", MaxSize: "10m"}},
			RUF:            []dmarc.URI{{Address: "mailto:f@example.com"}},
			FailureOptions: "1:d",
		},
		text: "v=DMARC1; p=reject; pct=50; adkim=s; aspf=r; rua=mailto:dmarc_agg@vali.email,mailto:a@b.example!10m; ruf=mailto:f@example.com; fo=1:d",
	},
	{
		name: "real world single rua",
		in:   "v=DMARC1; p=reject; rua=mailto:mailauth-reports@google.com",
		want: dmarc.Record{Policy: dmarc.Reject, RUA: []dmarc.URI{{Address: "mailto:mailauth-reports@google.com"}}},
		text: "v=DMARC1; p=reject; rua=mailto:mailauth-reports@google.com",
	},
	{
		name: "real world RFC 7489 style",
		in:   "v=DMARC1; p=quarantine; sp=none; pct=25; rua=mailto:reports@example.net!50m; ri=3600; rf=afrf",
		want: dmarc.Record{
			Policy:          dmarc.Quarantine,
			SubdomainPolicy: dmarc.None,
			Percent:         new(25),
			RUA:             []dmarc.URI{{Address: "mailto:reports@example.net", MaxSize: "50m"}},
			ReportFormat:    "afrf",
			ReportInterval:  new(uint32(3600)),
		},
		text: "v=DMARC1; p=quarantine; sp=none; pct=25; rua=mailto:reports@example.net!50m; rf=afrf; ri=3600",
	},
	{
		name: "real world reporting to self",
		in:   "v=DMARC1; p=none; rua=mailto:dmarc@example.com; ruf=mailto:dmarc@example.com; sp=none; ri=86400",
		want: dmarc.Record{
			Policy:          dmarc.None,
			SubdomainPolicy: dmarc.None,
			RUA:             []dmarc.URI{{Address: "mailto:dmarc@example.com"}},
			RUF:             []dmarc.URI{{Address: "mailto:dmarc@example.com"}},
			ReportInterval:  new(uint32(86400)),
		},
		text: "v=DMARC1; p=none; sp=none; rua=mailto:dmarc@example.com; ruf=mailto:dmarc@example.com; ri=86400",
	},
	{
		name: "no spaces",
		in:   "v=DMARC1;p=none;sp=reject",
		want: dmarc.Record{Policy: dmarc.None, SubdomainPolicy: dmarc.Reject},
		text: "v=DMARC1; p=none; sp=reject",
	},
	{
		name: "trailing semicolon",
		in:   "v=DMARC1; p=none;",
		want: dmarc.Record{Policy: dmarc.None},
		text: "v=DMARC1; p=none",
	},
	{
		name: "trailing semicolon and whitespace",
		in:   "v=DMARC1; p=none; ; \t",
		want: dmarc.Record{Policy: dmarc.None},
		text: "v=DMARC1; p=none",
	},
	{
		name: "empty tags",
		in:   "v=DMARC1;;p=none;;;sp=quarantine;",
		want: dmarc.Record{Policy: dmarc.None, SubdomainPolicy: dmarc.Quarantine},
		text: "v=DMARC1; p=none; sp=quarantine",
	},
	{
		name: "whitespace around everything",
		in:   "  v = DMARC1 ;\tp = reject\t;  sp=quarantine  ",
		want: dmarc.Record{Policy: dmarc.Reject, SubdomainPolicy: dmarc.Quarantine},
		text: "v=DMARC1; p=reject; sp=quarantine",
	},
	{
		name: "uppercase tag names and values",
		in:   "v=DMARC1; P=REJECT; SP=Quarantine; NP=None; ADKIM=S; ASPF=R; FO=1:D:S; RF=AFRF; RUA=MAILTO:Dmarc@Example.COM!5M; PSD=Y; T=N",
		want: dmarc.Record{
			Policy:            dmarc.Reject,
			SubdomainPolicy:   dmarc.Quarantine,
			NonExistentPolicy: dmarc.None,
			ADKIM:             dmarc.Strict,
			ASPF:              dmarc.Relaxed,
			RUA:               []dmarc.URI{{Address: "mailto:Dmarc@Example.COM", MaxSize: "5m"}},
			FailureOptions:    "1:d:s",
			ReportFormat:      "afrf",
			PSD:               "y",
			Testing:           "n",
		},
		text: "v=DMARC1; p=reject; sp=quarantine; np=none; adkim=s; aspf=r; rua=mailto:Dmarc@Example.COM!5m; fo=1:d:s; rf=afrf; psd=y; t=n",
	},
	{
		name: "DMARCbis tags",
		in:   "v=DMARC1; p=reject; np=reject; psd=n; t=y",
		want: dmarc.Record{Policy: dmarc.Reject, NonExistentPolicy: dmarc.Reject, PSD: "n", Testing: "y"},
		text: "v=DMARC1; p=reject; np=reject; psd=n; t=y",
	},
	{
		name: "psd unknown",
		in:   "v=DMARC1; p=none; psd=u",
		want: dmarc.Record{Policy: dmarc.None, PSD: "u"},
		text: "v=DMARC1; p=none; psd=u",
	},
	{
		name: "tags in any order",
		in:   "v=DMARC1; t=y; np=quarantine; aspf=s; p=none; sp=reject",
		want: dmarc.Record{Policy: dmarc.None, SubdomainPolicy: dmarc.Reject, NonExistentPolicy: dmarc.Quarantine, ASPF: dmarc.Strict, Testing: "y"},
		text: "v=DMARC1; p=none; sp=reject; np=quarantine; aspf=s; t=y",
	},
	{
		name: "unknown tags kept in order",
		in:   "v=DMARC1; p=none; foo=bar; X_y=1  2; z=; pct=10",
		want: dmarc.Record{
			Policy:  dmarc.None,
			Percent: new(10),
			Unknown: []dmarc.Tag{{Name: "foo", Value: "bar"}, {Name: "x_y", Value: "1  2"}, {Name: "z", Value: ""}},
		},
		text: "v=DMARC1; p=none; pct=10; foo=bar; x_y=1  2; z=",
	},
	{
		name: "unknown tag value with equals sign",
		in:   "v=DMARC1; p=none; k=a=b",
		want: dmarc.Record{Policy: dmarc.None, Unknown: []dmarc.Tag{{Name: "k", Value: "a=b"}}},
		text: "v=DMARC1; p=none; k=a=b",
	},
	{
		name: "pct bounds and leading zeros",
		in:   "v=DMARC1; p=none; pct=007",
		want: dmarc.Record{Policy: dmarc.None, Percent: new(7)},
		text: "v=DMARC1; p=none; pct=7",
	},
	{
		name: "pct zero",
		in:   "v=DMARC1; p=quarantine; pct=0",
		want: dmarc.Record{Policy: dmarc.Quarantine, Percent: new(0)},
		text: "v=DMARC1; p=quarantine; pct=0",
	},
	{
		name: "pct hundred",
		in:   "v=DMARC1; p=quarantine; pct=100",
		want: dmarc.Record{Policy: dmarc.Quarantine, Percent: new(100)},
		text: "v=DMARC1; p=quarantine; pct=100",
	},
	{
		name: "ri bounds",
		in:   "v=DMARC1; p=none; ri=4294967295",
		want: dmarc.Record{Policy: dmarc.None, ReportInterval: new(uint32(4294967295))},
		text: "v=DMARC1; p=none; ri=4294967295",
	},
	{
		name: "ri zero",
		in:   "v=DMARC1; p=none; ri=0",
		want: dmarc.Record{Policy: dmarc.None, ReportInterval: new(uint32(0))},
		text: "v=DMARC1; p=none; ri=0",
	},
	{
		name: "fo with whitespace around colons",
		in:   "v=DMARC1; p=none; fo = 0 : 1\t:d : s",
		want: dmarc.Record{Policy: dmarc.None, FailureOptions: "0:1:d:s"},
		text: "v=DMARC1; p=none; fo=0:1:d:s",
	},
	{
		name: "rua with whitespace around commas and units",
		in:   "v=DMARC1; p=none; rua=mailto:a@example.com , mailto:b@example.org!1g ,\tmailto:c@example.net!2K;ruf=mailto:d@example.com!3t",
		want: dmarc.Record{
			Policy: dmarc.None,
			RUA: []dmarc.URI{
				{Address: "mailto:a@example.com"},
				{Address: "mailto:b@example.org", MaxSize: "1g"},
				{Address: "mailto:c@example.net", MaxSize: "2k"},
			},
			RUF: []dmarc.URI{{Address: "mailto:d@example.com", MaxSize: "3t"}},
		},
		text: "v=DMARC1; p=none; rua=mailto:a@example.com,mailto:b@example.org!1g,mailto:c@example.net!2k; ruf=mailto:d@example.com!3t",
	},
	{
		name: "percent-encoded comma and bang in address, size without unit",
		in:   "v=DMARC1; p=none; rua=mailto:a%2Cb%21c@example.com!10",
		want: dmarc.Record{Policy: dmarc.None, RUA: []dmarc.URI{{Address: "mailto:a%2Cb%21c@example.com", MaxSize: "10"}}},
		text: "v=DMARC1; p=none; rua=mailto:a%2Cb%21c@example.com!10",
	},
	{
		name: "rf list",
		in:   "v=DMARC1; p=none; rf=afrf:iodef",
		want: dmarc.Record{Policy: dmarc.None, ReportFormat: "afrf:iodef"},
		text: "v=DMARC1; p=none; rf=afrf:iodef",
	},
	{
		name: "every tag",
		in:   "v=DMARC1; p=reject; sp=quarantine; np=reject; pct=90; adkim=s; aspf=s; rua=mailto:agg@example.com; ruf=mailto:fail@example.com!100k; fo=d:s; rf=afrf; ri=7200; psd=n; t=n; ext=1",
		want: dmarc.Record{
			Policy:            dmarc.Reject,
			SubdomainPolicy:   dmarc.Quarantine,
			NonExistentPolicy: dmarc.Reject,
			Percent:           new(90),
			ADKIM:             dmarc.Strict,
			ASPF:              dmarc.Strict,
			RUA:               []dmarc.URI{{Address: "mailto:agg@example.com"}},
			RUF:               []dmarc.URI{{Address: "mailto:fail@example.com", MaxSize: "100k"}},
			FailureOptions:    "d:s",
			ReportFormat:      "afrf",
			ReportInterval:    new(uint32(7200)),
			PSD:               "n",
			Testing:           "n",
			Unknown:           []dmarc.Tag{{Name: "ext", Value: "1"}},
		},
		text: "v=DMARC1; p=reject; sp=quarantine; np=reject; pct=90; adkim=s; aspf=s; rua=mailto:agg@example.com; ruf=mailto:fail@example.com!100k; fo=d:s; rf=afrf; ri=7200; psd=n; t=n; ext=1",
	},
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := dmarc.Parse(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.text, got.String())
			require.NoError(t, got.Validate())

			again, err := dmarc.Parse(got.String())
			require.NoError(t, err, "round trip")
			require.Equal(t, got, again, "round trip")
		})
	}
}

// TestCanonicalTextIsStable checks that canonical text survives Parse and
// String byte for byte, which is what the DNS edge serves.
func TestCanonicalTextIsStable(t *testing.T) {
	t.Parallel()
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := dmarc.Parse(tc.text)
			require.NoError(t, err)
			require.Equal(t, tc.text, r.String())
		})
	}
}

// invalidCases are records Parse must reject. tag is the Tag the
// *SyntaxError must name ("" for none), is the sentinel it must wrap (nil for
// none) and msg a part of the message.
var invalidCases = []struct {
	name string
	in   string
	tag  string
	is   error
	msg  string
}{
	{"empty", "", "", dmarc.ErrNotDMARC, "dmarc: not a DMARC record: it must start with v=DMARC1"},
	{"blank", " \t ", "", dmarc.ErrNotDMARC, "must start with v=DMARC1"},
	{"SPF record", "v=spf1 -all", "v", dmarc.ErrNotDMARC, `dmarc: tag "v": "spf1 -all" is not DMARC1`},
	{"missing v", "p=none", "", dmarc.ErrNotDMARC, `must start with v=DMARC1, not "p=none"`},
	{"v not first", "p=none; v=DMARC1", "", dmarc.ErrNotDMARC, `not "p=none"`},
	{"leading semicolon", "; v=DMARC1; p=none", "", dmarc.ErrNotDMARC, "must start with v=DMARC1"},
	{"DMARC2", "v=DMARC2; p=none", "v", dmarc.ErrNotDMARC, `"DMARC2" is not DMARC1`},
	{"lowercase version", "v=dmarc1; p=none", "v", dmarc.ErrNotDMARC, `"dmarc1" is not DMARC1`},
	{"uppercase V", "V=DMARC1; p=none", "", dmarc.ErrNotDMARC, `not "V=DMARC1"`},
	{"empty version", "v=; p=none", "v", dmarc.ErrNotDMARC, "value is empty"},
	{"version without equals", "v DMARC1; p=none", "", dmarc.ErrNotDMARC, "must start with v=DMARC1"},
	{"missing p", "v=DMARC1", "p", dmarc.ErrMissingPolicy, `dmarc: tag "p": required tag is missing`},
	{"missing p with rua", "v=DMARC1; rua=mailto:a@example.com", "p", dmarc.ErrMissingPolicy, "required tag is missing"},
	{"duplicate p", "v=DMARC1; p=none; p=reject", "p", dmarc.ErrDuplicateTag, `dmarc: tag "p": appears more than once`},
	{"duplicate p other case", "v=DMARC1; p=none; P=none", "p", dmarc.ErrDuplicateTag, "appears more than once"},
	{"duplicate v", "v=DMARC1; p=none; v=DMARC1", "v", dmarc.ErrDuplicateTag, "appears more than once"},
	{"duplicate unknown", "v=DMARC1; p=none; foo=1; FOO=2", "foo", dmarc.ErrDuplicateTag, "appears more than once"},
	{"duplicate rua", "v=DMARC1; p=none; rua=mailto:a@example.com; rua=mailto:b@example.com", "rua", dmarc.ErrDuplicateTag, "appears more than once"},
	{"bad p", "v=DMARC1; p=block", "p", nil, `dmarc: tag "p": "block" is not none, quarantine or reject`},
	{"empty p", "v=DMARC1; p=", "p", nil, `dmarc: tag "p": value is empty`},
	{"bad sp", "v=DMARC1; p=none; sp=allow", "sp", nil, `"allow" is not none, quarantine or reject`},
	{"bad np", "v=DMARC1; p=none; np=deny", "np", nil, `"deny" is not none, quarantine or reject`},
	{"pct negative", "v=DMARC1; p=none; pct=-1", "pct", nil, `dmarc: tag "pct": "-1" is not an integer between 0 and 100`},
	{"pct too big", "v=DMARC1; p=none; pct=101", "pct", nil, `dmarc: tag "pct": "101" is not an integer between 0 and 100`},
	{"pct not a number", "v=DMARC1; p=none; pct=abc", "pct", nil, `dmarc: tag "pct": "abc" is not an integer between 0 and 100`},
	{"pct with sign", "v=DMARC1; p=none; pct=+5", "pct", nil, `"+5" is not an integer`},
	{"pct decimal", "v=DMARC1; p=none; pct=5.0", "pct", nil, `"5.0" is not an integer`},
	{"pct huge", "v=DMARC1; p=none; pct=99999999999999999999999", "pct", nil, "is not an integer between 0 and 100"},
	{"pct empty", "v=DMARC1; p=none; pct=", "pct", nil, `tag "pct": value is empty`},
	{"ri negative", "v=DMARC1; p=none; ri=-1", "ri", nil, `"-1" is not a number of seconds`},
	{"ri too big", "v=DMARC1; p=none; ri=4294967296", "ri", nil, `"4294967296" is not a number of seconds`},
	{"ri with unit", "v=DMARC1; p=none; ri=1h", "ri", nil, `"1h" is not a number of seconds`},
	{"bad fo option", "v=DMARC1; p=none; fo=2", "fo", nil, `dmarc: tag "fo": "2" is not a colon-separated list of 0, 1, d and s`},
	{"fo trailing colon", "v=DMARC1; p=none; fo=1:", "fo", nil, `"1:" is not a colon-separated list`},
	{"fo with commas", "v=DMARC1; p=none; fo=1,d", "fo", nil, `"1,d" is not a colon-separated list`},
	{"bad adkim", "v=DMARC1; p=none; adkim=x", "adkim", nil, `dmarc: tag "adkim": "x" is not r (relaxed) or s (strict)`},
	{"adkim spelled out", "v=DMARC1; p=none; adkim=relaxed", "adkim", nil, `"relaxed" is not r (relaxed) or s (strict)`},
	{"empty aspf", "v=DMARC1; p=none; aspf=", "aspf", nil, "value is empty"},
	{"bad rf", "v=DMARC1; p=none; rf=-x", "rf", nil, `"-x" is not a colon-separated list of report formats`},
	{"bad psd", "v=DMARC1; p=none; psd=yes", "psd", nil, `dmarc: tag "psd": "yes" is not y, n or u`},
	{"bad t", "v=DMARC1; p=none; t=u", "t", nil, `dmarc: tag "t": "u" is not y or n`},
	{"rua http", "v=DMARC1; p=none; rua=https://example.com/dmarc", "rua", nil, `dmarc: tag "rua": "https://example.com/dmarc" is not a mailto: URI; RFC 7489 allows other schemes, but reports are only sent by mail`},
	{"rua without scheme", "v=DMARC1; p=none; rua=dmarc@example.com", "rua", nil, `"dmarc@example.com" is not a mailto: URI; did you mean "mailto:dmarc@example.com"?`},
	{"ruf http", "v=DMARC1; p=none; ruf=http://example.com", "ruf", nil, "is not a mailto: URI"},
	{"rua no address", "v=DMARC1; p=none; rua=mailto:", "rua", nil, `"mailto:" is not a plausible mail address`},
	{"rua no domain", "v=DMARC1; p=none; rua=mailto:dmarc", "rua", nil, "is not a plausible mail address"},
	{"rua single label domain", "v=DMARC1; p=none; rua=mailto:dmarc@localhost", "rua", nil, "is not a plausible mail address"},
	{"rua two at signs", "v=DMARC1; p=none; rua=mailto:a@b@example.com", "rua", nil, "is not a plausible mail address"},
	{"rua space in address", "v=DMARC1; p=none; rua=mailto:a b@example.com", "rua", nil, "is not a plausible mail address"},
	{"rua bad escape", "v=DMARC1; p=none; rua=mailto:a%2@example.com", "rua", nil, "is not a plausible mail address"},
	{"rua query", "v=DMARC1; p=none; rua=mailto:a@example.com?subject=x", "rua", nil, "is not a plausible mail address"},
	{"rua bad size unit", "v=DMARC1; p=none; rua=mailto:a@example.com!10x", "rua", nil, `dmarc: tag "rua": "mailto:a@example.com!10x" has an invalid size limit "10x" after "!" (want digits with an optional unit k, m, g or t)`},
	{"rua empty size", "v=DMARC1; p=none; rua=mailto:a@example.com!", "rua", nil, `has an invalid size limit ""`},
	{"rua two units", "v=DMARC1; p=none; rua=mailto:a@example.com!10mm", "rua", nil, `invalid size limit "10mm"`},
	{"rua unit only", "v=DMARC1; p=none; rua=mailto:a@example.com!m", "rua", nil, `invalid size limit "m"`},
	{"rua bare bang in address", "v=DMARC1; p=none; rua=mailto:a!b@example.com!10m", "rua", nil, `"mailto:a!b@example.com" contains "!", which must be percent-encoded as %21`},
	{"rua empty address before size", "v=DMARC1; p=none; rua=!10m", "rua", nil, "URI has an empty address"},
	{"rua empty element", "v=DMARC1; p=none; rua=mailto:a@example.com,,mailto:b@example.com", "rua", nil, "has an empty URI in its list; remove the extra comma"},
	{"rua trailing comma", "v=DMARC1; p=none; rua=mailto:a@example.com,", "rua", nil, "has an empty URI in its list"},
	{"tag without equals", "v=DMARC1; p=none; foo", "", nil, `dmarc: "foo" is not a tag (want name=value)`},
	{"tag without name", "v=DMARC1; p=none; =x", "", nil, `dmarc: "=x" has an empty tag name`},
	{"tag name with digit first", "v=DMARC1; p=none; 1x=2", "", nil, `dmarc: "1x" is not a valid tag name`},
	{"tag name with space", "v=DMARC1; p=none; x y=1", "", nil, `"x y" is not a valid tag name`},
	{"CRLF is not whitespace", "v=DMARC1;\r\np=none", "", nil, `"\r\np" is not a valid tag name`},
	{"unknown value non-ASCII", "v=DMARC1; p=none; x=é", "x", nil, `tag "x": "é" contains 'é', but a tag value may only contain printable ASCII`},
	{"unknown value control char", "v=DMARC1; p=none; x=a\x00b", "x", nil, "may only contain printable ASCII"},
	{"Kelvin sign is not k", "v=DMARC1; p=none; rua=mailto:a@example.com!1\u212a", "rua", nil, "invalid size limit"},
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := dmarc.Parse(tc.in)
			require.Error(t, err)
			require.Zero(t, got)
			requireSyntaxError(t, err, tc.tag, tc.is, tc.msg)
		})
	}
}

// requireSyntaxError checks that err is a *SyntaxError for tag, wrapping is
// (if not nil), whose message contains msg and names the tag.
func requireSyntaxError(t *testing.T, err error, tag string, is error, msg string) {
	t.Helper()
	var se *dmarc.SyntaxError
	require.ErrorAs(t, err, &se)
	require.Equal(t, tag, se.Tag)
	require.True(t, strings.HasPrefix(err.Error(), "dmarc: "), err.Error())
	require.Contains(t, err.Error(), msg)
	if tag != "" {
		require.Contains(t, err.Error(), `tag "`+tag+`"`)
	}
	for _, sentinel := range []error{dmarc.ErrNotDMARC, dmarc.ErrMissingPolicy, dmarc.ErrDuplicateTag} {
		require.Equal(t, sentinel == is, errors.Is(err, sentinel), "errors.Is(err, %v)", sentinel) //nolint:errorlint // compares two sentinels of the table, not a returned error
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  dmarc.SyntaxError
		want string
	}{
		{dmarc.SyntaxError{Tag: "pct", Value: "abc", Reason: "is bad"}, `dmarc: tag "pct": "abc" is bad`},
		{dmarc.SyntaxError{Tag: "p", Reason: "required tag is missing"}, `dmarc: tag "p": required tag is missing`},
		{dmarc.SyntaxError{Value: "x\ty", Reason: "is bad"}, `dmarc: "x\ty" is bad`},
		{dmarc.SyntaxError{Reason: "something"}, "dmarc: something"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tc.err.Error())
	}
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want dmarc.Policy
	}{
		{"none", dmarc.None},
		{"NONE", dmarc.None},
		{"Quarantine", dmarc.Quarantine},
		{"reject", dmarc.Reject},
		{"rEjEcT", dmarc.Reject},
	}
	for _, tc := range tests {
		got, err := dmarc.ParsePolicy(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}

	for _, in := range []string{"", "block", " none", "rejected"} {
		_, err := dmarc.ParsePolicy(in)
		requireSyntaxError(t, err, "", nil, "dmarc: ")
	}
	_, err := dmarc.ParsePolicy("block")
	require.EqualError(t, err, `dmarc: "block" is not none, quarantine or reject`)
}

func TestParseURI(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in   string
		want dmarc.URI
		text string
	}{
		{"mailto:dmarc@example.com", dmarc.URI{Address: "mailto:dmarc@example.com"}, "mailto:dmarc@example.com"},
		{"mailto:dmarc@example.com!10m", dmarc.URI{Address: "mailto:dmarc@example.com", MaxSize: "10m"}, "mailto:dmarc@example.com!10m"},
		{" MailTo:Dmarc+Agg@Sub.Example.COM!1G\t", dmarc.URI{Address: "mailto:Dmarc+Agg@Sub.Example.COM", MaxSize: "1g"}, "mailto:Dmarc+Agg@Sub.Example.COM!1g"},
		{"mailto:re%2Cports@xn--bcher-kva.example!0", dmarc.URI{Address: "mailto:re%2Cports@xn--bcher-kva.example", MaxSize: "0"}, "mailto:re%2Cports@xn--bcher-kva.example!0"},
		{"mailto:first.last_x-y@example.co.uk", dmarc.URI{Address: "mailto:first.last_x-y@example.co.uk"}, "mailto:first.last_x-y@example.co.uk"},
	}
	for _, tc := range valid {
		got, err := dmarc.ParseURI(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
		require.Equal(t, tc.text, got.String())
	}

	invalid := []struct{ in, msg string }{
		{"", "dmarc: URI is empty"},
		{"https://example.com/r", `"https://example.com/r" is not a mailto: URI`},
		{"mailto:a,b@example.com", `contains ",", which must be percent-encoded as %2C`},
		{"mailto:a@-example.com", "is not a plausible mail address"},
		{"mailto:a@example-.com", "is not a plausible mail address"},
		{"mailto:a@example..com", "is not a plausible mail address"},
		{"mailto:a@example.com.", "is not a plausible mail address"},
		{"mailto:a@[192.0.2.1]", "is not a plausible mail address"},
		{"mailto:a@" + strings.Repeat("x", 64) + ".example", "is not a plausible mail address"},
		{"mailto:a@example.com!10 m", `invalid size limit "10 m"`},
	}
	for _, tc := range invalid {
		_, err := dmarc.ParseURI(tc.in)
		requireSyntaxError(t, err, "", nil, tc.msg)
	}
}

func TestEffective(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		in              string
		pct             int
		sub, nonExisent dmarc.Policy
	}{
		{"defaults", "v=DMARC1; p=reject", 100, dmarc.Reject, dmarc.Reject},
		{"sp only", "v=DMARC1; p=reject; sp=none; pct=20", 20, dmarc.None, dmarc.None},
		{"np only", "v=DMARC1; p=none; np=reject; pct=0", 0, dmarc.None, dmarc.Reject},
		{"sp and np", "v=DMARC1; p=none; sp=quarantine; np=reject", 100, dmarc.Quarantine, dmarc.Reject},
	}
	for _, tc := range tests {
		r, err := dmarc.Parse(tc.in)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.pct, r.EffectivePercent(), tc.name)
		require.Equal(t, tc.sub, r.EffectiveSubdomainPolicy(), tc.name)
		require.Equal(t, tc.nonExisent, r.EffectiveNonExistentPolicy(), tc.name)
	}
}

// TestValidateBuiltRecord checks that a Record built in code, as the API
// does, validates and survives String and Parse.
func TestValidateBuiltRecord(t *testing.T) {
	t.Parallel()
	policy, err := dmarc.ParsePolicy("Quarantine")
	require.NoError(t, err)
	rua, err := dmarc.ParseURI("MAILTO:agg@example.com!20M")
	require.NoError(t, err)

	records := []dmarc.Record{
		{Policy: dmarc.None},
		{Policy: policy, RUA: []dmarc.URI{rua}},
		{
			Policy:            dmarc.Reject,
			SubdomainPolicy:   dmarc.Quarantine,
			NonExistentPolicy: dmarc.Reject,
			Percent:           new(0),
			ADKIM:             dmarc.Relaxed,
			ASPF:              dmarc.Strict,
			RUA:               []dmarc.URI{rua, {Address: "mailto:second@example.org"}},
			RUF:               []dmarc.URI{{Address: "mailto:fail@example.com", MaxSize: "5k"}},
			FailureOptions:    "0:1:d:s",
			ReportFormat:      "afrf",
			ReportInterval:    new(uint32(3600)),
			PSD:               "u",
			Testing:           "y",
			Unknown:           []dmarc.Tag{{Name: "ext", Value: "a b"}, {Name: "empty", Value: ""}},
		},
	}
	for _, r := range records {
		require.NoError(t, r.Validate(), r.String())
		got, err := dmarc.Parse(r.String())
		require.NoError(t, err, r.String())
		require.Equal(t, r, got)
	}
}

// TestEmptySlicesRoundTrip documents that empty lists are "not set": they are
// not composed and come back nil.
func TestEmptySlicesRoundTrip(t *testing.T) {
	t.Parallel()
	r := dmarc.Record{Policy: dmarc.None, RUA: []dmarc.URI{}, RUF: []dmarc.URI{}, Unknown: []dmarc.Tag{}}
	require.NoError(t, r.Validate())
	require.Equal(t, "v=DMARC1; p=none", r.String())
	got, err := dmarc.Parse(r.String())
	require.NoError(t, err)
	require.Equal(t, dmarc.Record{Policy: dmarc.None}, got)
}

func TestValidateInvalid(t *testing.T) {
	t.Parallel()
	ok := func(r dmarc.Record) dmarc.Record {
		r.Policy = dmarc.None
		return r
	}
	tests := []struct {
		name string
		r    dmarc.Record
		tag  string
		is   error
		msg  string
	}{
		{"zero record", dmarc.Record{}, "p", dmarc.ErrMissingPolicy, "required tag is missing"},
		{"missing p", dmarc.Record{SubdomainPolicy: dmarc.Reject}, "p", dmarc.ErrMissingPolicy, "required tag is missing"},
		{"p not canonical", dmarc.Record{Policy: "Reject"}, "p", nil, `dmarc: tag "p": "Reject" is not in canonical form; use "reject"`},
		{"bad p", dmarc.Record{Policy: "block"}, "p", nil, `"block" is not none, quarantine or reject`},
		{"bad sp", ok(dmarc.Record{SubdomainPolicy: "nope"}), "sp", nil, `"nope" is not none`},
		{"bad np", ok(dmarc.Record{NonExistentPolicy: " none"}), "np", nil, `" none" is not none`},
		{"pct too big", ok(dmarc.Record{Percent: new(101)}), "pct", nil, `dmarc: tag "pct": "101" is not an integer between 0 and 100`},
		{"pct negative", ok(dmarc.Record{Percent: new(-1)}), "pct", nil, `"-1" is not an integer between 0 and 100`},
		{"bad adkim", ok(dmarc.Record{ADKIM: "relaxed"}), "adkim", nil, `"relaxed" is not r (relaxed) or s (strict)`},
		{"aspf not canonical", ok(dmarc.Record{ASPF: "S"}), "aspf", nil, `"S" is not in canonical form; use "s"`},
		{"rua http", ok(dmarc.Record{RUA: []dmarc.URI{{Address: "https://example.com"}}}), "rua", nil, "is not a mailto: URI"},
		{"rua empty address", ok(dmarc.Record{RUA: []dmarc.URI{{MaxSize: "1m"}}}), "rua", nil, "URI has an empty address"},
		{"rua scheme not canonical", ok(dmarc.Record{RUA: []dmarc.URI{{Address: "MAILTO:a@example.com"}}}), "rua", nil, `use "mailto:a@example.com"`},
		{"rua bang in address", ok(dmarc.Record{RUA: []dmarc.URI{{Address: "mailto:a@example.com!10m"}}}), "rua", nil, `contains "!"`},
		{"rua comma in address", ok(dmarc.Record{RUA: []dmarc.URI{{Address: "mailto:a@example.com,mailto:b@example.com"}}}), "rua", nil, `contains ","`},
		{"ruf bad size", ok(dmarc.Record{RUF: []dmarc.URI{{Address: "mailto:a@example.com", MaxSize: "big"}}}), "ruf", nil, `"mailto:a@example.com!big" has an invalid size limit "big"`},
		{"ruf size not canonical", ok(dmarc.Record{RUF: []dmarc.URI{{Address: "mailto:a@example.com", MaxSize: "10M"}}}), "ruf", nil, `"10M" is not in canonical form; use "10m"`},
		{"fo not canonical", ok(dmarc.Record{FailureOptions: "1 : D"}), "fo", nil, `"1 : D" is not in canonical form; use "1:d"`},
		{"bad fo", ok(dmarc.Record{FailureOptions: "2"}), "fo", nil, "is not a colon-separated list of 0, 1, d and s"},
		{"rf not canonical", ok(dmarc.Record{ReportFormat: "AFRF"}), "rf", nil, `use "afrf"`},
		{"bad psd", ok(dmarc.Record{PSD: "maybe"}), "psd", nil, `"maybe" is not y, n or u`},
		{"bad t", ok(dmarc.Record{Testing: "u"}), "t", nil, `"u" is not y or n`},
		{"unknown named like a known tag", ok(dmarc.Record{Unknown: []dmarc.Tag{{Name: "pct", Value: "5"}}}), "pct", nil, "is a known tag; set its Record field"},
		{"unknown named v", ok(dmarc.Record{Unknown: []dmarc.Tag{{Name: "v", Value: "DMARC1"}}}), "v", nil, "is a known tag"},
		{"unknown uppercase name", ok(dmarc.Record{Unknown: []dmarc.Tag{{Name: "Ext", Value: "1"}}}), "", nil, `"Ext" is not in canonical form; use "ext"`},
		{"unknown bad name", ok(dmarc.Record{Unknown: []dmarc.Tag{{Name: "a-b", Value: "1"}}}), "", nil, `"a-b" is not a valid tag name`},
		{"unknown empty name", ok(dmarc.Record{Unknown: []dmarc.Tag{{Value: "1"}}}), "", nil, "unknown tag has an empty name"},
		{"unknown duplicate", ok(dmarc.Record{Unknown: []dmarc.Tag{{Name: "x", Value: "1"}, {Name: "x", Value: "2"}}}), "x", dmarc.ErrDuplicateTag, "appears more than once"},
		{"unknown value with semicolon", ok(dmarc.Record{Unknown: []dmarc.Tag{{Name: "x", Value: "a;b"}}}), "x", nil, `contains ';'`},
		{"unknown value with outer space", ok(dmarc.Record{Unknown: []dmarc.Tag{{Name: "x", Value: " a"}}}), "x", nil, "has leading or trailing whitespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			requireSyntaxError(t, tc.r.Validate(), tc.tag, tc.is, tc.msg)
		})
	}
}
