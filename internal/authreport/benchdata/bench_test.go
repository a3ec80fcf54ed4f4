//go:build reportbench

package benchdata_test

// The authentication report's read benchmark behind make bench-report. Its
// build tag keeps it out of go test ./...:
//
//	go test -tags reportbench -run '^TestReportReads$' -count=1 -timeout 60m -v ./internal/authreport/benchdata/
//
// REPORT_BENCH_RECORDS and REPORT_BENCH_DOMAINS change the size (10M
// records, 1,000 domains); REPORT_BENCH_EXPLAIN=1 prints the plans of the
// largest domain's and the account's statements over 90 days, and of the
// account's over 30 days ending yesterday (no preset);
// REPORT_BENCH_HOLD=40m keeps the loaded database that long before the
// reads, and prints its URL, for psql.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/authreport/benchdata"
)

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// statements remembers the last statement of each kind the reader ran,
// for EXPLAIN.
type statements struct {
	mu   sync.Mutex
	last map[string]pgx.TraceQueryStartData
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if name, _, ok := strings.Cut(strings.TrimPrefix(d.SQL, "-- name: "), " "); ok && strings.HasPrefix(d.SQL, "-- name: ") {
		s.mu.Lock()
		s.last[name] = d
		s.mu.Unlock()
	}
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

type series struct {
	name string
	d    []time.Duration
}

func (s *series) add(d time.Duration) { s.d = append(s.d, d) }

func (s *series) pct(p float64) time.Duration {
	d := slices.Clone(s.d)
	slices.Sort(d)
	i := int(float64(len(d))*p+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// TestReportReads loads 90 days of realistic data (10M raw records across
// 1,000 domains of one account, with the rollups and classes ingest and the
// classifier make of them) and measures the authentication report's reads
// through authreport.Reader and through the GraphQL handler over HTTP:
// one domain's report (totals and categories, the first page of senders,
// the daily series, the top unidentified sources) over 30 and 90 days, and
// the account's over its 1,000 domains. It prints p50/p95/p99 and fails
// when a p95 misses its target (50 ms for a domain, 300 ms for the
// account).
func TestReportReads(t *testing.T) {
	ctx := context.Background()
	records := envInt("REPORT_BENCH_RECORDS", 10_000_000)
	domains := int(envInt("REPORT_BENCH_DOMAINS", 1000))
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 0 })
	owner := env.NewOwner(t, "Bench")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	t.Logf("load average before loading: %s", loadavg())

	start := time.Now()
	res, err := benchdata.Load(ctx, env.Pool, owner.AccountID, benchdata.Config{Domains: domains, Days: 90, End: today,
		Records: records, Name: "bench-report.com", Seed: 1})
	require.NoError(t, err)
	loaded := time.Since(start)
	// Everything loaded is classified, as the classifier leaves it.
	start = time.Now()
	_, err = env.Pool.Exec(ctx, `DELETE FROM classify_days; DELETE FROM classify_domains`)
	require.NoError(t, err)
	require.NoError(t, benchdata.Summarize(ctx, env.Pool))
	_, err = env.Pool.Exec(ctx, `VACUUM ANALYZE`)
	require.NoError(t, err)
	// The presets of the top unidentified sources, as the classify job
	// keeps them.
	t0 := time.Now()
	presets, err := authreport.RefreshPresets(ctx, env.Pool, time.Now(), time.Time{})
	require.NoError(t, err)
	require.True(t, presets.Done)
	t.Logf("computed %d report presets in %s", presets.Stored, time.Since(t0).Round(time.Millisecond))
	// A fresh access token: loading outlasts the first one.
	login := env.Do(t, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`,
		map[string]any{"e": owner.Email, "p": owner.Password})
	login.NoErrors(t)
	var tok struct {
		Login struct {
			AccessToken string `json:"accessToken"`
		} `json:"login"`
	}
	login.Decode(t, &tok)
	owner.Token = tok.Login.AccessToken
	t.Logf("loaded %d records, %d reports, %d report_sources, %d report_source_dkim, %d source_classes rows for %d domains in %s (%.0f records/s); summarised and analysed in %s",
		res.Records, res.Reports, res.Sources, res.SourceDKIM, res.Classes, len(res.Domains), loaded.Round(time.Second),
		float64(res.Records)/loaded.Seconds(), time.Since(start).Round(time.Second))
	var sizes string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT string_agg(t || ' ' || pg_size_pretty(pg_total_relation_size(t)), ', ' ORDER BY t)
		FROM unnest(ARRAY['report_sources', 'report_source_dkim', 'source_classes', 'report_source_days']) t WHERE to_regclass(t) IS NOT NULL`).Scan(&sizes))
	t.Logf("sizes: %s", sizes)
	if hold := os.Getenv("REPORT_BENCH_HOLD"); hold != "" {
		// Time to look at the loaded data with psql before the reads.
		d, err := time.ParseDuration(hold)
		require.NoError(t, err)
		t.Logf("holding the loaded database for %s: psql %q", d, env.DatabaseURL)
		time.Sleep(d)
	}

	// The domains by volume: the largest, and a sample across the rest.
	rows, err := env.Pool.Query(ctx, `SELECT d.id, d.name FROM domains d
		LEFT JOIN (SELECT domain_id, sum(message_count) AS m FROM reports GROUP BY 1) r ON r.domain_id = d.id
		WHERE d.account_id = $1 ORDER BY r.m DESC NULLS LAST, d.name`, owner.AccountID)
	require.NoError(t, err)
	byVolume, err := pgx.CollectRows(rows, pgx.RowToStructByPos[benchdata.Domain])
	require.NoError(t, err)
	var sample []benchdata.Domain
	sample = append(sample, byVolume[:5]...)
	for i := 5; i < len(byVolume); i += max(1, len(byVolume)/20) {
		sample = append(sample, byVolume[i])
	}

	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	require.NoError(t, err)
	trace := &statements{last: map[string]pgx.TraceQueryStartData{}}
	cfg.ConnConfig.Tracer = trace
	app.ConfigureSessions(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	r := authreport.New(pool)
	as := access.WithMemo(access.NewContext(ctx, access.Principal{UserID: owner.UserID}))

	// One report: each section in turn, as a page showing it reads them.
	report := func(s *authreport.Scope, sec map[string]*series) time.Duration {
		t0 := time.Now()
		step := func(name string, f func() error) {
			t1 := time.Now()
			require.NoError(t, f())
			sec[name].add(time.Since(t1))
		}
		step("summary", func() error { _, err := r.Summaries(as, []*authreport.Scope{s}); return err })
		step("senders", func() error {
			_, err := r.Senders(as, s, authreport.SenderQuery{First: 20, Sort: authreport.ByMessages})
			return err
		})
		step("daily", func() error { _, err := r.Daily(as, s, ""); return err })
		step("unidentified", func() error { _, err := r.Unidentified(as, s, 10); return err })
		return time.Since(t0)
	}
	newSections := func() map[string]*series {
		m := map[string]*series{}
		for _, n := range []string{"summary", "senders", "daily", "unidentified"} {
			m[n] = &series{name: n}
		}
		return m
	}
	// explain reads a report once, then prints the plans of its
	// statements run again with EXPLAIN (ANALYZE, BUFFERS).
	explain := func(t *testing.T, s *authreport.Scope, what string) {
		t.Helper()
		report(s, newSections())
		trace.mu.Lock()
		last := maps.Clone(trace.last)
		trace.mu.Unlock()
		for _, name := range slices.Sorted(maps.Keys(last)) {
			d := last[name]
			rows, err := env.Pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+d.SQL, d.Args...)
			require.NoError(t, err)
			plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			t.Logf("EXPLAIN %s, %s:\n%s", name, what, strings.Join(plan, "\n"))
		}
	}
	var out []string
	line := func(what string, s *series) {
		l := fmt.Sprintf("| %s | %d | %s | %s | %s |", what, len(s.d), ms(s.pct(0.5)), ms(s.pct(0.95)), ms(s.pct(0.99)))
		t.Log(l)
		out = append(out, l)
	}
	const gqlFields = `totals { messages dmarcPass dmarcPassRate reporters }
		categories { category stats { messages dmarcPass dmarcPassRate } }
		senders(first: 20) { totalCount nodes { category service name sources stats { messages dmarcPass dmarcPassRate spfAlignedRate dkimAlignedRate dispositions { none quarantine reject } reporters } } }
		daily { day stats { messages dmarcPass } }
		unidentified(first: 10) { ip ptr asn country stats { messages dmarcPass } }`
	var failures []string
	check := func(what string, s *series, target time.Duration) {
		if p := s.pct(0.95); p > target {
			failures = append(failures, fmt.Sprintf("%s: p95 %s ms > %s ms", what, ms(p), ms(target)))
		}
	}
	t.Logf("load average before reading: %s", loadavg())
	for _, days := range []int{30, 90} {
		rng := authreport.LastDays(time.Now(), days)
		gqlRange := map[int]string{30: "LAST_30_DAYS", 90: "LAST_90_DAYS"}[days]
		// Warm the caches as a running server's would be.
		for _, d := range sample {
			s, err := r.Domain(as, owner.AccountID, d.ID, rng)
			require.NoError(t, err)
			report(s, newSections())
		}
		sec, total, largest := newSections(), &series{}, &series{}
		for round := range 5 {
			for i, d := range sample {
				s, err := r.Domain(as, owner.AccountID, d.ID, rng)
				require.NoError(t, err)
				took := report(s, sec)
				total.add(took)
				if i == 0 {
					largest.add(took)
				}
				_ = round
			}
		}
		what := fmt.Sprintf("domain, %d days", days)
		line(what+": whole report (Reader)", total)
		line(what+": largest domain (Reader)", largest)
		for _, n := range []string{"summary", "senders", "daily", "unidentified"} {
			line(what+": "+n, sec[n])
		}
		check(what+" (Reader)", total, 50*time.Millisecond)
		gql := &series{}
		for range 3 {
			for _, d := range sample {
				t0 := time.Now()
				env.Do(t, owner.Token, `query($d: String!) { domain(name: $d) { authReport(range: `+gqlRange+`) { `+gqlFields+` } } }`,
					map[string]any{"d": d.Name}).NoErrors(t)
				gql.add(time.Since(t0))
			}
		}
		line(what+": whole report (GraphQL over HTTP)", gql)
		check(what+" (GraphQL)", gql, 50*time.Millisecond)

		whole, err := r.Account(as, owner.AccountID, rng)
		require.NoError(t, err)
		report(whole, newSections())
		// At most 20 reads, or as many as a minute holds (at least 3).
		sec, total = newSections(), &series{}
		for t0 := time.Now(); len(total.d) < 20 && (len(total.d) < 3 || time.Since(t0) < time.Minute); {
			total.add(report(whole, sec))
		}
		what = fmt.Sprintf("account of %d domains, %d days", len(res.Domains), days)
		line(what+": whole report (Reader)", total)
		for _, n := range []string{"summary", "senders", "daily", "unidentified"} {
			line(what+": "+n, sec[n])
		}
		check(what+" (Reader)", total, 300*time.Millisecond)
		if days == 30 {
			// A range without a preset (ending yesterday): the top
			// unidentified sources are summed on each read.
			other, err := authreport.Between(rng.From.AddDate(0, 0, -1), rng.To.AddDate(0, 0, -1))
			require.NoError(t, err)
			s, err := r.Account(as, owner.AccountID, other)
			require.NoError(t, err)
			osec, ototal := newSections(), &series{}
			for range 5 {
				ototal.add(report(s, osec))
			}
			line(what+" ending yesterday (no preset): whole report (Reader)", ototal)
			line(what+" ending yesterday (no preset): unidentified", osec["unidentified"])
			if os.Getenv("REPORT_BENCH_EXPLAIN") != "" {
				explain(t, s, "account, no preset")
			}
		}
		gql = &series{}
		for t1 := time.Now(); len(gql.d) < 20 && (len(gql.d) < 3 || time.Since(t1) < time.Minute); {
			t0 := time.Now()
			env.Do(t, owner.Token, `{ viewer { accounts { authReport(range: `+gqlRange+`) { `+gqlFields+` } } } }`, nil).NoErrors(t)
			gql.add(time.Since(t0))
		}
		line(what+": whole report (GraphQL over HTTP)", gql)
		check(what+" (GraphQL)", gql, 300*time.Millisecond)

		if days == 90 && os.Getenv("REPORT_BENCH_EXPLAIN") != "" {
			s, err := r.Domain(as, owner.AccountID, sample[0].ID, rng)
			require.NoError(t, err)
			explain(t, s, "largest, 90 days")
			explain(t, whole, "account, 90 days")
		}
	}
	t.Logf("load average after reading: %s", loadavg())
	fmt.Printf("\n%d records, %d domains, 90 days (load average %s)\n\n| read | n | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|\n%s\n\n",
		res.Records, len(res.Domains), loadavg(), strings.Join(out, "\n"))
	require.Empty(t, failures, "targets missed")
}
