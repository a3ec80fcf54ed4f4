package ingest_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/reporting"
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
	require.Equal(t, int64(4), e.count(t, `SELECT count(*) FROM report_sources`))
	require.Equal(t, int64(12), e.count(t, `SELECT sum(messages) FROM report_sources`))
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

// TestRetentionInSteps: a retention run out of time stops after its first
// step and says so; runs repeated (as the job's snoozes do) finish the work,
// each making progress.
func TestRetentionInSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	opts := ingest.WithNow(ingest.Options{}, func() time.Time { return now })
	e := setup(t, opts)
	for i, begin := range []time.Time{
		time.Date(2024, 11, 10, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 12, 10, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC),
	} {
		acc := e.accept(t, ingest.Incoming{Source: ingest.SourceUpload, AccountID: &e.account,
			Raw: simple(fmt.Sprintf("old%d", i), "example.com", begin), ReceivedAt: begin.Add(26 * time.Hour)})
		require.NoError(t, e.worker.Ingest(ctx, acc.BlobID))
	}
	past := time.Now().Add(-time.Hour)
	res, done, err := e.worker.RetainUntil(ctx, past)
	require.NoError(t, err)
	require.False(t, done)
	require.Equal(t, []string{"report_records_y2024m11"}, res.Partitions, "one step only")
	var dropped []string
	dropped = append(dropped, res.Partitions...)
	var blobs int64
	for range 20 {
		if done {
			break
		}
		res, done, err = e.worker.RetainUntil(ctx, past)
		require.NoError(t, err)
		require.LessOrEqual(t, len(res.Partitions), 1)
		dropped = append(dropped, res.Partitions...)
		blobs += res.Blobs
	}
	require.True(t, done, "retention did not finish in 20 runs")
	require.Equal(t, []string{"report_records_y2024m11", "report_records_y2024m12", "report_records_y2025m01"}, dropped)
	require.Equal(t, int64(3), blobs)
	require.Equal(t, int64(0), e.count(t, `SELECT count(*) FROM report_blobs`))
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

// TestPurgeRefusedBytes: retention deletes the bytes of blobs refused (or
// cancelled) more than 30 days ago and keeps their rows, which the API shows as purged;
// recent refusals and stored blobs keep their bytes. The same bytes
// arriving again bring the blob back.
func TestPurgeRefusedBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	oldRaw := simple("refused-old", "example.org", day0)
	old, err := e.ingest(t, oldRaw)
	require.True(t, cancelled(err))
	recent, err := e.ingest(t, simple("refused-recent", "example.org", day0))
	require.True(t, cancelled(err))
	stored := e.mustStore(t, simple("kept", "example.com", day0))
	// An import whose job was cancelled before it ran.
	never := e.accept(t, ingest.Incoming{Source: ingest.SourceImport, Raw: []byte("never worked")})
	_, err = e.pool.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE kind = 'report.ingest'`)
	require.NoError(t, err)
	require.Equal(t, "cancelled", e.blob(t, never.BlobID).Status)
	_, err = e.pool.Exec(ctx, `UPDATE report_blobs SET processed_at = now() - interval '31 days' WHERE id = ANY($1)`,
		[]uuid.UUID{old, stored, never.BlobID})
	require.NoError(t, err)

	res, err := e.worker.RetainAll(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Purged)
	require.Zero(t, res.Blobs)
	type row struct {
		raw      []byte
		size     int
		sha      []byte
		status   string
		reason   *string
		purgedAt *time.Time
	}
	get := func(id uuid.UUID) row {
		var r row
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT raw, size, sha256, status, refusal_reason, purged_at FROM report_blobs WHERE id = $1`, id).
			Scan(&r.raw, &r.size, &r.sha, &r.status, &r.reason, &r.purgedAt))
		return r
	}
	o := get(old)
	require.Nil(t, o.raw, "bytes gone")
	require.NotNil(t, o.purgedAt)
	require.Equal(t, len(oldRaw), o.size)
	sum := sha256.Sum256(oldRaw)
	require.Equal(t, sum[:], o.sha)
	require.Equal(t, "refused", o.status)
	require.Equal(t, "not_hosted", *o.reason)
	require.NotNil(t, get(recent).raw)
	require.Nil(t, get(recent).purgedAt)
	require.NotNil(t, get(stored).raw, "stored blobs keep their bytes until the retention period")
	require.Nil(t, get(never.BlobID).raw, "cancelled blobs lose theirs too")
	require.NotNil(t, get(never.BlobID).purgedAt)

	// Read as a token of the account would.
	asAccount := e.token(t, e.account)
	problems, err := reporting.NewReader(e.pool).AccountProblems(asAccount, e.account, 10)
	require.NoError(t, err)
	require.Len(t, problems, 2)
	for _, p := range problems {
		if p.BlobID == old {
			require.NotNil(t, p.PurgedAt)
			require.Equal(t, int64(len(oldRaw)), p.Size)
			require.Equal(t, "not_hosted", p.Reason)
		} else {
			require.Nil(t, p.PurgedAt)
		}
	}

	again, err := e.worker.RetainAll(ctx)
	require.NoError(t, err)
	require.Zero(t, again.Purged)

	// The bytes arrive again, now for a hosted domain: the blob has them
	// back and is stored.
	e.addDomain(t, e.account, "example.org")
	acc := e.upload(t, oldRaw)
	require.Equal(t, old, acc.BlobID)
	require.True(t, acc.Retried)
	o = get(old)
	require.Equal(t, oldRaw, o.raw)
	require.Nil(t, o.purgedAt)
	require.NoError(t, e.worker.Ingest(ctx, old))
	require.Equal(t, "stored", e.blob(t, old).Status)
}

// TestMigrationMergesMailBlobs: mail blobs stored once per recipient before
// migration 00006 become one blob per message with every recipient; the
// reports and duplicates of the copies move to it.
func TestMigrationMergesMailBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	require.NoError(t, migrations.DownTo(ctx, pool, 5))
	var account, a, b uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO accounts (name) VALUES ('a') RETURNING id`).Scan(&account))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'a.example') RETURNING id`, account).Scan(&a))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'b.example') RETURNING id`, account).Scan(&b))
	blob := func(raw string, domain uuid.UUID, status string, at time.Time) uuid.UUID {
		t.Helper()
		var reason *string
		if status == "refused" {
			r := "not_hosted"
			reason = &r
		}
		sum := sha256.Sum256([]byte(raw))
		var id uuid.UUID
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO report_blobs (sha256, raw, size, source, domain_id, remote, received_at, status, refusal_reason)
			VALUES ($1, $2, $3, 'smtp', $4, $5, $6, $7, $8) RETURNING id`,
			sum[:], []byte(raw), len(raw), domain, "192.0.2."+status[:1], at, status, reason).Scan(&id))
		return id
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	refusedA := blob("message one", a, "refused", t0)
	storedB := blob("message one", b, "stored", t0.Add(time.Minute))
	single := blob("message two", a, "pending", t0)
	var report uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO reports (domain_id, blob_id, org_name, report_id, policy_domain, begin_at, end_at, day, received_at)
		VALUES ($1, $2, 'r', '1', 'b.example', $3, $3, $4, $3) RETURNING id`, b, storedB, t0, t0.Format(time.DateOnly)).Scan(&report))
	_, err := pool.Exec(ctx, `INSERT INTO report_duplicates (blob_id, report_id, received_at) VALUES ($1, $2, $3)`, refusedA, report, t0)
	require.NoError(t, err)

	require.NoError(t, migrations.Up(ctx, pool, nil))
	type link struct {
		Blob, Domain uuid.UUID
		Remote       string
		At           time.Time
	}
	rows, err := pool.Query(ctx, `SELECT blob_id, domain_id, remote, received_at FROM report_blob_recipients ORDER BY blob_id, remote`)
	require.NoError(t, err)
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (link, error) {
		var l link
		err := r.Scan(&l.Blob, &l.Domain, &l.Remote, &l.At)
		l.At = l.At.UTC()
		return l, err
	})
	require.NoError(t, err)
	require.ElementsMatch(t, []link{
		{storedB, a, "192.0.2.r", t0}, // the stored copy is kept
		{storedB, b, "192.0.2.s", t0.Add(time.Minute)},
		{single, a, "192.0.2.p", t0},
	}, links)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM report_blobs`).Scan(&n))
	require.Equal(t, 2, n)
	var blobID uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `SELECT blob_id FROM reports WHERE id = $1`, report).Scan(&blobID))
	require.Equal(t, storedB, blobID)
	require.NoError(t, pool.QueryRow(ctx, `SELECT blob_id FROM report_duplicates WHERE report_id = $1`, report).Scan(&blobID))
	require.Equal(t, storedB, blobID)
	var status string
	require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM report_blobs WHERE id = $1`, storedB).Scan(&status))
	require.Equal(t, "stored", status)

	// And back: one blob per recipient again.
	require.NoError(t, migrations.DownTo(ctx, pool, 5))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM report_blobs WHERE source = 'smtp' AND domain_id IS NOT NULL`).Scan(&n))
	require.Equal(t, 3, n)
}

// TestMigrationRebuildsSourceRollups: migration 00018 rebuilds the source
// rollups from the raw records still kept, exactly as ingest writes them,
// and keeps a day whose records retention dropped from the old rollups.
func TestMigrationRebuildsSourceRollups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.mustStore(t, xmlReport("one.example", "1", "example.com", day0,
		rec{"192.0.2.1", 5, "none", "pass", "pass", ""},
		rec{"2001:db8::1", 2, "none", "pass", "fail", "mail.example.com"},
	))
	e.mustStore(t, xmlReport("two.example", "2", "example.com", day0, rec{"192.0.2.1", 7, "none", "pass", "pass", ""}))
	e.mustStore(t, xmlReport("two.example", "3", "example.com", day0.AddDate(0, 0, 1), rec{"192.0.2.9", 4, "reject", "fail", "fail", ""}))
	snapshot := func() string {
		t.Helper()
		var s string
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT coalesce(string_agg(concat_ws(' ', day, host(source_ip), reporter, header_from, spf_domain,
			disposition, spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports), E'\n' ORDER BY day, source_ip, reporter, header_from), '')
			FROM report_sources`).Scan(&s))
		return s
	}
	written := snapshot()
	require.NotEmpty(t, written)

	require.NoError(t, migrations.DownTo(ctx, e.pool, 17))
	require.Equal(t, int64(18), e.count(t, `SELECT sum(messages) FROM report_rollups`))
	require.NoError(t, migrations.Up(ctx, e.pool, nil))
	require.Equal(t, written, snapshot(), "rebuilt from the records as ingest writes")

	// Retention dropped the second day's records: that day comes back from
	// the old rollups, without a reporter or SPF domain.
	require.NoError(t, migrations.DownTo(ctx, e.pool, 17))
	_, err := e.pool.Exec(ctx, `DELETE FROM report_records WHERE day = $1`, day0.AddDate(0, 0, 1))
	require.NoError(t, err)
	require.NoError(t, migrations.Up(ctx, e.pool, nil))
	got := snapshot()
	require.Contains(t, got, "2024-06-14 192.0.2.9  example.com  reject f f f f f 4 1")
	require.Equal(t, int64(18), e.count(t, `SELECT sum(messages) FROM report_sources`))
}
