package smtpd_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/intake/smtpd"
	"github.com/rampartmail/rampart/internal/request"
)

// proxySetup runs a server that trusts 127.0.0.2 as a proxy and allows one
// session per client at a time.
func proxySetup(t *testing.T) *env {
	t.Helper()
	return setup(t, func(c *smtpd.Config) {
		c.TrustedProxies = request.MustParseProxies("127.0.0.2/32")
		c.MaxSessionsPerClient = 1
	})
}

// dialFrom connects to addr from a loopback address and sends header (a
// PROXY header, or nothing) before anything else, as a proxy does.
func dialFrom(t *testing.T, local, addr string, header []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	if header != nil {
		_, err = nc.Write(header)
		require.NoError(t, err)
	}
	return nc, bufio.NewReader(nc)
}

// proxyHeader is the PROXY header (version 1 or 2) a proxy would send for
// a client at ip.
func proxyHeader(t *testing.T, version byte, ip string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version,
		&net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}, &net.TCPAddr{IP: net.ParseIP("192.0.2.25"), Port: 25})
	b, err := h.Format()
	require.NoError(t, err)
	return b
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	return line
}

func TestProxyHeaderFromTrustedProxyNamesTheClient(t *testing.T) {
	t.Parallel()
	// Default limits: the two sessions follow each other, and the first
	// one's place is released after its QUIT is answered.
	e := setup(t, func(c *smtpd.Config) { c.TrustedProxies = request.MustParseProxies("127.0.0.2/32") })
	for i, v := range []byte{1, 2} {
		nc, _ := dialFrom(t, "127.0.0.2", e.addr, proxyHeader(t, v, "198.51.100.7"))
		c := smtp.NewClient(nc)
		c.CommandTimeout = 10 * time.Second
		require.NoError(t, c.Hello("mx.receiver.test"))
		require.NoError(t, c.Mail("noreply-dmarc@receiver.test", nil))
		require.NoError(t, c.Rcpt(e.rua(), nil))
		require.NoError(t, send(c, message("p"+string(rune('1'+i)))))
		require.NoError(t, c.Quit())
	}
	blobs := e.Blobs(t)
	require.Len(t, blobs, 2)
	for _, b := range blobs {
		require.Equal(t, "198.51.100.7", b.Remote, "the client, not the proxy")
	}
}

// Per-client limits apply to the client the proxy names: with one session
// per client, two clients through one proxy both get in, and a second
// session of either does not.
func TestProxiedClientsHaveTheirOwnLimits(t *testing.T) {
	t.Parallel()
	e := proxySetup(t)
	_, r := dialFrom(t, "127.0.0.2", e.addr, proxyHeader(t, 1, "198.51.100.7"))
	require.True(t, strings.HasPrefix(readLine(t, r), "220 "))
	_, r = dialFrom(t, "127.0.0.2", e.addr, proxyHeader(t, 2, "2001:db8::8"))
	require.True(t, strings.HasPrefix(readLine(t, r), "220 "))
	_, r = dialFrom(t, "127.0.0.2", e.addr, proxyHeader(t, 2, "198.51.100.7"))
	require.True(t, strings.HasPrefix(readLine(t, r), "421 4.7.0 "))
	_, r = dialFrom(t, "127.0.0.2", e.addr, proxyHeader(t, 1, "2001:db8::9")) // same /64
	require.True(t, strings.HasPrefix(readLine(t, r), "421 4.7.0 "))
}

// A trusted proxy must send the header: without one (or with a broken one)
// the connection is closed before the greeting.
func TestTrustedProxyWithoutHeaderIsDisconnected(t *testing.T) {
	t.Parallel()
	e := proxySetup(t)
	for _, first := range []string{"EHLO mx.receiver.test\r\n", "PROXY TCP4 not-an-address 127.0.0.1 1 25\r\n"} {
		_, r := dialFrom(t, "127.0.0.2", e.addr, []byte(first))
		_, err := r.ReadString('\n')
		require.ErrorIs(t, err, io.EOF, first)
	}
	require.Zero(t, e.BlobCount(t))
}

// Any other peer's PROXY header is refused, and the peer keeps its own
// address for the limits: one session per client still holds for it.
func TestProxyHeaderFromUntrustedPeerIsRefused(t *testing.T) {
	t.Parallel()
	e := proxySetup(t)
	for _, v := range []byte{1, 2} {
		nc, r := dialFrom(t, "127.0.0.3", e.addr, nil)
		require.True(t, strings.HasPrefix(readLine(t, r), "220 "))
		_, err := nc.Write(proxyHeader(t, v, "198.51.100.7"))
		require.NoError(t, err)
		line := readLine(t, r)
		require.True(t, strings.HasPrefix(line, "421 4.7.0 "), line)
		require.Contains(t, line, "PROXY")
		_, err = r.ReadString('\n')
		require.ErrorIs(t, err, io.EOF)
	}
	// A peer that is not trusted, sending its header before the greeting
	// as a proxy would, fares no better.
	_, r := dialFrom(t, "127.0.0.3", e.addr, proxyHeader(t, 1, "198.51.100.9"))
	require.True(t, strings.HasPrefix(readLine(t, r), "220 "))
	require.True(t, strings.HasPrefix(readLine(t, r), "421 4.7.0 "))

	// Its sessions are its own address's.
	_, r = dialFrom(t, "127.0.0.3", e.addr, nil)
	require.True(t, strings.HasPrefix(readLine(t, r), "220 "))
	_, r = dialFrom(t, "127.0.0.3", e.addr, nil)
	require.True(t, strings.HasPrefix(readLine(t, r), "421 4.7.0 "))
}
