//go:build resolverbench

package resolvercost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/spf"
)

// The measurement reads its setting from the environment that
// scripts/bench-dns gives it:
//
//	RESOLVER_EDGE     the edge's UDP address (127.0.0.1:port)
//	RESOLVER_METRICS  the edge's /metrics address, to check the count
//	RESOLVER_ZONE     the edge zone
//	RESOLVER_DOMAINS  how many bench domains the edge serves (d00000...)
//	RESOLVER_TUPLES   tuples per configuration (200)
//	RESOLVER_OUT      a file for the result table (optional)
//	UNBOUND           the unbound binary (unbound)
type setting struct {
	edge, metrics, zone, out, unbound string
	domains, tuples                   int
}

func settings(t *testing.T) setting {
	t.Helper()
	s := setting{
		edge:    os.Getenv("RESOLVER_EDGE"),
		metrics: os.Getenv("RESOLVER_METRICS"),
		zone:    strings.TrimSuffix(os.Getenv("RESOLVER_ZONE"), "."),
		out:     os.Getenv("RESOLVER_OUT"),
		unbound: os.Getenv("UNBOUND"),
		tuples:  200,
	}
	if s.edge == "" || s.zone == "" {
		t.Skip("run through make bench-dns (RESOLVER_EDGE and RESOLVER_ZONE unset)")
	}
	if s.unbound == "" {
		s.unbound = "unbound"
	}
	var err error
	s.domains, err = strconv.Atoi(os.Getenv("RESOLVER_DOMAINS"))
	require.NoError(t, err, "RESOLVER_DOMAINS")
	if v := os.Getenv("RESOLVER_TUPLES"); v != "" {
		s.tuples, err = strconv.Atoi(v)
		require.NoError(t, err, "RESOLVER_TUPLES")
	}
	require.Positive(t, s.tuples)
	require.LessOrEqual(t, s.tuples, s.domains, "one domain per tuple")
	require.LessOrEqual(t, s.tuples, 5000, "a bounded run")
	return s
}

// The published records, as the customer's domain holds them.
func legacyRecord(zone, _ string) string {
	return "v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf." + zone + " include:%{d}._nspf." + zone + " ~all"
}

func currentRecord(zone, domain string) string {
	return "v=spf1 include:%{i}._ip." + domain + "._spf." + zone + " redirect=" + domain + "._rspf." + zone
}

// form is a published record. heloStep, when set, rewrites the HELO step
// of the _rspf answer, include:%{h2}._ehlo.<domain>..., to
// include:<heloStep>._ehlo.<domain>...: layouts the edge does not publish
// (the full HELO, or the address and the HELO as the first current form
// did), measured for what the address and HELO labels cost. Every name
// under _spf has a TXT record, so the resolver walks them exactly as it
// would a served one.
type form struct {
	name     string
	record   func(zone, domain string) string
	heloStep string
}

var forms = []form{
	{name: "legacy", record: legacyRecord},
	{name: "current (HELO step %{h2}._ehlo)", record: currentRecord},
	{name: "current, HELO step %{h}._ehlo", record: currentRecord, heloStep: "%{h}"},
	{name: "current, HELO step %{i}._ip.%{h}._ehlo", record: currentRecord, heloStep: "%{i}._ip.%{h}"},
}

// mode is an Unbound QNAME minimisation setting. cut, when set, gives
// Unbound a stub zone at <domain>._spf.<edge zone> for every domain
// measured: the state of a resolver that has learnt a zone cut there, which
// is how much a cut per domain would save (the edge has none).
type mode struct {
	name, minimise, strict string
	cut                    bool
}

var modes = []mode{
	{name: "relaxed", minimise: "yes", strict: "no"}, // Unbound's default
	{name: "strict", minimise: "yes", strict: "yes"},
	{name: "off", minimise: "no", strict: "no"},
	{name: "relaxed, cut known", minimise: "yes", strict: "no", cut: true},
}

// tuple is one (address, HELO, domain) a receiver checks.
type tuple struct {
	ip     netip.Addr
	helo   string
	domain string
}

// benchDomain is the name scripts/bench-dns gives domain i, and its first
// enabled service's number.
func benchDomain(i int) (name string, svc int) {
	return fmt.Sprintf("d%05d.bench.example", i), i%20 + 1
}

// tuples returns the n tuples measured, one domain each, and for each one a
// primer: an earlier tuple of the same domain from another address and
// another host of the same HELO domain (mx-prime.sender1.example before
// mx1.sender1.example), which leaves the domain's names in a warm cache. A third of the tuples has
// an address in the domain's netblock (pass at the first include), a third
// an unknown address and HELO, a third an unknown address with the HELO of
// one of the domain's services (so the current form reaches its HELO step).
func tuples(n int, v6 bool) (measured, primers []tuple) {
	for j := range n {
		d, svc := benchDomain(j)
		a, b := j/256+1, j%256+1
		var hit, miss, prime netip.Addr
		if v6 {
			hit = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(a >> 8), byte(a), byte(b >> 8), byte(b), 14: byte((j + 1) >> 8), 15: byte(j + 1)})
			miss = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0xff, 0xff, 14: byte((j + 1) >> 8), 15: byte(j + 1)})
			prime = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xfe, 14: byte((j + 1) >> 8), 15: byte(j + 1)})
		} else {
			hit = netip.AddrFrom4([4]byte{10, byte(a), byte(b - 1), byte(j%250 + 2)})
			miss = netip.AddrFrom4([4]byte{203, 0, 113, byte(j%250 + 1)})
			prime = netip.AddrFrom4([4]byte{198, 51, 100, byte(j%250 + 1)})
		}
		t := tuple{ip: miss, helo: fmt.Sprintf("mx%d.sender%d.example", j%50, j), domain: d}
		switch j % 3 {
		case 0:
			t.ip = hit
		case 2:
			t.helo = fmt.Sprintf("mta%d.svc%02d.example", j%9, svc)
		}
		measured = append(measured, t)
		_, heloDomain, _ := strings.Cut(t.helo, ".")
		primers = append(primers, tuple{ip: prime, helo: "prime." + heloDomain, domain: d})
	}
	return measured, primers
}

// receiver is the DNS as a receiver's SPF library sees it: the customer's
// domain holds the published record, names in the edge zone are asked of
// the resolver, and any other name (a vendor's include) holds a record that
// matches nothing, answered here so that nothing leaves the machine.
type receiver struct {
	resolver *spf.DNSResolver
	zone     string
	domain   string
	record   string
	heloStep string
}

func (r *receiver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	switch {
	case n == r.domain:
		return []string{r.record}, nil
	case strings.HasSuffix(n, "."+r.zone):
		txts, err := r.resolver.LookupTXT(ctx, name)
		if r.heloStep != "" && strings.HasSuffix(n, "._rspf."+r.zone) {
			for i, t := range txts {
				txts[i] = strings.ReplaceAll(t, "%{h2}._ehlo.", r.heloStep+"._ehlo.")
			}
		}
		return txts, err
	}
	return []string{"v=spf1 -all"}, nil
}

func (r *receiver) LookupIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, spf.ErrNotFound
}

func (r *receiver) LookupMX(context.Context, string) ([]string, error) { return nil, spf.ErrNotFound }

func (r *receiver) LookupPTR(context.Context, netip.Addr) ([]string, error) {
	return nil, spf.ErrNotFound
}

// relay passes UDP queries from Unbound to the edge and logs each one: the
// exact count of what the edge receives, with the names.
type relay struct {
	pc       net.PacketConn
	upstream string
	mu       sync.Mutex
	log      []string
}

func startRelay(t *testing.T, upstream string) *relay {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &relay{pc: pc, upstream: upstream}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pkt := bytes.Clone(buf[:n])
			r.record(pkt)
			wg.Go(func() { r.forward(pkt, from) })
		}
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		<-done
	})
	return r
}

func (r *relay) record(pkt []byte) {
	var m dns.Msg
	line := "(unparsable)"
	if m.Unpack(pkt) == nil && len(m.Question) == 1 {
		q := m.Question[0]
		line = dns.TypeToString[q.Qtype] + " " + strings.ToLower(q.Name)
	}
	r.mu.Lock()
	r.log = append(r.log, line)
	r.mu.Unlock()
}

func (r *relay) forward(pkt []byte, from net.Addr) {
	c, err := net.Dial("udp", r.upstream)
	if err != nil {
		return
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		return
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return
	}
	_, _ = r.pc.WriteTo(buf[:n], from)
}

// mark returns the number of queries logged so far; since returns those
// logged after a mark.
func (r *relay) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

func (r *relay) since(m int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log[m:]...)
}

// startUnbound runs a fresh Unbound (an empty cache) on loopback, with the
// edge zone as a stub zone whose server is the relay, and every other name
// refused so that nothing leaves the machine. It returns its address.
func startUnbound(t *testing.T, s setting, m mode, relayAddr string, cuts []string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	_, relayPort, err := net.SplitHostPort(relayAddr)
	require.NoError(t, err)
	conf := fmt.Sprintf(`server:
	interface: 127.0.0.1
	port: %d
	do-ip6: no
	do-daemonize: no
	use-systemd: no
	username: ""
	chroot: ""
	directory: "%[2]s"
	pidfile: "%[2]s/unbound.pid"
	logfile: ""
	use-syslog: no
	verbosity: 0
	num-threads: 1
	module-config: "iterator"
	do-not-query-localhost: no
	qname-minimisation: %s
	qname-minimisation-strict: %s
	prefetch: no
	access-control: 127.0.0.0/8 allow
	local-zone: "." refuse
	local-zone: "%[5]s." transparent
remote-control:
	control-enable: no
stub-zone:
	name: "%[5]s."
	stub-addr: 127.0.0.1@%[6]s
	stub-prime: no
`, port, dir, m.minimise, m.strict, s.zone, relayPort)
	for _, c := range cuts {
		conf += fmt.Sprintf("stub-zone:\n\tname: \"%s.\"\n\tstub-addr: 127.0.0.1@%s\n\tstub-prime: no\n", c, relayPort)
	}
	path := filepath.Join(dir, "unbound.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
	var stderr bytes.Buffer
	cmd := exec.Command(s.unbound, "-d", "-c", path)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			t.Logf("unbound: %v", err)
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			t.Logf("unbound killed: %v", <-exited)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Ready when it answers localhost from its own local zone.
	deadline := time.Now().Add(10 * time.Second)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for {
		q := new(dns.Msg)
		q.SetQuestion("localhost.", dns.TypeA)
		if r, _, err := c.Exchange(q, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return addr
		}
		select {
		case err := <-exited:
			t.Fatalf("unbound exited: %v\n%s", err, stderr.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "unbound not answering after 10 s:\n%s", stderr.String())
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// edgeQueries sums dnsedge_queries_total from the edge's /metrics.
func edgeQueries(t *testing.T, addr string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics") //nolint:noctx // a loopback read in a benchmark
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var total int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "dnsedge_queries_total") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		require.NoError(t, err, line)
		total += int64(v)
	}
	require.NoError(t, sc.Err())
	return total
}

// cell is the count for one configuration.
type cell struct {
	n, sum, max int
	results     map[spf.Result]int
	sample      [][]string // the queries of the first tuples, one per kind
}

func (c cell) mean() float64 { return float64(c.sum) / float64(c.n) }

// TestResolverCost resolves, through Unbound, the SPF checks of new
// tuples in every configuration and counts the queries the edge receives
// per tuple.
func TestResolverCost(t *testing.T) {
	s := settings(t)
	rl := startRelay(t, s.edge)
	relayAddr := rl.pc.LocalAddr().String()

	type key struct{ form, family, cache, mode string }
	cells := map[key]cell{}
	start := time.Now()
	for _, m := range modes {
		for _, f := range forms {
			for _, v6 := range []bool{false, true} {
				family := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
				for _, warm := range []bool{false, true} {
					cache := map[bool]string{false: "cold", true: "warm"}[warm]
					k := key{f.name, family, cache, m.name}
					cells[k] = measure(t, s, m, f, v6, warm, rl, relayAddr)
					c := cells[k]
					t.Logf("%-7s %-7s %s %-4s: mean %.2f max %d queries per tuple; results %v", m.name, f.name, family, cache, c.mean(), c.max, c.results)
					require.Less(t, time.Since(start), 15*time.Minute, "the measurement is bounded in time")
				}
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Queries at the edge per new (address, HELO, domain), %d tuples per cell: mean / max\n\n", s.tuples)
	b.WriteString("| form | family | resolver cache | minimisation relaxed | strict | off | relaxed, cut known |\n")
	b.WriteString("|------|--------|----------------|---------------------:|-------:|----:|-------------------:|\n")
	for _, f := range forms {
		for _, family := range []string{"IPv4", "IPv6"} {
			for _, cache := range []string{"cold", "warm"} {
				fmt.Fprintf(&b, "| %s | %s | %s |", f.name, family, cache)
				for _, m := range modes {
					c := cells[key{f.name, family, cache, m.name}]
					fmt.Fprintf(&b, " %.2f / %d |", c.mean(), c.max)
				}
				b.WriteString("\n")
			}
		}
	}
	b.WriteString("\nSPF results of the tuples (the same in every cache state unless shown):\n\n")
	for _, f := range forms {
		for _, family := range []string{"IPv4", "IPv6"} {
			for _, m := range modes {
				cold, warm := cells[key{f.name, family, "cold", m.name}], cells[key{f.name, family, "warm", m.name}]
				line := results(cold.results)
				if w := results(warm.results); w != line {
					line = "cold " + line + "; warm " + w
				}
				fmt.Fprintf(&b, "- %s %s, %s: %s\n", f.name, family, m.name, line)
			}
		}
	}
	b.WriteString("\nQueries of the first tuple of each kind (relaxed minimisation):\n")
	for _, f := range forms {
		for _, family := range []string{"IPv4", "IPv6"} {
			for _, cache := range []string{"cold", "warm"} {
				c := cells[key{f.name, family, cache, "relaxed"}]
				for kind, qs := range c.sample {
					fmt.Fprintf(&b, "\n%s %s %s, %s: %d queries\n", f.name, family, cache, kindNames[kind], len(qs))
					for _, q := range qs {
						fmt.Fprintf(&b, "    %s\n", q)
					}
				}
			}
		}
	}
	t.Log("\n" + b.String())
	if s.out != "" {
		require.NoError(t, os.WriteFile(s.out, []byte(b.String()), 0o600))
	}
}

// results lists the count of each SPF result, in a fixed order.
func results(r map[spf.Result]int) string {
	var parts []string
	for _, res := range []spf.Result{spf.Pass, spf.Fail, spf.SoftFail, spf.Neutral, spf.None, spf.TempError, spf.PermError} {
		if r[res] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", res, r[res]))
		}
	}
	return strings.Join(parts, ", ")
}

var kindNames = []string{"address in the netblock", "unknown address and HELO", "unknown address, a service's HELO"}

// measure runs one configuration with a fresh Unbound.
func measure(t *testing.T, s setting, m mode, f form, v6, warm bool, rl *relay, relayAddr string) cell {
	t.Helper()
	measured, primers := tuples(s.tuples, v6)
	var cuts []string
	if m.cut {
		for _, tp := range measured {
			cuts = append(cuts, tp.domain+"._spf."+s.zone)
		}
	}
	unbound := startUnbound(t, s, m, relayAddr, cuts)
	res := spf.NewDNSResolver(unbound)
	check := func(tp tuple) spf.Outcome {
		c := &spf.Checker{
			Resolver: &receiver{resolver: res, zone: s.zone, domain: tp.domain, record: f.record(s.zone, tp.domain), heloStep: f.heloStep},
			Timeout:  10 * time.Second,
		}
		return c.CheckHost(context.Background(), tp.ip, tp.domain, "postmaster@"+tp.domain, tp.helo)
	}
	var before int64
	if s.metrics != "" {
		before = edgeQueries(t, s.metrics)
	}
	first := rl.mark()
	c := cell{results: map[spf.Result]int{}, sample: make([][]string, len(kindNames))}
	for j, tp := range measured {
		if warm {
			check(primers[j])
		}
		mk := rl.mark()
		out := check(tp)
		if errors.Is(out.Err, context.DeadlineExceeded) {
			t.Fatalf("tuple %v: %v", tp, out.Err)
		}
		qs := rl.since(mk)
		c.n++
		c.sum += len(qs)
		c.max = max(c.max, len(qs))
		c.results[out.Result]++
		if j < len(kindNames) {
			c.sample[j] = qs
		}
	}
	if s.metrics != "" {
		// The relay's count is what the edge counted: nothing was lost.
		got := edgeQueries(t, s.metrics) - before
		require.Equal(t, int64(rl.mark()-first), got, "queries at the edge's /metrics vs the relay's log")
	}
	return c
}
