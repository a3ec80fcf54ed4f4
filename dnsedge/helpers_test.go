package dnsedge

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
)

// testZone and the name servers every test edge uses.
const testZone = "edge.rampart.test"

func testNameServers() []NameServer {
	return []NameServer{
		{Name: "ns1." + testZone, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}},
		{Name: "ns2." + testZone, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.54")}},
	}
}

// changeDeadline is how soon a committed change must be answered.
const changeDeadline = time.Second

// logBuffer collects an edge's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testDB is a fresh migrated database and a pool on it.
type testDB struct {
	url  string
	pool *pgxpool.Pool
}

func newTestDB(t *testing.T) *testDB {
	t.Helper()
	url := dbtest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &testDB{url: url, pool: pool}
}

// put writes a domain the way the API does: upsert with a new serial and
// NOTIFY in one transaction. It returns the serial.
func (db *testDB) put(t *testing.T, name, mode, dmarc string) int64 {
	t.Helper()
	var serial int64
	err := pgx.BeginFunc(context.Background(), db.pool, func(tx pgx.Tx) error {
		serial = upsertDomain(t, tx, name, mode, dmarc, false)
		return nil
	})
	require.NoError(t, err)
	return serial
}

// remove tombstones a domain, as the API does when a domain is deleted.
func (db *testDB) remove(t *testing.T, name string) int64 {
	t.Helper()
	var serial int64
	err := pgx.BeginFunc(context.Background(), db.pool, func(tx pgx.Tx) error {
		serial = upsertDomain(t, tx, name, "sending", "", true)
		return nil
	})
	require.NoError(t, err)
	return serial
}

func upsertDomain(t *testing.T, tx pgx.Tx, name, mode, dmarc string, deleted bool) int64 {
	t.Helper()
	ctx := context.Background()
	var serial int64
	err := tx.QueryRow(ctx, `
		INSERT INTO edge_domain (name, serial, mode, dmarc, deleted)
		VALUES ($1, nextval('edge_serial_seq'), $2, $3, $4)
		ON CONFLICT (name) DO UPDATE
		SET serial = excluded.serial, mode = excluded.mode, dmarc = excluded.dmarc,
		    deleted = excluded.deleted, updated_at = now()
		RETURNING serial`, name, mode, dmarc, deleted).Scan(&serial)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT pg_notify('rampart_edge', $1::bigint::text)", serial)
	require.NoError(t, err)
	return serial
}

// testEdge is a running edge on 127.0.0.1 with its log.
type testEdge struct {
	*Edge
	logs *logBuffer
	stop func() // cancels and waits; idempotent
}

// startEdge starts an edge with cfg completed by the test defaults and
// stops it when the test ends. tweaks change the edge before it starts.
func startEdge(t *testing.T, cfg Config, tweaks ...func(*Edge)) *testEdge {
	t.Helper()
	if cfg.Zone == "" {
		cfg.Zone = testZone
	}
	if cfg.NameServers == nil {
		cfg.NameServers = testNameServers()
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.RRLRate = testRRLRate(cfg.RRLRate)
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := New(cfg, log, prometheus.NewRegistry())
	require.NoError(t, err)
	for _, tweak := range tweaks {
		tweak(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, e.Start(ctx))
	var once sync.Once
	te := &testEdge{Edge: e, logs: logs}
	te.stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, e.Wait())
		})
	}
	t.Cleanup(func() {
		te.stop()
		if t.Failed() {
			t.Logf("edge log:\n%s", logs.String())
		}
	})
	return te
}

// testRRLRate is the rate limit of a test edge: off unless the test sets
// one. Test edges are queried from 127.0.0.1, one /24, far faster than
// any resolver would; the rate limiting tests set their own rates, and
// TestConfigValidate and the attack tests check the default.
func testRRLRate(rate int) int {
	if rate == 0 {
		return RRLOff
	}
	return rate
}

// question builds a query. edns 0 means no OPT record.
func question(name string, qtype uint16, edns uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	if edns != 0 {
		m.SetEdns0(edns, false)
	}
	return m
}

// exchangeUDP sends m over UDP and returns the reply and its size on the
// wire, read with a buffer larger than any reply so that oversized replies
// show.
func exchangeUDP(t *testing.T, addr net.Addr, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	r, n, err := tryExchangeUDP(addr, m, 2*time.Second)
	require.NoError(t, err)
	return r, n
}

func tryExchangeUDP(addr net.Addr, m *dns.Msg, timeout time.Duration) (*dns.Msg, int, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, 0, err
	}
	return rawExchangeUDP(addr, wire, timeout)
}

func rawExchangeUDP(addr net.Addr, wire []byte, timeout time.Duration) (*dns.Msg, int, error) {
	c, err := net.Dial("udp", addr.String()) //nolint:gosec // G704: addr is the test's own edge listener on loopback
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, 0, err
	}
	if _, err := c.Write(wire); err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return nil, 0, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		return nil, n, err
	}
	return r, n, nil
}

// exchangeTCP sends m over TCP with miekg/dns's client.
func exchangeTCP(t *testing.T, addr net.Addr, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	require.NoError(t, err)
	return r
}

// exchangeClient sends m with miekg/dns's client over UDP, which reads with
// the buffer size the query advertises.
func exchangeClient(t *testing.T, addr net.Addr, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	require.NoError(t, err)
	return r
}

// waitFor polls cond until it holds or d passes, and reports how long it
// took. The loop is bounded by the deadline.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// lookupTXT asks for TXT at name over UDP (with EDNS0) and returns the rcode
// and the TXT value (strings joined).
func lookupTXT(t *testing.T, addr net.Addr, name string) (int, string) {
	t.Helper()
	r, _, err := tryExchangeUDP(addr, question(name, dns.TypeTXT, 1232), 2*time.Second)
	require.NoError(t, err)
	var txt []string
	for _, rr := range r.Answer {
		if tx, ok := rr.(*dns.TXT); ok {
			txt = append(txt, strings.Join(tx.Txt, ""))
		}
	}
	return r.Rcode, strings.Join(txt, " | ")
}

// rrStrings renders records for comparison, OPT left out.
func rrStrings(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	return out
}

// parseRRs parses record strings and renders them as rrStrings does, so that
// test tables can be written in zone-file syntax.
func parseRRs(t *testing.T, ss []string) []string {
	t.Helper()
	out := []string{}
	for _, s := range ss {
		rr, err := dns.NewRR(s)
		require.NoError(t, err, "record %q", s)
		out = append(out, rr.String())
	}
	return out
}

// deadDatabaseURL points to a TCP port nothing listens on.
func deadDatabaseURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return "host=127.0.0.1 port=" + strconv.Itoa(port) + " user=nobody dbname=nothing sslmode=disable connect_timeout=1"
}

// hosted is an edge_domain row as a test writes it; zero fields take the
// column defaults.
type hosted struct {
	name, mode, dmarc string
	netblocks         []string
	services          []string
	nspf, dkim, bimi  string
	rspf              string
}

// putHosted writes a domain with all its columns the way the API does and
// returns the serial.
func (db *testDB) putHosted(t *testing.T, h hosted) int64 {
	t.Helper()
	if h.mode == "" {
		h.mode = "sending"
	}
	if h.dkim == "" {
		h.dkim = "[]"
	}
	if h.netblocks == nil {
		h.netblocks = []string{}
	}
	if h.services == nil {
		h.services = []string{}
	}
	ctx := context.Background()
	var serial int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO edge_domain (name, serial, mode, dmarc, netblocks, services, nspf, dkim, bimi, rspf, removed_at)
			VALUES ($1, nextval('edge_serial_seq'), $2, $3, $4::text[]::cidr[], $5, $6, $7::jsonb, $8, $9,
			        CASE WHEN $2 = 'removed' THEN now() END)
			ON CONFLICT (name) DO UPDATE
			SET serial = excluded.serial, mode = excluded.mode, dmarc = excluded.dmarc,
			    netblocks = excluded.netblocks, services = excluded.services, nspf = excluded.nspf,
			    dkim = excluded.dkim, bimi = excluded.bimi, rspf = excluded.rspf, removed_at = excluded.removed_at,
			    deleted = false, updated_at = now()
			RETURNING serial`,
			h.name, h.mode, h.dmarc, h.netblocks, h.services, h.nspf, h.dkim, h.bimi, h.rspf).Scan(&serial); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify('rampart_edge', $1::bigint::text)", serial)
		return err
	})
	require.NoError(t, err)
	return serial
}

// putService writes an edge_service row the way the API does and returns
// the serial. deleted makes it a tombstone.
func (db *testDB) putService(t *testing.T, name string, ranges, helo, includes []string, deleted bool) int64 {
	t.Helper()
	if ranges == nil {
		ranges = []string{}
	}
	if helo == nil {
		helo = []string{}
	}
	if includes == nil {
		includes = []string{}
	}
	ctx := context.Background()
	var serial int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO edge_service (name, serial, ranges, helo_suffixes, includes, deleted)
			VALUES ($1, nextval('edge_serial_seq'), $2::text[]::cidr[], $3, $4, $5)
			ON CONFLICT (name) DO UPDATE
			SET serial = excluded.serial, ranges = excluded.ranges, helo_suffixes = excluded.helo_suffixes,
			    includes = excluded.includes, deleted = excluded.deleted, updated_at = now()
			RETURNING serial`, name, ranges, helo, includes, deleted).Scan(&serial); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify('rampart_edge', $1::bigint::text)", serial)
		return err
	})
	require.NoError(t, err)
	return serial
}

// spfName is the name a receiver asks for when it expands the customer's
// "include:%{i}._ip.%{h}._ehlo.%{d}._spf.<edge zone>" (RFC 7208 §7.3),
// including the truncation to 253 octets that drops labels from the left.
func spfName(ip, helo, domain string) string {
	a := netip.MustParseAddr(ip)
	i := a.String()
	if a.Is6() {
		i = nibbles(a)
	}
	name := i + "." + ipLabel + "." + helo + "." + ehloLabel + "." + domain + "." + spfLabel + "." + testZone
	for len(name) > 253 {
		_, name, _ = strings.Cut(name, ".")
	}
	return name + "."
}

// nibbles is SPF's %{i} of an IPv6 address: 32 dot-separated nibbles.
func nibbles(a netip.Addr) string {
	b := a.As16()
	out := make([]string, 0, 32)
	for _, c := range b {
		out = append(out, strconv.FormatUint(uint64(c>>4), 16), strconv.FormatUint(uint64(c&0xf), 16))
	}
	return strings.Join(out, ".")
}

// scrapeMetrics reads the edge's /metrics page.
func scrapeMetrics(t *testing.T, e *testEdge) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + e.MetricsAddr().String() + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// requireMetric checks the value of the sample whose line starts with
// series (a name with its labels, as /metrics writes it).
func requireMetric(t *testing.T, e *testEdge, series string, ok func(float64) bool) {
	t.Helper()
	text := scrapeMetrics(t, e)
	for line := range strings.SplitSeq(text, "\n") {
		if rest, found := strings.CutPrefix(line, strings.TrimSpace(series)+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			require.NoError(t, err, line)
			require.True(t, ok(v), "%s", line)
			return
		}
	}
	t.Fatalf("no sample %q in:\n%s", series, text)
}
