package spf

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rfcMacroData is the example of RFC 7208 §7.4.
func rfcMacroData(ip string) *MacroData {
	return &MacroData{
		Sender:    "strong-bad@email.example.com",
		Domain:    "email.example.com",
		IP:        netip.MustParseAddr(ip),
		HELO:      "mx.example.org",
		Validated: "mx.example.org",
		Receiver:  "mx.example.net",
		Now:       time.Unix(1234567890, 0),
	}
}

func TestExpandDomainSpecRFCExamples(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, ip, want string }{
		{"%{s}", "192.0.2.3", "strong-bad@email.example.com"},
		{"%{o}", "192.0.2.3", "email.example.com"},
		{"%{d}", "192.0.2.3", "email.example.com"},
		{"%{d4}", "192.0.2.3", "email.example.com"},
		{"%{d3}", "192.0.2.3", "email.example.com"},
		{"%{d2}", "192.0.2.3", "example.com"},
		{"%{d1}", "192.0.2.3", "com"},
		{"%{dr}", "192.0.2.3", "com.example.email"},
		{"%{d2r}", "192.0.2.3", "example.email"},
		{"%{l}", "192.0.2.3", "strong-bad"},
		{"%{l-}", "192.0.2.3", "strong.bad"},
		{"%{lr}", "192.0.2.3", "strong-bad"},
		{"%{lr-}", "192.0.2.3", "bad.strong"},
		{"%{l1r-}", "192.0.2.3", "strong"},
		{"%{ir}.%{v}._spf.%{d2}", "192.0.2.3", "3.2.0.192.in-addr._spf.example.com"},
		{"%{lr-}.lp._spf.%{d2}", "192.0.2.3", "bad.strong.lp._spf.example.com"},
		{"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "192.0.2.3", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
		{"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "192.0.2.3", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
		{"%{d2}.trusted-domains.example.net", "192.0.2.3", "example.com.trusted-domains.example.net"},
		{"%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01", "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"},
		{"%{i}.example.com", "2001:db8::cb01", "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1.example.com"},
		{"%{p}.%{h}.example.com", "192.0.2.3", "mx.example.org.mx.example.org.example.com"},
		// Uppercase letters are URL-escaped; %%, %_ and %- are literals.
		{"%{L}.%{S}.example.com", "192.0.2.3", "strong-bad.strong-bad%40email.example.com.example.com"},
		{"a%%b%_c%-d.example.com", "192.0.2.3", "a%b c%20d.example.com"},
		// Several delimiters, and more parts asked for than there are.
		{"%{l9r-.}.example.com", "192.0.2.3", "bad.strong.example.com"},
		{"%{d99999999999}.x.com", "192.0.2.3", "email.example.com.x.com"},
		// A trailing dot is not part of the name queried.
		{"%{d}.x.com.", "192.0.2.3", "email.example.com.x.com"},
		{"example.com.", "192.0.2.3", "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ExpandDomainSpec(tt.in, rfcMacroData(tt.ip))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestExpandExplanation(t *testing.T) {
	t.Parallel()
	d := rfcMacroData("2001:db8::cb01")
	got, err := ExpandExplanation("%{c} is not one of %{d}'s designated mail servers (%{r}, %{t}, %{V}).", d)
	require.NoError(t, err)
	require.Equal(t, "2001:db8::cb01 is not one of email.example.com's designated mail servers (mx.example.net, 1234567890, ip6).", got)

	got, err = ExpandExplanation("http://example.com/why.html?l=%{L}", &MacroData{Sender: "~jack&jill=up-a_b3.c@example.com"})
	require.NoError(t, err)
	require.Equal(t, "http://example.com/why.html?l=~jack%26jill%3Dup-a_b3.c", got)

	got, err = ExpandExplanation("%{r} %{p}", &MacroData{})
	require.NoError(t, err)
	require.Equal(t, "unknown unknown", got)

	for _, bad := range []string{"The %{x}-files.", "tab\there", "\xefbom", "50%"} {
		_, err := ExpandExplanation(bad, d)
		require.Error(t, err, bad)
	}
	// c, r and t are for explanations only.
	_, err = ExpandDomainSpec("%{c}.example.com", d)
	require.ErrorContains(t, err, "explanation text only")
}

func TestExpandSenderWithoutLocalPart(t *testing.T) {
	t.Parallel()
	got, err := ExpandDomainSpec("%{l}.%{o}", &MacroData{Sender: "@example.net"})
	require.NoError(t, err)
	require.Equal(t, "postmaster.example.net", got)
}

func TestExpandTruncation(t *testing.T) {
	t.Parallel()
	// RFC 7208 §7.3: labels are dropped from the left until the name fits.
	d := &MacroData{Sender: "x@somewhat.long.exp.example.com"}
	got, err := ExpandDomainSpec("foobar.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.example.com", d)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("somewhat.long.exp.example.com.", 8)+"example.com", got)
	require.LessOrEqual(t, len(got), 253)

	// A single label longer than 253 octets cannot be made to fit.
	d = &MacroData{Sender: "x@" + strings.Repeat("a", 300)}
	got, err = ExpandDomainSpec("%{o}", d)
	require.NoError(t, err)
	require.Empty(t, got)

	// Expansion is bounded.
	d = &MacroData{Sender: strings.Repeat("a", 200) + "@example.com"}
	_, err = ExpandDomainSpec(strings.Repeat("%{s}", 50)+".example.com", d)
	require.ErrorIs(t, err, errTooLong)
}

func TestCheckDomainSpec(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"example.com", "example.com.", "%{d}", "a.%{d}", "x.xn--zckzah", "a.b-2", "%%", "foo.%-", "_spf.example.com"} {
		require.NoError(t, checkDomainSpec(ok), ok)
	}
	for _, bad := range []string{"", ".", "com", "com.", "example.com..", "a.123", "a.-b", "a.b-", "a.b_c", "%{d}com", "a b.com", "é.com", "%{c}.com", "%{d}%", "%{d}."} {
		require.Error(t, checkDomainSpec(bad), bad)
	}
}

func BenchmarkExpandDomainSpec(b *testing.B) {
	d := rfcMacroData("2001:db8::cb01")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ExpandDomainSpec("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", d); err != nil {
			b.Fatal(err)
		}
	}
}
