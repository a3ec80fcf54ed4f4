package authreport_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/sketch"
	"github.com/rampartmail/rampart/internal/sources"
)

// counter counts the statements that read the report's rollups.
type counter struct{ n atomic.Int64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "report_sources") {
		c.n.Add(1)
	}
	return ctx
}

func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestStatementsPerSection: whatever the number of domains and reports,
// each section is one statement: the summaries of 60 domains' reports and
// an account's report over the same range are one, and every section of
// the account's report over its 60 domains one each.
func TestStatementsPerSection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.NewDB(t))
	require.NoError(t, err)
	var c counter
	cfg.ConnConfig.Tracer = &c
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	acct, user, err := account.NewService(pool).CreateOwner(ctx, account.NewOwner{
		Email: "owner@statements.example", Name: "Owner", PasswordHash: "x", AccountName: "Statements"})
	require.NoError(t, err)
	as := access.WithMemo(access.NewContext(ctx, access.Principal{UserID: user.ID}))
	const n = 60
	rows, err := pool.Query(ctx, `INSERT INTO domains (account_id, name)
		SELECT $1, 'd' || g || '.statements.example' FROM generate_series(1, $2::int) g RETURNING id`, acct.ID, n)
	require.NoError(t, err)
	domains, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	// Each domain: 10 messages passing from a netblock, i+1 failing from
	// an unidentified source, one of them not classified yet.
	_, err = pool.Exec(ctx, `INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
			spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
		SELECT d, $2, ip::inet, 'r.example', 'x.example', '', 'none', ok, ok, ok, ok, false, CASE WHEN ok THEN 10 ELSE i END, 1
		FROM unnest($1::uuid[]) WITH ORDINALITY AS t (d, i),
		     (VALUES ('192.0.2.1', true), ('203.0.113.1', false), ('203.0.113.2', false)) AS s (ip, ok)`, domains, day)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO source_classes (domain_id, day, source_ip, class, evidence)
		SELECT d, $2, ip::inet, class, 'test' FROM unnest($1::uuid[]) AS d,
		     (VALUES ('192.0.2.1', 'internal'), ('203.0.113.1', 'unidentified')) AS s (ip, class)`, domains, day)
	require.NoError(t, err)

	week := authreport.LastDays(time.Now(), 7)
	var scopes []*authreport.Scope
	for _, d := range domains {
		s, err := authreport.New(pool).Domain(as, acct.ID, d, week)
		require.NoError(t, err)
		scopes = append(scopes, s)
	}
	r := authreport.New(pool)
	whole, err := r.Account(as, acct.ID, week)
	require.NoError(t, err)
	require.Equal(t, n, whole.DomainCount())
	c.n.Store(0)
	sums, err := r.Summaries(as, append(scopes, whole))
	require.NoError(t, err)
	require.EqualValues(t, 1, c.n.Load(), "one statement for 61 reports")
	for i := range n {
		require.EqualValues(t, 10+2*(i+1), sums[i].Totals.Messages, "domain %d", i)
		require.EqualValues(t, 10, sums[i].Totals.DMARCPass)
		require.EqualValues(t, 10, sums[i].Categories[0].Stats.Messages, "internal")
		require.EqualValues(t, 2*(i+1), sums[i].Categories[3].Stats.Messages, "unidentified, pending included")
	}
	require.EqualValues(t, 10*n+n*(n+1), sums[n].Totals.Messages)
	require.Equal(t, []string{"r.example"}, sums[n].Totals.Reporters)

	c.n.Store(0)
	page, err := r.Senders(as, whole, authreport.SenderQuery{First: 10})
	require.NoError(t, err)
	require.EqualValues(t, 2, page.TotalCount)
	require.Equal(t, []string{"Unidentified", "Internal"}, []string{page.Senders[0].Name, page.Senders[1].Name})
	daily, err := r.Daily(as, whole, "")
	require.NoError(t, err)
	require.Len(t, daily, 7)
	require.EqualValues(t, 10*n+n*(n+1), daily[5].Stats.Messages)
	top, err := r.Unidentified(as, whole, 2)
	require.NoError(t, err)
	require.Equal(t, "203.0.113.1", top[0].IP) // ties broken by address
	require.EqualValues(t, n*(n+1)/2, top[0].Stats.Messages)
	src, err := r.Source(as, whole, "203.0.113.2")
	require.NoError(t, err)
	require.Equal(t, authreport.Unidentified, src.Category, "not classified yet")
	require.Empty(t, src.Evidence)
	require.EqualValues(t, 4, c.n.Load(), "one statement per section")
}

// TestSummariesFollowRollups: the report reads a day's summaries once the
// classifier has classified it, and the rollups live while it is queued, so
// that every read is exact: after a report adds to a day (new rows, or
// only growing existing ones, as ingest's upsert does), and after the
// day's sources are classified again.
func TestSummariesFollowRollups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, acct, as := ownerDB(t, "Summaries")
	var dom uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'summaries.example') RETURNING id`, acct.ID).Scan(&dom))
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	// What ingest's AddSources does with a report's records.
	add := func(ip string, pass bool, n int64) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO report_sources AS s (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
				spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
			VALUES ($1, $2, $3, 'r.example', 'summaries.example', '', 'none', $4, $4, $4, $4, false, $5, 1)
			ON CONFLICT (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
			             spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded)
			DO UPDATE SET messages = s.messages + EXCLUDED.messages, reports = s.reports + EXCLUDED.reports`, dom, day, ip, pass, n)
		require.NoError(t, err)
	}
	classify := func() {
		t.Helper()
		run, err := sources.NewClassifier(pool, false, slog.New(slog.DiscardHandler)).Run(ctx, time.Time{})
		require.NoError(t, err)
		require.True(t, run.Done)
	}
	r := authreport.New(pool)
	s, err := r.Domain(as, acct.ID, dom, authreport.LastDays(time.Now(), 7))
	require.NoError(t, err)
	// read returns the internal and unidentified messages, the DMARC
	// passes, the unidentified sources, and whether the day is summarised.
	type got struct {
		Internal, Unidentified, Pass, Sources int64
		Summarised                            bool
	}
	read := func() got {
		t.Helper()
		sums, err := r.Summaries(as, []*authreport.Scope{s})
		require.NoError(t, err)
		page, err := r.Senders(as, s, authreport.SenderQuery{First: 10, Category: authreport.Unidentified})
		require.NoError(t, err)
		g := got{Internal: sums[0].Categories[0].Stats.Messages, Unidentified: sums[0].Categories[3].Stats.Messages,
			Pass: sums[0].Totals.DMARCPass}
		if len(page.Senders) > 0 {
			g.Sources = page.Senders[0].Sources
		}
		daily, err := r.Daily(as, s, "")
		require.NoError(t, err)
		require.Equal(t, g.Internal+g.Unidentified, daily[5].Stats.Messages)
		top, err := r.Unidentified(as, s, 10)
		require.NoError(t, err)
		var n int64
		for _, x := range top {
			n += x.Stats.Messages
		}
		require.Equal(t, g.Unidentified, n)
		require.NoError(t, pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM classify_days WHERE domain_id = $1)
			AND EXISTS (SELECT 1 FROM report_daily WHERE domain_id = $1)`, dom).Scan(&g.Summarised))
		return g
	}

	add("192.0.2.1", true, 10)
	add("203.0.113.1", false, 3)
	require.Equal(t, got{Unidentified: 13, Pass: 10, Sources: 2}, read(), "not classified yet: unidentified, read live")
	classify()
	require.Equal(t, got{Unidentified: 13, Pass: 10, Sources: 2, Summarised: true}, read())
	// A report that only grows existing rows.
	add("203.0.113.1", false, 5)
	require.Equal(t, got{Unidentified: 18, Pass: 10, Sources: 2}, read(), "queued again, read live")
	classify()
	require.Equal(t, got{Unidentified: 18, Pass: 10, Sources: 2, Summarised: true}, read())
	// A netblock makes one source internal: the summaries follow.
	_, err = pool.Exec(ctx, `INSERT INTO domain_netblocks (domain_id, cidr) VALUES ($1, '192.0.2.0/24')`, dom)
	require.NoError(t, err)
	classify()
	require.Equal(t, got{Internal: 10, Unidentified: 8, Pass: 10, Sources: 1, Summarised: true}, read())

	// Every sum the classifier stores equals the live views' (migration
	// 00025), over rows that differ in each dimension the sums count.
	_, err = pool.Exec(ctx, `INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
			spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
		SELECT $1, $2, ('198.51.100.' || (i % 7))::inet, (ARRAY['', 'a.example', 'b.example'])[1 + i % 3], 'summaries.example',
		       (ARRAY['', 'bounce.summaries.example'])[1 + i % 2], (ARRAY['none', 'quarantine', 'reject'])[1 + i % 3],
		       i % 2 = 0, i % 3 = 0, i % 4 = 0, i % 5 = 0, i % 6 = 0, 1 + i * 3, 1
		FROM generate_series(1, 40) i`, dom, day)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO report_source_dkim (domain_id, day, source_ip, dkim_domain, selector, result, messages, reports)
		VALUES ($1, $2, '198.51.100.3', 'other.example', 's1', 'pass', 4, 1)`, dom, day)
	require.NoError(t, err)
	classify()
	for _, q := range []string{
		`SELECT count(*) FROM (
			(SELECT domain_id, day, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
			        disposition_none, disposition_quarantine, disposition_reject, reporters
			 FROM report_daily WHERE domain_id = $1 EXCEPT SELECT * FROM report_daily_live WHERE domain_id = $1)
			UNION ALL
			(SELECT * FROM report_daily_live WHERE domain_id = $1
			 EXCEPT SELECT domain_id, day, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
			        disposition_none, disposition_quarantine, disposition_reject, reporters
			 FROM report_daily WHERE domain_id = $1)) x`,
		`SELECT count(*) FROM (
			(SELECT domain_id, day, source_ip, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
			        disposition_none, disposition_quarantine, disposition_reject, reporters
			 FROM source_classes WHERE domain_id = $1
			 EXCEPT SELECT * FROM report_sources_ips_live WHERE domain_id = $1)
			UNION ALL
			(SELECT * FROM report_sources_ips_live WHERE domain_id = $1
			 EXCEPT SELECT domain_id, day, source_ip, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
			        disposition_none, disposition_quarantine, disposition_reject, reporters
			 FROM source_classes WHERE domain_id = $1)) x`,
	} {
		var diff int
		require.NoError(t, pool.QueryRow(ctx, q, dom).Scan(&diff))
		require.Zero(t, diff, "stored sums differ from the live ones: %s", q)
	}
	// Each summary's sketch counts its group's distinct addresses.
	rows, err := pool.Query(ctx, `SELECT d.class, d.service, d.sources,
			(SELECT count(*) FROM source_classes c WHERE c.domain_id = d.domain_id AND c.day = d.day AND c.class = d.class
			   AND (CASE WHEN c.class = 'service' THEN c.service ELSE '' END) = d.service)
		FROM report_daily d WHERE d.domain_id = $1`, dom)
	require.NoError(t, err)
	var class, service string
	var stored []byte
	var want int64
	_, err = pgx.ForEachRow(rows, []any{&class, &service, &stored, &want}, func() error {
		var sk sketch.Addresses
		require.NoError(t, sk.Merge(stored))
		require.Equal(t, want, sk.Count(), "addresses of %s %q", class, service)
		return nil
	})
	require.NoError(t, err)
	var daily, classes int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM report_daily WHERE domain_id = $1),
		(SELECT count(*) FROM source_classes WHERE domain_id = $1)`, dom).Scan(&daily, &classes))
	require.Equal(t, 3, daily, "internal, forwarded and unidentified")
	require.Equal(t, 9, classes)
}

// TestTopUnidentifiedPresets: the top unidentified sources and the
// senders' distinct addresses over a preset range are served from the
// preset the job keeps while it is exact, and summed again as soon as a day
// of the range is queued or rebuilt, for a domain and for the account.
func TestTopUnidentifiedPresets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, acct, as := ownerDB(t, "Presets")
	rows, err := pool.Query(ctx, `INSERT INTO domains (account_id, name)
		SELECT $1, 'd' || g || '.presets.example' FROM generate_series(1, 2) g ORDER BY g RETURNING id`, acct.ID)
	require.NoError(t, err)
	domains, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	add := func(dom uuid.UUID, ip string, n int) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
				spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
			VALUES ($1, $2, $3, 'r.example', 'presets.example', '', 'none', false, false, false, false, false, $4, 1)
			ON CONFLICT (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition, spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded)
			DO UPDATE SET messages = report_sources.messages + EXCLUDED.messages`, dom, day, ip, n)
		require.NoError(t, err)
	}
	classify := func() {
		t.Helper()
		run, err := sources.NewClassifier(pool, false, slog.New(slog.DiscardHandler)).Run(ctx, time.Time{})
		require.NoError(t, err)
		require.True(t, run.Done)
	}
	add(domains[0], "203.0.113.1", 5)
	add(domains[0], "203.0.113.2", 3)
	add(domains[1], "203.0.113.2", 4)
	classify()

	r := authreport.New(pool)
	week := authreport.LastDays(time.Now(), 7)
	dom, err := r.Domain(as, acct.ID, domains[0], week)
	require.NoError(t, err)
	whole, err := r.Account(as, acct.ID, week)
	require.NoError(t, err)
	top := func(s *authreport.Scope) map[string]int64 {
		t.Helper()
		src, err := r.Unidentified(as, s, 10)
		require.NoError(t, err)
		out := map[string]int64{}
		for _, x := range src {
			out[x.IP] = x.Stats.Messages
		}
		return out
	}
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 3}, top(dom))
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 7}, top(whole))

	res, err := authreport.RefreshPresets(ctx, pool, time.Now(), time.Time{})
	require.NoError(t, err)
	require.Equal(t, authreport.PresetRefresh{Stored: 3 * len(authreport.PresetDays), Done: true}, res, "two domains and the account")
	res, err = authreport.RefreshPresets(ctx, pool, time.Now(), time.Time{})
	require.NoError(t, err)
	require.Equal(t, authreport.PresetRefresh{Done: true}, res, "all current")
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 3}, top(dom))
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 7}, top(whole))

	// The reads are the presets': marked, they show the mark.
	_, err = pool.Exec(ctx, `UPDATE report_presets
		SET top = jsonb_set(top, '{0,messages}', to_jsonb((top->0->>'messages')::bigint + 1000))`)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"203.0.113.1": 1005, "203.0.113.2": 3}, top(dom))
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 1007}, top(whole))
	senders := func(s *authreport.Scope) map[string]int64 {
		t.Helper()
		page, err := r.Senders(as, s, authreport.SenderQuery{First: 10})
		require.NoError(t, err)
		out := map[string]int64{}
		for _, x := range page.Senders {
			out[x.Name] = x.Sources
		}
		return out
	}
	require.Equal(t, map[string]int64{"Unidentified": 2}, senders(dom))
	require.Equal(t, map[string]int64{"Unidentified": 2}, senders(whole))
	_, err = pool.Exec(ctx, `UPDATE report_presets SET senders = (SELECT jsonb_agg(jsonb_set(e, '{sources}', to_jsonb((e->>'sources')::bigint + 100)))
		FROM jsonb_array_elements(senders) e)`)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"Unidentified": 102}, senders(dom))
	require.Equal(t, map[string]int64{"Unidentified": 102}, senders(whole))
	// Not a preset range: summed.
	ten, err := r.Domain(as, acct.ID, domains[0], authreport.LastDays(time.Now(), 10))
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 3}, top(ten))
	require.Equal(t, map[string]int64{"Unidentified": 2}, senders(ten))

	// A report for the second domain queues its day: the account's read
	// is summed (live), the first domain's preset still serves.
	add(domains[1], "203.0.113.3", 9)
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 7, "203.0.113.3": 9}, top(whole))
	require.Equal(t, map[string]int64{"Unidentified": 3}, senders(whole))
	require.Equal(t, map[string]int64{"203.0.113.1": 1005, "203.0.113.2": 3}, top(dom))
	require.Equal(t, map[string]int64{"Unidentified": 102}, senders(dom))
	// Classified, the account's day is rebuilt: its generation moved.
	classify()
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 7, "203.0.113.3": 9}, top(whole))
	// The first domain's day reclassified (a netblock): summed again.
	_, err = pool.Exec(ctx, `INSERT INTO domain_netblocks (domain_id, cidr) VALUES ($1, '198.51.100.0/24')`, domains[0])
	require.NoError(t, err)
	classify()
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 3}, top(dom))
	require.Equal(t, map[string]int64{"Unidentified": 2}, senders(dom))
	res, err = authreport.RefreshPresets(ctx, pool, time.Now(), time.Time{})
	require.NoError(t, err)
	require.Equal(t, authreport.PresetRefresh{Stored: 3 * len(authreport.PresetDays), Done: true}, res, "each had a day rebuilt")
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 3}, top(dom))
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 7, "203.0.113.3": 9}, top(whole))
}

// TestPostponedDaysReadSummaries: a day the classifier classified and left
// queued only for its sources' reverse names is read from its summaries
// (the domain's, the account's, the presets), since they are exact; a
// report adding to it sends the reads back to the rollups until the
// classifier has been through it again, and the day's last classification
// rebuilds the account's summary (migration 00034).
func TestPostponedDaysReadSummaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, acct, as := ownerDB(t, "Postponed")
	var dom uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'postponed.example') RETURNING id`,
		acct.ID).Scan(&dom))
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	add := func(ip string, n int) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
				spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
			VALUES ($1, $2, $3, 'r.example', 'postponed.example', '', 'none', false, false, false, false, false, $4, 1)`, dom, day, ip, n)
		require.NoError(t, err)
	}
	// A classifier that awaits reverse names, as a deployment with a
	// resolver runs it.
	classify := func() {
		t.Helper()
		run, err := sources.NewClassifier(pool, true, slog.New(slog.DiscardHandler)).Run(ctx, time.Time{})
		require.NoError(t, err)
		require.True(t, run.Done)
	}
	queue := func() (queued, summarised bool) {
		t.Helper()
		err := pool.QueryRow(ctx, `SELECT true, summarised FROM classify_days WHERE domain_id = $1 AND day = $2`, dom, day).
			Scan(&queued, &summarised)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, false
		}
		require.NoError(t, err)
		return queued, summarised
	}
	r := authreport.New(pool)
	week := authreport.LastDays(time.Now(), 7)
	messages := func() (domain, whole int64, top map[string]int64) {
		t.Helper()
		d, err := r.Domain(as, acct.ID, dom, week)
		require.NoError(t, err)
		a, err := r.Account(as, acct.ID, week)
		require.NoError(t, err)
		sums, err := r.Summaries(as, []*authreport.Scope{d, a})
		require.NoError(t, err)
		src, err := r.Unidentified(as, a, 10)
		require.NoError(t, err)
		top = map[string]int64{}
		for _, x := range src {
			top[x.IP] = x.Stats.Messages
		}
		return sums[0].Totals.Messages, sums[1].Totals.Messages, top
	}

	add("203.0.113.1", 5)
	add("203.0.113.2", 3)
	classify()
	queued, summarised := queue()
	require.True(t, queued, "left queued for the reverse names")
	require.True(t, summarised)
	var accountQueued bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM account_days WHERE account_id = $1)`, acct.ID).Scan(&accountQueued))
	require.False(t, accountQueued, "the account's day is summarised while its domain's day awaits names")
	res, err := authreport.RefreshPresets(ctx, pool, time.Now(), time.Time{})
	require.NoError(t, err)
	require.Equal(t, 2*len(authreport.PresetDays), res.Stored, "the domain's presets and the account's")

	// The reads are the summaries' and the presets': marked, they show
	// the marks.
	_, err = pool.Exec(ctx, `UPDATE report_daily SET messages = messages + 1000 WHERE domain_id = $1`, dom)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE account_daily SET messages = messages + 2000 WHERE account_id = $1`, acct.ID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE report_presets SET top = jsonb_set(top, '{0,messages}', to_jsonb((top->0->>'messages')::bigint + 100))
		WHERE account_id = $1`, acct.ID)
	require.NoError(t, err)
	d, a, top := messages()
	require.Equal(t, int64(1008), d)
	require.Equal(t, int64(2008), a)
	require.Equal(t, map[string]int64{"203.0.113.1": 105, "203.0.113.2": 3}, top)

	// A report adding to the day: read live, exact, until classified.
	add("203.0.113.3", 9)
	queued, summarised = queue()
	require.True(t, queued)
	require.False(t, summarised, "queued again")
	d, a, top = messages()
	require.Equal(t, int64(17), d)
	require.Equal(t, int64(17), a)
	require.Equal(t, map[string]int64{"203.0.113.1": 5, "203.0.113.2": 3, "203.0.113.3": 9}, top)

	// Classified again (the names still pending): summarised again.
	_, err = pool.Exec(ctx, `UPDATE classify_days SET not_before = now() WHERE domain_id = $1`, dom)
	require.NoError(t, err)
	classify()
	queued, summarised = queue()
	require.True(t, queued)
	require.True(t, summarised)
	d, a, _ = messages()
	require.Equal(t, int64(17), d)
	require.Equal(t, int64(17), a)

	// The names known, the last classification takes the day off the
	// queue and queues the account's day, which the same run summarises.
	_, err = pool.Exec(ctx, `UPDATE account_daily SET messages = messages + 2000 WHERE account_id = $1`, acct.ID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO ip_enrichment (ip, last_seen, expires_at, looked_up_at, outcome)
		SELECT ip::inet, $1, now() + interval '1 day', now(), 'none' FROM unnest($2::text[]) ip`,
		day, []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE classify_days SET not_before = now() WHERE domain_id = $1`, dom)
	require.NoError(t, err)
	classify()
	queued, _ = queue()
	require.False(t, queued)
	require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM account_days WHERE account_id = $1)`, acct.ID).Scan(&accountQueued))
	require.False(t, accountQueued)
	d, a, _ = messages()
	require.Equal(t, int64(17), d)
	require.Equal(t, int64(17), a, "the account's summary rebuilt")
}

// ownerDB gives a test its own database, an account named name, and its
// owner's context.
func ownerDB(t *testing.T, name string) (*pgxpool.Pool, account.Account, context.Context) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbtest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	acct, user, err := account.NewService(pool).CreateOwner(ctx, account.NewOwner{
		Email: "owner@" + strings.ToLower(name) + ".example", Name: "Owner", PasswordHash: "x", AccountName: name})
	require.NoError(t, err)
	return pool, acct, access.WithMemo(access.NewContext(ctx, access.Principal{UserID: user.ID}))
}
