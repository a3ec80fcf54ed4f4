package dnsedge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestFollowChanges drives the edge the way the API does and checks that
// each change is answered within a second.
func TestFollowChanges(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	e := startEdge(t, Config{DatabaseURL: db.url, SnapshotPath: filepath.Join(t.TempDir(), "edge.snapshot")})
	addr := e.UDPAddr()
	// An empty database loads too: the edge zone answers, customer names
	// are refused.
	waitFor(t, 5*time.Second, "initial load", func() bool {
		r, _ := exchangeUDP(t, addr, question("edge.rampart.test.", dns.TypeSOA, 0))
		return r.Rcode == dns.RcodeSuccess
	})
	rcode, _ := lookupTXT(t, addr, "_dmarc.new.example.")
	require.Equal(t, dns.RcodeRefused, rcode)

	answered := func(what, qname string, wantRcode int, wantTXT string) {
		t.Helper()
		took := waitFor(t, changeDeadline, what, func() bool {
			rcode, txt := lookupTXT(t, addr, qname)
			return rcode == wantRcode && txt == wantTXT
		})
		t.Logf("%s: answered after %v", what, took.Round(time.Millisecond))
	}

	s := db.put(t, "new.example", "sending", "v=DMARC1; p=none")
	answered("insert", "_dmarc.new.example.", dns.RcodeSuccess, "v=DMARC1; p=none")
	answered("insert, CNAME target", "new.example._dmarc.edge.rampart.test.", dns.RcodeSuccess, "v=DMARC1; p=none")
	require.Equal(t, s, e.Serial())

	db.put(t, "new.example", "sending", "v=DMARC1; p=quarantine")
	answered("update", "_dmarc.new.example.", dns.RcodeSuccess, "v=DMARC1; p=quarantine")

	db.put(t, "new.example", "blocked", "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s")
	answered("block", "_dmarc.new.example.", dns.RcodeSuccess, "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s")

	s = db.remove(t, "new.example")
	answered("tombstone", "_dmarc.new.example.", dns.RcodeRefused, "")
	answered("tombstone, CNAME target", "new.example._dmarc.edge.rampart.test.", dns.RcodeNameError, "")
	require.Equal(t, s, e.Serial())

	// A burst of changes, each in its own transaction.
	var last int64
	for i := range 50 {
		last = db.put(t, fmt.Sprintf("d%02d.burst.example", i), "sending", fmt.Sprintf("v=DMARC1; p=none; pct=%d", i))
	}
	answered("burst", "_dmarc.d49.burst.example.", dns.RcodeSuccess, "v=DMARC1; p=none; pct=49")
	waitFor(t, changeDeadline, "burst serial", func() bool { return e.Serial() == last })
	for i := range 50 {
		rcode, txt := lookupTXT(t, addr, fmt.Sprintf("_dmarc.d%02d.burst.example.", i))
		require.Equal(t, dns.RcodeSuccess, rcode)
		require.Equal(t, fmt.Sprintf("v=DMARC1; p=none; pct=%d", i), txt)
	}

	// Notifications that arrive together cost one fetch: 20 changes
	// committed in one transaction are 20 notifications delivered at once.
	fetches := strings.Count(e.logs.String(), "applied changes")
	err := pgx.BeginFunc(context.Background(), db.pool, func(tx pgx.Tx) error {
		for i := range 20 {
			last = upsertDomain(t, tx, fmt.Sprintf("d%02d.batch.example", i), "sending", "v=DMARC1; p=none", false)
		}
		return nil
	})
	require.NoError(t, err)
	waitFor(t, changeDeadline, "batch", func() bool { return e.Serial() == last })
	require.Equal(t, fetches+1, strings.Count(e.logs.String(), "applied changes"), "one fetch for the batch")
}

// TestOutOfOrderCommit commits a lower serial after a higher one: the edge
// must not skip it although it already holds the higher serial.
func TestOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	e := startEdge(t, Config{DatabaseURL: db.url})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.index.Load() != nil })
	ctx := context.Background()

	slow, err := db.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = slow.Rollback(ctx) }()
	sSlow := upsertDomain(t, slow, "slow.example", "sending", "v=DMARC1; p=none; slow", false)

	sFast := db.put(t, "fast.example", "sending", "v=DMARC1; p=none; fast")
	require.Greater(t, sFast, sSlow)
	waitFor(t, changeDeadline, "fast change", func() bool { return e.Serial() == sFast })

	require.NoError(t, slow.Commit(ctx))
	waitFor(t, changeDeadline, "slow change committed after a higher serial", func() bool {
		_, txt := lookupTXT(t, e.UDPAddr(), "_dmarc.slow.example.")
		return txt == "v=DMARC1; p=none; slow"
	})
	require.Equal(t, sFast, e.Serial())
}

// TestReconnect cuts the edge's connection, changes a domain while it is
// away, and checks that the edge kept serving, reconnected and resynced.
func TestReconnect(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.put(t, "kept.example", "sending", "v=DMARC1; p=none")
	e := startEdge(t, Config{DatabaseURL: db.url})
	waitFor(t, 5*time.Second, "initial load", func() bool {
		_, txt := lookupTXT(t, e.UDPAddr(), "_dmarc.kept.example.")
		return txt == "v=DMARC1; p=none"
	})
	ctx := context.Background()

	// Make sure the edge is the only client of its database, so that the
	// change below cannot be notified to it.
	var killed int
	require.NoError(t, db.pool.QueryRow(ctx, `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'dnsedge'`).Scan(&killed))
	require.Equal(t, 1, killed)
	// Written with no NOTIFY: only the full resync on reconnection finds it.
	_, err := db.pool.Exec(ctx, `INSERT INTO edge_domain (name, serial, mode, dmarc)
		VALUES ('missed.example', nextval('edge_serial_seq'), 'sending', 'v=DMARC1; p=none; missed')`)
	require.NoError(t, err)

	rcode, txt := lookupTXT(t, e.UDPAddr(), "_dmarc.kept.example.")
	require.Equal(t, dns.RcodeSuccess, rcode, "serving while disconnected")
	require.Equal(t, "v=DMARC1; p=none", txt)
	waitFor(t, 5*time.Second, "resync after reconnection", func() bool {
		_, txt := lookupTXT(t, e.UDPAddr(), "_dmarc.missed.example.")
		return txt == "v=DMARC1; p=none; missed"
	})
	require.Contains(t, e.logs.String(), "PostgreSQL unavailable")
}

// TestRestartWithoutDatabase restarts an edge from its snapshot file while
// PostgreSQL is unreachable.
func TestRestartWithoutDatabase(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	path := filepath.Join(t.TempDir(), "sub", "edge.snapshot")
	db.put(t, "example.com", "sending", "v=DMARC1; p=none")
	s := db.put(t, "other.example", "blocked", "v=DMARC1; p=reject")

	first := startEdge(t, Config{DatabaseURL: db.url, SnapshotPath: path})
	waitFor(t, 5*time.Second, "initial load", func() bool { return first.Serial() == s })
	waitFor(t, 5*time.Second, "snapshot written", func() bool { _, err := os.Stat(path); return err == nil })
	// A change after the full load reaches the file through the debounced
	// write or, at the latest, the write on stop.
	s = db.put(t, "late.example", "sending", "v=DMARC1; p=quarantine")
	waitFor(t, changeDeadline, "late change", func() bool { return first.Serial() == s })
	questions := []*dns.Msg{
		question("_dmarc.example.com.", dns.TypeTXT, 1232),
		question("_dmarc.other.example.", dns.TypeTXT, 0),
		question("_dmarc.late.example.", dns.TypeTXT, 1232),
		question("late.example._dmarc.edge.rampart.test.", dns.TypeTXT, 1232),
		question("_dmarc.late.example.", dns.TypeSOA, 1232),
		question("edge.rampart.test.", dns.TypeSOA, 1232),
		question("_dmarc.missing.example.", dns.TypeTXT, 1232),
	}
	var before []*dns.Msg
	for _, q := range questions {
		r, _ := exchangeUDP(t, first.UDPAddr(), q)
		before = append(before, r)
	}
	first.stop()

	second := startEdge(t, Config{DatabaseURL: deadDatabaseURL(t), SnapshotPath: path})
	require.Equal(t, s, second.Serial(), "serving the file as soon as Start returns")
	for i, q := range questions {
		r, _ := exchangeUDP(t, second.UDPAddr(), q)
		require.Equal(t, before[i].Rcode, r.Rcode, q.Question[0].String())
		require.Equal(t, rrStrings(before[i].Answer), rrStrings(r.Answer), q.Question[0].String())
		require.Equal(t, rrStrings(before[i].Ns), rrStrings(r.Ns), q.Question[0].String())
	}
	waitFor(t, 5*time.Second, "database failure logged", func() bool {
		return strings.Contains(second.logs.String(), "PostgreSQL unavailable")
	})
}

// TestCorruptSnapshot checks that a damaged snapshot file is refused, the
// refusal logged, and the edge loads from PostgreSQL instead.
func TestCorruptSnapshot(t *testing.T) {
	t.Parallel()
	stale := emptyIndex().edit()
	require.NoError(t, stale.put(row{name: "stale.example", serial: 1, mode: "sending", dmarc: "v=DMARC1; p=none; stale"}))
	good := encodeSnapshot(stale.finish(), time.Now())

	for _, tc := range []struct {
		name    string
		corrupt func([]byte) []byte
		reason  string
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)-3] ^= 0x20; return b }, "checksum mismatch"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }, "truncated"},
		{"truncated header", func(b []byte) []byte { return b[:20] }, "truncated"},
		{"wrong version", func(b []byte) []byte { b[len(snapshotMagic)+3] = 99; return b }, "unsupported format version 99"},
		// A file written before services and hosted records existed.
		{"version 1", func(b []byte) []byte { b[len(snapshotMagic)+3] = 1; return b }, fmt.Sprintf("unsupported format version 1 (want %d)", snapshotVersion)},
		{"not a snapshot", func(b []byte) []byte { return []byte(strings.Repeat("garbage ", 20)) }, "bad magic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "edge.snapshot")
			require.NoError(t, os.WriteFile(path, tc.corrupt(append([]byte(nil), good...)), 0o644))
			db := newTestDB(t)
			db.put(t, "fresh.example", "sending", "v=DMARC1; p=none; fresh")

			e := startEdge(t, Config{DatabaseURL: db.url, SnapshotPath: path})
			waitFor(t, 5*time.Second, "load from PostgreSQL", func() bool {
				_, txt := lookupTXT(t, e.UDPAddr(), "_dmarc.fresh.example.")
				return txt == "v=DMARC1; p=none; fresh"
			})
			rcode, _ := lookupTXT(t, e.UDPAddr(), "_dmarc.stale.example.")
			require.Equal(t, dns.RcodeRefused, rcode)
			logs := e.logs.String()
			require.Contains(t, logs, "level=ERROR")
			require.Contains(t, logs, "refusing snapshot file")
			require.Contains(t, logs, tc.reason)
			// The refused file is replaced by a good one.
			waitFor(t, 5*time.Second, "snapshot rewritten", func() bool {
				b, err := os.ReadFile(path)
				if err != nil {
					return false
				}
				snap, err := decodeSnapshot(b)
				return err == nil && snap.index.numDomains() == 1
			})
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.put(t, "example.com", "sending", "v=DMARC1; p=none")
	db.putService(t, "mailer", []string{"192.0.2.0/24"}, nil, nil, false)
	s := db.put(t, "example.org", "sending", "v=DMARC1; p=none")
	e := startEdge(t, Config{DatabaseURL: db.url, MetricsListen: "127.0.0.1:0"})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == s })

	for range 3 {
		exchangeUDP(t, e.UDPAddr(), question("_dmarc.example.com.", dns.TypeTXT, 0))
	}
	exchangeTCP(t, e.TCPAddr(), question("nope._dmarc.example.com.", dns.TypeTXT, 0))
	exchangeUDP(t, e.UDPAddr(), question("example.net.", dns.TypeMX, 0))
	exchangeUDP(t, e.UDPAddr(), question("_dmarc.example.com.", 65000, 0))
	q := question("_dmarc.example.com.", dns.TypeTXT, 0)
	q.Opcode = dns.OpcodeNotify
	exchangeUDP(t, e.UDPAddr(), q)

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	scrape := func() string {
		resp, err := client.Get("http://" + e.MetricsAddr().String() + "/metrics")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		return string(body)
	}
	// The server releases the TCP connection a moment after the exchange
	// returns: wait (bounded) for the gauge to come back to zero.
	text := scrape()
	for start := time.Now(); !strings.Contains(text, "dnsedge_tcp_connections 0") && time.Since(start) < 5*time.Second; {
		time.Sleep(10 * time.Millisecond)
		text = scrape()
	}
	for _, want := range []string{
		`dnsedge_queries_total{qtype="TXT",rcode="NOERROR"} 3`,
		`dnsedge_queries_total{qtype="TXT",rcode="NXDOMAIN"} 1`,
		`dnsedge_queries_total{qtype="MX",rcode="REFUSED"} 1`,
		`dnsedge_queries_total{qtype="OTHER",rcode="NOERROR"} 1`,
		`dnsedge_queries_total{qtype="OTHER",rcode="NOTIMP"} 1`,
		fmt.Sprintf("dnsedge_snapshot_serial %d", s),
		"dnsedge_snapshot_domains 2",
		"dnsedge_snapshot_services 1",
		"dnsedge_rrl_dropped_total 0",
		"dnsedge_rrl_slipped_total 0",
		`dnsedge_tcp_connections_refused_total{reason="total"} 0`,
		`dnsedge_tcp_connections_refused_total{reason="source"} 0`,
		"dnsedge_tcp_connections_evicted_total 0",
		"dnsedge_tcp_connections 0",
		"dnsedge_db_connected 1",
		"dnsedge_snapshot_age_seconds ",
	} {
		require.Contains(t, text, want)
	}
}

// TestRunStopsOnCancel checks Run's contract: it returns once ctx is
// cancelled, with every goroutine stopped (goleak checks the rest).
func TestRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	e, err := New(Config{Zone: testZone, Listen: "127.0.0.1:0", DatabaseURL: deadDatabaseURL(t)}, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	require.ErrorContains(t, e.Start(context.Background()), "twice")
}

// TestHeartbeatAndResync checks the two safety nets behind NOTIFY: the
// heartbeat finds rows whose notification was lost, and the periodic full
// resync finds anything else that changed, even without a new serial.
func TestHeartbeatAndResync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("heartbeat", func(t *testing.T) {
		t.Parallel()
		db := newTestDB(t)
		e := startEdge(t, Config{DatabaseURL: db.url, ResyncInterval: time.Hour},
			func(e *Edge) { e.heartbeatEvery = 100 * time.Millisecond })
		waitFor(t, 5*time.Second, "initial load", func() bool { return e.index.Load() != nil })
		_, err := db.pool.Exec(ctx, `INSERT INTO edge_domain (name, serial, mode, dmarc)
			VALUES ('quiet.example', nextval('edge_serial_seq'), 'sending', 'v=DMARC1; p=none; quiet')`)
		require.NoError(t, err)
		waitFor(t, 3*time.Second, "change found by the heartbeat", func() bool {
			_, txt := lookupTXT(t, e.UDPAddr(), "_dmarc.quiet.example.")
			return txt == "v=DMARC1; p=none; quiet"
		})
	})
	t.Run("resync", func(t *testing.T) {
		t.Parallel()
		db := newTestDB(t)
		db.put(t, "example.com", "sending", "v=DMARC1; p=none")
		e := startEdge(t, Config{DatabaseURL: db.url, ResyncInterval: 300 * time.Millisecond})
		waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() > 0 })
		// Against the contract (no new serial, no NOTIFY): only a full
		// reload can see it.
		_, err := db.pool.Exec(ctx, `UPDATE edge_domain SET dmarc = 'v=DMARC1; p=reject; resynced' WHERE name = 'example.com'`)
		require.NoError(t, err)
		waitFor(t, 3*time.Second, "change found by the resync", func() bool {
			_, txt := lookupTXT(t, e.UDPAddr(), "_dmarc.example.com.")
			return txt == "v=DMARC1; p=reject; resynced"
		})
	})
}

// TestFollowServices changes sender services and the domains enabling them
// and checks that every affected SPF answer follows within a second.
func TestFollowServices(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.putService(t, "mailer", []string{"192.0.2.0/24"}, []string{"mailer.example"}, []string{"_spf.mailer.example"}, false)
	db.putHosted(t, hosted{name: "a.example", services: []string{"mailer"}})
	db.putHosted(t, hosted{name: "b.example", services: []string{"later", "mailer"}})
	s := db.putHosted(t, hosted{name: "c.example"})
	e := startEdge(t, Config{DatabaseURL: db.url, SnapshotPath: filepath.Join(t.TempDir(), "edge.snapshot")})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == s })

	answered := func(what, ip, helo string, want map[string]string) {
		t.Helper()
		took := waitFor(t, changeDeadline, what, func() bool {
			for domain, txt := range want {
				if _, got := lookupTXT(t, e.UDPAddr(), spfName(ip, helo, domain)); got != txt {
					return false
				}
			}
			return true
		})
		t.Logf("%s: answered after %v", what, took.Round(time.Millisecond))
	}
	const (
		neutral = "v=spf1 ~all"
		hit     = "v=spf1 ip4:203.0.113.9 -all"
	)
	answered("before", "203.0.113.9", "mx.example.net", map[string]string{"a.example": neutral, "b.example": neutral, "c.example": neutral})

	// The service's ranges move: every domain enabling it follows, the
	// others do not.
	db.putService(t, "mailer", []string{"192.0.2.0/24", "203.0.113.0/24"}, []string{"mailer.example"}, []string{"_spf.mailer.example"}, false)
	answered("ranges changed", "203.0.113.9", "mx.example.net", map[string]string{"a.example": hit, "b.example": hit, "c.example": neutral})
	require.Equal(t, 1, e.index.Load().numServices())

	// A service a domain enabled before it existed starts to count.
	db.putService(t, "later", []string{"198.51.100.0/24"}, []string{"later.example"}, []string{"_spf.later.example"}, false)
	answered("service created", "198.51.100.1", "mx.later.example", map[string]string{
		"a.example": neutral, "b.example": "v=spf1 ip4:198.51.100.1 -all",
	})
	answered("HELO order", "100.64.0.1", "mx.later.example", map[string]string{
		"a.example": neutral, "b.example": "v=spf1 include:_spf.later.example -all",
	})

	// A domain enables a service.
	db.putHosted(t, hosted{name: "c.example", services: []string{"mailer"}})
	answered("domain enables", "203.0.113.9", "mx.example.net", map[string]string{"c.example": hit})

	// A tombstoned service stops counting for everyone.
	s = db.putService(t, "mailer", nil, nil, nil, true)
	answered("service removed", "203.0.113.9", "mta.mailer.example", map[string]string{"a.example": neutral, "b.example": neutral, "c.example": neutral})
	require.Equal(t, s, e.Serial())
	require.Equal(t, 1, e.index.Load().numServices())

	// An invalid service row is logged and left out, as a full load would.
	db.putService(t, "later", []string{"198.51.100.0/24"}, []string{"bad helo"}, []string{"_spf.later.example"}, false)
	answered("invalid service", "198.51.100.1", "mx.later.example", map[string]string{"b.example": neutral})
	require.Contains(t, e.logs.String(), `service \"later\": HELO suffix`)
}

// TestRestartWithHostedRecords restarts an edge from a snapshot file holding
// services and every hosted record type, with PostgreSQL unreachable, and
// checks that it answers as before.
func TestRestartWithHostedRecords(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	f := writeHostedFixture(t, db)
	path := filepath.Join(t.TempDir(), "edge.snapshot")
	cfg := Config{DatabaseURL: db.url, SnapshotPath: path, ReportsDomain: "reports.rampart.test"}
	first := startEdge(t, cfg)
	waitFor(t, 5*time.Second, "initial load", func() bool { return first.Serial() == f.sLast })
	questions := []*dns.Msg{
		question(spfName("10.1.2.3", "mx", "example.com"), dns.TypeTXT, 1232),
		question(spfName("2001:db8:100::1", "mx", "example.com"), dns.TypeTXT, 1232),
		question(spfName("198.51.100.7", "mx", "withheld.example"), dns.TypeTXT, 1232),
		question(spfName("203.0.113.9", "mta.mailer.example", "example.com"), dns.TypeTXT, 1232),
		question(spfName("10.1.2.3", "mx", "blocked.example"), dns.TypeTXT, 1232),
		question("example.com._nspf.edge.rampart.test.", dns.TypeTXT, 1232),
		question("s1._domainkey.example.com.", dns.TypeTXT, 1232),
		question("s2._domainkey.example.com.", dns.TypeTXT, 1232),
		question("b._domainkey.example.com.", dns.TypeTXT, 1232),
		question("any._domainkey.blocked.example.", dns.TypeTXT, 1232),
		question("default._bimi.example.com.", dns.TypeTXT, 1232),
		question("default._bimi.withheld.example.", dns.TypeTXT, 1232),
		question("example.com._report._dmarc.reports.rampart.test.", dns.TypeTXT, 1232),
		question("_domainkey.example.com.", dns.TypeSOA, 1232),
	}
	var before []*dns.Msg
	for _, q := range questions {
		r, _ := exchangeUDP(t, first.UDPAddr(), q)
		require.NotEmpty(t, append(r.Answer, r.Ns...), q.Question[0].String())
		before = append(before, r)
	}
	first.stop()

	cfg.DatabaseURL = deadDatabaseURL(t)
	second := startEdge(t, cfg)
	require.Equal(t, f.sLast, second.Serial(), "serving the file as soon as Start returns")
	require.Equal(t, 3, second.index.Load().numServices())
	for i, q := range questions {
		r, _ := exchangeUDP(t, second.UDPAddr(), q)
		require.Equal(t, before[i].Rcode, r.Rcode, q.Question[0].String())
		require.Equal(t, rrStrings(before[i].Answer), rrStrings(r.Answer), q.Question[0].String())
		require.Equal(t, rrStrings(before[i].Ns), rrStrings(r.Ns), q.Question[0].String())
	}
}

// TestDKIMTruncation checks that a 4096-bit key, over 512 bytes, is
// truncated over UDP without EDNS0 and whole over TCP, in character-strings
// of at most 255 bytes.
func TestDKIMTruncation(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := db.putHosted(t, hosted{name: "example.com", dkim: fmt.Sprintf(`[{"selector": "s1", "txt": %q}]`, rsa4096Key)})
	e := startEdge(t, Config{DatabaseURL: db.url})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == s })

	q := question("s1._domainkey.example.com.", dns.TypeTXT, 0)
	r, size := exchangeUDP(t, e.UDPAddr(), q)
	require.LessOrEqual(t, size, 512)
	require.True(t, r.Truncated)
	require.True(t, r.Authoritative)
	require.Empty(t, r.Answer)

	full := exchangeTCP(t, e.TCPAddr(), q)
	require.False(t, full.Truncated)
	require.Len(t, full.Answer, 1)
	txt := full.Answer[0].(*dns.TXT).Txt
	require.Len(t, txt, 3)
	for _, s := range txt {
		require.LessOrEqual(t, len(s), 255)
	}
	require.Equal(t, rsa4096Key, strings.Join(txt, ""))
	require.Greater(t, len(rsa4096Key), 512-12-len(q.Question[0].Name))
}
