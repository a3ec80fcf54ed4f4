package enrich_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/enrich"
)

// server is a DNS server on loopback (UDP) answering from zone-file lines.
// A name listed in servfail is answered SERVFAIL. It counts the queries
// per "name/TYPE", and the queries in flight (the most at once), each held
// for delay before its answer.
type server struct {
	addr    string
	records map[string][]dns.RR
	delay   time.Duration

	mu          sync.Mutex
	servfail    map[string]bool
	seen        map[string]int
	total       int
	inFlight    int
	maxInFlight int
}

func startServer(t *testing.T, lines ...string) *server {
	t.Helper()
	s := &server{records: map[string][]dns.RR{}, servfail: map[string]bool{}, seen: map[string]int{}}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		require.NoError(t, err, l)
		n := strings.ToLower(rr.Header().Name)
		s.records[n] = append(s.records[n], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: s}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

func (s *server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.seen[name+"/"+dns.TypeToString[q.Qtype]]++
	s.total++
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	fail := s.servfail[name]
	rrs, ok := s.records[name]
	delay := s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	switch {
	case fail:
		m.Rcode = dns.RcodeServerFailure
	case !ok:
		m.Rcode = dns.RcodeNameError
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	_ = w.WriteMsg(m)
}

func (s *server) setServfail(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[name] = on
}

func (s *server) set(t *testing.T, name string, lines ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[name] = nil
	for _, l := range lines {
		s.records[name] = append(s.records[name], mustRR(t, l))
	}
}

func (s *server) queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *server) count(name, typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[name+"/"+typ]
}

func (s *server) checker() *dnscheck.Checker {
	return &dnscheck.Checker{Server: s.addr, Timeout: time.Second, Attempts: 1}
}

// reverse is the PTR owner of ip, fully qualified.
func reverse(t *testing.T, ip string) string {
	t.Helper()
	r, err := dns.ReverseAddr(ip)
	require.NoError(t, err)
	return r
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a database with one hosted domain whose reports the tests
// store directly.
type fixture struct {
	pool   *pgxpool.Pool
	domain uuid.UUID
	n      int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{pool: dbtest.NewPool(t)}
	var account uuid.UUID
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO accounts (name) VALUES ('a') RETURNING id`).Scan(&account))
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'example.com') RETURNING id`, account).Scan(&f.domain))
	_, err := f.pool.Exec(ctx, `CREATE TABLE report_records_test PARTITION OF report_records DEFAULT`)
	require.NoError(t, err)
	return f
}

// report stores a report of day listing ips as its records' sources.
func (f *fixture) report(t *testing.T, day time.Time, ips ...string) {
	t.Helper()
	ctx := context.Background()
	f.n++
	var id uuid.UUID
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO reports (domain_id, reporter, org_name, report_id, policy_domain, begin_at, end_at, day, received_at)
		VALUES ($1, 'r', 'r', $2, 'example.com', $3, $3, $4, $3) RETURNING id`,
		f.domain, fmt.Sprint(f.n), day, day.Format(time.DateOnly)).Scan(&id))
	for i, ip := range ips {
		_, err := f.pool.Exec(ctx, `INSERT INTO report_records (report_id, seq, domain_id, day, source_ip, count, disposition, dkim, spf, header_from, envelope_from, envelope_to)
			VALUES ($1, $2, $3, $4, $5, 1, 'none', 'pass', 'pass', 'example.com', '', '')`,
			id, i+1, f.domain, day.Format(time.DateOnly), ip)
		require.NoError(t, err)
	}
}

func (f *fixture) get(t *testing.T, e *enrich.Enricher, ip string) enrich.Info {
	t.Helper()
	addr := netip.MustParseAddr(ip)
	m, err := e.Get(context.Background(), []netip.Addr{addr})
	require.NoError(t, err)
	info, ok := m[addr]
	require.True(t, ok, "%s not enriched", ip)
	return info
}

var log = slog.New(slog.DiscardHandler)

// start is the tests' clock's start: noon on a day, so that reports of
// that day are recent.
var start = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)

func (f *fixture) setup(t *testing.T, s *server, cfg enrich.Config) (*enrich.Enricher, *clock) {
	t.Helper()
	c := &clock{t: start}
	cfg.Checker, cfg.Now = s.checker(), c.Now
	cfg.Rate = max(cfg.Rate, 1000)
	return enrich.New(f.pool, cfg, log), c
}

func run(t *testing.T, e *enrich.Enricher) enrich.RunStats {
	t.Helper()
	st, err := e.Run(context.Background(), time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.True(t, st.Done)
	return st
}

// TestRun covers each outcome, the cache within its TTL, the refresh after
// it and the backoff of a failing lookup.
func TestRun(t *testing.T) {
	t.Parallel()
	s := startServer(t,
		reverse(t, "192.0.2.1")+" 60 IN PTR mail.good.test.",
		"mail.good.test. 60 IN A 192.0.2.1",
		// The PTR name resolves elsewhere.
		reverse(t, "192.0.2.2")+" 60 IN PTR spoof.test.",
		"spoof.test. 60 IN A 198.51.100.9",
		// 192.0.2.3 has no PTR (NXDOMAIN); 192.0.2.4's reverse name fails.
		// Two names, the second confirmed; upper case folded.
		reverse(t, "192.0.2.5")+" 60 IN PTR other.test.",
		reverse(t, "192.0.2.5")+" 60 IN PTR MX.Second.Test.",
		"other.test. 60 IN A 192.0.2.99",
		"mx.second.test. 60 IN A 192.0.2.5",
		reverse(t, "2001:db8::1")+" 60 IN PTR v6.good.test.",
		"v6.good.test. 60 IN AAAA 2001:db8::1",
		// The name exists, but only with an IPv4 address.
		reverse(t, "2001:db8::2")+" 60 IN PTR v4only.test.",
		"v4only.test. 60 IN A 192.0.2.50",
	)
	s.setServfail(reverse(t, "192.0.2.4"), true)
	f := newFixture(t)
	e, c := f.setup(t, s, enrich.Config{})
	ctx := context.Background()
	f.report(t, start, "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
	f.report(t, start, "192.0.2.1", "192.0.2.5", "2001:db8::1", "2001:db8::2")

	st := run(t, e)
	require.Equal(t, enrich.RunStats{Reports: 2, Queued: 7, LookedUp: 7, Found: 5, Confirmed: 3, None: 1, Failed: 1, Done: true}, st)

	confirmed := f.get(t, e, "192.0.2.1")
	require.Equal(t, enrich.Found, confirmed.Outcome)
	require.Equal(t, "mail.good.test", confirmed.PTR)
	require.True(t, confirmed.Confirmed)
	require.Empty(t, confirmed.Error)
	require.Equal(t, start.Add(enrich.DefaultFoundTTL), confirmed.Expires.UTC())
	require.Equal(t, start, confirmed.LookedUp.UTC())

	unconfirmed := f.get(t, e, "192.0.2.2")
	require.Equal(t, enrich.Found, unconfirmed.Outcome)
	require.Equal(t, "spoof.test", unconfirmed.PTR)
	require.False(t, unconfirmed.Confirmed)

	none := f.get(t, e, "192.0.2.3")
	require.Equal(t, enrich.None, none.Outcome)
	require.Empty(t, none.PTR)
	require.Equal(t, start.Add(enrich.DefaultNoneTTL), none.Expires.UTC())

	failed := f.get(t, e, "192.0.2.4")
	require.Equal(t, enrich.Failed, failed.Outcome)
	require.Contains(t, failed.Error, "SERVFAIL")
	require.Equal(t, start.Add(enrich.DefaultFailTTL), failed.Expires.UTC())

	second := f.get(t, e, "192.0.2.5")
	require.Equal(t, "mx.second.test", second.PTR)
	require.True(t, second.Confirmed)

	v6 := f.get(t, e, "2001:db8::1")
	require.Equal(t, "v6.good.test", v6.PTR)
	require.True(t, v6.Confirmed)
	require.Equal(t, 1, s.count("v6.good.test.", "AAAA"))
	require.Zero(t, s.count("v6.good.test.", "A"))
	require.False(t, f.get(t, e, "2001:db8::2").Confirmed)

	// Within the TTL: nothing is due, no query is sent; a new report of the
	// same day listing the same IPs queues nothing.
	sent := s.queries()
	c.Add(5 * time.Minute)
	f.report(t, start, "192.0.2.1", "192.0.2.4")
	st = run(t, e)
	require.Equal(t, enrich.RunStats{Reports: 1, Done: true}, st)
	require.Equal(t, sent, s.queries())

	// The failure's TTL runs out: looked up again, failing again: twice
	// the wait, the last name found kept (none here) and the error too.
	c.Add(enrich.DefaultFailTTL)
	st = run(t, e)
	require.Equal(t, 1, st.LookedUp)
	require.Equal(t, 1, st.Failed)
	require.Equal(t, 2, s.count(reverse(t, "192.0.2.4"), "PTR"))
	failed = f.get(t, e, "192.0.2.4")
	require.Equal(t, c.Now().Add(2*enrich.DefaultFailTTL), failed.Expires.UTC())
	require.Contains(t, failed.Error, "SERVFAIL")

	// Past the day: everything is refreshed; the server answers for
	// 192.0.2.4 now, and its error is gone.
	s.setServfail(reverse(t, "192.0.2.4"), false)
	s.set(t, reverse(t, "192.0.2.4"), reverse(t, "192.0.2.4")+" 60 IN PTR back.test.")
	c.Add(enrich.DefaultFoundTTL)
	st = run(t, e)
	require.Equal(t, 7, st.LookedUp)
	require.Equal(t, 2, s.count(reverse(t, "192.0.2.1"), "PTR"))
	back := f.get(t, e, "192.0.2.4")
	require.Equal(t, enrich.Found, back.Outcome)
	require.Equal(t, "back.test", back.PTR)
	require.Empty(t, back.Error)

	// The resolver fails for 192.0.2.1 now: its name found before is kept.
	s.setServfail(reverse(t, "192.0.2.1"), true)
	c.Add(enrich.DefaultFoundTTL)
	run(t, e)
	kept := f.get(t, e, "192.0.2.1")
	require.Equal(t, enrich.Failed, kept.Outcome)
	require.Equal(t, "mail.good.test", kept.PTR)
	require.True(t, kept.Confirmed)
	require.NotEmpty(t, kept.Error)

	// An IP no report has listed for the refresh window is not looked up
	// when it expires, until a report lists it again.
	c.Add(enrich.DefaultRefreshWithin)
	sent = s.queries()
	st = run(t, e)
	require.Zero(t, st.LookedUp)
	require.Equal(t, sent, s.queries())
	f.report(t, c.Now(), "192.0.2.3")
	st = run(t, e)
	require.Equal(t, 1, st.Queued, "%+v", st)
	require.Equal(t, 1, st.LookedUp)
	require.Equal(t, 4, s.count(reverse(t, "192.0.2.3"), "PTR"))

	// Get leaves out IPs never looked up.
	m, err := e.Get(ctx, []netip.Addr{netip.MustParseAddr("203.0.113.1")})
	require.NoError(t, err)
	require.Empty(t, m)
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	require.NoError(t, err)
	return rr
}

// TestConfirmBoundsNames: of an IP with many PTR names, at most MaxNames
// are resolved forward.
func TestConfirmBoundsNames(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 6 {
		lines = append(lines, fmt.Sprintf("%s 60 IN PTR n%d.test.", reverse(t, "192.0.2.7"), i),
			fmt.Sprintf("n%d.test. 60 IN A 192.0.2.%d", i, 100+i))
	}
	lines = append(lines, "n5.test. 60 IN A 192.0.2.7")
	s := startServer(t, lines...)
	ptr := enrich.Confirm(context.Background(), s.checker(), netip.MustParseAddr("192.0.2.7"), 3)
	require.Equal(t, enrich.PTR{Outcome: enrich.Found, Name: "n0.test"}, ptr)
	require.Equal(t, 4, s.queries(), "one PTR and three A queries")

	ptr = enrich.Confirm(context.Background(), s.checker(), netip.MustParseAddr("192.0.2.7"), 6)
	require.Equal(t, enrich.PTR{Outcome: enrich.Found, Name: "n5.test", Confirmed: true}, ptr)

	// A forward lookup without an answer makes the outcome a failure, the
	// name kept.
	s.setServfail("n0.test.", true)
	ptr = enrich.Confirm(context.Background(), s.checker(), netip.MustParseAddr("192.0.2.7"), 2)
	require.Equal(t, enrich.Failed, ptr.Outcome)
	require.Equal(t, "n0.test", ptr.Name)
	require.ErrorContains(t, ptr.Err, "SERVFAIL")
}

// TestConcurrencyBound: with Workers 3, the server never sees more than
// three queries at once.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	var lines []string
	var ips []string
	for i := 1; i <= 24; i++ {
		ip := fmt.Sprintf("198.51.100.%d", i)
		ips = append(ips, ip)
		lines = append(lines, fmt.Sprintf("%s 60 IN PTR h%d.test.", reverse(t, ip), i), fmt.Sprintf("h%d.test. 60 IN A %s", i, ip))
	}
	s := startServer(t, lines...)
	s.mu.Lock()
	s.delay = 20 * time.Millisecond
	s.mu.Unlock()
	f := newFixture(t)
	e, _ := f.setup(t, s, enrich.Config{Workers: 3, Batch: 10})
	f.report(t, start, ips...)
	st := run(t, e)
	require.Equal(t, 24, st.Confirmed)
	require.Equal(t, 48, s.queries())
	s.mu.Lock()
	defer s.mu.Unlock()
	require.LessOrEqual(t, s.maxInFlight, 3)
	require.Positive(t, s.maxInFlight)
}

// TestRateBound: at 2 lookups per second, a run given a second starts at
// most a handful of the 20 due (the first token at once, then one each
// half second) and stops at its deadline with the rest due.
func TestRateBound(t *testing.T) {
	t.Parallel()
	var ips []string
	for i := 1; i <= 20; i++ {
		ips = append(ips, fmt.Sprintf("198.51.100.%d", i))
	}
	s := startServer(t)
	f := newFixture(t)
	c := &clock{t: start}
	e := enrich.New(f.pool, enrich.Config{Checker: s.checker(), Now: c.Now, Rate: 2}, log)
	f.report(t, start, ips...)
	st, err := e.Run(context.Background(), time.Now().Add(time.Second))
	require.NoError(t, err)
	require.False(t, st.Done)
	require.Positive(t, st.LookedUp)
	require.LessOrEqual(t, st.LookedUp, 4)
	require.Equal(t, st.LookedUp, s.queries())
	var due int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM ip_enrichment WHERE looked_up_at IS NULL`).Scan(&due))
	require.Equal(t, 20-st.LookedUp, due)
}
