package dnsedge

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// startSampleEdge starts an edge on listen serving sampleIndex, with no
// database to follow.
func startSampleEdge(t *testing.T, listen string) *Edge {
	t.Helper()
	e, err := New(Config{Zone: testZone, NameServers: testNameServers(), DatabaseURL: deadDatabaseURL(t),
		ReportsDomain: "reports.rampart.test", Listen: listen}, nil, nil)
	require.NoError(t, err)
	e.publish(sampleIndex(t))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		cancel()
		require.NoError(t, e.Wait())
	})
	return e
}

// TestUDPSourceAddress checks that an edge bound to an unspecified address
// answers from the address each query was sent to, on the fast path and
// the general path: the client's connected socket accepts nothing else.
func TestUDPSourceAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ listen, dial string }{
		// The client's source is 127.0.0.1; a reply from the address the
		// routing table picks for it would come from 127.0.0.1 too.
		{"0.0.0.0:0", "127.0.0.2"},
		{"[::]:0", "::1"},
		{"[::]:0", "127.0.0.2"}, // IPv4-mapped, on a dual-stack socket
	} {
		t.Run(tc.listen+"/"+tc.dial, func(t *testing.T) {
			t.Parallel()
			probe, err := net.ListenPacket("udp", tc.listen)
			if err != nil {
				t.Skipf("cannot bind %s: %v", tc.listen, err)
			}
			_ = probe.Close()
			e := startSampleEdge(t, tc.listen)
			port := e.UDPAddr().(*net.UDPAddr).Port
			addr := &net.UDPAddr{IP: net.ParseIP(tc.dial), Port: port}
			if c, err := net.DialUDP("udp", nil, addr); err != nil {
				t.Skipf("cannot reach %s: %v", addr, err)
			} else {
				_ = c.Close()
			}
			// TXT: the fast path; NS with glue and class CHAOS: the
			// general path.
			r, _ := exchangeUDP(t, addr, question("_dmarc.example.com.", dns.TypeTXT, 1232))
			require.Equal(t, dns.RcodeSuccess, r.Rcode)
			require.Len(t, r.Answer, 1)
			r, _ = exchangeUDP(t, addr, question("edge.rampart.test.", dns.TypeNS, 1232))
			require.Len(t, r.Answer, 2)
			chaos := question("version.bind.", dns.TypeTXT, 0)
			chaos.Question[0].Qclass = dns.ClassCHAOS
			r, _ = exchangeUDP(t, addr, chaos)
			require.Equal(t, dns.RcodeRefused, r.Rcode)
		})
	}
}

// TestUDPBurst sends a burst of queries without reading, fast-path and
// general-path ones mixed so that batches hold both, and checks that every
// one gets its own reply.
func TestUDPBurst(t *testing.T) {
	t.Parallel()
	e := startSampleEdge(t, "127.0.0.1:0")
	if udpFastPath {
		require.Len(t, e.udpConns, min(runtime.GOMAXPROCS(0), maxUDPSockets), "a socket per processor")
	}
	c, err := net.DialUDP("udp", nil, e.UDPAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.SetReadBuffer(1<<20))

	const n = 200
	want := map[uint16]string{}
	for i := range n {
		var q *dns.Msg
		switch i % 4 {
		case 0:
			q = question("_dmarc.example.com.", dns.TypeTXT, 1232)
		case 1:
			q = question("s1._domainkey.example.com.", dns.TypeTXT, 0)
		case 2:
			q = question("edge.rampart.test.", dns.TypeNS, 1232) // general path
		case 3:
			q = question("nope._dmarc.example.com.", dns.TypeTXT, 1232)
		}
		q.Id = uint16(i + 1)
		want[q.Id] = q.Question[0].Name
		wire, err := q.Pack()
		require.NoError(t, err)
		_, err = c.Write(wire)
		require.NoError(t, err)
	}
	buf := make([]byte, 65536)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	for len(want) > 0 {
		k, err := c.Read(buf)
		require.NoError(t, err, "%d replies missing", len(want))
		var r dns.Msg
		require.NoError(t, r.Unpack(buf[:k]))
		name, ok := want[r.Id]
		require.True(t, ok, "reply id %d twice or unknown", r.Id)
		require.Equal(t, name, r.Question[0].Name)
		delete(want, r.Id)
	}
}
