//go:build !linux

package dnsedge

import (
	"errors"
	"net"
)

// udpFastPath tells whether UDP sockets are served through udpSocket: only
// on Linux, where the edge runs in production. Elsewhere miekg/dns serves
// the socket itself and ServeDNS answers every query.
const udpFastPath = false

// listenUDP binds a UDP socket at addr; other systems get one socket.
func listenUDP(addr string, _ bool) (*net.UDPConn, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func enablePktinfo(*net.UDPConn) error { return errors.ErrUnsupported }

type udpBatch struct{}

func newUDPBatch() *udpBatch { return nil }

func (s *udpSocket) serve() ([]byte, net.Addr, error) { return nil, nil, errors.ErrUnsupported }
