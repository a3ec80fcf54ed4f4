//go:build attack

package main_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/attacktest"
	"github.com/rampartmail/rampart/internal/dbtest"
)

// putDomain writes an edge_domain row the way the API does (a new serial
// and a NOTIFY in one transaction) with one hosted DKIM key.
func putDomain(t *testing.T, dbURL, name, dkimTXT string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var serial int64
		if err := tx.QueryRow(ctx, `
			INSERT INTO edge_domain (name, serial, mode, dmarc, dkim)
			VALUES ($1, nextval('edge_serial_seq'), 'sending', 'v=DMARC1; p=none', jsonb_build_array(jsonb_build_object('selector', 's1', 'txt', $2::text)))
			RETURNING serial`, name, dkimTXT).Scan(&serial); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify('rampart_edge', $1::bigint::text)", serial)
		return err
	}))
}

// flood is what a reflection attack through the edge yields.
type flood struct {
	sent, full, slipped int
	bytesIn, bytesOut   int
	took                time.Duration
}

func (f flood) amplification() float64 { return float64(f.bytesOut) / float64(f.bytesIn) }

// floodUDP sends n copies of query to addr, round robin from the given
// local addresses (spoofed sources of one network, as the victim's), and
// counts the replies that arrive until none has for half a second.
func floodUDP(t *testing.T, addr string, sources []net.IP, query *dns.Msg, n int) flood {
	t.Helper()
	var (
		f     flood
		mu    sync.Mutex
		wg    sync.WaitGroup
		conns []*net.UDPConn
	)
	raddr, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	for _, src := range sources {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: src}, raddr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		// Room for every reply, so that what the edge sends is counted.
		require.NoError(t, c.SetReadBuffer(4<<20))
		conns = append(conns, c)
		wg.Go(func() {
			buf := make([]byte, 65536)
			for {
				// The deadline is moved on by every reply; the flood's end
				// is half a second of quiet.
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				k, err := c.Read(buf)
				if err != nil {
					return
				}
				var r dns.Msg
				if err := r.Unpack(buf[:k]); err != nil || r.Id != query.Id {
					continue
				}
				mu.Lock()
				f.bytesOut += k
				if r.Truncated && len(r.Answer) == 0 {
					f.slipped++
				} else if len(r.Answer) > 0 {
					f.full++
				}
				mu.Unlock()
			}
		})
	}
	wire, err := query.Pack()
	require.NoError(t, err)
	start := time.Now()
	for i := range n {
		_, err := conns[i%len(conns)].Write(wire)
		require.NoError(t, err)
		f.sent++
		f.bytesIn += len(wire)
	}
	f.took = time.Since(start)
	wg.Wait()
	return f
}

// TestBoundedAmplification floods the dnsedge binary with 5,000 ANY
// queries for a name holding a 4096-bit DKIM key, from 8 addresses of one
// /24 as a spoofed reflection attack would, and measures the bytes the
// edge sends per byte received. With rate limiting off (-rrl-rate 0, as
// for benchmarks) nearly every query is answered in full, which shows what
// the measurement sees; by default (200 responses per second per /24,
// slip 2) the full answers stay within the token bucket, half the others
// are truncated replies no larger than the query, and the amplification
// stays under 3.
func TestBoundedAmplification(t *testing.T) {
	t.Parallel()
	db := dbtest.NewDB(t)
	key := base64.StdEncoding.EncodeToString(make([]byte, 550)) // a 4096-bit RSA key's size
	putDomain(t, db, "victim-of-reflection.example", "v=DKIM1; k=rsa; p="+key)

	q := new(dns.Msg)
	q.SetQuestion("s1._domainkey.victim-of-reflection.example.", dns.TypeANY)
	q.SetEdns0(4096, false)
	q.RecursionDesired = false
	var sources []net.IP
	for i := range 8 {
		sources = append(sources, net.IPv4(127, 0, 0, byte(10+i)))
	}
	const n = 5000

	run := func(t *testing.T, flags ...string) flood {
		e := attacktest.StartEdge(t, db, flags...)
		e.WaitLog(t, "loaded edge tables", 30*time.Second)
		// Over TCP (never limited) the answer is whole.
		c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
		r, _, err := c.Exchange(q, e.TCPAddr)
		require.NoError(t, err)
		require.Len(t, r.Answer, 1, "%v", r)
		f := floodUDP(t, e.Addr, sources, q, n)
		t.Logf("%s: sent %d queries (%d bytes) in %v; %d answered in full, %d slipped, %d bytes out: amplification %.2fx",
			strings.Join(append([]string{"dnsedge"}, flags...), " "), f.sent, f.bytesIn, f.took.Round(time.Millisecond), f.full, f.slipped, f.bytesOut, f.amplification())
		return f
	}

	off := run(t, "-rrl-rate", "0")
	require.GreaterOrEqual(t, off.full, n*9/10, "with rate limiting off the flood should be answered: the measurement loses replies")
	require.Greater(t, off.amplification(), 10.0)

	on := run(t) // the defaults
	// A token bucket of 200 refilled at 200 per second, and the replies
	// of the last few milliseconds.
	require.LessOrEqual(t, on.full, 200+int(200*(on.took+time.Second).Seconds()))
	require.Positive(t, on.slipped, "slipped replies let real resolvers retry over TCP")
	require.InDelta(t, (n-on.full)/2, on.slipped, float64(n)/20, "every second limited reply is slipped")
	require.Less(t, on.amplification(), 3.0)
}

// TestBoundedTCPFairShare fills the dnsedge binary's TCP cap (1,024 by
// default) from 64 sources, 16 connections each, each connection answered
// once and then left idle, as an attacker holding the edge's connections
// would. A connection from a 65th source is still answered within a
// second, in place of one attacker's least recently active connection,
// while the attackers' sources at their equal share cannot take more.
func TestBoundedTCPFairShare(t *testing.T) {
	t.Parallel()
	const sources, perSource = 64, 16 // 1,024: the default total cap
	db := dbtest.NewDB(t)
	e := attacktest.StartEdge(t, db, "-tcp-idle-timeout", "2m", "-tcp-read-timeout", "1m")
	e.WaitLog(t, "loaded edge tables", 30*time.Second)

	var (
		mu      sync.Mutex
		held    []net.Conn
		failed  atomic.Int32
		wg      sync.WaitGroup
		lastErr atomic.Value
	)
	t.Cleanup(func() {
		for _, c := range held {
			_ = c.Close()
		}
	})
	for s := range sources {
		src := net.IPv4(127, 0, 1, byte(1+s))
		wg.Go(func() {
			for range perSource {
				c, err := dial(e.TCPAddr, src)
				if err == nil {
					_, err = ask(c, time.Now().Add(10*time.Second))
				}
				if err != nil {
					failed.Add(1)
					lastErr.Store(err)
					if c != nil {
						_ = c.Close()
					}
					continue
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Zero(t, failed.Load(), "attackers' connections refused before the cap: %v", lastErr.Load())
	require.Len(t, held, sources*perSource)

	// The cap is full: a source at its share gets no more.
	c, err := dial(e.TCPAddr, net.IPv4(127, 0, 1, 1))
	if err == nil {
		_, err = ask(c, time.Now().Add(2*time.Second))
		_ = c.Close()
	}
	require.Error(t, err, "the total cap is not full")

	// A new source is answered within a second.
	start := time.Now()
	c, err = dial(e.TCPAddr, net.IPv4(127, 0, 2, 1))
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	r, err := ask(c, start.Add(time.Second))
	took := time.Since(start)
	require.NoError(t, err, "a new source is not answered within a second while the cap is full")
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	t.Logf("new source answered in %v with %d connections held by %d sources", took, len(held), sources)

	// It took exactly one attacker connection's place.
	var closed atomic.Int32
	for _, h := range held {
		wg.Go(func() {
			if _, err := ask(h, time.Now().Add(5*time.Second)); err != nil {
				closed.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), closed.Load())

	u := e.Usage(t)
	t.Logf("dnsedge peak RSS %d MiB, CPU %v", u.PeakRSS>>20, u.CPU)
}

func dial(addr string, src net.IP) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	return d.Dial("tcp", addr)
}

// ask sends the edge zone's SOA query on c and reads the answer by deadline.
func ask(c net.Conn, deadline time.Time) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(apitest.EdgeZone), dns.TypeSOA)
	wire, err := q.Pack()
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire...)); err != nil {
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
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		return nil, err
	}
	if r.Id != q.Id {
		return nil, errors.New("reply to another query")
	}
	return r, nil
}
