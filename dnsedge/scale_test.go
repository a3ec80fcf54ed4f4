package dnsedge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
)

// The edge at scale. The tests here run in `make test` on a small data set
// and check behaviour, not speed; with DNSEDGE_SCALE=1 (`make
// bench-dns-scale`) they run on 100,000 domains against the targets:
//
//   - the index loads from PostgreSQL in under 10 s and from the snapshot
//     file in under 3 s, each edge process staying under 1 GB resident;
//   - with two edges following one database, a change committed the way the
//     API commits it is answered by both within 1 s at the 99th percentile
//     (1,000 changes);
//   - a restarted edge with PostgreSQL unreachable answers every question as
//     before.
//
// Timings are measured on edge processes (cmd/dnsedge, built by the test or
// DNSEDGE_BIN), so that the resident size is the edge's alone.

// Targets of the scale run.
const (
	scaleDomains       = 100_000
	scaleChanges       = 1_000
	targetLoadFromDB   = 10 * time.Second
	targetLoadFromDisk = 3 * time.Second
	targetRSS          = 1_000_000_000 // bytes
	targetPropagation  = time.Second   // p99, commit to answer on every edge
)

// scaleRun reports whether the tests run at full scale (DNSEDGE_SCALE=1).
func scaleRun() bool { return os.Getenv("DNSEDGE_SCALE") != "" }

// TestScaleLoad loads a generated data set from PostgreSQL, checks the
// answers, and restarts from the snapshot file with PostgreSQL unreachable:
// same serial at once, byte-identical answers.
func TestScaleLoad(t *testing.T) {
	t.Parallel()
	const n = 5_000
	db := newTestDB(t)
	last := genLoad(t, db.pool, n)
	path := filepath.Join(t.TempDir(), "edge.snapshot")
	cfg := Config{DatabaseURL: db.url, SnapshotPath: path, ReportsDomain: "reports.rampart.test"}
	first := startEdge(t, cfg)
	// Deadlines here only bound a hang; speed is measured at scale.
	waitFor(t, time.Minute, "load from PostgreSQL", func() bool { return first.Serial() == last })
	waitFor(t, time.Minute, "snapshot written", func() bool { return strings.Contains(first.logs.String(), "wrote snapshot file") })
	t.Logf("load from PostgreSQL: %s; snapshot write: %s", logDuration(first.logs.String(), "loaded edge tables"),
		logDuration(first.logs.String(), "wrote snapshot file"))

	// The file stays compact: about 1.6 KB a domain, most of it the three
	// DKIM keys (the column's JSON).
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Less(t, fi.Size()/n, int64(2048), "snapshot bytes per domain")

	var sample []int
	for i := 0; i < n; i += n / 40 {
		sample = append(sample, i)
	}
	sample = append(sample, 49, n-1) // a blocked one, the last one
	var qs, before []*dns.Msg
	for _, i := range sample {
		q := genQueries(i)
		replies := askAll(t, first.UDPAddr(), q)
		requireGenAnswers(t, i, 0, replies)
		qs, before = append(qs, q...), append(before, replies...)
	}
	first.stop()

	cfg.DatabaseURL = deadDatabaseURL(t)
	second := startEdge(t, cfg)
	require.Equal(t, last, second.Serial(), "serving the file as soon as Start returns")
	require.Equal(t, n, second.index.Load().numDomains())
	requireSameReplies(t, qs, before, askAll(t, second.UDPAddr(), qs))
	t.Logf("load from the snapshot file: %s", logDuration(second.logs.String(), "serving snapshot file"))
}

// TestPropagation follows one database with two edges and measures, for
// every change committed the way the API commits it, the time until both
// answer it. It measures latency, so it does not run in parallel with the
// package's other tests: under the race detector, on two busy cores, they
// took the 99th percentile past a second.
func TestPropagation(t *testing.T) {
	const n, changes = 2_000, 200
	db := newTestDB(t)
	last := genLoad(t, db.pool, n)
	var addrs []net.Addr
	for range 2 {
		e := startEdge(t, Config{DatabaseURL: db.url, SnapshotPath: filepath.Join(t.TempDir(), "edge.snapshot")})
		waitFor(t, time.Minute, "initial load", func() bool { return e.Serial() == last })
		addrs = append(addrs, e.UDPAddr())
	}
	lat := measurePropagation(t, db.pool, addrs, n, changes, 0)
	t.Logf("%d changes, 2 edges: %s", changes, lat)
	require.Less(t, lat.p99, targetPropagation, "p99, commit to answer on both edges")
}

// latencies summarises the times a change took to be answered.
type latencies struct {
	p50, p90, p99, max time.Duration
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %v, p90 %v, p99 %v, max %v", l.p50.Round(time.Millisecond), l.p90.Round(time.Millisecond),
		l.p99.Round(time.Millisecond), l.max.Round(time.Millisecond))
}

func summarise(ds []time.Duration) latencies {
	slices.Sort(ds)
	at := func(p int) time.Duration { return ds[(len(ds)*p+99)/100-1] }
	return latencies{p50: at(50), p90: at(90), p99: at(99), max: ds[len(ds)-1]}
}

// propagationWriters is how many API writers commit changes at once;
// propagationEvery paces each at scale: 100 changes a second in all.
const (
	propagationWriters = 4
	propagationEvery   = 40 * time.Millisecond
)

// measurePropagation commits changes to generated domains (of n) from
// propagationWriters writers, each committing its next change once the last
// is answered and at least every apart, and returns how long each took from
// commit to the new DMARC record on every edge. A change not answered
// within 10 s fails the test.
func measurePropagation(t *testing.T, pool *pgxpool.Pool, edges []net.Addr, n, changes int, every time.Duration) latencies {
	t.Helper()
	ctx := context.Background()
	var (
		mu   sync.Mutex
		took []time.Duration
		wg   sync.WaitGroup
		errs = make(chan error, propagationWriters)
	)
	for w := range propagationWriters {
		wg.Go(func() {
			for k := w; k < changes; k += propagationWriters {
				// A prime stride visits distinct domains spread over the set.
				i, v := k*7919%n, k+1
				next := time.Now().Add(every)
				if _, err := putGenDomain(ctx, pool, i, v); err != nil {
					errs <- err
					return
				}
				committed := time.Now()
				d, err := awaitTXT(edges, "_dmarc."+genDomainName(i)+".", genDMARC(i, v), committed.Add(10*time.Second))
				if err != nil {
					errs <- fmt.Errorf("change %d (domain %d): %w", k, i, err)
					return
				}
				mu.Lock()
				took = append(took, d.Sub(committed))
				mu.Unlock()
				time.Sleep(time.Until(next))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, took, changes)
	return summarise(took)
}

// awaitTXT polls every edge for the TXT record at name until all answer
// want, and returns when the last one did.
func awaitTXT(edges []net.Addr, name, want string, deadline time.Time) (time.Time, error) {
	seen := make([]time.Time, len(edges))
	q := question(name, dns.TypeTXT, 1232)
	for {
		done := true
		for i, addr := range edges {
			if !seen[i].IsZero() {
				continue
			}
			r, _, err := tryExchangeUDP(addr, q, 500*time.Millisecond)
			if err == nil && len(r.Answer) == 1 {
				if txt, ok := r.Answer[0].(*dns.TXT); ok && strings.Join(txt.Txt, "") == want {
					seen[i] = time.Now()
					continue
				}
			}
			done = false
		}
		if done {
			return slices.MaxFunc(seen, func(a, b time.Time) int { return a.Compare(b) }), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s not answered %q by every edge in time", name, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logDuration returns the duration logged with the last line holding msg,
// or "?".
func logDuration(logs, msg string) string {
	d := "?"
	for line := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(line, msg) {
			if m := durationField.FindStringSubmatch(line); m != nil {
				d = m[1]
			}
		}
	}
	return d
}

var durationField = regexp.MustCompile(`\bduration=(\S+)`)

// TestScaleTargets runs the edge at scale against the targets (see the top
// of this file). DNSEDGE_SCALE=1 turns it on.
func TestScaleTargets(t *testing.T) {
	if !scaleRun() {
		t.Skip("set DNSEDGE_SCALE=1 to run at scale (make bench-dns-scale)")
	}
	bin := edgeBinary(t)
	db := newTestDB(t)
	start := time.Now()
	last := genLoad(t, db.pool, scaleDomains)
	t.Logf("generated %d domains in %v", scaleDomains, time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	// A resync interval far shorter than the default (5m) puts several
	// resyncs of each edge inside the measured run, which lasts about
	// scaleChanges/propagationWriters*propagationEvery (10 s).
	// DNSEDGE_SCALE_RESYNC sets another.
	resync := cmp.Or(os.Getenv("DNSEDGE_SCALE_RESYNC"), "5s")

	// Two edges following the database, from an empty disk.
	var edges []*edgeProcess
	for k := range 2 {
		p := startEdgeProcess(t, bin, db.url, filepath.Join(dir, fmt.Sprintf("edge%d.snapshot", k)), "-resync", resync)
		took := p.awaitSerial(t, last, time.Minute)
		cpu := p.cpu(t)
		p.awaitLog(t, "wrote snapshot file", time.Minute)
		t.Logf("edge %d: load from PostgreSQL: %v from exec, %v CPU (logged: %s); snapshot write: %s; VmHWM %s",
			k, took.Round(time.Millisecond), cpu, logDuration(p.logs.String(), "loaded edge tables"),
			logDuration(p.logs.String(), "wrote snapshot file"), mb(p.hwm(t)))
		require.Less(t, took, targetLoadFromDB, "load from PostgreSQL, with %v of CPU (more time than CPU: a busy machine)", cpu)
		edges = append(edges, p)
	}

	// The same answers from both.
	var qs []*dns.Msg
	for i := 0; i < scaleDomains; i += scaleDomains / 50 {
		qs = append(qs, genQueries(i)...)
	}
	requireSameReplies(t, qs, askAll(t, edges[0].udp, qs), askAll(t, edges[1].udp, qs))

	lat := measurePropagation(t, db.pool, []net.Addr{edges[0].udp, edges[1].udp}, scaleDomains, scaleChanges, propagationEvery)
	t.Logf("propagation, %d changes, 2 edges, %d writers each committing at most every %v: %s", scaleChanges,
		propagationWriters, propagationEvery, lat)
	require.Less(t, lat.p99, targetPropagation, "p99, commit to answer on both edges")
	for k, p := range edges {
		hwm := p.hwm(t)
		t.Logf("edge %d: VmHWM %s after the changes and %d resyncs", k, mb(hwm), strings.Count(p.logs.String(), "resynced edge tables"))
		require.Less(t, hwm, int64(targetRSS), "peak resident size of edge %d", k)
	}

	// Edge 0 stops (writing its file) and starts again with PostgreSQL
	// unreachable: it answers as edge 1, which followed the database to
	// the end, did. Edge 1 stops too before the restart, so that the
	// restart has the machine to itself.
	serial := edges[1].serial(t)
	edges[0].stop(t)
	for k := range scaleChanges {
		if k%10 == 0 {
			qs = append(qs, genQueries(k*7919%scaleDomains)...)
		}
	}
	want := askAll(t, edges[1].udp, qs)
	edges[1].stop(t)
	restarted := startEdgeProcess(t, bin, deadDatabaseURL(t), edges[0].snapshot)
	took := restarted.awaitSerial(t, serial, time.Minute)
	cpu := restarted.cpu(t)
	t.Logf("restart from the snapshot file: %v from exec, %v CPU (logged: %s); VmHWM %s", took.Round(time.Millisecond),
		cpu, logDuration(restarted.logs.String(), "serving snapshot file"), mb(restarted.hwm(t)))
	require.Less(t, took, targetLoadFromDisk, "load from the snapshot file, with %v of CPU (more time than CPU: a busy machine)", cpu)
	requireSameReplies(t, qs, want, askAll(t, restarted.udp, qs))
	require.Less(t, restarted.hwm(t), int64(targetRSS), "peak resident size after a restart from the file")
}

func mb(n int64) string { return fmt.Sprintf("%d MB", n/1_000_000) }

// edgeBinary is DNSEDGE_BIN (absolute, or relative to this package's
// folder), or cmd/dnsedge built for the test.
func edgeBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("DNSEDGE_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		require.NoError(t, err)
		return abs
	}
	bin := filepath.Join(t.TempDir(), "dnsedge")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/rampartmail/rampart/cmd/dnsedge").CombinedOutput()
	require.NoError(t, err, "build cmd/dnsedge: %s", out)
	return bin
}

// edgeProcess is cmd/dnsedge running as a child process.
type edgeProcess struct {
	cmd      *exec.Cmd
	started  time.Time
	udp      net.Addr
	snapshot string
	logs     *logBuffer
	done     chan error
	once     sync.Once
}

// startEdgeProcess starts the edge binary on a free loopback port, with
// snapshot as its file and extra flags, and stops it when the test ends.
func startEdgeProcess(t *testing.T, bin, databaseURL, snapshot string, extra ...string) *edgeProcess {
	t.Helper()
	port := freePort(t)
	args := append([]string{
		"-listen", "127.0.0.1:" + strconv.Itoa(port), "-edge-zone", testZone,
		"-edge-ns", "ns1.edge.rampart.test=192.0.2.53,ns1.edge.rampart.test=2001:db8::53,ns2.edge.rampart.test=192.0.2.54",
		"-reports-domain", "reports.rampart.test", "-allow-dev-zone", // the test's names are under .test
		"-snapshot", snapshot, "-metrics", "", "-log-level", "debug",
		"-rrl-rate", "0", // a measurement from one source, as make bench-dns
	}, extra...)
	p := &edgeProcess{
		cmd:      exec.Command(bin, args...), //nolint:gosec // G702: bin was built by this test and args are its own flags
		udp:      &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
		snapshot: snapshot,
		logs:     &logBuffer{},
		done:     make(chan error, 1),
	}
	p.cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.started = time.Now()
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("log of the edge on port %d:\n%s", port, p.logs.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit (30 s, then SIGKILL).
func (p *edgeProcess) stop(t *testing.T) {
	t.Helper()
	p.once.Do(func() {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-p.done:
			require.NoError(t, err, "edge exit")
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill() // the test fails below whether or not the kill worked
			<-p.done                 //nolint:errcheck // the killed edge's exit status says only that it was killed
			t.Errorf("edge did not stop within 30 s of SIGTERM")
		}
	})
}

// serial asks the edge for its zone's SOA serial, the index serial; 0 when
// it does not answer it (yet).
func (p *edgeProcess) serial(t *testing.T) int64 {
	t.Helper()
	r, _, err := tryExchangeUDP(p.udp, question(testZone+".", dns.TypeSOA, 0), 500*time.Millisecond)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return 0
	}
	return int64(r.Answer[0].(*dns.SOA).Serial)
}

// awaitSerial waits until the edge serves serial and returns how long after
// its start that was.
func (p *edgeProcess) awaitSerial(t *testing.T, serial int64, d time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(d)
	for p.serial(t) != serial {
		select {
		case err := <-p.done:
			t.Fatalf("edge exited: %v\n%s", err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge does not serve serial %d after %v", serial, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(p.started)
}

// awaitLog waits until the edge has logged msg.
func (p *edgeProcess) awaitLog(t *testing.T, msg string, d time.Duration) {
	t.Helper()
	waitFor(t, d, "log "+msg, func() bool { return strings.Contains(p.logs.String(), msg) })
}

// hwm is the peak resident size of the edge process so far, in bytes.
func (p *edgeProcess) hwm(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err, line)
			return kb * 1024
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// cpu is the CPU time the edge process has used so far (user and system),
// which, unlike the wall time, does not depend on what else the machine
// runs.
func (p *edgeProcess) cpu(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	require.NoError(t, err)
	// Fields after the command name in parentheses: state is the 3rd
	// field, utime and stime the 14th and 15th, in clock ticks.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	require.NoError(t, err)
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	require.NoError(t, err)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// freePort is a loopback port free for both UDP and TCP a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		_ = u.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			require.NoError(t, err)
		}
	}
	t.Fatal("no free port")
	return 0
}

// Benchmarks of the load paths on the generated data set, 100,000 domains.
// Besides the wall time they report the CPU time of the process per
// operation (cpu-ms/op, garbage collection included), which a busy machine
// distorts less.

// cpuTime is the CPU time the test process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs op as the benchmark's operation and reports its CPU time.
func loop(b *testing.B, op func() error) {
	b.Helper()
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

func BenchmarkBuildIndex(b *testing.B) {
	rows, services := genRows(scaleDomains)
	loop(b, func() error {
		if _, errs := buildIndex(int64(len(rows)+len(services)), rows, services); len(errs) > 0 {
			return errs[0]
		}
		return nil
	})
}

func BenchmarkSnapshotWrite(b *testing.B) {
	rows, services := genRows(scaleDomains)
	ix, _ := buildIndex(int64(len(rows)+len(services)), rows, services)
	path := filepath.Join(b.TempDir(), "edge.snapshot")
	loop(b, func() error { return writeSnapshot(path, ix, time.Now()) })
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/scaleDomains, "bytes/domain")
}

func BenchmarkSnapshotRead(b *testing.B) {
	// The rows and the index written are garbage once the file is.
	path := func() string {
		rows, services := genRows(scaleDomains)
		ix, _ := buildIndex(int64(len(rows)+len(services)), rows, services)
		path := filepath.Join(b.TempDir(), "edge.snapshot")
		if err := writeSnapshot(path, ix, time.Now()); err != nil {
			b.Fatal(err)
		}
		return path
	}()
	runtime.GC()
	loop(b, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		_, err = readSnapshot(f, fi.Size())
		return err
	})
}

// BenchmarkFullLoad measures the loads from PostgreSQL: into an empty edge
// (cold: the first start), into an edge serving the same rows (reload: the
// first connection after a start from the snapshot file, or a reconnection),
// and the periodic resync of an edge following the database.
func BenchmarkFullLoad(b *testing.B) {
	url := dbtest.NewDB(b)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	genLoad(b, pool, scaleDomains)
	e, err := New(Config{Zone: testZone, DatabaseURL: url}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, e.dbcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	b.Run("cold", func(b *testing.B) {
		loop(b, func() error {
			e.index.Store(nil)
			return e.fullLoad(ctx, conn, false)
		})
	})
	b.Run("reload", func(b *testing.B) {
		loop(b, func() error { return e.fullLoad(ctx, conn, false) })
	})
	b.Run("resync", func(b *testing.B) {
		loop(b, func() error { return e.resync(ctx, conn) })
	})
}
