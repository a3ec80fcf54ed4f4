package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/ingest/ingestdb"
)

// report_records has one partition per month, named report_records_yYYYYmMM
// and holding the days [first of the month, first of the next). Partitions
// are created and dropped here because their names are identifiers, which
// SQL parameters cannot carry; the names are built from two integers only.

// partitionLockSpace namespaces the advisory locks that serialise creating
// and dropping one month's partition ("rprt" in the high bits).
const partitionLockSpace = int64(0x72707274) << 32

// lockTimeout bounds the wait for the lock on report_records that creating
// or dropping a partition needs, so that the queries queued behind it do
// not wait long; the job is retried.
const lockTimeout = "5s"

func monthOf(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func partitionName(day time.Time) string {
	return fmt.Sprintf("report_records_y%04dm%02d", day.Year(), int(day.Month()))
}

func partitionLockKey(day time.Time) int64 {
	return partitionLockSpace + int64(day.Year())*100 + int64(day.Month())
}

// parsePartition reads a partition's month from its name.
func parsePartition(name string) (time.Time, bool) {
	var y, m int
	if n, err := fmt.Sscanf(name, "report_records_y%04dm%02d", &y, &m); err != nil || n != 2 || m < 1 || m > 12 {
		return time.Time{}, false
	}
	month := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
	if partitionName(month) != name {
		return time.Time{}, false
	}
	return month, true
}

// ensurePartition creates the partition for day's month if it is missing.
// It runs in a transaction of its own, before the report's, so that the
// lock on report_records it takes is held for a moment only.
func (in *ingester) ensurePartition(ctx context.Context, day time.Time) error {
	name := partitionName(day)
	if _, ok := in.parts.Load(name); ok {
		return nil
	}
	month := monthOf(day)
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error {
		q := ingestdb.New(tx)
		if exists, err := q.PartitionExists(ctx, name); err != nil || exists {
			return err
		}
		if err := q.LockPartitions(ctx, partitionLockKey(month)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+lockTimeout+"'"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF report_records FOR VALUES FROM ('%s') TO ('%s')",
			name, month.Format(time.DateOnly), month.AddDate(0, 1, 0).Format(time.DateOnly)))
		return err
	})
	if err != nil {
		return fmt.Errorf("create partition %s: %w", name, err)
	}
	in.parts.Store(name, struct{}{})
	return nil
}

// dropPartition drops one month's partition.
func (in *ingester) dropPartition(ctx context.Context, name string, month time.Time) error {
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error {
		if err := ingestdb.New(tx).LockPartitions(ctx, partitionLockKey(month)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+lockTimeout+"'"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+partitionName(month))
		return err
	})
	in.parts.Delete(name)
	if err != nil {
		return fmt.Errorf("drop partition %s: %w", name, err)
	}
	return nil
}

// retention is what one retention run removed.
type retention struct {
	Cutoff     time.Time
	Partitions []string
	Blobs      int64
	// Purged counts the blobs not stored whose bytes were deleted.
	Purged int64
}

// retain runs retention to the end; see [ingester.retainUntil].
func (in *ingester) retain(ctx context.Context) (retention, error) {
	res, _, err := in.retainUntil(ctx, time.Time{})
	return res, err
}

// retainUntil drops the partitions wholly before the retention period and
// deletes the raw blobs received before it; rollups and reports rows stay.
// It deletes the bytes of blobs refused before RefusedBytesRetention, and
// creates this month's and next month's partitions. Each step (one
// partition, one batch of 500 blobs) commits on its own, so a run cut short
// loses nothing: once stop has passed (zero: never) it starts no step after
// the first that removed something and reports done false, for the job to
// continue in a new run.
func (in *ingester) retainUntil(ctx context.Context, stop time.Time) (res retention, done bool, err error) {
	now := in.now().UTC()
	res = retention{Cutoff: now.AddDate(0, -in.months, 0)}
	// Until a step has removed something, the run goes on, so that every
	// run makes progress.
	progress := false
	late := func() bool { return progress && !stop.IsZero() && !time.Now().Before(stop) }
	// Create this month's and next month's partitions ahead of the reports,
	// so that an ingest rarely has to wait for the lock that takes.
	for _, m := range []time.Time{monthOf(now), monthOf(now).AddDate(0, 1, 0)} {
		if err := in.ensurePartition(ctx, m); err != nil {
			return res, false, err
		}
	}
	q := ingestdb.New(in.pool)
	names, err := q.RecordPartitions(ctx)
	if err != nil {
		return res, false, fmt.Errorf("list partitions: %w", err)
	}
	for _, name := range names {
		month, ok := parsePartition(name)
		if !ok || month.AddDate(0, 1, 0).After(res.Cutoff) {
			continue
		}
		if late() {
			return res, false, nil
		}
		if err := in.dropPartition(ctx, name, month); err != nil {
			return res, false, err
		}
		res.Partitions = append(res.Partitions, name)
		progress = true
	}
	// In batches, so that no one transaction holds many rows' locks.
	for {
		if late() {
			return res, false, nil
		}
		n, err := q.DeleteBlobsBefore(ctx, ingestdb.DeleteBlobsBeforeParams{Cutoff: res.Cutoff, Lim: 500})
		if err != nil {
			return res, false, fmt.Errorf("delete old blobs: %w", err)
		}
		res.Blobs += n
		if n == 0 {
			break
		}
		progress = true
	}
	refusedCutoff := now.Add(-RefusedBytesRetention)
	for {
		if late() {
			return res, false, nil
		}
		n, err := q.PurgeRefusedBlobs(ctx, ingestdb.PurgeRefusedBlobsParams{Now: now, Cutoff: refusedCutoff, Lim: 500})
		if err != nil {
			return res, false, fmt.Errorf("purge refused blobs: %w", err)
		}
		res.Purged += n
		if n == 0 {
			return res, true, nil
		}
		progress = true
	}
}
