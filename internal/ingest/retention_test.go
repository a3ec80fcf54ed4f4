package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/migrations"
)

// TestRetention: partitions wholly before the retention period are dropped
// and old raw blobs deleted; rollups and reports stay.
func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC) // cutoff 2025-02-15 12:00
	opts := ingest.WithNow(ingest.Options{}, func() time.Time { return now })
	e := setup(t, opts)
	other := ingest.NewWorker(e.pool, opts) // a second process, with its own knowledge of partitions

	store := func(w *ingest.Worker, id string, begin time.Time) {
		t.Helper()
		acc := e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account,
			Raw: simple(id, "example.com", begin), ReceivedAt: begin.Add(26 * time.Hour)})
		require.NoError(t, w.Ingest(ctx, acc.BlobID))
	}
	store(e.worker, "old", time.Date(2024, 12, 10, 0, 0, 0, 0, time.UTC))
	store(other, "jan", time.Date(2025, 1, 20, 0, 0, 0, 0, time.UTC))
	store(e.worker, "feb", time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC))
	store(e.worker, "recent", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	pending := e.accept(t, ingest.Incoming{Source: ingest.SourceImport, Raw: []byte("never worked"), ReceivedAt: now.AddDate(-2, 0, 0)})

	dropped, blobs, err := e.worker.Retain(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"report_records_y2024m12", "report_records_y2025m01"}, dropped)
	require.Equal(t, int64(4), blobs) // old, jan, feb and the pending one
	require.Equal(t, []string{"report_records_y2025m02", "report_records_y2026m03", "report_records_y2026m04"}, partitions(t, e))
	require.Equal(t, int64(2), e.count(t, `SELECT count(*) FROM report_records`))
	require.Equal(t, int64(4), e.count(t, `SELECT count(*) FROM report_rollups`))
	require.Equal(t, int64(12), e.count(t, `SELECT sum(messages) FROM report_rollups`))
	require.Equal(t, int64(4), e.count(t, `SELECT count(*) FROM reports`))
	require.Equal(t, int64(3), e.count(t, `SELECT count(*) FROM reports WHERE blob_id IS NULL`))
	require.Equal(t, int64(1), e.count(t, `SELECT count(*) FROM report_blobs`))
	require.NoError(t, e.worker.Ingest(ctx, pending.BlobID), "a job whose blob is gone does nothing")

	dropped, blobs, err = e.worker.Retain(ctx)
	require.NoError(t, err)
	require.Empty(t, dropped)
	require.Zero(t, blobs)

	// The other process still believes January's partition exists: its
	// first try fails and is retried, the second creates it again. The
	// report is large enough to fill the decoder's queue before COPY fails.
	var recs []rec
	for i := range 3000 {
		recs = append(recs, rec{fmt.Sprintf("192.0.%d.%d", i/250, i%250+1), 1, "none", "pass", "pass", ""})
	}
	acc := e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account,
		Raw: xmlReport("r.example", "jan2", "example.com", time.Date(2025, 1, 21, 0, 0, 0, 0, time.UTC), recs...)})
	err = other.Ingest(ctx, acc.BlobID)
	require.ErrorContains(t, err, "42P01")
	require.False(t, cancelled(err))
	require.NoError(t, other.Ingest(ctx, acc.BlobID))
	require.Equal(t, "stored", e.blob(t, acc.BlobID).Status)
	require.Contains(t, partitions(t, e), "report_records_y2025m01")
}

func partitions(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'report_records'::regclass ORDER BY 1`)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	return names
}

// TestMigrationTokens: domains that exist when migration 00003 runs each get
// their own report token, and new domains get one too.
func TestMigrationTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	require.NoError(t, migrations.DownTo(ctx, pool, 2))
	_, err := pool.Exec(ctx, `WITH a AS (INSERT INTO accounts (name) VALUES ('a') RETURNING id)
		INSERT INTO domains (account_id, name) SELECT a.id, n FROM a, unnest(ARRAY['a.example', 'b.example', 'c.example']) n`)
	require.NoError(t, err)
	require.NoError(t, migrations.Up(ctx, pool, nil))
	_, err = pool.Exec(ctx, `INSERT INTO domains (account_id, name) SELECT account_id, 'd.example' FROM domains LIMIT 1`)
	require.NoError(t, err)
	var distinct, valid int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(DISTINCT report_token), count(*) FILTER (WHERE report_token ~ '^[0-9a-f]{16}$') FROM domains`).Scan(&distinct, &valid))
	require.Equal(t, 4, distinct)
	require.Equal(t, 4, valid)
}
