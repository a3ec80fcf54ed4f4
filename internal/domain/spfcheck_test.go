package domain

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

const (
	testZone = "edge.rampart.test"
	testName = "example.com"
)

func TestSPFRecordForms(t *testing.T) {
	t.Parallel()
	require.Equal(t, "v=spf1 include:%{i}._ip.example.com._spf.edge.rampart.test redirect=example.com._rspf.edge.rampart.test",
		SPFRecord(testName, testZone+"."))
	require.Equal(t, "v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.edge.rampart.test include:example.com._nspf.edge.rampart.test ~all",
		LegacySPFRecord(testName, testZone))
	require.Equal(t, SPFCurrent, ClassifySPF(testName, testZone, []string{SPFRecord(testName, testZone)}))
	require.Equal(t, SPFLegacy, ClassifySPF(testName, testZone, []string{LegacySPFRecord(testName, testZone)}))
}

func TestClassifySPF(t *testing.T) {
	t.Parallel()
	const (
		inc   = "include:%{i}._ip.example.com._spf.edge.rampart.test"
		redir = "redirect=example.com._rspf.edge.rampart.test"
	)
	cases := []struct {
		name string
		txts []string
		want SPFStatus
	}{
		{"nothing", nil, SPFMissing},
		{"other TXT only", []string{"google-site-verification=abc", "rampart-verify=x"}, SPFMissing},
		{"version without space", []string{"v=spf10 -all"}, SPFMissing},
		{"leading space is no SPF record", []string{" v=spf1 " + inc + " " + redir}, SPFMissing},
		{"current", []string{"v=spf1 " + inc + " " + redir}, SPFCurrent},
		{"current among other TXT", []string{"google-site-verification=abc", "v=spf1 " + inc + " " + redir}, SPFCurrent},
		{"current, upper case", []string{strings.ToUpper("v=spf1 " + inc + " " + redir)}, SPFCurrent},
		{"current, extra spaces", []string{"v=spf1   " + inc + "    " + redir + "  "}, SPFCurrent},
		{"current, trailing dots", []string{"v=spf1 " + inc + ". " + redir + "."}, SPFCurrent},
		{"current, + qualifier", []string{"v=spf1 +" + inc + " " + redir}, SPFCurrent},
		{"current, own mechanisms first", []string{"v=spf1 ip4:192.0.2.0/24 include:_spf.vendor.example " + inc + " " + redir}, SPFCurrent},
		{"current, redirect first", []string{"v=spf1 " + redir + " " + inc}, SPFCurrent},
		{"current, mechanism after the include", []string{"v=spf1 " + inc + " ip6:2001:db8::/32 " + redir}, SPFCurrent},
		{"all disables the redirect", []string{"v=spf1 " + inc + " " + redir + " ~all"}, SPFOther},
		{"-all disables the redirect", []string{"v=spf1 " + inc + " -all " + redir}, SPFOther},
		{"two redirects", []string{"v=spf1 " + inc + " " + redir + " redirect=other.example"}, SPFOther},
		{"redirect elsewhere", []string{"v=spf1 " + inc + " redirect=_spf.vendor.example"}, SPFOther},
		{"include without redirect", []string{"v=spf1 " + inc + " ~all"}, SPFOther},
		{"redirect without include", []string{"v=spf1 " + redir}, SPFOther},
		{"another domain's include", []string{"v=spf1 include:%{i}._ip.other.example._spf.edge.rampart.test " + redir}, SPFOther},
		{"another zone", []string{"v=spf1 include:%{i}._ip.example.com._spf.edge.other.test redirect=example.com._rspf.edge.other.test"}, SPFOther},
		{"include failing", []string{"v=spf1 -" + inc + " " + redir}, SPFOther},
		{"legacy", []string{"v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.edge.rampart.test include:example.com._nspf.edge.rampart.test ~all"}, SPFLegacy},
		{"legacy, literal domain", []string{"v=spf1 include:%{i}._ip.%{h}._ehlo.example.com._spf.edge.rampart.test ~all"}, SPFLegacy},
		{"legacy, upper case macros", []string{"v=spf1 include:%{I}._ip.%{H}._ehlo.%{D}._spf.EDGE.rampart.test ~all"}, SPFLegacy},
		{"legacy and current terms", []string{"v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.edge.rampart.test " + inc + " " + redir}, SPFLegacy},
		{"other", []string{"v=spf1 include:_spf.google.com ~all"}, SPFOther},
		{"blocked", []string{"v=spf1 -all"}, SPFOther},
		{"bare version", []string{"v=spf1"}, SPFOther},
		{"multiple", []string{"v=spf1 -all", "v=spf1 " + inc + " " + redir}, SPFMultiple},
		{"multiple, both current", []string{"v=spf1 " + inc + " " + redir, "v=spf1 " + inc + " " + redir}, SPFMultiple},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, ClassifySPF(testName, testZone, tc.txts))
			require.Equal(t, tc.want, ClassifySPF("EXAMPLE.com.", testZone+".", tc.txts), "names compare without case or trailing dot")
		})
	}
}

func TestSPFShapeNamesTheEdge(t *testing.T) {
	t.Parallel()
	for rec, want := range map[string]bool{
		SPFRecord(testName, testZone):                   true,
		LegacySPFRecord(testName, testZone):             true,
		"v=spf1 redirect=example.com._rspf." + testZone: true,
		"v=spf1 a:mail.edge.rampart.test/24 -all":       true,
		"v=spf1 exists:%{i}.x.edge.rampart.test -all":   true,
		"v=spf1 include:_spf.google.com ~all":           false,
		"v=spf1 include:notedge.rampart.test ~all":      false,
		"v=spf1 -all": false,
	} {
		require.Equal(t, want, shapeOf(rec, testName, testZone).edge, rec)
	}
	require.True(t, shapeOf("v=spf1 -all", testName, testZone).onlyFail)
	require.True(t, shapeOf("v=spf1   -ALL ", testName, testZone).onlyFail)
	require.False(t, shapeOf("v=spf1 ~all", testName, testZone).onlyFail)
}

func TestPrintable(t *testing.T) {
	t.Parallel()
	require.Equal(t, "v=spf1 -all", printable("v=spf1 -all"))
	require.Equal(t, `a\000b\010\092\195\169`, printable("a\x00b\n\\é"))
	long := printable(strings.Repeat("x", 5000))
	require.LessOrEqual(t, len(long), maxRecordShown+3)
}

// FuzzClassifySPF: whatever comes back from DNS, the classifier answers
// without panicking, one record of each form is recognised among any other
// TXT strings, the counts decide MISSING and MULTIPLE, and the text kept for
// display is printable ASCII.
func FuzzClassifySPF(f *testing.F) {
	f.Add("example.com", "v=spf1 include:%{i}._ip.example.com._spf.edge.rampart.test redirect=example.com._rspf.edge.rampart.test")
	f.Add("example.com", "v=spf1 -all\x00v=spf1 ~all")
	f.Add("xn--bcher-kva.example", "google-site-verification=x\x00v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.edge.rampart.test ~all")
	f.Add("a.b", "v=spf1 redirect= include: -include:%{i}._ip.a.b._spf.edge.rampart.test \t\xff")
	f.Fuzz(func(t *testing.T, name, blob string) {
		txts := strings.Split(blob, "\x00")
		got := ClassifySPF(name, testZone, txts)
		n := len(SPFRecords(txts))
		switch {
		case n == 0:
			require.Equal(t, SPFMissing, got)
		case n > 1:
			require.Equal(t, SPFMultiple, got)
		default:
			require.Contains(t, []SPFStatus{SPFCurrent, SPFLegacy, SPFOther}, got)
		}
		for _, s := range txts {
			p := printable(s)
			require.True(t, utf8.ValidString(p))
			for _, c := range []byte(p) {
				require.True(t, c >= 0x20 && c < 0x7f, "%q", p)
			}
		}
		// One record of each form, for a name the service accepts.
		if d, err := NormalizeName(name); err == nil && n == 0 {
			others := append([]string{}, txts...)
			require.Equal(t, SPFCurrent, ClassifySPF(d, testZone, append(others, SPFRecord(d, testZone))))
			require.Equal(t, SPFLegacy, ClassifySPF(d, testZone, append(others, LegacySPFRecord(d, testZone))))
		}
	})
}
