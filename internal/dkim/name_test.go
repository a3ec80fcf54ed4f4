package dkim_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dkim"
)

func TestParseSelector(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		contains string // the error, when want is ""
	}{
		{in: "s1", want: "s1"},
		{in: "  Selector1 ", want: "selector1"},
		{in: "google", want: "google"},
		{in: "20230601", want: "20230601"},
		{in: "k-2.marketing", want: "k-2.marketing"},
		{in: "xn--bcher-kva", want: "xn--bcher-kva"},
		{in: "ujmi5hcymfxbkfg3jzdtwlcvzjvcfcfz", want: "ujmi5hcymfxbkfg3jzdtwlcvzjvcfcfz"},
		{in: strings.Repeat("a", 63), want: strings.Repeat("a", 63)},
		{in: "", contains: "required"},
		{in: "   ", contains: "required"},
		{in: "s_1", contains: "underscores are not allowed"},
		{in: "s1._domainkey", contains: "part before ._domainkey"},
		{in: "s1._domainkey.example.com", contains: "part before ._domainkey"},
		{in: "a..b", contains: "empty label"},
		{in: ".s1", contains: "empty label"},
		{in: "s1.", contains: "empty label"},
		{in: "-s1", contains: "hyphen"},
		{in: "s1-", contains: "hyphen"},
		{in: "s 1", contains: "byte 0x20"},
		{in: "s@1", contains: "'@' is not allowed"},
		{in: "s\u00e9l", contains: "non-ASCII"},
		{in: strings.Repeat("a", 64), contains: "at most 63"},
		{in: strings.Repeat("a.", 31) + "ab", contains: "at most 63"},
	}
	for _, tc := range cases {
		got, err := dkim.ParseSelector(tc.in)
		if tc.want != "" {
			require.NoError(t, err, "%q", tc.in)
			require.Equal(t, tc.want, got)
			continue
		}
		require.Error(t, err, "%q", tc.in)
		require.Contains(t, err.Error(), tc.contains, "%q", tc.in)
		require.Empty(t, got)
	}
}

func TestRecordName(t *testing.T) {
	t.Parallel()
	name, err := dkim.RecordName("S1", "example.com")
	require.NoError(t, err)
	require.Equal(t, "s1._domainkey.example.com", name)

	// The longest selector fits a domain of up to 178 octets and no more.
	sel := strings.Repeat("s", dkim.MaxSelectorLen)
	domain := strings.Repeat("d", 63) + "." + strings.Repeat("e", 63) + "." + strings.Repeat("f", 46) + ".com"
	require.Len(t, domain, 178)
	name, err = dkim.RecordName(sel, domain)
	require.NoError(t, err)
	require.Len(t, name, 253)
	_, err = dkim.RecordName(sel, "x"+domain)
	require.ErrorContains(t, err, "would be 254 octets")

	_, err = dkim.RecordName("s_1", "example.com")
	require.ErrorContains(t, err, "underscores")
	_, err = dkim.RecordName("s1", "")
	require.ErrorContains(t, err, "domain is required")
}

func TestParseCNAMETarget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		contains string
	}{
		{in: "s1.domainkey.u123.wl.sendgrid.net", want: "s1.domainkey.u123.wl.sendgrid.net"},
		{in: "selector1-example-com._domainkey.tenant.onmicrosoft.com.", want: "selector1-example-com._domainkey.tenant.onmicrosoft.com"},
		{in: " DKIM1.MandrillApp.com ", want: "dkim1.mandrillapp.com"},
		{in: "abcdefgh._domainkey.amazonses.com", want: "abcdefgh._domainkey.amazonses.com"},
		{in: "k2.dkim.mcsv.net", want: "k2.dkim.mcsv.net"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "", contains: "required"},
		{in: ".", contains: "required"},
		{in: "localhost", contains: "single label"},
		{in: "192.0.2.1", contains: "last label is a number"},
		{in: "https://dkim.example.com", contains: "not a URL"},
		{in: "v=DKIM1; p=MIIB", contains: "TXT record value"},
		{in: "a..example.com", contains: "empty label"},
		{in: "-a.example.com", contains: "hyphen"},
		{in: "a.example-.com", contains: "hyphen"},
		{in: "a b.example.com", contains: "byte 0x20"},
		{in: "a*.example.com", contains: "'*' is not allowed"},
		{in: "b\u00fccher.example", contains: "xn--"},
		{in: strings.Repeat("a", 64) + ".example.com", contains: "longer than 63"},
		{in: strings.Repeat("abcdefghi.", 26) + "com", contains: "at most 253"},
	}
	for _, tc := range cases {
		got, err := dkim.ParseCNAMETarget(tc.in)
		if tc.want != "" {
			require.NoError(t, err, "%q", tc.in)
			require.Equal(t, tc.want, got)
			continue
		}
		require.Error(t, err, "%q", tc.in)
		require.Contains(t, err.Error(), tc.contains, "%q", tc.in)
		require.Empty(t, got)
	}
}

func TestSplitTXT(t *testing.T) {
	t.Parallel()
	cases := []struct {
		len   int
		parts []int
	}{
		{len: 0, parts: []int{0}},
		{len: 1, parts: []int{1}},
		{len: 255, parts: []int{255}},
		{len: 256, parts: []int{255, 1}},
		{len: 510, parts: []int{255, 255}},
		{len: 740, parts: []int{255, 255, 230}},
	}
	for _, tc := range cases {
		s := strings.Repeat("x", tc.len)
		got := dkim.SplitTXT(s)
		var lens []int
		for _, p := range got {
			lens = append(lens, len(p))
		}
		require.Equal(t, tc.parts, lens, "length %d", tc.len)
		require.Equal(t, s, strings.Join(got, ""))
	}
}
