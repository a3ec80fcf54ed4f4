//go:build linux

package dnsedge

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpFastPath tells whether UDP sockets are served through udpSocket.
const udpFastPath = true

// udpBatchSize is how many packets one recvmmsg reads and one sendmmsg
// writes at most. Under load a socket holds many queries at once; reading
// them with one system call, and writing their replies with another, saves
// two system calls per query but one of each batch.
const udpBatchSize = 32

// pktinfoSize is the room for one IP_PKTINFO or IPV6_PKTINFO control
// message.
const pktinfoSize = 64

// listenUDP binds a UDP socket at addr, sharing the port with the edge's
// other sockets when reuse is set.
func listenUDP(addr string, reuse bool) (*net.UDPConn, error) {
	var lc net.ListenConfig
	if reuse {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// enablePktinfo asks for the destination address of every packet, in an
// IP_PKTINFO (IPv4) or IPV6_PKTINFO (IPv6, IPv4-mapped included) control
// message. One of the two may fail, depending on the socket's family.
func enablePktinfo(conn *net.UDPConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var err4, err6 error
	if err := rc.Control(func(fd uintptr) {
		err4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		err6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	}); err != nil {
		return err
	}
	if err4 != nil && err6 != nil {
		return errors.Join(err4, err6)
	}
	return nil
}

// udpBatch is a socket's state for batched reads and writes: the packets
// of the last recvmmsg, with their sources and control messages, and the
// replies queued for the next sendmmsg. The replies point to their
// clients' addresses in the read state, so they are sent before the next
// read.
type udpBatch struct {
	rc syscall.RawConn

	in     [udpBatchSize][readUDPSize]byte
	inIov  [udpBatchSize]unix.Iovec
	inHdr  [udpBatchSize]unix.Mmsghdr
	names  [udpBatchSize]unix.RawSockaddrInet6 // room for IPv4 and IPv6
	inOOB  [udpBatchSize][pktinfoSize]byte
	n, pos int // packets read, next to answer

	out    [udpBatchSize][advertisedUDPSize]byte
	outIov [udpBatchSize]unix.Iovec
	outHdr [udpBatchSize]unix.Mmsghdr
	outOOB [udpBatchSize][pktinfoSize]byte
	nout   int
}

func newUDPBatch() *udpBatch { return new(udpBatch) }

// serve answers the socket's queries until one needs the general path,
// which it returns with its source, or the read fails.
func (s *udpSocket) serve() ([]byte, net.Addr, error) {
	b := s.batch
	if b.rc == nil {
		rc, err := s.conn.SyscallConn()
		if err != nil {
			return nil, nil, err
		}
		b.rc = rc
	}
	for {
		if b.pos == b.n {
			s.flush()
			if err := s.read(); err != nil {
				return nil, nil, err
			}
		}
		i := b.pos
		b.pos++
		pkt := b.in[i][:b.inHdr[i].Len]
		from := sockaddrAddrPort(&b.names[i])
		reply, act := s.e.answerFast(&s.fast, pkt, b.out[b.nout][:0], from.Addr())
		switch act {
		case fastReply:
			s.queue(i, reply)
		case fastSlow:
			s.flush()
			var oob []byte
			if s.pktinfo {
				oob = b.outOOB[0][:replyPktinfo(b.outOOB[0][:], b.inOOB[i][:b.inHdr[i].Hdr.Controllen])]
			}
			m, addr := s.slowPacket(pkt, from, oob)
			return m, addr, nil
		}
	}
}

// read waits for packets and reads up to udpBatchSize of them.
func (s *udpSocket) read() error {
	b := s.batch
	for i := range udpBatchSize {
		b.inIov[i].Base = &b.in[i][0]
		b.inIov[i].SetLen(readUDPSize)
		h := &b.inHdr[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)
		if s.pktinfo {
			h.Control = &b.inOOB[i][0]
			h.SetControllen(pktinfoSize)
		}
		h.Flags = 0
		b.inHdr[i].Len = 0
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.inHdr[0])), udpBatchSize, 0, 0, 0)
			if e == unix.EINTR {
				continue
			}
			n, errno = int(r), e
			return e != unix.EAGAIN
		}
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return &net.OpError{Op: "read", Net: "udp", Source: s.conn.LocalAddr(), Err: errno}
	}
	b.n, b.pos = n, 0
	return nil
}

// queue adds the reply to packet i to the replies to send.
func (s *udpSocket) queue(i int, reply []byte) {
	b := s.batch
	k := b.nout
	b.nout++
	b.outIov[k].Base = &reply[0]
	b.outIov[k].SetLen(len(reply))
	h := &b.outHdr[k].Hdr
	h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	h.Namelen = b.inHdr[i].Hdr.Namelen
	h.Iov = &b.outIov[k]
	h.SetIovlen(1)
	h.Control = nil
	h.SetControllen(0)
	if s.pktinfo {
		if n := replyPktinfo(b.outOOB[k][:], b.inOOB[i][:b.inHdr[i].Hdr.Controllen]); n > 0 {
			h.Control = &b.outOOB[k][0]
			h.SetControllen(n)
		}
	}
}

// flush sends the queued replies. A reply that cannot be sent is the
// client's loss, as on the general path; it is skipped.
func (s *udpSocket) flush() {
	b := s.batch
	for sent := 0; sent < b.nout; {
		var n int
		var errno syscall.Errno
		err := b.rc.Write(func(fd uintptr) bool {
			for {
				r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.outHdr[sent])), uintptr(b.nout-sent), 0, 0, 0)
				if e == unix.EINTR {
					continue
				}
				n, errno = int(r), e
				return e != unix.EAGAIN
			}
		})
		switch {
		case err != nil:
			b.nout = 0 // closed or past a deadline: drop them
			return
		case errno != 0:
			sent++ // the first message failed: skip it
		default:
			sent += n
		}
	}
	b.nout = 0
}

// sockaddrAddrPort reads an IPv4 or IPv6 socket address.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		ip := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(ip, port)
	}
	return netip.AddrPort{}
}

// replyPktinfo writes to dst the control message that sends a reply from
// the address the query in oob was sent to, as miekg/dns does for the
// general path (the interface left to the routing table), and returns its
// length; 0 when oob holds no destination address.
func replyPktinfo(dst, oob []byte) int {
	if len(oob) < unix.SizeofCmsghdr || len(dst) < len(oob) {
		return 0
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	data := unix.CmsgLen(0)
	switch {
	case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && int(h.Len) >= unix.CmsgLen(unix.SizeofInet4Pktinfo) && len(oob) >= data+unix.SizeofInet4Pktinfo: //nolint:gosec // G115: the kernel's cmsg length is at most the small oob buffer it filled
		n := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
		copy(dst, oob[:unix.SizeofCmsghdr])
		var in unix.Inet4Pktinfo
		copy((*[unix.SizeofInet4Pktinfo]byte)(unsafe.Pointer(&in))[:], oob[data:])
		out := unix.Inet4Pktinfo{Spec_dst: in.Addr}
		clear(dst[data:n])
		copy(dst[data:], (*[unix.SizeofInet4Pktinfo]byte)(unsafe.Pointer(&out))[:])
		return n
	case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && int(h.Len) >= unix.CmsgLen(unix.SizeofInet6Pktinfo) && len(oob) >= data+unix.SizeofInet6Pktinfo: //nolint:gosec // G115: the kernel's cmsg length is at most the small oob buffer it filled
		n := unix.CmsgSpace(unix.SizeofInet6Pktinfo)
		copy(dst, oob[:unix.SizeofCmsghdr])
		var in unix.Inet6Pktinfo
		copy((*[unix.SizeofInet6Pktinfo]byte)(unsafe.Pointer(&in))[:], oob[data:])
		out := unix.Inet6Pktinfo{Addr: in.Addr}
		clear(dst[data:n])
		copy(dst[data:], (*[unix.SizeofInet6Pktinfo]byte)(unsafe.Pointer(&out))[:])
		return n
	}
	return 0
}
