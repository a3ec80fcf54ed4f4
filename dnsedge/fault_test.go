package dnsedge

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// faultQuestions asks for every kind of answer the hosted fixture and the
// generated domains 0..genCount-1 give, over UDP with and without EDNS0.
func faultQuestions(genCount int) []*dns.Msg {
	const edns = 1232
	q := question
	qs := []*dns.Msg{
		// DMARC, and the zone machinery around it.
		q("_dmarc.example.com.", dns.TypeTXT, edns),
		q("_dmarc.example.com.", dns.TypeTXT, 0),
		q("_DMARC.Example.COM.", dns.TypeTXT, edns),
		q("_dmarc.example.com.", dns.TypeSOA, edns),
		q("_dmarc.example.com.", dns.TypeNS, 0),
		q("_dmarc.example.com.", dns.TypeA, edns),
		q("_dmarc.example.com.", 666, edns),
		q("x._dmarc.example.com.", dns.TypeTXT, edns),
		q("_dmarc.blocked.example.", dns.TypeTXT, edns),
		q("_dmarc.gone.example.", dns.TypeTXT, edns),
		q("example.com._dmarc.edge.rampart.test.", dns.TypeTXT, edns),
		q("com._dmarc.edge.rampart.test.", dns.TypeTXT, edns),
		q("_dmarc.edge.rampart.test.", dns.TypeTXT, edns),
		q("edge.rampart.test.", dns.TypeSOA, edns),
		q("edge.rampart.test.", dns.TypeNS, 0),
		q("edge.rampart.test.", dns.TypeTXT, edns),
		q("ns1.edge.rampart.test.", dns.TypeA, edns),
		q("ns1.edge.rampart.test.", dns.TypeAAAA, edns),
		q("nope.edge.rampart.test.", dns.TypeA, edns),
		q("www.example.org.", dns.TypeA, edns),
		// SPF: hits and misses, IPv4 and IPv6.
		q(spfName("10.1.2.3", "mx.example.com", "example.com"), dns.TypeTXT, edns),
		q(spfName("2001:db8:1::25", "mx.example.com", "example.com"), dns.TypeTXT, edns),
		q(spfName("192.0.2.10", "anything.example", "example.com"), dns.TypeTXT, edns),
		q(spfName("2001:db8:100::1:2", "anything.example", "example.com"), dns.TypeTXT, 0),
		q(spfName("198.51.100.7", "anything.example", "example.com"), dns.TypeTXT, edns),
		q(spfName("203.0.113.9", "mta1.mailer.example", "example.com"), dns.TypeTXT, edns),
		q(spfName("203.0.113.9", "a.b.vendor-mta.example", "example.com"), dns.TypeTXT, edns),
		q(spfName("203.0.113.9", "mx.example.net", "example.com"), dns.TypeTXT, edns),
		q(spfName("2001:db8:ffff::1", "mx.example.net", "example.com"), dns.TypeTXT, edns),
		q(spfName("100.64.0.1", "mx.gone.example", "example.com"), dns.TypeTXT, edns),
		q(spfName("10.1.2.3", "mx.example.com", "blocked.example"), dns.TypeTXT, edns),
		q(spfName("10.1.2.3", "mx.example.com", "unknown.example"), dns.TypeTXT, edns),
		q(spfName("10.1.2.3", strings.Join([]string{label63, label63, label63, "mta1.mailer.example"}, "."), "example.com"), dns.TypeTXT, edns),
		q(spfName("10.1.2.3", "mx", "example.com"), dns.TypeA, edns),
		q("_spf.edge.rampart.test.", dns.TypeTXT, edns),
		// _nspf.
		q("example.com._nspf.edge.rampart.test.", dns.TypeTXT, edns),
		q("blocked.example._nspf.edge.rampart.test.", dns.TypeTXT, edns),
		q("x.y.nested.example._nspf.edge.rampart.test.", dns.TypeTXT, edns),
		q("nested.example._nspf.edge.rampart.test.", dns.TypeTXT, edns),
		q("withheld.example._nspf.edge.rampart.test.", dns.TypeTXT, edns),
		// DKIM: a key larger than 512 bytes (truncated without EDNS0), a
		// CNAME, a selector with a dot, an empty non-terminal, a missing
		// selector, a blocked domain's revoked key.
		q("s1._domainkey.example.com.", dns.TypeTXT, edns),
		q("s1._domainkey.example.com.", dns.TypeTXT, 0),
		q("s2._domainkey.example.com.", dns.TypeTXT, edns),
		q("S2._domainkey.example.com.", dns.TypeA, edns),
		q("a.b._domainkey.example.com.", dns.TypeTXT, edns),
		q("b._domainkey.example.com.", dns.TypeTXT, edns),
		q("nope._domainkey.example.com.", dns.TypeTXT, edns),
		q("any._domainkey.blocked.example.", dns.TypeTXT, edns),
		q("_domainkey.example.com.", dns.TypeSOA, edns),
		// BIMI.
		q("default._bimi.example.com.", dns.TypeTXT, edns),
		q("default._bimi.withheld.example.", dns.TypeTXT, edns),
		q("other._bimi.example.com.", dns.TypeTXT, edns),
		q("_bimi.example.com.", dns.TypeSOA, edns),
		// Report authorisation.
		q("example.com._report._dmarc.reports.rampart.test.", dns.TypeTXT, edns),
		q("nested.example._report._dmarc.reports.rampart.test.", dns.TypeTXT, edns),
		q("unknown.example._report._dmarc.reports.rampart.test.", dns.TypeTXT, edns),
		q("_report._dmarc.reports.rampart.test.", dns.TypeSOA, edns),
	}
	for i := range genCount {
		qs = append(qs, genQueries(i)...)
	}
	return qs
}

// TestRestartWithoutDatabaseAllAnswers restarts an edge from its snapshot
// file with PostgreSQL unreachable for the whole run, and requires every
// answer, over UDP and TCP, byte for byte as before (IDs aside) and no
// SERVFAIL, from the first query until the edge has failed to reconnect
// several times.
func TestRestartWithoutDatabaseAllAnswers(t *testing.T) {
	t.Parallel()
	const generated = 60 // domain 49 is blocked
	db := newTestDB(t)
	writeHostedFixture(t, db)
	last := genLoad(t, db.pool, generated)
	path := filepath.Join(t.TempDir(), "edge.snapshot")
	cfg := Config{DatabaseURL: db.url, SnapshotPath: path, ReportsDomain: "reports.rampart.test"}
	first := startEdge(t, cfg)
	waitFor(t, 10*time.Second, "initial load", func() bool { return first.Serial() == last })

	qs := faultQuestions(generated)
	ask := func(e *testEdge) (udp, tcp []*dns.Msg) {
		udp = askAll(t, e.UDPAddr(), qs)
		for _, q := range qs {
			tcp = append(tcp, exchangeTCP(t, e.TCPAddr(), q))
		}
		return udp, tcp
	}
	beforeUDP, beforeTCP := ask(first)
	kinds := map[int]int{}
	for _, r := range beforeUDP {
		kinds[r.Rcode]++
	}
	require.Positive(t, kinds[dns.RcodeSuccess])
	require.Positive(t, kinds[dns.RcodeNameError])
	require.Positive(t, kinds[dns.RcodeRefused])
	require.True(t, beforeUDP[questionIndex(qs, "s1._domainkey.example.com.", 0)].Truncated, "a large key without EDNS0")
	per := len(genQueries(0))
	for i, base := 0, len(qs)-generated*per; i < generated; i++ {
		requireGenAnswers(t, i, 0, beforeUDP[base+i*per:base+(i+1)*per])
	}
	first.stop()

	cfg.DatabaseURL = deadDatabaseURL(t)
	second := startEdge(t, cfg)
	require.Equal(t, last, second.Serial(), "serving the file as soon as Start returns")
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; ; round++ {
		udp, tcp := ask(second)
		requireSameReplies(t, qs, beforeUDP, udp)
		requireSameReplies(t, qs, beforeTCP, tcp)
		// Until the edge has tried PostgreSQL three times (backoff from
		// 250 ms), and at least twice.
		if round >= 1 && strings.Count(second.logs.String(), "PostgreSQL unavailable") >= 3 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the edge did not retry PostgreSQL")
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, last, second.Serial())
}

// questionIndex finds the question for name with the given EDNS0 size.
func questionIndex(qs []*dns.Msg, name string, edns uint16) int {
	for i, q := range qs {
		opt := q.IsEdns0()
		if q.Question[0].Name == name && (opt == nil && edns == 0 || opt != nil && opt.UDPSize() == edns) {
			return i
		}
	}
	panic("no question " + name)
}

// TestIdleTCPConnections opens 300 idle TCP connections from 6 loopback
// addresses to an edge with the default caps, and checks that the edge keeps
// answering while they are open (see checkIdleTCP). DNSEDGE_SCALE=1 runs
// TestIdleTCPConnectionsAtScale too.
func TestIdleTCPConnections(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := db.put(t, "example.com", "sending", "v=DMARC1; p=none")
	// Timeouts long enough to keep every connection open through the test.
	e := startEdge(t, Config{DatabaseURL: db.url, MetricsListen: "127.0.0.1:0", TCPReadTimeout: 5 * time.Minute, TCPIdleTimeout: 5 * time.Minute})
	waitFor(t, 10*time.Second, "initial load", func() bool { return e.Serial() == s })
	checkIdleTCP(t, e.UDPAddr(), e.TCPAddr(), func() float64 { return metricValue(t, scrapeMetrics(t, e), "dnsedge_tcp_connections") }, 300, 0)
}

// TestIdleTCPConnectionsAtScale is TestIdleTCPConnections with 20,000
// connections from 400 addresses, to an edge process (cmd/dnsedge) whose
// total cap makes room for them. Both processes need a file descriptor per
// connection: where RLIMIT_NOFILE cannot be raised to that (a container
// without CAP_SYS_RESOURCE), the test opens as many as the limit allows and
// says so.
func TestIdleTCPConnectionsAtScale(t *testing.T) {
	if !scaleRun() {
		t.Skip("set DNSEDGE_SCALE=1 to run at scale (make bench-dns-scale)")
	}
	const want = 20_000
	const spare = 256 // descriptors either process needs besides the connections
	n := want
	if limit := raiseFileLimit(t, want+spare); limit < want+spare {
		n = int(limit) - spare
		t.Logf("RLIMIT_NOFILE is %d and cannot be raised: %d connections instead of %d", limit, n, want)
	}
	bin := edgeBinary(t)
	db := newTestDB(t)
	s := db.put(t, "example.com", "sending", "v=DMARC1; p=none")
	metrics := freePort(t)
	p := startEdgeProcess(t, bin, db.url, filepath.Join(t.TempDir(), "edge.snapshot"),
		"-tcp-max-conns", fmt.Sprint(n+2*DefaultTCPMaxConnsPerSource), "-tcp-read-timeout", "5m", "-tcp-idle-timeout", "5m",
		"-metrics", fmt.Sprintf("127.0.0.1:%d", metrics))
	p.awaitSerial(t, s, time.Minute)
	tcp := &net.TCPAddr{IP: p.udp.(*net.UDPAddr).IP, Port: p.udp.(*net.UDPAddr).Port}
	open := func() float64 {
		return metricValue(t, scrapeURL(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)), "dnsedge_tcp_connections")
	}
	checkIdleTCP(t, p.udp, tcp, open, n, time.Second)
	t.Logf("edge VmHWM with the connections open: %s", mb(p.hwm(t)))
}

// checkIdleTCP opens n idle TCP connections to the edge at tcp from
// 127.1.x.y, 50 per address (under the per-source cap of 64), waits until
// the edge counts them all open (open returns its
// dnsedge_tcp_connections), and checks that meanwhile UDP queries are
// answered (each within udpWithin, when not 0), a fresh TCP query from a new
// address is answered, idle connections can still ask, and the per-source
// cap still refuses the 65th connection from one address. Then it closes
// them.
func checkIdleTCP(t *testing.T, udp, tcp net.Addr, open func() float64, n int, udpWithin time.Duration) {
	t.Helper()
	const perSource = 50
	source := func(k int) net.IP { return net.IPv4(127, 1, byte(k/250), byte(k%250+1)) }
	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	})
	start := time.Now()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	const dialers = 16
	for w := range dialers {
		wg.Go(func() {
			d := net.Dialer{Timeout: 10 * time.Second}
			for k := w; k < n; k += dialers {
				d.LocalAddr = &net.TCPAddr{IP: source(k / perSource)}
				c, err := d.Dial("tcp", tcp.String())
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", k, err)
					}
					mu.Unlock()
					return
				}
				conns[k] = c
			}
		})
	}
	wg.Wait()
	require.NoError(t, firstErr)
	waitFor(t, time.Minute, "every connection accepted", func() bool { return open() == float64(n) })
	t.Logf("%d idle connections from %d addresses open after %v", n, (n+perSource-1)/perSource, time.Since(start).Round(time.Millisecond))

	// UDP is answered.
	for i := range 50 {
		start := time.Now()
		r, err := askUDP(udp, question("_dmarc.example.com.", dns.TypeTXT, 1232))
		require.NoError(t, err, "UDP query %d", i)
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		require.Len(t, r.Answer, 1)
		if udpWithin > 0 {
			require.Less(t, time.Since(start), udpWithin, "UDP query %d", i)
		}
	}
	// A fresh TCP query from a new address is answered.
	requireAnswered(t, tcpConn(t, tcp, net.IPv4(127, 2, 0, 1)))
	// Idle connections are open and served.
	for k := 0; k < n; k += max(1, n/20) {
		requireAnswered(t, conns[k])
	}
	// The per-source cap still holds: address 0 may open 14 more, not 15.
	for range DefaultTCPMaxConnsPerSource - perSource {
		requireAnswered(t, tcpConn(t, tcp, source(0)))
	}
	requireRefused(t, tcp, source(0))

	for i, c := range conns {
		_ = c.Close()
		conns[i] = nil
	}
	// The connections opened since stay open until the test ends.
	waitFor(t, time.Minute, "connections released", func() bool {
		return open() == float64(DefaultTCPMaxConnsPerSource-perSource+1)
	})
}

// raiseFileLimit raises RLIMIT_NOFILE of the test process, and so of the
// edge processes it starts, to want if it can (the hard limit too, which
// takes CAP_SYS_RESOURCE), and returns the limit in force.
func raiseFileLimit(t *testing.T, want uint64) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur >= want {
		return lim.Cur
	}
	raised := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
		return want
	}
	lim.Cur = lim.Max
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	return lim.Cur
}

// metricValue is the value of the sample whose line starts with series
// (name and labels, as /metrics writes them) in text, or -1 when there is
// none.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			require.NoError(t, err, line)
			return v
		}
	}
	return -1
}

// scrapeURL reads a /metrics page.
func scrapeURL(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}
