package spf

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func flattenZone() zone {
	z := zone{}.
		add("_spf.vendor.example", "TXT v=spf1 include:_a.vendor.example include:_b.vendor.example a mx/24 ~all redirect=ignored.example").
		add("_spf.vendor.example", "A 198.51.100.1", "AAAA 2001:db8:ffff::1", "MX mx.vendor.example").
		add("mx.vendor.example", "A 203.0.113.77").
		add("_a.vendor.example", "TXT v=spf1 ip4:192.0.2.0/24 ip4:192.0.2.128/25 ip4:192.0.2.9 ip6:2001:DB8::/32 -all").
		add("_b.vendor.example", "TXT v=spf1 redirect=_c.vendor.example").
		add("_c.vendor.example", "TXT v=spf1 ip4:10.0.0.1/8 a:host.vendor.example//64").
		add("host.vendor.example", "A 192.0.2.200", "AAAA 2001:db9::1").
		add("exists.example", "TXT v=spf1 ip4:192.0.2.1 exists:%{i}.bl.example include:_spf.vendor.example -all").
		add("macro.example", "TXT v=spf1 include:%{d2}.example.net -all").
		add("minus.example", "TXT v=spf1 -ip4:192.0.2.1 ip4:192.0.2.0/24 -all").
		add("plusall.example", "TXT v=spf1 ip4:192.0.2.1 +all").
		add("ptr.example", "TXT v=spf1 ptr -all").
		add("loop.example", "TXT v=spf1 include:loop2.example").
		add("loop2.example", "TXT v=spf1 include:loop.example").
		add("slow.example", "TXT v=spf1 include:timeout.example").
		add("timeout.example", "TIMEOUT").
		add("missing.example", "TXT v=spf1 include:nothing.example").
		add("voids.example", "TXT v=spf1 a:n1.example a:n2.example mx:n3.example ip4:192.0.2.1")
	var big strings.Builder
	big.WriteString("v=spf1")
	for i := range 11 {
		big.WriteString(" include:_l" + string(rune('a'+i)) + ".example")
		z.add("_l"+string(rune('a'+i))+".example", "TXT v=spf1 ip4:192.0.2."+string(rune('0'+i%10))+" -all")
	}
	z.add("big.example", "TXT "+big.String())
	return z
}

func TestFlatten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	got, lookups, err := Flatten(ctx, flattenZone(), "_spf.vendor.example.")
	require.NoError(t, err)
	// include, include, a, mx, and in _b: redirect, a.
	require.Equal(t, 6, lookups)
	require.Equal(t, prefixes(
		"10.0.0.0/8",
		"192.0.2.0/24",
		"198.51.100.1/32",
		"203.0.113.0/24",
		"2001:db8::/32",
		"2001:db9::/64",
	), got)
}

func TestFlattenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		domain   string
		errIs    error
		msg      string
		lookups  int
		prefixes bool
	}{
		{"exists.example", ErrNotFlattenable, `exists.example: term "exists:%{i}.bl.example" uses macros`, 8, false},
		{"macro.example", ErrNotFlattenable, `uses macros`, 1, false},
		{"minus.example", ErrNotFlattenable, `term "-ip4:192.0.2.1" has a qualifier other than +`, 0, false},
		{"plusall.example", ErrNotFlattenable, `term "all" authorises every address`, 0, false},
		{"ptr.example", ErrNotFlattenable, `term "ptr" depends on the connecting host's reverse DNS`, 1, false},
		{"loop.example", ErrTooManyLookups, "loop.example includes itself", 2, false},
		{"slow.example", errTimeout, "lookup TXT timeout.example", 1, false},
		{"missing.example", ErrNoRecord, "no SPF record at nothing.example", 1, false},
		{"nowhere.example", ErrNoRecord, "", 0, false},
		{"big.example", ErrTooManyLookups, "costs 11", 11, true},
		{"voids.example", ErrTooManyVoidLookups, "has 3", 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			got, lookups, err := Flatten(context.Background(), flattenZone(), tt.domain)
			require.ErrorIs(t, err, tt.errIs)
			require.ErrorContains(t, err, tt.msg)
			require.Equal(t, tt.lookups, lookups)
			if tt.prefixes {
				require.NotEmpty(t, got)
			} else {
				require.Nil(t, got)
			}
		})
	}
}

func TestNormalizePrefixes(t *testing.T) {
	t.Parallel()
	got := normalizePrefixes(prefixes("192.0.2.7/24", "2001:db8::1/128", "192.0.2.0/25", "10.0.0.0/8", "2001:db8::/64", "10.1.2.3/32", "192.0.2.0/24"))
	require.Equal(t, prefixes("10.0.0.0/8", "192.0.2.0/24", "2001:db8::/64"), got)
}
