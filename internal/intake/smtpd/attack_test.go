//go:build attack

package smtpd_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
)

// TestBoundedStalledSessions runs the built `rampart serve` with its SMTP
// server and opens 200 sessions that each declare SIZE=25 MB, start DATA,
// send a few bytes and stall. The server's peak resident memory must grow
// by less than 50 MB: what a session holds follows the bytes it received,
// not the size it declared (which once cost 25 MB per session).
//
// The sessions come from 25 loopback addresses, 8 from each, so that the
// default per-client limits (10 concurrent sessions, 60 per minute) stay
// in force as they would be in production.
func TestBoundedStalledSessions(t *testing.T) {
	const (
		sessions = 200
		perAddr  = 8
		declared = 25 << 20
		bound    = 50 << 20
	)
	s := attacktest.StartServe(t, attacktest.ServeOptions{SMTP: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var token string
	require.NoError(t, s.Pool.QueryRow(ctx, `WITH a AS (INSERT INTO accounts (name) VALUES ('stall') RETURNING id)
		INSERT INTO domains (account_id, name, verified_at, verified_how, claim_expires_at) SELECT id, 'stall.example', now(), 'operator', NULL FROM a RETURNING report_token`).Scan(&token))
	rcpt := token + "@" + reportsDomain

	base := s.Usage(t).PeakRSS
	deadline := time.Now().Add(2 * time.Minute)
	conns := make([]*stalled, 0, sessions)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.conn.Close()
		}
	})
	for i := range sessions {
		c := dialStalled(t, s.SMTPAddr, net.IPv4(127, 0, 0, byte(2+i/perAddr)), deadline)
		conns = append(conns, c)
		c.expect(t, "", 220)
		c.expect(t, "EHLO mx"+fmt.Sprint(i)+".attacker.test", 250)
		c.expect(t, fmt.Sprintf("MAIL FROM:<x@attacker.test> SIZE=%d", declared), 250)
		c.expect(t, "RCPT TO:<"+rcpt+">", 250)
		c.expect(t, "DATA", 354)
		_, err := c.conn.Write([]byte("From: x@attacker.test\r\nSubject: stall\r\n"))
		require.NoError(t, err)
	}

	// Every session is now inside DATA. Watch the resident set for a
	// second while the server reads what was sent and waits for more.
	var peak, rss int64
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		u := s.Usage(t)
		peak, rss = u.PeakRSS, max(rss, u.RSS)
	}
	growth := peak - base
	t.Logf("%d stalled sessions declaring %d MB: peak RSS %.1f MB -> %.1f MB (growth %.1f MB; RSS now %.1f MB)",
		sessions, declared>>20, mb(base), mb(peak), mb(growth), mb(rss))
	require.Less(t, growth, int64(bound), "peak RSS grew by %.1f MB", mb(growth))

	// The sessions were alive and inside DATA: each can finish its message.
	for i, c := range conns {
		_, err := c.conn.Write([]byte("\r\nstalled body\r\n.\r\n"))
		require.NoError(t, err)
		c.expect(t, "", 250)
		if i%50 == 0 {
			c.expect(t, "QUIT", 221)
		}
	}
	var blobs int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM report_blobs`).Scan(&blobs))
	require.Equal(t, 1, blobs, "200 copies of one message are one blob")
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// stalled is a raw SMTP client connection, so that the test decides exactly
// which bytes reach the server and when.
type stalled struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialStalled(t *testing.T, addr string, from net.IP, deadline time.Time) *stalled {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, conn.SetDeadline(deadline))
	return &stalled{conn: conn, r: bufio.NewReader(conn)}
}

// expect sends line (unless empty) and reads one reply, which must have
// the code.
func (c *stalled) expect(t *testing.T, line string, code int) {
	t.Helper()
	if line != "" {
		_, err := c.conn.Write([]byte(line + "\r\n"))
		require.NoError(t, err)
	}
	want := fmt.Sprint(code)
	for {
		l, err := c.r.ReadString('\n')
		require.NoError(t, err, "reply to %q", line)
		require.True(t, strings.HasPrefix(l, want), "reply to %q: %q", line, l)
		if len(l) < 4 || l[3] != '-' {
			return
		}
	}
}
