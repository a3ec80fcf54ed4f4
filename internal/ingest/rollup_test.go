package ingest_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/report/reportgen"
)

// The source rollups as PostgreSQL derives them from the stored records
// (migration 00018's derivation), to check what the worker summed.
const (
	wantSources = `SELECT rr.domain_id, rr.day, host(rr.source_ip), r.reporter, rr.header_from, coalesce(rr.spf_domain, ''), rr.disposition,
		coalesce(rr.spf_pass, false), coalesce(rr.dkim_pass, false), rr.spf = 'pass', rr.dkim = 'pass',
		coalesce(rr.forwarded, false), sum(rr.count)::bigint, count(DISTINCT rr.report_id)::int
		FROM report_records rr JOIN reports r ON r.id = rr.report_id
		GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12`
	gotSources = `SELECT domain_id, day, host(source_ip), reporter, header_from, spf_domain, disposition,
		spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports
		FROM report_sources ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12`
	wantDKIM = `SELECT rr.domain_id, rr.day, host(rr.source_ip), split_part(sig, ' ', 1), split_part(sig, ' ', 2), split_part(sig, ' ', 3),
		sum(rr.count)::bigint, count(DISTINCT rr.report_id)::int
		FROM report_records rr, unnest(rr.dkim_sigs) sig
		GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`
	gotDKIM = `SELECT domain_id, day, host(source_ip), dkim_domain, selector, result, messages, reports
		FROM report_source_dkim ORDER BY 1, 2, 3, 4, 5, 6`
)

// TestLargeReportRollups: a report with more rollup rows than the closing
// round trip takes has them copied when none can exist yet (the first
// report of its day) and upserted when some may (another reporter's report
// of the day, a second report of the same reporter): each time the rollups
// are what the stored records add up to, and the day is queued for
// classification.
func TestLargeReportRollups(t *testing.T) {
	t.Parallel()
	e := setup(t)
	check := func(what string) {
		t.Helper()
		for _, q := range [][2]string{{wantSources, gotSources}, {wantDKIM, gotDKIM}} {
			want, got := e.rows(t, q[0]), e.rows(t, q[1])
			require.NotEmpty(t, got, what)
			require.Equal(t, want, got, what)
		}
		require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM classify_days WHERE domain_id = $1`, e.domains["example.com"]), what)
	}
	first := reportgen.GenerateReport(700)
	e.mustStore(t, first)
	check("first report of the day: copied")

	other := bytes.ReplaceAll(first, []byte("synthetic.example"), []byte("other.example"))
	e.mustStore(t, other)
	check("another reporter's report of the day")

	// The same reporter's next report for the day, with the same records:
	// every row of the first meets its own.
	again := bytes.Replace(first, []byte("synthetic-700"), []byte("synthetic-second"), 1)
	e.mustStore(t, again)
	check("the same reporter's second report of the day")
	require.Equal(t, int64(2), e.count(t, `SELECT min(reports) FROM report_sources WHERE reporter = 'synthetic.example'`))
}

// rows runs a query and returns its rows as text.
func (e *env) rows(t *testing.T, sql string, args ...any) [][]any {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(t, err)
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestConcurrentLargeReportRollups: two large reports of the same reporter
// and day, worked at once, each find no row of theirs when they start;
// the lock on the day makes the second wait for the first and upsert
// rather than copy, so both are stored and the rollups add up.
func TestConcurrentLargeReportRollups(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first := reportgen.GenerateReport(700)
	second := bytes.Replace(first, []byte("synthetic-700"), []byte("synthetic-concurrent"), 1)
	var blobs [2]uuid.UUID
	for i, raw := range [][]byte{first, second} {
		blobs[i] = e.upload(t, raw).BlobID
	}
	errs := make(chan error, len(blobs))
	for _, id := range blobs {
		go func() { errs <- e.worker.Ingest(context.Background(), id) }()
	}
	for range blobs {
		require.NoError(t, <-errs)
	}
	for _, id := range blobs {
		require.Equal(t, "stored", e.blob(t, id).Status)
	}
	require.Equal(t, e.rows(t, wantSources), e.rows(t, gotSources))
	require.Equal(t, e.rows(t, wantDKIM), e.rows(t, gotDKIM))
	require.Equal(t, int64(2), e.count(t, `SELECT min(reports) FROM report_sources`))
}
