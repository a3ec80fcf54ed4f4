package dnsedge

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a TCP connection is refused, the values of the reason label of
// dnsedge_tcp_connections_refused_total.
const (
	refusedTotal  = "total"  // Config.TCPMaxConns reached, and no source holds more than its share
	refusedSource = "source" // Config.TCPMaxConnsPerSource reached
)

// limitListener is the edge's TCP listener: it caps the connections open at
// once, in all and per source, shares the total fairly between sources,
// and bounds every write on them. miekg/dns's server has timeouts for reads
// but neither caps nor a write deadline; a client that never reads its
// answers would otherwise hold a goroutine for ever.
//
// A connection over a cap is closed as soon as it is accepted, with a reset
// so that the edge keeps no TIME_WAIT state for it; the client sees the
// connection drop and retries elsewhere or later.
//
// When the total cap is reached, a new connection from a source holding at
// least two fewer connections than the source holding the most is let in
// in place of that source's least recently active connection, which is
// reset (evicted). Sources are thus levelled towards equal shares of the
// total: a few sources filling the cap cannot starve the rest, while a
// source at its fair share cannot take another's, so no two sources evict
// each other back and forth.
type limitListener struct {
	net.Listener
	maxTotal, maxPerSource int
	writeTimeout           time.Duration
	refused                func(reason string)
	evicted                func()
	open                   func(delta int)

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix][]*limitedConn
}

func newLimitListener(inner net.Listener, maxTotal, maxPerSource int, writeTimeout time.Duration, refused func(string), evicted func(), open func(int)) *limitListener {
	return &limitListener{
		Listener:     inner,
		maxTotal:     maxTotal,
		maxPerSource: maxPerSource,
		writeTimeout: writeTimeout,
		refused:      refused,
		evicted:      evicted,
		open:         open,
		bySource:     map[netip.Prefix][]*limitedConn{},
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
		lc := &limitedConn{Conn: c, l: l, src: sourceOf(c.RemoteAddr()), idx: -1}
		lc.touch()
		victim, reason := l.admit(lc)
		if reason != "" {
			reset(c)
			l.refused(reason)
			continue
		}
		if victim != nil {
			// Its server goroutine sees the read fail and closes it too.
			reset(victim.Conn)
			l.evicted()
			l.open(-1)
		}
		l.open(1)
		return lc, nil
	}
}

// reset closes c with a reset, keeping no TIME_WAIT state.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// admit counts c in, or returns why it is refused. When the total cap is
// reached it may return a victim, already counted out, for the caller to
// close.
func (l *limitListener) admit(c *limitedConn) (victim *limitedConn, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mine := len(l.bySource[c.src])
	if mine >= l.maxPerSource {
		return nil, refusedSource
	}
	if l.total >= l.maxTotal {
		// The source holding the most. A scan: there are at most maxTotal
		// sources, and it runs only while the cap is reached.
		var top []*limitedConn
		for _, conns := range l.bySource {
			if len(conns) > len(top) {
				top = conns
			}
		}
		if len(top) < mine+2 {
			return nil, refusedTotal
		}
		victim = top[0]
		for _, v := range top[1:] {
			if v.active.Load() < victim.active.Load() {
				victim = v
			}
		}
		l.remove(victim)
	}
	l.total++
	conns := l.bySource[c.src]
	c.idx = len(conns)
	l.bySource[c.src] = append(conns, c)
	return victim, ""
}

// remove counts c out; it is called with l.mu held, once per connection.
func (l *limitListener) remove(c *limitedConn) {
	conns := l.bySource[c.src]
	last := len(conns) - 1
	conns[c.idx] = conns[last]
	conns[c.idx].idx = c.idx
	conns[last] = nil
	if last == 0 {
		delete(l.bySource, c.src)
	} else {
		l.bySource[c.src] = conns[:last]
	}
	c.idx = -1
	l.total--
}

// release counts c out when it closes, unless it was evicted.
func (l *limitListener) release(c *limitedConn) {
	l.mu.Lock()
	counted := c.idx >= 0
	if counted {
		l.remove(c)
	}
	l.mu.Unlock()
	if counted {
		l.open(-1)
	}
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
	l   *limitListener
	src netip.Prefix
	// idx is the connection's place in l.bySource[src], -1 once counted
	// out; guarded by l.mu.
	idx int
	// active is when the connection last carried data either way (Unix
	// nanoseconds), which picks the victim of an eviction.
	active atomic.Int64
	once   sync.Once
}

func (c *limitedConn) touch() { c.active.Store(time.Now().UnixNano()) }

// Read notes the connection active when a query's bytes arrive.
func (c *limitedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// Write bounds each write by the listener's write timeout.
func (c *limitedConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.writeTimeout)); err != nil {
		return 0, err
	}
	c.touch()
	return c.Conn.Write(b)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}
