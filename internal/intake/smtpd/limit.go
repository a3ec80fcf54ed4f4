package smtpd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// limiter holds the per-client limits. A client is one IPv4 address or one
// IPv6 /64, the block a single host usually controls, so that a sender
// cannot dodge the limits by rotating addresses inside its own network.
type limiter struct {
	total, perClient         int
	sessionRate, messageRate float64 // per minute; 0 means no limit

	mu        sync.Mutex
	active    int
	clients   map[netip.Prefix]*client
	lastPrune time.Time
}

type client struct {
	active   int
	sessions bucket
	messages bucket
}

// bucket is a token bucket that holds up to one minute's worth of tokens
// and refills continuously.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) take(now time.Time, perMinute float64) bool {
	if perMinute <= 0 {
		return true
	}
	if b.at.IsZero() {
		b.tokens = perMinute
	} else {
		b.tokens = min(perMinute, b.tokens+now.Sub(b.at).Minutes()*perMinute)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket has refilled completely, so that
// forgetting it changes nothing.
func (b *bucket) full(now time.Time, perMinute float64) bool {
	return perMinute <= 0 || b.at.IsZero() || b.tokens+now.Sub(b.at).Minutes()*perMinute >= perMinute
}

func newLimiter(cfg Config) *limiter {
	return &limiter{
		total: cfg.MaxSessions, perClient: cfg.MaxSessionsPerClient,
		sessionRate: float64(max(cfg.SessionsPerMinute, 0)), messageRate: float64(max(cfg.MessagesPerMinute, 0)),
		clients: map[netip.Prefix]*client{},
	}
}

// open admits a new session from the client, or says why not.
func (l *limiter) open(key netip.Prefix, now time.Time) (refusal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	c := l.clients[key]
	if c == nil {
		c = &client{}
		l.clients[key] = c
	}
	switch {
	case l.total > 0 && l.active >= l.total:
		return "too many sessions"
	case l.perClient > 0 && c.active >= l.perClient:
		return "too many sessions from the client"
	case !c.sessions.take(now, l.sessionRate):
		return "session rate exceeded"
	}
	c.active++
	l.active++
	return ""
}

// close ends a session admitted by open.
func (l *limiter) close(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	if c := l.clients[key]; c != nil {
		c.active--
	}
}

// message admits one more message (MAIL FROM) from the client.
func (l *limiter) message(key netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[key]
	if c == nil { // not opened through the limiter: nothing to count against
		return true
	}
	return c.messages.take(now, l.messageRate)
}

// prune forgets idle clients whose buckets are full again, at most once a
// minute, so that the map holds only the recently active clients.
func (l *limiter) prune(now time.Time) {
	if now.Sub(l.lastPrune) < time.Minute {
		return
	}
	l.lastPrune = now
	for k, c := range l.clients {
		if c.active == 0 && c.sessions.full(now, l.sessionRate) && c.messages.full(now, l.messageRate) {
			delete(l.clients, k)
		}
	}
}

// addrIP is the IP address of a remote address (invalid if it has none).
func addrIP(addr net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			ip = ap.Addr()
		}
	}
	return ip.Unmap().WithZone("")
}

// clientKey is the limits' key for a remote address.
func clientKey(addr net.Addr) netip.Prefix {
	ip := addrIP(addr)
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// conn is an accepted connection as go-smtp sees it. It releases its place
// in the limiter when closed, caps every read deadline at the session's
// end, and tells shutdown whether a message is being stored.
type conn struct {
	net.Conn
	srv      *Server
	key      netip.Prefix
	id       string
	deadline time.Time

	// busy is set while a message is read and stored, and cleared once
	// the reply to it has been written, so that shutdown never cuts a
	// sender off between storing its message and saying so.
	busy          atomic.Bool
	idleAfterSend atomic.Bool
	// closeAfterSend ends the connection after the next reply: the 421
	// replies promise that the server closes the channel.
	closeAfterSend atomic.Bool
	closeOnce      sync.Once
	// sniff is set until the first read of a connection from a peer that
	// is not a trusted proxy, which must not begin with a PROXY header.
	// Only the session's goroutine reads.
	sniff bool
}

// Read refuses a PROXY protocol header from a peer that is not a trusted
// proxy: a client that sends one is trying to choose its address (or is a
// proxy the operator has not listed), and SMTP clients never speak first.
func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.sniff && n > 0 {
		c.sniff = false
		if bytes.HasPrefix(b[:n], proxyproto.SIGV1) || bytes.HasPrefix(b[:n], proxyproto.SIGV2) {
			c.srv.log.Info("SMTP PROXY header from an untrusted peer refused", "session", c.id, "remote", c.RemoteAddr().String())
			c.release() // before the reply, so that the peer's next session finds its place free
			_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = fmt.Fprintf(c.Conn, "421 4.7.0 %s PROXY header not accepted from %s\r\n", c.srv.cfg.Hostname, addrIP(c.RemoteAddr()))
			_ = c.Conn.Close()
			return 0, io.EOF
		}
	}
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if c.idleAfterSend.CompareAndSwap(true, false) {
		c.busy.Store(false)
	}
	if c.closeAfterSend.Load() {
		_ = c.Close()
	}
	return n, err
}

func (c *conn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.cap(t))
}

func (c *conn) SetDeadline(t time.Time) error {
	return c.Conn.SetDeadline(c.cap(t))
}

func (c *conn) cap(t time.Time) time.Time {
	if t.IsZero() || t.After(c.deadline) {
		return c.deadline
	}
	return t
}

func (c *conn) Close() error {
	c.release()
	return c.Conn.Close()
}

// release gives up the connection's place in the limiter and the server's
// list, once.
func (c *conn) release() {
	c.closeOnce.Do(func() {
		c.srv.limits.close(c.key)
		c.srv.untrack(c)
	})
}
