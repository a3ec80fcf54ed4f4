package spf

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		canonical string
		lookups   int
	}{
		{"v=spf1", "v=spf1", 0},
		{"v=spf1 ", "v=spf1", 0},
		{"V=SPF1 -ALL", "v=spf1 -all", 0},
		{"v=spf1  +all", "v=spf1 all", 0},
		{"v=spf1 ip4:192.0.2.1 ip4:192.0.2.0/24 ip4:0.0.0.0/0 -all", "v=spf1 ip4:192.0.2.1 ip4:192.0.2.0/24 ip4:0.0.0.0/0 -all", 0},
		{"v=spf1 ip4:192.0.2.1/32", "v=spf1 ip4:192.0.2.1", 0},
		{"v=spf1 ip4:192.0.2.7/24", "v=spf1 ip4:192.0.2.7/24", 0}, // the address is kept as written
		{"v=spf1 ip6:2001:DB8::1 ip6:2001:db8::/32 ip6:::ffff:1.2.3.4/128", "v=spf1 ip6:2001:db8::1 ip6:2001:db8::/32 ip6:::ffff:1.2.3.4", 0},
		{"v=spf1 a mx ptr", "v=spf1 a mx ptr", 3},
		{"v=spf1 a:example.com/24//64 mx/0 a//0 mx:mail.example.com//48", "v=spf1 a:example.com/24//64 mx/0 a//0 mx:mail.example.com//48", 4},
		{"v=spf1 a/32 a//128", "v=spf1 a/32 a//128", 2},
		{"v=spf1 include:_spf.example.com ~include:x.example.org. ?exists:%{ir}.%{l1r+-}._spf.%{d} -all", "v=spf1 include:_spf.example.com ~include:x.example.org. ?exists:%{ir}.%{l1r+-}._spf.%{d} -all", 3},
		{"v=spf1 ptr:example.com -all", "v=spf1 ptr:example.com -all", 1},
		{"v=spf1 redirect=_spf.example.com", "v=spf1 redirect=_spf.example.com", 1},
		{"v=spf1 exp=explain.%{d} -all", "v=spf1 -all exp=explain.%{d}", 0},
		{"v=spf1 REDIRECT=b.example.com Exp=e.example.com a", "v=spf1 a redirect=b.example.com exp=e.example.com", 2},
		{"v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all", "v=spf1 ip4:1.2.3.4 -all moo.cow-far_out=man:dog/cat", 0},
		{"v=spf1 default=+ foo=", "v=spf1 default=+ foo=", 0},
		{"v=spf1 a:foo:bar/baz.example.com", "v=spf1 a:foo:bar/baz.example.com", 1},
		{"v=spf1 a:foo.example.xn--zckzah", "v=spf1 a:foo.example.xn--zckzah", 1},
		{"v=spf1 a:macro%%percent%_%_space%-url-space.example.com", "v=spf1 a:macro%%percent%_%_space%-url-space.example.com", 1},
		{"v=spf1 exists:%{p}", "v=spf1 exists:%{p}", 1},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.canonical, r.String())
			require.Equal(t, tt.lookups, r.LookupTerms())
			require.NoError(t, r.Validate())
			again, err := Parse(r.String())
			require.NoError(t, err)
			require.Equal(t, r, again)
		})
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()
	r, err := Parse("v=spf1 -a:example.com/24//64 ip6:2001:db8::/32 ~mx redirect=r.example.com unknown=x")
	require.NoError(t, err)
	require.Equal(t, &Record{
		Mechanisms: []Mechanism{
			{Qualifier: QualifierFail, Kind: KindA, Domain: "example.com", CIDR4: 24, CIDR4Set: true, CIDR6: 64, CIDR6Set: true},
			{Qualifier: QualifierPass, Kind: KindIP6, Prefix: netip.MustParsePrefix("2001:db8::/32")},
			{Qualifier: QualifierSoftFail, Kind: KindMX},
		},
		Redirect: "r.example.com",
		Unknown:  []Modifier{{Name: "unknown", Value: "x"}},
	}, r)
	require.Equal(t, 24, r.Mechanisms[0].Bits4())
	require.Equal(t, 128, r.Mechanisms[2].Bits6())
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in  string
		msg string
	}{
		{"v=spf1 ip4:1.2.3.4/33", `spf: term "ip4:1.2.3.4/33": CIDR length 33 is out of range 0-32`},
		{"v=spf1 ip4:1.2.3.4/032", `spf: term "ip4:1.2.3.4/032": CIDR length "032" has a leading zero`},
		{"v=spf1 ip6:::1/129", `spf: term "ip6:::1/129": CIDR length 129 is out of range 0-128`},
		{"v=spf1 ip4:1.2.3.4//32", `spf: term "ip4:1.2.3.4//32": invalid CIDR length "/32"`},
		{"v=spf1 ip4:1.2.3", `spf: term "ip4:1.2.3": "1.2.3" is not a valid IPv4 address`},
		{"v=spf1 ip4:01.2.3.4", `spf: term "ip4:01.2.3.4": "01.2.3.4" is not a valid IPv4 address`},
		{"v=spf1 ip4:::1", `spf: term "ip4:::1": "::1" is not an IPv4 address (use ip6: for IPv6)`},
		{"v=spf1 ip6:1.2.3.4", `spf: term "ip6:1.2.3.4": "1.2.3.4" is not an IPv6 address (use ip4: for IPv4)`},
		{"v=spf1 ip6:fe80::1%eth0", `spf: term "ip6:fe80::1%eth0": "fe80::1%eth0" is not a valid IPv6 address`},
		{"v=spf1 ip4", `spf: term "ip4": ip4 needs an address (ip4:<network>[/<length>])`},
		{"v=spf1 ip4:1.2.3.4:8080", `spf: term "ip4:1.2.3.4:8080": "1.2.3.4:8080" is not a valid IPv4 address`},
		{"v=spf1 a/33", `spf: term "a/33": CIDR length 33 is out of range 0-32`},
		{"v=spf1 a//129", `spf: term "a//129": CIDR length 129 is out of range 0-128`},
		{"v=spf1 a/24/64", `spf: term "a/24/64": invalid CIDR length "24/64"`},
		{"v=spf1 a:", `spf: term "a:": empty domain after "a:"`},
		{"v=spf1 a:museum", `spf: term "a:museum": domain "museum" must end in a macro or in a dot and a top-level label, like .com`},
		{"v=spf1 a:abc.123", `spf: term "a:abc.123": domain "abc.123" has an invalid top-level label "123": it must be letters, digits and inner hyphens, not all digits`},
		{"v=spf1 a:example.-com", `spf: term "a:example.-com": domain "example.-com" has an invalid top-level label "-com": it must be letters, digits and inner hyphens, not all digits`},
		{"v=spf1 mx:example.com:8080", `spf: term "mx:example.com:8080": domain "example.com:8080" has an invalid top-level label "com:8080": it must be letters, digits and inner hyphens, not all digits`},
		{"v=spf1 include", `spf: term "include": include needs a domain (include:<domain>)`},
		{"v=spf1 include:example.com/24", `spf: term "include:example.com/24": domain "example.com/24" has an invalid top-level label "com/24": it must be letters, digits and inner hyphens, not all digits`},
		{"v=spf1 exists:", `spf: term "exists:": empty domain after "exists:"`},
		{"v=spf1 ptr/0", `spf: term "ptr/0": ptr takes no CIDR length`},
		{"v=spf1 -all.", `spf: term "-all.": unknown mechanism "all."`},
		{"v=spf1 -all:foo", `spf: term "-all:foo": all takes no arguments`},
		{"v=spf1 moo", `spf: term "moo": unknown mechanism "moo"`},
		{"v=spf1 redirect:example.com", `spf: term "redirect:example.com": unknown mechanism "redirect"`},
		{"v=spf1 redirect=", `spf: term "redirect=": redirect= needs a domain`},
		{"v=spf1 exp=-all", `spf: term "exp=-all": domain "-all" must end in a macro or in a dot and a top-level label, like .com`},
		{"v=spf1 -redirect=a.example.com", `spf: term "-redirect=a.example.com": a modifier cannot have a qualifier`},
		{"v=spf1 1up=foo", `spf: term "1up=foo": modifier name "1up" must start with a letter`},
		{"v=spf1 =all", `spf: term "=all": modifier has no name`},
		{"v=spf1 foo=%abc", `spf: term "foo=%abc": invalid macro "%a": a % must be followed by {, %, _ or -`},
		{"v=spf1 foo=abc%", `spf: term "foo=abc%": "%" at the end: a % must be followed by {, %, _ or -`},
		{"v=spf1 a:%{a}.example.com", `spf: term "a:%{a}.example.com": invalid macro "%{a}": unknown macro letter 'a'`},
		{"v=spf1 a:%{d0}.example.com", `spf: term "a:%{d0}.example.com": invalid macro "%{d0}": the number of parts must not be zero`},
		{"v=spf1 a:%{d2x}.example.com", `spf: term "a:%{d2x}.example.com": invalid macro "%{d2x}": invalid delimiter 'x'`},
		{"v=spf1 a:%{d.example.com", `spf: term "a:%{d.example.com": unterminated macro "%{d.example.com"`},
		{"v=spf1 exp=%{r}.example.com", `spf: term "exp=%{r}.example.com": invalid macro "%{r}": the letters c, r and t are allowed in explanation text only`},
		{"v=spf1 a:foo.example.com\x00", `spf: term "a:foo.example.com\x00": invalid character '\x00' at offset 15`},
		{"v=spf1 ip4:192.0.2.5\n include:x.example.com", `spf: term "ip4:192.0.2.5\n": "192.0.2.5\n" is not a valid IPv4 address`},
		{"v=spf1 a:example.net \x96all", `spf: term "\x96all": invalid character '\x96': a term starts with a mechanism or a modifier name`},
		{"v=spf1 - all", `spf: term "-": qualifier without a mechanism`},
		{"v=spf1 ?=foo", `spf: term "?=foo": a modifier cannot have a qualifier`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(tt.in)
			require.Nil(t, r)
			var se *SyntaxError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tt.msg, err.Error())
		})
	}
}

func TestParseDuplicateModifiers(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"v=spf1 redirect=a.example.com -all redirect=a.example.com",
		"v=spf1 exp=a.example.com EXP=b.example.com",
	} {
		_, err := Parse(in)
		require.ErrorIs(t, err, ErrDuplicateModifier, in)
	}
}

func TestParseNotSPF(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "v=spf", "v=spf10", "v=spf1mx", "v=spf1\t-all", " v=spf1 -all", "spf2.0/pra -all", "v=DMARC1; p=none"} {
		require.False(t, IsSPF(in), in)
		_, err := Parse(in)
		require.ErrorIs(t, err, ErrNotSPF, "%q", in)
	}
	require.True(t, IsSPF("V=Spf1"))
	require.True(t, IsSPF("v=spf1 -all"))
}

func TestRecordValidate(t *testing.T) {
	t.Parallel()
	ok := &Record{Mechanisms: []Mechanism{
		{Kind: KindIP4, Prefix: netip.MustParsePrefix("192.0.2.0/24")},
		{Kind: KindA, Domain: "example.com", CIDR4: 24, CIDR4Set: true},
		{Qualifier: QualifierFail, Kind: KindAll},
	}}
	require.NoError(t, ok.Validate())
	require.Equal(t, "v=spf1 ip4:192.0.2.0/24 a:example.com/24 -all", ok.String())

	bad := []*Record{
		{Mechanisms: []Mechanism{{Kind: KindIP4, Prefix: netip.MustParsePrefix("2001:db8::/32")}}},
		{Mechanisms: []Mechanism{{Kind: KindIP6}}},
		{Mechanisms: []Mechanism{{Kind: KindInclude}}},
		{Mechanisms: []Mechanism{{Kind: KindAll, Domain: "example.com"}}},
		{Mechanisms: []Mechanism{{Kind: KindA, CIDR4: 40, CIDR4Set: true}}},
		{Mechanisms: []Mechanism{{Kind: KindPTR, CIDR4: 24, CIDR4Set: true}}},
		{Mechanisms: []Mechanism{{Kind: KindA, Domain: "example.com/24"}}},
		{Mechanisms: []Mechanism{{Qualifier: 'x', Kind: KindAll}}},
		{Mechanisms: []Mechanism{{Kind: 99}}},
		{Redirect: "not a domain"},
		{Unknown: []Modifier{{Name: "Caps", Value: "x"}}},
		{Unknown: []Modifier{{Name: "redirect", Value: "x.example.com"}}},
		{Unknown: []Modifier{{Name: "ok", Value: "%x"}}},
	}
	for _, r := range bad {
		var se *SyntaxError
		require.ErrorAs(t, r.Validate(), &se, "%+v", r)
	}
}

func TestSyntaxErrorUnwrap(t *testing.T) {
	t.Parallel()
	err := error(&SyntaxError{Reason: "x", Err: ErrNotSPF})
	require.True(t, errors.Is(err, ErrNotSPF))
	require.Equal(t, "spf: x", err.Error())
}

func TestResultText(t *testing.T) {
	t.Parallel()
	for r := None; r <= PermError; r++ {
		text, err := r.MarshalText()
		require.NoError(t, err)
		var back Result
		require.NoError(t, back.UnmarshalText(text))
		require.Equal(t, r, back)
	}
	_, err := ParseResult("bogus")
	require.Error(t, err)
	require.Equal(t, "Result(42)", Result(42).String())
	require.Equal(t, Fail, QualifierFail.Result())
	require.Equal(t, Pass, Qualifier(0).Result())
	require.Equal(t, "exists", KindExists.String())
	require.Equal(t, "Kind(0)", Kind(0).String())
	require.Equal(t, "~", QualifierSoftFail.String())
	require.Equal(t, "+", Qualifier(0).String())
	_, err = Result(42).MarshalText()
	require.Error(t, err)
}
