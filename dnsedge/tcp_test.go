package dnsedge

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// tcpConn dials the edge over TCP from local (nil for any address).
func tcpConn(t *testing.T, addr net.Addr, local net.IP) net.Conn {
	t.Helper()
	c, err := dialTCP(addr, local)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dialTCP(addr net.Addr, local net.IP) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	return d.Dial("tcp", addr.String())
}

// requireRefused checks that a connection from local is closed on accept.
// The reset may come before the dial returns.
func requireRefused(t *testing.T, addr net.Addr, local net.IP) {
	t.Helper()
	c, err := dialTCP(addr, local)
	if err != nil {
		require.ErrorIs(t, err, syscall.ECONNRESET)
		return
	}
	defer func() { _ = c.Close() }()
	requireClosed(t, c, 2*time.Second)
}

// writeQuery writes m with its two-byte length prefix (RFC 1035 §4.2.2).
func writeQuery(t *testing.T, c net.Conn, m *dns.Msg) {
	t.Helper()
	wire, err := m.Pack()
	require.NoError(t, err)
	_, err = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire...))
	require.NoError(t, err)
}

// readReply reads one length-prefixed message.
func readReply(c net.Conn, timeout time.Duration) (*dns.Msg, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// requireAnswered sends a query on c and checks it is answered.
func requireAnswered(t *testing.T, c net.Conn) {
	t.Helper()
	q := question("edge.rampart.test.", dns.TypeSOA, 0)
	writeQuery(t, c, q)
	r, err := readReply(c, 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, q.Id, r.Id)
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
}

// requireClosed checks that the edge closes c within d, without an answer.
func requireClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_, err := readReply(c, d)
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection still open after %v", d)
}

func TestTCPPipelining(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := db.put(t, "example.com", "sending", "v=DMARC1; p=none")
	e := startEdge(t, Config{DatabaseURL: db.url})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == s })

	c := tcpConn(t, e.TCPAddr(), nil)
	// Three queries in one write; answers may come in any order.
	var wire []byte
	want := map[uint16]string{}
	for _, name := range []string{"_dmarc.example.com.", "edge.rampart.test.", "nope._dmarc.example.com."} {
		q := question(name, dns.TypeTXT, 1232)
		b, err := q.Pack()
		require.NoError(t, err)
		wire = append(binary.BigEndian.AppendUint16(wire, uint16(len(b))), b...)
		want[q.Id] = name
	}
	_, err := c.Write(wire)
	require.NoError(t, err)
	got := map[uint16]string{}
	for range 3 {
		r, err := readReply(c, 2*time.Second)
		require.NoError(t, err)
		got[r.Id] = r.Question[0].Name
	}
	require.Equal(t, want, got)
	// and the connection stays open for more
	requireAnswered(t, c)
}

func TestTCPTimeouts(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	e := startEdge(t, Config{DatabaseURL: db.url, TCPReadTimeout: 200 * time.Millisecond, TCPIdleTimeout: 400 * time.Millisecond})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.index.Load() != nil })

	t.Run("no query", func(t *testing.T) {
		t.Parallel()
		c := tcpConn(t, e.TCPAddr(), nil)
		start := time.Now()
		requireClosed(t, c, 2*time.Second)
		require.Less(t, time.Since(start), time.Second)
	})
	t.Run("half a query", func(t *testing.T) {
		t.Parallel()
		c := tcpConn(t, e.TCPAddr(), nil)
		_, err := c.Write([]byte{0, 40, 1, 2, 3})
		require.NoError(t, err)
		requireClosed(t, c, 2*time.Second)
	})
	t.Run("idle after a query", func(t *testing.T) {
		t.Parallel()
		c := tcpConn(t, e.TCPAddr(), nil)
		requireAnswered(t, c)
		// Within the idle timeout the connection serves more queries ...
		time.Sleep(250 * time.Millisecond)
		requireAnswered(t, c)
		// ... and after it the edge closes it.
		start := time.Now()
		requireClosed(t, c, 2*time.Second)
		took := time.Since(start)
		require.Greater(t, took, 300*time.Millisecond)
		require.Less(t, took, 1500*time.Millisecond)
	})
}

func TestTCPConnectionCaps(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	t.Run("total", func(t *testing.T) {
		t.Parallel()
		e := startEdge(t, Config{DatabaseURL: db.url, TCPMaxConns: 2, MetricsListen: "127.0.0.1:0"})
		waitFor(t, 5*time.Second, "initial load", func() bool { return e.index.Load() != nil })
		c1 := tcpConn(t, e.TCPAddr(), nil)
		requireAnswered(t, c1)
		c2 := tcpConn(t, e.TCPAddr(), net.IPv4(127, 0, 0, 2))
		requireAnswered(t, c2)
		// A third connection, from any source, is closed on accept.
		requireRefused(t, e.TCPAddr(), net.IPv4(127, 0, 0, 3))
		// Closing one makes room.
		_ = c1.Close()
		waitFor(t, 2*time.Second, "place freed", func() bool {
			c, err := dialTCP(e.TCPAddr(), nil)
			if err != nil {
				return false
			}
			defer func() { _ = c.Close() }()
			wire, err := question("edge.rampart.test.", dns.TypeSOA, 0).Pack()
			require.NoError(t, err)
			if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire...)); err != nil {
				return false
			}
			_, err = readReply(c, time.Second)
			return err == nil
		})
		requireAnswered(t, c2)
		requireMetric(t, e, `dnsedge_tcp_connections_refused_total{reason="total"}`, func(v float64) bool { return v >= 1 })
		requireMetric(t, e, `dnsedge_tcp_connections_refused_total{reason="source"}`, func(v float64) bool { return v == 0 })
	})
	t.Run("per source", func(t *testing.T) {
		t.Parallel()
		e := startEdge(t, Config{DatabaseURL: db.url, TCPMaxConnsPerSource: 2, MetricsListen: "127.0.0.1:0"})
		waitFor(t, 5*time.Second, "initial load", func() bool { return e.index.Load() != nil })
		local := net.IPv4(127, 0, 0, 1)
		c1 := tcpConn(t, e.TCPAddr(), local)
		c2 := tcpConn(t, e.TCPAddr(), local)
		requireAnswered(t, c1)
		requireAnswered(t, c2)
		requireRefused(t, e.TCPAddr(), local)
		// Another source is not affected.
		requireAnswered(t, tcpConn(t, e.TCPAddr(), net.IPv4(127, 0, 0, 2)))
		requireAnswered(t, c1)
		requireMetric(t, e, `dnsedge_tcp_connections_refused_total{reason="source"}`, func(v float64) bool { return v == 1 })
		requireMetric(t, e, `dnsedge_tcp_connections `, func(v float64) bool { return v == 3 })
	})
}

// TestTCPFairShare fills the total cap from one source: other sources
// still get in, each in place of that source's least recently active
// connection, until the sources hold equal shares.
func TestTCPFairShare(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	e := startEdge(t, Config{DatabaseURL: db.url, TCPMaxConns: 6, TCPMaxConnsPerSource: 6, MetricsListen: "127.0.0.1:0"})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.index.Load() != nil })
	srcA, srcB, srcC := net.IPv4(127, 0, 0, 11), net.IPv4(127, 0, 0, 12), net.IPv4(127, 0, 0, 13)

	var a []net.Conn
	for range 6 {
		c := tcpConn(t, e.TCPAddr(), srcA)
		requireAnswered(t, c)
		a = append(a, c)
	}
	requireRefused(t, e.TCPAddr(), srcA)

	// B's first three connections each evict A's least recently active.
	for i := range 3 {
		b := tcpConn(t, e.TCPAddr(), srcB)
		requireAnswered(t, b)
		requireClosed(t, a[i], 2*time.Second)
		for _, c := range a[i+1:] {
			requireAnswered(t, c) // in order: a[i+1] is now the least recently active
		}
	}
	// 3 and 3: neither may take the other's.
	requireRefused(t, e.TCPAddr(), srcB)
	requireRefused(t, e.TCPAddr(), srcA)
	// A new source gets in.
	requireAnswered(t, tcpConn(t, e.TCPAddr(), srcC))

	requireMetric(t, e, "dnsedge_tcp_connections_evicted_total", func(v float64) bool { return v == 4 })
	requireMetric(t, e, `dnsedge_tcp_connections_refused_total{reason="source"}`, func(v float64) bool { return v == 1 })
	requireMetric(t, e, `dnsedge_tcp_connections_refused_total{reason="total"}`, func(v float64) bool { return v == 2 })
	requireMetric(t, e, "dnsedge_tcp_connections ", func(v float64) bool { return v == 6 })
}
