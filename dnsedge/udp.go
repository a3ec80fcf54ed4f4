package dnsedge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// The edge serves UDP on one socket per processor where the system lets
// sockets share a port (SO_REUSEPORT on Linux; the kernel spreads clients
// over them), each read by its own miekg/dns server. On Linux the socket is
// wrapped in a udpSocket, whose reader answers the plain queries itself
// (see answerFast), in batches of up to udpBatchSize packets read and written
// with one system call each, and hands miekg/dns only the others, which
// ServeDNS answers as before.

// udpSocket is one UDP socket as its miekg/dns server sees it: a
// net.PacketConn that is not a *net.UDPConn, so that the server reads it
// through udpReader. Its buffers belong to the server's read loop.
type udpSocket struct {
	conn *net.UDPConn
	e    *Edge
	// pktinfo is set when the socket is bound to an unspecified address:
	// each reply then carries the query's destination address as its
	// source, taken from the IP_PKTINFO or IPV6_PKTINFO control message.
	pktinfo bool
	fast    fastPath
	batch   *udpBatch // platform state for batched reads and writes
}

func newUDPSocket(conn *net.UDPConn, e *Edge) (*udpSocket, error) {
	s := &udpSocket{conn: conn, e: e}
	s.fast.counts = e.metrics.queries.newShard()
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.IsUnspecified() {
		if err := enablePktinfo(conn); err != nil {
			return nil, fmt.Errorf("enable destination address control messages: %w", err)
		}
		s.pktinfo = true
	}
	s.batch = newUDPBatch()
	return s, nil
}

// udpPeer is the address of a client whose query the general path answers,
// with the control message that sets the reply's source address.
type udpPeer struct {
	addr netip.AddrPort
	oob  []byte
}

func (p *udpPeer) Network() string { return "udp" }
func (p *udpPeer) String() string  { return p.addr.String() }

// clientAddr is the address of the client a UDP reply goes to, as the
// general path sees it.
func clientAddr(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr(), true
	case *udpPeer:
		return a.addr.Addr(), true
	}
	return netip.Addr{}, false
}

// ReadFrom reads one packet; the server reads through udpReader instead.
func (s *udpSocket) ReadFrom(b []byte) (int, net.Addr, error) { return s.conn.ReadFrom(b) }

// WriteTo sends a reply of the general path.
func (s *udpSocket) WriteTo(b []byte, addr net.Addr) (int, error) {
	if p, ok := addr.(*udpPeer); ok {
		n, _, err := s.conn.WriteMsgUDPAddrPort(b, p.oob, p.addr)
		return n, err
	}
	return s.conn.WriteTo(b, addr)
}

func (s *udpSocket) Close() error                       { return s.conn.Close() }
func (s *udpSocket) LocalAddr() net.Addr                { return s.conn.LocalAddr() }
func (s *udpSocket) SetDeadline(t time.Time) error      { return s.conn.SetDeadline(t) }
func (s *udpSocket) SetReadDeadline(t time.Time) error  { return s.conn.SetReadDeadline(t) }
func (s *udpSocket) SetWriteDeadline(t time.Time) error { return s.conn.SetWriteDeadline(t) }

// udpReader is the reader of a udpSocket's server: it answers what the
// fast path can and returns the rest.
type udpReader struct {
	dns.Reader
	s *udpSocket
}

// ReadPacketConn implements [dns.PacketConnReader]. It sets no read
// deadline: the server's shutdown sets one in the past, which ends the read
// with an error once the server is stopped.
func (r udpReader) ReadPacketConn(net.PacketConn, time.Duration) ([]byte, net.Addr, error) {
	return r.s.serve()
}

// slowPacket is a packet the fast path left to the general path: a copy,
// since the server keeps it while the read loop goes on, and its source.
func (s *udpSocket) slowPacket(pkt []byte, from netip.AddrPort, oob []byte) ([]byte, net.Addr) {
	m := make([]byte, len(pkt))
	copy(m, pkt)
	if s.pktinfo {
		return m, &udpPeer{addr: from, oob: append([]byte(nil), oob...)}
	}
	return m, net.UDPAddrFromAddrPort(from)
}

// udpBufferSize is the receive and send buffer size asked for each UDP
// socket, as NSD asks for its own: queries arriving in a burst wait there
// while the socket's goroutine answers the ones before, and the replies of
// a batch wait there to be delivered.
const udpBufferSize = 1 << 20

// udpListener binds the edge's UDP sockets and TCP listener.
type udpListener struct {
	conns []*net.UDPConn
	tcp   net.Listener
}

// listen binds n UDP sockets (sharing the port when n > 1) and a TCP
// listener at addr. With port 0 it looks for one port free for both, so
// that the edge answers on a single address.
func listen(addr string, n int) (udpListener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return udpListener{}, fmt.Errorf("listen address %q: %w", addr, err)
	}
	var lastErr error
	for range 20 {
		l, err := listenAt(host, port, n)
		if err == nil || port != "0" {
			return l, err
		}
		lastErr = err
	}
	return udpListener{}, errors.Join(errors.New("no port free for both UDP and TCP"), lastErr)
}

// listenAt binds at host:port; with port 0, the TCP listener takes the
// first UDP socket's port.
func listenAt(host, port string, n int) (udpListener, error) {
	var l udpListener
	closeAll := func() {
		for _, c := range l.conns {
			_ = c.Close()
		}
	}
	first, err := listenUDP(net.JoinHostPort(host, port), n > 1)
	if err != nil {
		return l, err
	}
	l.conns = append(l.conns, first)
	port = strconv.Itoa(first.LocalAddr().(*net.UDPAddr).Port)
	for len(l.conns) < n {
		c, err := listenUDP(net.JoinHostPort(host, port), true)
		if err != nil {
			closeAll()
			return l, err
		}
		l.conns = append(l.conns, c)
	}
	for _, c := range l.conns {
		// Best effort: the system may cap the sizes (net.core.rmem_max
		// and wmem_max on Linux).
		_ = c.SetReadBuffer(udpBufferSize)
		_ = c.SetWriteBuffer(udpBufferSize)
	}
	if l.tcp, err = net.Listen("tcp", net.JoinHostPort(host, port)); err != nil {
		closeAll()
		return udpListener{}, err
	}
	return l, nil
}
