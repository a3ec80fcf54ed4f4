package spfanswer_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// domain is a Domain from plain lists.
type domain struct {
	blocked  bool
	nets     []netip.Prefix
	ranges   [][]netip.Prefix
	includes []bool
	suffixes [][]string
}

func (d domain) Blocked() bool { return d.blocked }

func (d domain) InNetblocks(ip netip.Addr) bool { return in(d.nets, ip) }

func (d domain) Senders() int { return len(d.ranges) }

func (d domain) InRanges(i int, ip netip.Addr) bool { return in(d.ranges[i], ip) }

func (d domain) HELOSuffixes(i int) ([]string, bool) { return d.suffixes[i], d.includes[i] }

func in(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func TestDecide(t *testing.T) {
	t.Parallel()
	d := domain{
		nets:     []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		ranges:   [][]netip.Prefix{{netip.MustParsePrefix("198.51.100.0/24")}, nil, {netip.MustParsePrefix("203.0.113.0/24")}},
		includes: []bool{true, false, true},
		suffixes: [][]string{{"mailer.example"}, {"other.example"}, {"a.example", "mailer.example"}},
	}
	for _, tc := range []struct {
		ip, helo string
		want     spfanswer.Answer
	}{
		{"192.0.2.1", "mx.stranger.example", spfanswer.Answer{Kind: spfanswer.Address, Sender: -1}},
		{"198.51.100.1", "", spfanswer.Answer{Kind: spfanswer.Address, Sender: 0}},
		{"203.0.113.1", "mailer.example", spfanswer.Answer{Kind: spfanswer.Address, Sender: 2}},
		// The HELO equal to a suffix: the include, of the first sender.
		{"", "mailer.example", spfanswer.Answer{Kind: spfanswer.Include, Sender: 0}},
		{"203.0.114.1", "mta.a.example", spfanswer.Answer{Kind: spfanswer.Include, Sender: 2}},
		// No include: no hand-over.
		{"203.0.114.1", "mx.other.example", spfanswer.Answer{Kind: spfanswer.Neutral, Sender: -1}},
		// Whole labels only.
		{"203.0.114.1", "evilmailer.example", spfanswer.Answer{Kind: spfanswer.Neutral, Sender: -1}},
		{"203.0.114.1", `evil\.mailer.example`, spfanswer.Answer{Kind: spfanswer.Neutral, Sender: -1}},
		{"203.0.114.1", `evil\\.mailer.example`, spfanswer.Answer{Kind: spfanswer.Include, Sender: 0}},
	} {
		q := spfanswer.Query{HELO: tc.helo, Domain: "example.com"}
		if tc.ip != "" {
			q.IP = netip.MustParseAddr(tc.ip)
		}
		require.Equal(t, tc.want, spfanswer.Decide(q, d), "%s %s", tc.ip, tc.helo)
	}
	d.blocked = true
	require.Equal(t, spfanswer.Answer{Kind: spfanswer.Blocked, Sender: -1},
		spfanswer.Decide(spfanswer.Query{IP: netip.MustParseAddr("192.0.2.1"), Domain: "example.com"}, d))
}

func TestNormalizeSuffix(t *testing.T) {
	t.Parallel()
	require.Equal(t, "google.com", spfanswer.NormalizeSuffix(".Google.COM."))
	require.Equal(t, 0, spfanswer.MatchSuffix("google.com", []string{spfanswer.NormalizeSuffix(".google.com")}))
}

func TestReceive(t *testing.T) {
	t.Parallel()
	v4 := netip.MustParseAddr("192.0.2.10")
	const zone = "edge.example"
	for _, tc := range []struct {
		helo, want string
		truncated  bool
	}{
		{"mta1.Mailer.example", "192.0.2.10._ip.mta1.Mailer.example._ehlo.example.com._spf.edge.example", false},
		{"[192.0.2.1]", "192.0.2.10._ip.[192.0.2.1]._ehlo.example.com._spf.edge.example", false},
		{`a b\c.example`, `192.0.2.10._ip.a\ b\\c.example._ehlo.example.com._spf.edge.example`, false},
		{"é.example", `192.0.2.10._ip.\195\169.example._ehlo.example.com._spf.edge.example`, false},
		// No receiver can ask these.
		{"", "", false},
		{"mx.example.", "", false},
		{"mx..example", "", false},
		{strings.Repeat("a", 64) + ".example", "", false},
		// Long: labels cut from the left, the address first.
		{strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 50) + ".example",
			strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 50) + ".example._ehlo.example.com._spf.edge.example", true},
	} {
		name, truncated, ok := spfanswer.Receive(v4, tc.helo, "example.com", zone)
		require.Equal(t, tc.want != "", ok, "%q", tc.helo)
		require.Equal(t, tc.want, name, "%q", tc.helo)
		require.Equal(t, tc.truncated, truncated, "%q", tc.helo)
		if ok {
			rest, under := spfanswer.Rest(name, zone)
			require.True(t, under)
			require.Equal(t, "example.com", spfanswer.Parse(rest).Domain)
			require.LessOrEqual(t, len(name), 253+3*strings.Count(name, `\`))
		}
	}
	name, _, ok := spfanswer.Receive(netip.MustParseAddr("2001:db8::1"), "mx", "example.com", zone)
	require.True(t, ok)
	rest, _ := spfanswer.Rest(name, zone)
	require.Equal(t, spfanswer.Query{IP: netip.MustParseAddr("2001:db8::1"), HELO: "mx", Domain: "example.com"}, spfanswer.Parse(rest))
}

// TestHandoverFits: an include of up to 197 octets fits the hand-over
// answer to a 253-octet name in 512 octets; a longer one does not.
func TestHandoverFits(t *testing.T) {
	t.Parallel()
	include := func(n int) string { return strings.Repeat("a", n-len(".example")) + ".example" }
	require.True(t, spfanswer.HandoverFits("_spf.google.com"))
	require.True(t, spfanswer.HandoverFits(include(197)))
	require.False(t, spfanswer.HandoverFits(include(198)))
	// Several includes share the answer: each further one takes its
	// length and " include:" (9 octets).
	require.Equal(t, "v=spf1 include:_spf.google.com include:spf.protection.outlook.com -all",
		spfanswer.HandoverRecord("_spf.google.com", "spf.protection.outlook.com"))
	require.True(t, spfanswer.HandoverFits(include(94), include(94)))
	require.False(t, spfanswer.HandoverFits(include(95), include(94)))
}

// TestParseCurrentForm: the current form's name, <%{i}>._ip.<domain>, as
// ReceiveCurrent expands it and the edge parses it.
func TestParseCurrentForm(t *testing.T) {
	t.Parallel()
	for _, ip := range []string{"192.0.2.10", "2001:db8::1"} {
		a := netip.MustParseAddr(ip)
		name, truncated, ok := spfanswer.ReceiveCurrent(a, "example.com", "edge.rampart.test")
		require.True(t, ok)
		require.False(t, truncated)
		rest, ok := spfanswer.Rest(name, "edge.rampart.test")
		require.True(t, ok)
		q := spfanswer.Parse(rest)
		require.Equal(t, spfanswer.Query{IP: a, Domain: "example.com"}, q)
	}
	// A domain too long for an IPv6 address: the receiver cuts the
	// address, the edge keeps the domain and has no address.
	long := strings.Repeat("d", 63) + "." + strings.Repeat("e", 63) + "." + strings.Repeat("f", 40) + ".example"
	name, truncated, ok := spfanswer.ReceiveCurrent(netip.MustParseAddr("2001:db8::1"), long, "edge.rampart.test")
	require.True(t, ok)
	require.True(t, truncated)
	rest, _ := spfanswer.Rest(name, "edge.rampart.test")
	require.Equal(t, spfanswer.Query{Domain: long}, spfanswer.Parse(rest))
}
