package ingest_test

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/report/reportgen"
	"github.com/rampartmail/rampart/internal/sender"
	"github.com/rampartmail/rampart/internal/sources"
)

// A day's classes and summaries, everything but when they were written.
const (
	dayClasses = `SELECT host(source_ip), class, service, evidence, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
		disposition_none, disposition_quarantine, disposition_reject, reporters
		FROM source_classes WHERE domain_id = $1 ORDER BY source_ip`
	daySummaries = `SELECT day, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
		disposition_none, disposition_quarantine, disposition_reject, reporters
		FROM report_daily WHERE domain_id = $1 ORDER BY day, class, service`
)

// TestLargeReportClassified: a large report that is the first of its day
// has its sources classified in the ingest transaction, with the classes,
// sums and summaries a run of the classifier stores for the same day (the
// day's sources repeat addresses, and are of several classes: a netblock,
// a catalog service's DKIM domain, a confirmed PTR name, a delegated key,
// forwarding, nothing), and its day is left queued for the reverse names
// not looked up yet, as such a run leaves it. A later report of the day
// queues it again.
func TestLargeReportClassified(t *testing.T) {
	t.Parallel()
	t.Run("apart", func(t *testing.T) {
		t.Parallel()
		testLargeReportClassified(t, dbtest.NewPool(t))
	})
	t.Run("in the ingest transaction", func(t *testing.T) {
		// With a pool of one connection the worker finds no second one:
		// it classifies in its own transaction.
		t.Parallel()
		cfg, err := pgxpool.ParseConfig(dbtest.NewDB(t))
		require.NoError(t, err)
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		testLargeReportClassified(t, pool)
	})
}

func testLargeReportClassified(t *testing.T, pool *pgxpool.Pool) {
	ctx := context.Background()
	services, err := catalog.Load()
	require.NoError(t, err)
	require.NoError(t, sender.NewManager(pool, nil, nil).SyncCatalog(ctx, services))
	e := setupPool(t, pool, ingest.Options{Classifier: sources.NewClassifier(pool, true, slog.New(slog.DiscardHandler))})
	dom := e.domains["example.com"]

	// Every third record takes the address of the one before it, so that
	// sources have several rollup rows.
	raw := reportgen.GenerateReport(900)
	ipRE := regexp.MustCompile(`<source_ip>[^<]*</source_ip>`)
	ips := ipRE.FindAll(raw, -1)
	i := 0
	raw = ipRE.ReplaceAllFunc(raw, func(b []byte) []byte {
		i++
		if i%3 == 0 {
			return ips[i-2]
		}
		return b
	})
	addr := func(n int) string {
		return string(bytes.TrimSuffix(bytes.TrimPrefix(ips[n], []byte("<source_ip>")), []byte("</source_ip>")))
	}
	_, err = pool.Exec(ctx, `INSERT INTO domain_netblocks (domain_id, cidr) VALUES ($1, set_masklen($2::inet, 24))`, dom, addr(0))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO ip_enrichment (ip, ptr, ptr_confirmed, looked_up_at, expires_at, last_seen)
		VALUES ($1, 'o1.ptr.sendgrid.net', true, now(), now() + interval '1 day', current_date),
		       ($2, 'host.example.net', false, now(), now() + interval '1 day', current_date),
		       ($3, NULL, false, NULL, now(), current_date)`, addr(1), addr(4), addr(7))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO dkim_keys (domain_id, selector, cname_target, service)
		VALUES ($1, 's2', 's2.domainkey.u1.wl.sendgrid.net', 'sendgrid')`, dom)
	require.NoError(t, err)
	// What the netblock and key queued: classified now, before the report.
	_, err = sources.NewClassifier(pool, false, nil).Run(ctx, time.Time{})
	require.NoError(t, err)

	e.mustStore(t, raw)
	classes, summaries := e.rows(t, dayClasses, dom), e.rows(t, daySummaries, dom)
	require.Len(t, classes, int(e.count(t, `SELECT count(DISTINCT source_ip) FROM report_sources WHERE domain_id = $1`, dom)))
	require.NotEmpty(t, summaries)
	kinds := map[string]bool{}
	for _, c := range classes {
		kinds[c[1].(string)] = true
	}
	require.Len(t, kinds, 4, "every class: %v", kinds)
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM classify_days WHERE domain_id = $1 AND not_before > now()`, dom),
		"left queued for the reverse names")

	// A run of the classifier over the same day stores the same.
	_, err = pool.Exec(ctx, `UPDATE classify_days SET not_before = now() WHERE domain_id = $1`, dom)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM source_classes WHERE domain_id = $1`, dom)
	require.NoError(t, err)
	run, err := sources.NewClassifier(pool, false, nil).Run(ctx, time.Time{})
	require.NoError(t, err)
	require.Equal(t, 1, run.Days)
	require.Equal(t, classes, e.rows(t, dayClasses, dom))
	require.Equal(t, summaries, e.rows(t, daySummaries, dom))
	require.Zero(t, e.count(t, `SELECT count(*) FROM classify_days WHERE domain_id = $1`, dom))
	// The run summarised the account's days from its domains'.
	require.Zero(t, e.count(t, `SELECT count(*) FROM account_days`))
	require.Zero(t, e.count(t, `WITH s AS (
			SELECT d.account_id, r.day, r.class, r.service, sum(r.messages) AS messages, sum(r.dmarc_pass) AS dmarc_pass,
			       sum(r.spf_aligned) AS spf_aligned, sum(r.dkim_aligned) AS dkim_aligned, sum(r.disposition_reject) AS disposition_reject
			FROM report_daily r JOIN domains d ON d.id = r.domain_id GROUP BY 1, 2, 3, 4
		), a AS (
			SELECT account_id, day, class, service, messages, dmarc_pass, spf_aligned, dkim_aligned, disposition_reject FROM account_daily
		)
		SELECT (SELECT count(*) FROM (TABLE s EXCEPT TABLE a) x) + (SELECT count(*) FROM (TABLE a EXCEPT TABLE s) y)`))
	require.NotZero(t, e.count(t, `SELECT count(*) FROM account_daily`))

	// Another reporter's report of the day is not the first: it queues the
	// day for the classifier.
	e.mustStore(t, bytes.ReplaceAll(raw, []byte("synthetic.example"), []byte("other.example")))
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM classify_days WHERE domain_id = $1 AND not_before <= now()`, dom))
	require.Equal(t, classes, e.rows(t, dayClasses, dom))
}

// TestNewDayDequeue: a new day's classification, in a transaction of its
// own, takes the day off the queue only while its queue row is the one
// the ingest queued and nobody else holds it: a run of the classifier
// that took the day, or a later report that queued it again, leaves it
// queued (and the caller rolls the classes back).
func TestNewDayDequeue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	e := setupPool(t, pool, ingest.Options{Classifier: sources.NewClassifier(pool, true, slog.New(slog.DiscardHandler))})
	dom := e.domains["example.com"]
	e.mustStore(t, reportgen.GenerateReport(700))
	var day pgtype.Date
	var queuedAt time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT day, queued_at FROM classify_days WHERE domain_id = $1`, dom).Scan(&day, &queuedAt))

	c := sources.NewClassifier(pool, false, nil)
	dequeue := func(at time.Time) bool {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // a test's transaction
		d, err := c.PrepareNewDay(ctx, tx, dom, day, nil, nil)
		require.NoError(t, err)
		d.Classify()
		ok, err := d.Dequeue(ctx, tx, at)
		require.NoError(t, err)
		if ok {
			require.NoError(t, tx.Commit(ctx))
		}
		return ok
	}
	require.False(t, dequeue(queuedAt.Add(time.Second)), "queued again since")

	held, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = held.Exec(ctx, `SELECT 1 FROM classify_days WHERE domain_id = $1 FOR UPDATE`, dom)
	require.NoError(t, err)
	require.False(t, dequeue(queuedAt), "held by a run of the classifier")
	require.NoError(t, held.Rollback(ctx))

	require.True(t, dequeue(queuedAt))
	require.Zero(t, e.count(t, `SELECT count(*) FROM classify_days WHERE domain_id = $1`, dom))
}
