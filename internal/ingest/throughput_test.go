//go:build ingestbench

package ingest_test

// The report ingestion benchmark behind make bench-ingest. Its build tag
// keeps it out of go test ./...:
//
//	go test -tags ingestbench -run '^TestIngestThroughput$' -count=1 -v ./internal/ingest/
//
// INGEST_BENCH=large or INGEST_BENCH=small runs one part only.

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/report/reportgen"
	"github.com/rampartmail/rampart/internal/sender"
	"github.com/rampartmail/rampart/internal/sources"
)

const (
	largeRecords = 100_000
	smallReports = 1_000
	smallRecords = 5
	// Accepting goroutines for the small reports, as concurrent SMTP
	// sessions or uploads would be.
	smallSenders = 8
)

// The River and pool settings, as a serve process on this machine would
// have them: the report queue as QueueConfig gives it, and a pool with a
// connection for each worker and some for River and the intake.
const (
	benchWorkers   = 16
	benchPoolConns = 24
)

// classifier is the benchmark's, set up by TestIngestThroughput.
var classifier *sources.Classifier

// TestIngestThroughput measures ingestion end to end, from the call to
// Accept to the committed rows and rollups and on to the report's sources
// classified (and to River's completion event):
//
//   - one gzipped 100,000-record report: records/s, and the process's peak
//     RSS while it was accepted and ingested;
//   - 1,000 reports of 5 records each, accepted from 8 goroutines while the
//     workers run: reports/s.
//
// Classification is what sources.classify does when it runs: a
// [sources.Classifier] run over the days the ingest queued, with the shipped
// catalog's services, as a deployment that looks up reverse names (with
// such a deployment the first run classifies every source, then leaves the
// day queued for the reverse names, which enrich.sources looks up at its
// own rate; that later run is not timed). The classifier is run as soon as
// the ingest job has committed: the wait for the job's next tick (up to a
// minute in a serving process) is not part of the work measured.
//
// It also prints the CPU time this process and PostgreSQL spent, which
// varies less than the elapsed time on a machine shared with other work.
// With INGEST_BENCH_DUMP set to a folder the server may write to, it
// leaves there the rows the large report stored, as binary COPY files
// (make bench-ingest-rows times each table's COPY alone from them).
func TestIngestThroughput(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.NewDB(t))
	require.NoError(t, err)
	cfg.MaxConns = benchPoolConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	// The classifier the ingest workers classify a new day's sources with,
	// as a serving process's (jobs.NewClient) do.
	classifier = sources.NewClassifier(pool, true, slog.New(slog.DiscardHandler))
	e := setupPool(t, pool, ingest.Options{Classifier: classifier})
	// Retention is left out: the synthetic reports are dated June 2024,
	// which it may find too old.
	client := e.startRiverWith(t, map[string]river.QueueConfig{ingest.Queue: ingest.QueueConfig(benchWorkers)})
	events, stop := client.Subscribe(riverEvents...)
	defer stop()
	store := ingest.NewStore(e.pool, client, nil)
	services, err := catalog.Load()
	require.NoError(t, err)
	require.NoError(t, sender.NewManager(pool, nil, nil).SyncCatalog(ctx, services))

	var pgVersion string
	require.NoError(t, pool.QueryRow(ctx, `SHOW server_version`).Scan(&pgVersion))
	var fsync string
	require.NoError(t, pool.QueryRow(ctx, `SHOW fsync`).Scan(&fsync))
	fmt.Printf("bench-ingest: %s, GOMAXPROCS %d, PostgreSQL %s (%s; fsync %s), %d workers (FetchCooldown %s), pool of %d, load average %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), pgVersion, cmp.Or(os.Getenv("BENCH_PG_SETTINGS"), "settings of TEST_DATABASE_URL"), fsync,
		benchWorkers, ingest.QueueConfig(benchWorkers).FetchCooldown, benchPoolConns, loadAverage())

	// A serving process is warm: its connections have their statements
	// prepared and the month's partition exists. One small report gets the
	// benchmark there. It is dated the day before the large report, which
	// is then the first report of its day, as a reporter's daily report
	// often is: its rollups are copied, not upserted (rollup.go).
	warmRaw := bytes.Replace(reportgen.GenerateReport(3), []byte("<begin>1718236800</begin>\n      <end>1718323199</end>"),
		[]byte("<begin>1718150400</begin>\n      <end>1718236799</end>"), 1)
	require.NotEqual(t, reportgen.GenerateReport(3), warmRaw)
	warm, err := store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account, Raw: warmRaw})
	require.NoError(t, err)
	waitJob(t, events, warm.JobID)
	e.classify(t)

	part := os.Getenv("INGEST_BENCH")
	if part != "small" {
		e.benchLarge(t, store, events)
	}
	if part != "large" {
		e.benchSmall(t, store, events)
	}
}

func (e *env) benchLarge(t *testing.T, store *ingest.Store, events <-chan *riverEvent) {
	ctx := context.Background()
	// Generated straight into gzip, so that the 76 MB of XML never sit in
	// memory.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	xml := &countingWriter{w: zw}
	require.NoError(t, reportgen.WriteReport(xml, largeRecords))
	require.NoError(t, zw.Close())
	raw := gz.Bytes()
	runtime.GC()
	resetPeakRSS(t)
	before := rss(t, "VmRSS")
	cpu := e.cpuClock(t)

	waits := e.sampleWaits(t)
	start := time.Now()
	acc, err := store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account, Raw: raw})
	require.NoError(t, err)
	accepted := time.Since(start)
	ev := waitJob(t, events, acc.JobID)
	completed := time.Since(start)
	// The rows and rollups are committed when the job's work returns; the
	// classification starts then.
	committed := accepted + ev.JobStats.QueueWaitDuration + ev.JobStats.RunDuration
	classified, classifyTime := e.classifyTimed(t)
	end := committed + classifyTime
	waited := waits()
	peak := rss(t, "VmHWM")
	goCPU, pgCPU, sessions := cpu()

	require.Equal(t, "stored", e.blob(t, acc.BlobID).Status)
	_, records, messages, _ := e.stored(t)
	require.Equal(t, int64(largeRecords+3), records)
	require.Equal(t, messages-e.count(t, `SELECT message_count FROM reports WHERE report_id = 'synthetic-3'`),
		e.count(t, `SELECT message_count FROM reports WHERE report_id = 'synthetic-100000'`))
	require.Equal(t, e.count(t, `SELECT count(*) FROM (SELECT DISTINCT domain_id, day, source_ip FROM report_sources) s`), classified,
		"every source of the reports classified")
	fmt.Printf("bench-ingest: large report: %d records, %.1f MB gzip (%.0f MB of XML)\n",
		largeRecords, float64(len(raw))/(1<<20), float64(xml.n)/(1<<20))
	fmt.Printf("bench-ingest:   rows and rollups committed %s after Accept was called (%.0f records/s), sources classified %s later: %s, %.0f records/s end to end\n",
		committed.Round(time.Millisecond), largeRecords/committed.Seconds(), classifyTime.Round(time.Millisecond),
		end.Round(time.Millisecond), largeRecords/end.Seconds())
	fmt.Printf("bench-ingest:   (Accept %s, queue wait %s, job %s at %.0f records/s; River's completion event after %s: %.0f records/s)\n",
		accepted.Round(time.Millisecond), ev.JobStats.QueueWaitDuration.Round(time.Millisecond),
		ev.JobStats.RunDuration.Round(time.Millisecond), largeRecords/ev.JobStats.RunDuration.Seconds(),
		completed.Round(time.Millisecond), largeRecords/completed.Seconds())
	fmt.Printf("bench-ingest:   peak RSS %.1f MB (%.1f MB before the report); CPU: Go %s, PostgreSQL %s (%.1f µs per record)\n",
		float64(peak)/(1<<20), float64(before)/(1<<20), goCPU.Round(time.Millisecond), pgCPU.Round(time.Millisecond),
		float64((goCPU+pgCPU).Microseconds())/largeRecords)
	fmt.Printf("bench-ingest:   PostgreSQL CPU of its busiest sessions (the ingest's and the classification's, in either order): %s\n", busiest(sessions, 3))
	fmt.Printf("bench-ingest:   what the database's busy sessions were doing, sampled every 20 ms: %s\n", waited)
	if dir := os.Getenv("INGEST_BENCH_DUMP"); dir != "" {
		e.dumpRows(t, dir)
	}

	// The baseline, in the same run: the same bytes gunzipped and decoded
	// by encoding/xml alone into the report's structure, nothing stored.
	xmlStart := time.Now()
	n := decodeWithEncodingXML(t, raw)
	xmlTime := time.Since(xmlStart)
	require.Equal(t, largeRecords, n)
	fmt.Printf("bench-ingest:   baseline: encoding/xml alone decodes it in %s (%.0f records/s): end-to-end ingest, stored, rolled up and classified, is %.2fx that speed (%.2fx to the committed rows and rollups)\n",
		xmlTime.Round(time.Millisecond), largeRecords/xmlTime.Seconds(), xmlTime.Seconds()/end.Seconds(), xmlTime.Seconds()/committed.Seconds())
}

// xmlFeedback is an aggregate report as encoding/xml decodes it, for the
// baseline: the elements ingest reads.
type xmlFeedback struct {
	Metadata struct {
		OrgName  string `xml:"org_name"`
		Email    string `xml:"email"`
		ReportID string `xml:"report_id"`
		Begin    int64  `xml:"date_range>begin"`
		End      int64  `xml:"date_range>end"`
	} `xml:"report_metadata"`
	Policy struct {
		Domain string `xml:"domain"`
		P      string `xml:"p"`
	} `xml:"policy_published"`
}

type xmlRecord struct {
	SourceIP    string `xml:"row>source_ip"`
	Count       int64  `xml:"row>count"`
	Disposition string `xml:"row>policy_evaluated>disposition"`
	DKIM        string `xml:"row>policy_evaluated>dkim"`
	SPF         string `xml:"row>policy_evaluated>spf"`
	HeaderFrom  string `xml:"identifiers>header_from"`
	Auth        struct {
		DKIM []struct {
			Domain, Selector, Result string
		} `xml:"dkim"`
		SPF []struct {
			Domain, Scope, Result string
		} `xml:"spf"`
	} `xml:"auth_results"`
}

// decodeWithEncodingXML decodes the gzipped report record by record, as a
// streaming decoder built on encoding/xml would, and returns the records.
func decodeWithEncodingXML(t *testing.T, raw []byte) int {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	require.NoError(t, err)
	d := xml.NewDecoder(zr)
	n := 0
	var meta xmlFeedback
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "report_metadata":
			require.NoError(t, d.DecodeElement(&meta.Metadata, &se))
		case "policy_published":
			require.NoError(t, d.DecodeElement(&meta.Policy, &se))
		case "record":
			var r xmlRecord
			require.NoError(t, d.DecodeElement(&r, &se))
			n++
		}
	}
	return n
}

// sampleWaits samples, until the returned function is called, what the
// active sessions of the test's database wait on ("CPU" when they wait on
// nothing), and returns the counts, most frequent first.
func (e *env) sampleWaits(t *testing.T) func() string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	counts := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rows, err := e.pool.Query(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)
			if err != nil {
				continue
			}
			for rows.Next() {
				var w string
				if rows.Scan(&w) == nil {
					counts[w]++
				}
			}
			rows.Close()
		}
	}()
	return func() string {
		cancel()
		<-done
		type kv struct {
			k string
			v int
		}
		var all []kv
		for k, v := range counts {
			all = append(all, kv{k, v})
		}
		slices.SortFunc(all, func(a, b kv) int { return b.v - a.v })
		var parts []string
		for _, x := range all[:min(len(all), 5)] {
			parts = append(parts, fmt.Sprintf("%s %d", x.k, x.v))
		}
		return strings.Join(parts, ", ")
	}
}

func (e *env) benchSmall(t *testing.T, store *ingest.Store, events <-chan *riverEvent) {
	ctx := context.Background()
	// Each report gets its own report id, or all but one would be
	// duplicates. Their records are the same, so all of them add up in the
	// same five rollup rows: the most contended case.
	small := reportgen.GenerateReport(smallRecords)
	id := []byte("<report_id>synthetic-" + strconv.Itoa(smallRecords) + "</report_id>")
	require.True(t, bytes.Contains(small, id))
	inputs := make([][]byte, smallReports)
	for i := range inputs {
		inputs[i] = bytes.Replace(small, id, fmt.Appendf(nil, "<report_id>small-%d</report_id>", i), 1)
	}
	jobs := make(chan int64, smallReports)
	cpu := e.cpuClock(t)

	start := time.Now()
	var wg sync.WaitGroup
	for w := range smallSenders {
		wg.Go(func() {
			for i := w; i < smallReports; i += smallSenders {
				acc, err := store.Accept(ctx, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account, Raw: inputs[i]})
				if err != nil {
					t.Error(err)
					return
				}
				jobs <- acc.JobID
			}
		})
	}
	wg.Wait()
	close(jobs)
	acceptedAll := time.Since(start)
	var ids []int64
	for id := range jobs {
		ids = append(ids, id)
	}
	for _, kind := range waitJobs(t, events, ids...) {
		require.Equal(t, "job_completed", kind)
	}
	e.classify(t)
	elapsed := time.Since(start)
	goCPU, pgCPU, _ := cpu()

	require.Equal(t, int64(smallReports), e.count(t, `SELECT count(*) FROM reports WHERE report_id LIKE 'small-%'`))
	fmt.Printf("bench-ingest: small reports: %d reports of %d records, accepted from %d goroutines, all completed and classified after %s: %.0f reports/s end to end\n",
		smallReports, smallRecords, smallSenders, elapsed.Round(time.Millisecond), smallReports/elapsed.Seconds())
	fmt.Printf("bench-ingest:   (all accepted after %s; CPU: Go %s, PostgreSQL %s, %.2f ms per report)\n",
		acceptedAll.Round(time.Millisecond), goCPU.Round(time.Millisecond), pgCPU.Round(time.Millisecond),
		float64((goCPU+pgCPU).Microseconds())/1000/smallReports)
}

// classify runs the classifier until no queued day is due, as
// sources.classify does, and returns how many sources of the reports'
// days have a class.
func (e *env) classify(t *testing.T) int64 {
	t.Helper()
	n, _ := e.classifyTimed(t)
	return n
}

// classifyTimed is classify, and also returns how long the classifier's run
// took (not the count after it).
func (e *env) classifyTimed(t *testing.T) (int64, time.Duration) {
	t.Helper()
	start := time.Now()
	run, err := classifier.Run(context.Background(), time.Time{})
	took := time.Since(start)
	require.NoError(t, err)
	require.True(t, run.Done)
	return e.count(t, `SELECT count(*) FROM source_classes c
		WHERE EXISTS (SELECT 1 FROM report_sources s WHERE (s.domain_id, s.day, s.source_ip) = (c.domain_id, c.day, c.source_ip))`), took
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func waitJob(t *testing.T, events <-chan *riverEvent, id int64) *riverEvent {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev := <-events:
			if ev.Job != nil && ev.Job.ID == id {
				require.Equal(t, "job_completed", string(ev.Kind), "%v", ev.Job.Errors)
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for job %d", id)
		}
	}
}

// resetPeakRSS resets the kernel's record of the process's peak resident
// set (VmHWM), so that it measures from now on.
func resetPeakRSS(t *testing.T) {
	t.Helper()
	require.NoError(t, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0))
}

// rss reads a size from /proc/self/status, in bytes.
func rss(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// cpuClock starts measuring the CPU time spent by this process and by the
// PostgreSQL backends serving the test's database; the function it returns
// reads both. Backends that exit in between are not counted; the pool keeps
// its connections for the whole run.
func (e *env) cpuClock(t *testing.T) func() (goCPU, pgCPU time.Duration, sessions []time.Duration) {
	t.Helper()
	db := e.pool.Config().ConnConfig.Database
	self := func() time.Duration {
		var ru syscall.Rusage
		require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	backends := func() map[string]time.Duration {
		out := map[string]time.Duration{}
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, dir := range dirs {
			cmd, err := os.ReadFile(filepath.Join(dir, "cmdline"))
			if err != nil || !bytes.HasPrefix(cmd, []byte("postgres: ")) || !bytes.Contains(cmd, []byte(" "+db+" ")) {
				continue
			}
			stat, err := os.ReadFile(filepath.Join(dir, "stat"))
			if err != nil {
				continue
			}
			// The fields after the command's closing parenthesis; utime
			// and stime are the 14th and 15th of the line, in clock ticks
			// (100 a second on Linux).
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			out[dir] = time.Duration(ut+st) * 10 * time.Millisecond
		}
		return out
	}
	go0, pg0 := self(), backends()
	return func() (time.Duration, time.Duration, []time.Duration) {
		var pg time.Duration
		var sessions []time.Duration
		for dir, d := range backends() {
			pg += d - pg0[dir]
			sessions = append(sessions, d-pg0[dir])
		}
		slices.SortFunc(sessions, func(a, b time.Duration) int { return cmp.Compare(b, a) })
		return self() - go0, pg, sessions
	}
}

// busiest formats the n largest of sessions' CPU times (sorted, largest
// first).
func busiest(sessions []time.Duration, n int) string {
	var parts []string
	for _, d := range sessions[:min(n, len(sessions))] {
		parts = append(parts, d.Round(10*time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}

// dumpRows writes what the large report left in the source tables to dir
// as binary COPY files (report_records.bin, report_sources.bin,
// report_source_dkim.bin, source_classes.bin), so that what PostgreSQL
// spends on each can be timed alone, in psql (docs/benchmarks.md). The
// server writes the files: dir must be writable by its user.
func (e *env) dumpRows(t *testing.T, dir string) {
	t.Helper()
	for _, table := range []string{"report_records", "report_sources", "report_source_dkim", "source_classes"} {
		file := filepath.Join(dir, table+".bin")
		_, err := e.pool.Exec(context.Background(), fmt.Sprintf("COPY (SELECT * FROM %s) TO %s WITH (FORMAT binary)",
			pgx.Identifier{table}.Sanitize(), quoteLiteral(file)))
		require.NoError(t, err)
		fmt.Printf("bench-ingest:   wrote %s\n", file)
	}
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
