package dnsedge

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Reasons a TCP connection is refused, the values of the reason label of
// dnsedge_tcp_connections_refused_total.
const (
	refusedTotal  = "total"  // Config.TCPMaxConns reached
	refusedSource = "source" // Config.TCPMaxConnsPerSource reached
)

// limitListener is the edge's TCP listener: it caps the connections open at
// once, in all and per source, and bounds every write on them. miekg/dns's
// server has timeouts for reads but neither caps nor a write deadline; a
// client that never reads its answers would otherwise hold a goroutine for
// ever.
//
// A connection over a cap is closed as soon as it is accepted, with a reset
// so that the edge keeps no TIME_WAIT state for it; the client sees the
// connection drop and retries elsewhere or later.
type limitListener struct {
	net.Listener
	maxTotal, maxPerSource int
	writeTimeout           time.Duration
	refused                func(reason string)
	open                   func(delta int)

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix]int
}

func newLimitListener(inner net.Listener, maxTotal, maxPerSource int, writeTimeout time.Duration, refused func(string), open func(int)) *limitListener {
	return &limitListener{
		Listener:     inner,
		maxTotal:     maxTotal,
		maxPerSource: maxPerSource,
		writeTimeout: writeTimeout,
		refused:      refused,
		open:         open,
		bySource:     map[netip.Prefix]int{},
	}
}

// Accept returns the next connection within the caps, closing the ones over
// them.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		if reason := l.admit(src); reason != "" {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			l.refused(reason)
			continue
		}
		l.open(1)
		return &limitedConn{Conn: c, l: l, src: src}, nil
	}
}

// admit counts a new connection from src, or returns why it is refused.
func (l *limitListener) admit(src netip.Prefix) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal {
		return refusedTotal
	}
	if l.bySource[src] >= l.maxPerSource {
		return refusedSource
	}
	l.total++
	l.bySource[src]++
	return ""
}

func (l *limitListener) release(src netip.Prefix) {
	l.mu.Lock()
	l.total--
	if n := l.bySource[src] - 1; n > 0 {
		l.bySource[src] = n
	} else {
		delete(l.bySource, src)
	}
	l.mu.Unlock()
	l.open(-1)
}

// sourceOf is the source a connection counts against: its IPv4 address, or
// the /64 of its IPv6 address, which one host usually holds whole.
func sourceOf(a net.Addr) netip.Prefix {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits) // an invalid address gives the zero prefix: one shared source
	return p
}

// limitedConn is a connection within the caps; closing it frees its place.
type limitedConn struct {
	net.Conn
	l    *limitListener
	src  netip.Prefix
	once sync.Once
}

// Write bounds each write by the listener's write timeout.
func (c *limitedConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.writeTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}
