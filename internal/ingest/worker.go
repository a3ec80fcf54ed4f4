package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/rampartmail/rampart/internal/report"
	"github.com/rampartmail/rampart/internal/sources"
)

// IngestArgs asks for one stored blob to be unwrapped, decoded and stored.
type IngestArgs struct {
	BlobID uuid.UUID `json:"blob_id"`
	// Round is the blob's round when the job was enqueued: each time a
	// blob is put back in line it gets a new round and a new job. The job
	// works the blob's current round, whatever this says.
	Round int `json:"round,omitempty"`
}

// Kind names the job.
func (IngestArgs) Kind() string { return "report.ingest" }

// InsertOpts puts the job in [Queue] and makes it unique per blob and
// round, however it is enqueued.
func (IngestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Queue is the River queue of report.ingest jobs, apart from the default
// queue so that a burst of reports neither waits behind nor holds up other
// jobs. A client that works the jobs must configure it ([QueueConfig]).
const Queue = "report"

// QueueConfig configures [Queue] for a client that works up to workers
// reports at once; each holds one database connection while it works, and
// in memory the raw report (25 MB at most) and a few MB more. The
// fetch cooldown is short because report jobs are many and mostly small:
// River refills free worker slots at most once per cooldown, and its default
// of 100 ms held 16 workers to 160 reports per second. Fetches are made only
// when slots are free and jobs wait, so a short cooldown costs nothing at
// rest.
func QueueConfig(workers int) river.QueueConfig {
	return river.QueueConfig{MaxWorkers: max(workers, 1), FetchCooldown: 2 * time.Millisecond}
}

// RetentionArgs asks for records and raw blobs older than the retention
// period to be removed, and for the bytes of blobs refused more than
// [RefusedBytesRetention] ago to be deleted.
type RetentionArgs struct{}

// Kind names the job.
func (RetentionArgs) Kind() string { return "report.retention" }

// DefaultRetentionMonths is how long records and raw blobs are kept.
const DefaultRetentionMonths = 13

// RefusedBytesRetention is how long the bytes of a blob not stored
// (refused, failed, cancelled or discarded) are kept after that was
// decided, for its owner to look into; then only its row stays (size, hash,
// reason, dates), so that anyone able to send mail cannot fill the disk
// with refused input for 13 months.
const RefusedBytesRetention = 30 * 24 * time.Hour

// DefaultIngestTimeout bounds one report.ingest run: the largest report the
// default limits allow (5 million records) takes well under a minute, and
// the ingest is one transaction, so it cannot be split. River's rescue of
// jobs left running by a dead process must wait longer than this.
const DefaultIngestTimeout = 3 * time.Minute

// RetentionTimeout bounds one report.retention run. A run starts no new
// step (dropping one partition, deleting 500 blobs) after half of it and
// snoozes to continue, so many months of partitions are dropped over
// several short runs.
const RetentionTimeout = time.Minute

// Options configure the workers. The zero value holds the defaults.
type Options struct {
	// Limits bound unwrapping and decoding; zero fields take report's
	// defaults.
	Limits report.Limits
	// RetentionMonths is how many months of records and raw blobs
	// retention keeps; default DefaultRetentionMonths.
	RetentionMonths int
	// Timeout bounds one report.ingest run; default
	// DefaultIngestTimeout. report.retention runs are bounded by the
	// smaller of it and RetentionTimeout.
	Timeout time.Duration
	// Classifier, when set, classifies the sources of a large report that
	// is the first to add to its domain's day from the sums the worker
	// holds, as its ingest commits (see classify.go), instead of leaving
	// the day for the sources.classify job to read back. It should be the
	// one that job runs.
	Classifier *sources.Classifier

	// beforeCommit, set by tests, runs just before the ingest transaction
	// commits; an error rolls it back.
	beforeCommit func(ctx context.Context, blobID uuid.UUID) error
	// now, set by tests, is the clock.
	now func() time.Time
}

// AddWorkers registers the report.ingest and report.retention workers. Add
// [RetentionPeriodicJob] to the client's periodic jobs to run retention.
func AddWorkers(workers *river.Workers, pool *pgxpool.Pool, opts Options, log *slog.Logger) {
	in := newIngester(pool, opts, log)
	timeout := cmp.Or(opts.Timeout, DefaultIngestTimeout)
	river.AddWorker(workers, &ingestWorker{in: in, timeout: timeout})
	river.AddWorker(workers, &retentionWorker{in: in, timeout: min(timeout, RetentionTimeout)})
}

// RetentionPeriodicJob runs report.retention every six hours, and once when
// the client starts.
func RetentionPeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(6*time.Hour), func() (river.JobArgs, *river.InsertOpts) {
		return RetentionArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

type ingestWorker struct {
	river.WorkerDefaults[IngestArgs]
	in      *ingester
	timeout time.Duration
}

func (w *ingestWorker) Timeout(*river.Job[IngestArgs]) time.Duration { return w.timeout }

func (w *ingestWorker) Work(ctx context.Context, job *river.Job[IngestArgs]) error {
	start := time.Now()
	out, err := w.in.ingest(ctx, job.Args.BlobID)
	log := w.in.log.With("blob", job.Args.BlobID, "job", job.ID, "attempt", job.Attempt)
	var ref *report.Refusal
	switch {
	case err == nil:
		log.InfoContext(ctx, "report blob ingested", "status", out.status, "reports", out.reports, "kept", out.kept,
			"duplicates", out.duplicates, "records", out.records, "duration", time.Since(start))
		return nil
	case errors.As(err, &ref):
		log.InfoContext(ctx, "report blob refused", "reason", ref.Reason, "detail", ref.Error())
		return river.JobCancel(err)
	case permanent(err):
		// The database refused a value: retrying would fail the same way.
		log.ErrorContext(ctx, "report blob cannot be stored", "error", err)
		w.in.fail(ctx, job.Args.BlobID, out.round, "the report could not be stored: the database rejected one of its values")
		return river.JobCancel(err)
	}
	if job.Attempt >= job.MaxAttempts {
		log.ErrorContext(ctx, "report blob failed on its last attempt", "error", err)
		w.in.fail(ctx, job.Args.BlobID, out.round, fmt.Sprintf("the report could not be stored after %d attempts", job.Attempt))
	}
	return fmt.Errorf("ingest report blob %s: %w", job.Args.BlobID, err)
}

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	in      *ingester
	timeout time.Duration
}

func (w *retentionWorker) Timeout(*river.Job[RetentionArgs]) time.Duration { return w.timeout }

func (w *retentionWorker) Work(ctx context.Context, job *river.Job[RetentionArgs]) error {
	res, done, err := w.in.retainUntil(ctx, time.Now().Add(w.timeout/2))
	if err != nil {
		return fmt.Errorf("report retention: %w", err)
	}
	w.in.log.InfoContext(ctx, "report retention", "cutoff", res.Cutoff, "partitions_dropped", res.Partitions,
		"blobs_deleted", res.Blobs, "refused_bytes_purged", res.Purged, "done", done)
	if !done {
		// Snoozing runs the same job again soon without spending an attempt.
		return river.JobSnooze(time.Second)
	}
	return nil
}
