package dnsedge

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1700000000, 0)
	tally := func(r *rateLimiter, addr string, n int, at time.Time) map[rrlAction]int {
		out := map[rrlAction]int{}
		for range n {
			out[r.check(netip.MustParseAddr(addr), at)]++
		}
		return out
	}

	require.Nil(t, newRateLimiter(RRLOff, 2), "off")

	r := newRateLimiter(5, 2)
	require.Equal(t, map[rrlAction]int{rrlAnswer: 5, rrlSlip: 7, rrlDrop: 8}, tally(r, "192.0.2.1", 20, t0))
	// The same /24 shares the bucket; another /24 has its own.
	require.Equal(t, map[rrlAction]int{rrlSlip: 1, rrlDrop: 1}, tally(r, "192.0.2.200", 2, t0))
	require.Equal(t, map[rrlAction]int{rrlAnswer: 5}, tally(r, "192.0.3.1", 5, t0))
	// Tokens come back at the rate: 5 per second.
	require.Equal(t, map[rrlAction]int{rrlAnswer: 1, rrlSlip: 1}, tally(r, "192.0.2.1", 2, t0.Add(200*time.Millisecond)))
	require.Equal(t, map[rrlAction]int{rrlAnswer: 5}, tally(r, "192.0.2.1", 5, t0.Add(time.Hour)))

	// IPv6 by /56; a v4-mapped address counts as its IPv4 address.
	r = newRateLimiter(1, 1)
	require.Equal(t, map[rrlAction]int{rrlAnswer: 1, rrlSlip: 2}, tally(r, "2001:db8:0:ff::1", 3, t0))
	require.Equal(t, map[rrlAction]int{rrlSlip: 1}, tally(r, "2001:db8:0:1::2", 1, t0))
	require.Equal(t, map[rrlAction]int{rrlAnswer: 1}, tally(r, "2001:db8:0:100::1", 1, t0))
	require.Equal(t, map[rrlAction]int{rrlAnswer: 1}, tally(r, "192.0.2.1", 1, t0))
	require.Equal(t, map[rrlAction]int{rrlSlip: 1}, tally(r, "::ffff:192.0.2.9", 1, t0))

	// A negative slip drops every limited response.
	r = newRateLimiter(2, -1)
	require.Equal(t, map[rrlAction]int{rrlAnswer: 2, rrlDrop: 8}, tally(r, "198.51.100.1", 10, t0))

	// Idle buckets are swept, shard by shard, as new networks arrive.
	r = newRateLimiter(10, 2)
	count := func() int {
		n := 0
		for i := range r.shards {
			n += len(r.shards[i].buckets)
		}
		return n
	}
	for i := range 1000 {
		r.check(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), t0)
	}
	require.Equal(t, 1000, count())
	for i := range 1000 {
		r.check(netip.AddrFrom4([4]byte{11, byte(i >> 8), byte(i), 1}), t0.Add(time.Minute))
	}
	require.Equal(t, 1000, count(), "the first thousand swept")
}

// TestRRL sends a burst of queries over UDP to an edge limiting to 5
// responses per second: the first are answered, then every second one is
// slipped (TC, no records) and the others dropped. TCP is not limited.
func TestRRL(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := db.put(t, "example.com", "sending", "v=DMARC1; p=none")
	e := startEdge(t, Config{DatabaseURL: db.url, RRLRate: 5, RRLSlip: 2, MetricsListen: "127.0.0.1:0"})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == s })

	c, err := net.Dial("udp", e.UDPAddr().String())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	const sent = 20
	for range sent {
		wire, err := question("_dmarc.example.com.", dns.TypeTXT, 1232).Pack()
		require.NoError(t, err)
		_, err = c.Write(wire)
		require.NoError(t, err)
	}
	var full, slipped int
	buf := make([]byte, 2048)
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		var r dns.Msg
		require.NoError(t, r.Unpack(buf[:n]))
		if r.Truncated {
			require.Empty(t, r.Answer)
			require.NotNil(t, r.IsEdns0(), "OPT kept")
			slipped++
		} else {
			require.Len(t, r.Answer, 1)
			full++
		}
	}
	// The burst takes a few milliseconds, in which a token may come back.
	require.GreaterOrEqual(t, full, 5)
	require.LessOrEqual(t, full, 6)
	limited := sent - full
	require.Equal(t, limited/2, slipped)
	requireMetric(t, e, "dnsedge_rrl_slipped_total", func(v float64) bool { return int(v) == slipped })
	requireMetric(t, e, "dnsedge_rrl_dropped_total", func(v float64) bool { return int(v) == limited-slipped })

	r := exchangeTCP(t, e.TCPAddr(), question("_dmarc.example.com.", dns.TypeTXT, 1232))
	require.False(t, r.Truncated)
	require.Len(t, r.Answer, 1)
}
