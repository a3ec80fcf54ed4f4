package request

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseProxies(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                              "",
		" , ":                           "",
		"10.0.0.0/8":                    "10.0.0.0/8",
		"10.0.0.0/8, 2001:db8::/32,":    "10.0.0.0/8,2001:db8::/32",
		"127.0.0.2":                     "127.0.0.2/32",
		"::1":                           "::1/128",
		"::ffff:192.0.2.0/120":          "192.0.2.0/24",
		"192.0.2.7/32,198.51.100.0/24 ": "192.0.2.7/32,198.51.100.0/24",
	} {
		p, err := ParseProxies(in)
		require.NoError(t, err, in)
		require.Equal(t, want, p.String(), in)
		require.Equal(t, want == "", p.Empty(), in)
	}
	for _, in := range []string{
		"10.0.0.0/33", "10.0.0.1/8", "example.com", "10.0.0.0/8;10.1.0.0/16", "10.0.0.0 /8",
		"fe80::1%eth0", "fe80::%eth0/64", "::ffff:0:0/80", "10.0.0.0/-1", "*",
	} {
		_, err := ParseProxies(in)
		require.Error(t, err, in)
		require.Contains(t, err.Error(), "trusted proxy", in)
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	p := MustParseProxies("10.0.0.0/8, 2001:db8:ffff::/48")
	for _, tc := range []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"no header", "10.1.1.1", nil, "10.1.1.1"},
		{"untrusted peer: header ignored", "192.0.2.9", []string{"198.51.100.1"}, "192.0.2.9"},
		{"untrusted peer claiming a proxy", "192.0.2.9", []string{"10.1.1.1"}, "192.0.2.9"},
		{"one proxy", "10.1.1.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client's own header is ignored", "10.1.1.1", []string{"203.0.113.5, 198.51.100.1"}, "198.51.100.1"},
		{"spoofed trusted entry left of the client", "10.1.1.1", []string{"10.9.9.9, 198.51.100.1"}, "198.51.100.1"},
		{"chain of proxies", "10.1.1.1", []string{"203.0.113.5, 198.51.100.1, 10.2.2.2, 10.3.3.3"}, "198.51.100.1"},
		{"several header lines", "10.1.1.1", []string{"203.0.113.5", "198.51.100.1, 10.2.2.2"}, "198.51.100.1"},
		{"ports and brackets", "10.1.1.1", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"address with port", "10.1.1.1", []string{"198.51.100.1:5000"}, "198.51.100.1"},
		{"IPv4-mapped", "::ffff:10.1.1.1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"IPv6 proxy", "2001:db8:ffff::1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"garbage stops at the last trusted hop", "10.1.1.1", []string{"198.51.100.1, unknown, 10.2.2.2"}, "10.2.2.2"},
		{"garbage next to the peer", "10.1.1.1", []string{"not an address"}, "10.1.1.1"},
		{"only proxies", "10.1.1.1", []string{"10.2.2.2, 10.3.3.3"}, "10.2.2.2"},
		{"empty elements", "10.1.1.1", []string{"198.51.100.1, ,", ""}, "198.51.100.1"},
	} {
		got := p.ClientAddr(netip.MustParseAddr(tc.peer), tc.xff)
		require.Equal(t, tc.want, got.String(), tc.name)
	}
	// Nobody trusted: the peer, always.
	require.Equal(t, "10.1.1.1", Proxies{}.ClientAddr(netip.MustParseAddr("10.1.1.1"), []string{"198.51.100.1"}).String())
}

func FuzzClientAddr(f *testing.F) {
	f.Add("10.1.1.1", "203.0.113.5, 198.51.100.1, 10.2.2.2")
	f.Add("10.1.1.1", "[2001:db8::7]:443,,x")
	p := MustParseProxies("10.0.0.0/8")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		pa, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		got := p.ClientAddr(pa, []string{xff})
		// The answer is the peer or an address from the header, and an
		// untrusted peer is always its own client.
		require.True(t, got.IsValid())
		if !p.Trusts(pa) {
			require.Equal(t, pa.Unmap().WithZone(""), got)
		}
	})
}
