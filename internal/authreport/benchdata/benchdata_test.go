package benchdata_test

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/authreport/benchdata"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/sketch"
	"github.com/rampartmail/rampart/internal/sources"
)

// TestSmallLoad: the benchmark's data at a small scale is what ingest and
// the classifier would have made of its records, and the authentication
// report read back from it gives every number the generator put in: the
// rollups match the ones derived from the raw records as migration 00018
// derives them, the real classifier gives every source the class written,
// and each domain's report and the account's (totals, categories, every
// sender with its distinct sources, the daily series, the top unidentified
// sources) match the generator's own sums.
func TestSmallLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbtest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	acct, user, err := account.NewService(pool).CreateOwner(ctx, account.NewOwner{
		Email: "owner@benchdata.example", Name: "Owner", PasswordHash: "x", AccountName: "Bench"})
	require.NoError(t, err)
	end := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	const days = 12
	res, err := benchdata.Load(ctx, pool, acct.ID, benchdata.Config{Domains: 15, Days: days, End: end, Records: 6000,
		Name: "benchdata.example", Seed: 7, Expect: true})
	require.NoError(t, err)
	require.InDelta(t, 6000, res.Records, 1500)
	require.Len(t, res.Domains, 15)

	// The rollups are the raw records', as ingest sums them.
	var diff int64
	require.NoError(t, pool.QueryRow(ctx, `WITH derived AS (
			SELECT rr.domain_id, rr.day, rr.source_ip, r.reporter, rr.header_from, rr.spf_domain, rr.disposition,
			       rr.spf_pass, rr.dkim_pass, rr.spf = 'pass' AS spf_aligned, rr.dkim = 'pass' AS dkim_aligned, rr.forwarded,
			       sum(rr.count) AS messages, count(DISTINCT rr.report_id)::int AS reports
			FROM report_records rr JOIN reports r ON r.id = rr.report_id
			GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
		), stored AS (
			SELECT domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
			       spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports FROM report_sources
		)
		SELECT (SELECT count(*) FROM (TABLE derived EXCEPT TABLE stored) a) + (SELECT count(*) FROM (TABLE stored EXCEPT TABLE derived) b)`).Scan(&diff))
	require.Zero(t, diff, "report_sources differs from the records'")
	require.NoError(t, pool.QueryRow(ctx, `WITH derived AS (
			SELECT rr.domain_id, rr.day, rr.source_ip, split_part(sig, ' ', 1) AS d, split_part(sig, ' ', 2) AS s, split_part(sig, ' ', 3) AS r,
			       sum(rr.count) AS messages, count(DISTINCT rr.report_id)::int AS reports
			FROM report_records rr, unnest(rr.dkim_sigs) sig GROUP BY 1, 2, 3, 4, 5, 6
		), stored AS (
			SELECT domain_id, day, source_ip, dkim_domain, selector, result, messages, reports FROM report_source_dkim
		)
		SELECT (SELECT count(*) FROM (TABLE derived EXCEPT TABLE stored) a) + (SELECT count(*) FROM (TABLE stored EXCEPT TABLE derived) b)`).Scan(&diff))
	require.Zero(t, diff, "report_source_dkim differs from the records'")
	require.NoError(t, pool.QueryRow(ctx, `SELECT sum(messages) FROM report_sources`).Scan(&diff))
	var recorded int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT sum(message_count) FROM reports`).Scan(&recorded))
	require.Equal(t, recorded, diff)

	// The classifier, run on the days the rollups queued, gives the
	// classes written.
	_, err = pool.Exec(ctx, `CREATE TEMP TABLE written AS SELECT domain_id, day, source_ip, class, service FROM source_classes`)
	require.NoError(t, err)
	var written int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM source_classes`).Scan(&written))
	require.Equal(t, res.Classes, written)
	_, err = pool.Exec(ctx, `DELETE FROM source_classes`)
	require.NoError(t, err)
	run, err := sources.NewClassifier(pool, false, slog.New(slog.DiscardHandler)).Run(ctx, time.Time{})
	require.NoError(t, err)
	require.True(t, run.Done)
	require.EqualValues(t, written, run.Sources)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (
			(SELECT domain_id, day, source_ip, class, service FROM source_classes EXCEPT SELECT * FROM written)
			UNION ALL (SELECT * FROM written EXCEPT SELECT domain_id, day, source_ip, class, service FROM source_classes)) x`).Scan(&diff))
	require.Zero(t, diff, "the classifier's classes differ from the ones written")

	// Each domain's report, and the account's, give the sums put in.
	as := access.WithMemo(access.NewContext(ctx, access.Principal{UserID: user.ID}))
	r := authreport.New(pool)
	rng := authreport.LastDays(end, days)
	var scopes []*authreport.Scope
	for _, d := range res.Domains {
		s, err := r.Domain(as, acct.ID, d.ID, rng)
		require.NoError(t, err)
		scopes = append(scopes, s)
	}
	whole, err := r.Account(as, acct.ID, rng)
	require.NoError(t, err)
	scopes = append(scopes, whole)
	sums, err := r.Summaries(as, scopes)
	require.NoError(t, err)
	all := make([]int, len(res.Domains))
	for i := range all {
		all[i] = i
	}
	for i, s := range scopes {
		idx := []int{i}
		if s == whole {
			idx = all
		}
		want := expected(res.Expect, idx, rng)
		require.Equal(t, want.totals, sums[i].Totals, "totals of %d", i)
		for _, c := range sums[i].Categories {
			require.Equal(t, want.categories[c.Category], c.Stats, "%s of %d", c.Category, i)
		}
		page, err := r.Senders(as, s, authreport.SenderQuery{First: authreport.MaxPage})
		require.NoError(t, err)
		require.False(t, page.HasNext)
		require.EqualValues(t, len(want.senders), page.TotalCount)
		for k, got := range page.Senders {
			key := benchdata.Sender{Category: got.Category, Service: got.Service}
			require.Equal(t, want.senders[key], got.Stats, "sender %v of %d", key, i)
			require.EqualValues(t, len(want.sources[key]), got.Sources, "sources of %v of %d", key, i)
			if k > 0 {
				require.GreaterOrEqual(t, page.Senders[k-1].Stats.Messages, got.Stats.Messages, "by messages")
			}
		}
		daily, err := r.Daily(as, s, "")
		require.NoError(t, err)
		require.Len(t, daily, days)
		for _, d := range daily {
			w := want.daily[d.Day]
			if w.Reporters == nil {
				w.Reporters = []string{}
			}
			require.Equal(t, w, d.Stats, "day %s of %d", d.Day.Format(time.DateOnly), i)
		}
		top, err := r.Unidentified(as, s, 10)
		require.NoError(t, err)
		require.Equal(t, want.top(10), topOf(top), "top unidentified of %d", i)
	}

	// The summaries built in bulk (Summarize, for the benchmark) are the
	// classifier's: the same sums, sketches counting the same addresses.
	counts := func() map[string]int64 {
		rows, err := pool.Query(ctx, `SELECT 'd ' || domain_id || day || class || service || messages || dmarc_pass || spf_pass || spf_aligned
				|| dkim_pass || dkim_aligned || disposition_none || disposition_quarantine || disposition_reject || array_to_string(reporters, ','), sources
			FROM report_daily
			UNION ALL
			SELECT 'a ' || account_id || day || class || service || messages || dmarc_pass || spf_pass || spf_aligned
				|| dkim_pass || dkim_aligned || disposition_none || disposition_quarantine || disposition_reject || array_to_string(reporters, ','), sources
			FROM account_daily`)
		require.NoError(t, err)
		out := map[string]int64{}
		var k string
		var b []byte
		_, err = pgx.ForEachRow(rows, []any{&k, &b}, func() error {
			var sk sketch.Addresses
			require.NoError(t, sk.Merge(b))
			out[k] = sk.Count()
			return nil
		})
		require.NoError(t, err)
		return out
	}
	classified := counts()
	require.NotEmpty(t, classified)
	_, err = pool.Exec(ctx, `DELETE FROM account_daily`)
	require.NoError(t, err)
	require.NoError(t, benchdata.Summarize(ctx, pool))
	require.Equal(t, classified, counts())
}

type want struct {
	totals     authreport.Stats
	categories map[authreport.Category]authreport.Stats
	senders    map[benchdata.Sender]authreport.Stats
	sources    map[benchdata.Sender]map[netip.Addr]bool
	daily      map[time.Time]authreport.Stats
	unident    map[netip.Addr]int64
}

type ipCount struct {
	IP       string
	Messages int64
}

func topOf(s []authreport.Source) []ipCount {
	out := []ipCount{}
	for _, x := range s {
		out = append(out, ipCount{x.IP, x.Stats.Messages})
	}
	return out
}

func (w want) top(n int) []ipCount {
	var ips []netip.Addr
	for ip := range w.unident {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int {
		return cmp.Or(cmp.Compare(w.unident[b], w.unident[a]), a.Compare(b))
	})
	out := []ipCount{}
	for _, ip := range ips[:min(n, len(ips))] {
		out = append(out, ipCount{ip.String(), w.unident[ip]})
	}
	return out
}

// expected sums the generator's figures for the domains idx over rng.
func expected(e *benchdata.Expect, idx []int, rng authreport.Range) want {
	w := want{totals: authreport.Stats{Reporters: []string{}}, categories: map[authreport.Category]authreport.Stats{},
		senders: map[benchdata.Sender]authreport.Stats{}, sources: map[benchdata.Sender]map[netip.Addr]bool{},
		daily: map[time.Time]authreport.Stats{}, unident: map[netip.Addr]int64{}}
	for _, c := range authreport.Categories {
		w.categories[c] = authreport.Stats{Reporters: []string{}}
	}
	for _, i := range idx {
		for day, bySender := range e.Days[i] {
			if day.Before(rng.From) || day.After(rng.To) {
				continue
			}
			for s, st := range bySender {
				w.totals = add(w.totals, *st)
				w.categories[s.Category] = add(w.categories[s.Category], *st)
				w.senders[s] = add(w.senders[s], *st)
				w.daily[day] = add(w.daily[day], *st)
			}
		}
		for ip, n := range e.Unidentified[i] {
			w.unident[ip] += n
		}
		for s, ips := range e.Sources[i] {
			if w.sources[s] == nil {
				w.sources[s] = map[netip.Addr]bool{}
			}
			for ip := range ips {
				w.sources[s][ip] = true
			}
		}
	}
	return w
}

func add(a, b authreport.Stats) authreport.Stats {
	a.Messages += b.Messages
	a.DMARCPass += b.DMARCPass
	a.SPFPass += b.SPFPass
	a.SPFAligned += b.SPFAligned
	a.DKIMPass += b.DKIMPass
	a.DKIMAligned += b.DKIMAligned
	a.None += b.None
	a.Quarantine += b.Quarantine
	a.Reject += b.Reject
	rs := slices.Concat(a.Reporters, b.Reporters)
	slices.Sort(rs)
	a.Reporters = slices.Compact(rs)
	if a.Reporters == nil {
		a.Reporters = []string{}
	}
	return a
}
