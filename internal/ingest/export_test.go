package ingest

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// WithBeforeCommit returns opts with a hook that runs just before the ingest
// transaction commits; an error from it rolls the transaction back.
func WithBeforeCommit(opts Options, f func(ctx context.Context, blobID uuid.UUID) error) Options {
	opts.beforeCommit = f
	return opts
}

// WithNow returns opts with a clock.
func WithNow(opts Options, now func() time.Time) Options {
	opts.now = now
	return opts
}

// Worker runs the ingest and retention work without River.
type Worker struct{ in *ingester }

// NewWorker returns a Worker.
func NewWorker(pool *pgxpool.Pool, opts Options) *Worker {
	return &Worker{in: newIngester(pool, opts, slog.New(slog.DiscardHandler))}
}

// Ingest works the report.ingest job of one blob, as attempt 1 of 25.
func (w *Worker) Ingest(ctx context.Context, blobID uuid.UUID) error {
	return w.IngestAttempt(ctx, blobID, 1, 25)
}

// IngestAttempt works the report.ingest job of one blob as the given attempt.
func (w *Worker) IngestAttempt(ctx context.Context, blobID uuid.UUID, attempt, maxAttempts int) error {
	job := &river.Job[IngestArgs]{
		JobRow: &rivertype.JobRow{ID: 1, Attempt: attempt, MaxAttempts: maxAttempts, Kind: IngestArgs{}.Kind()},
		Args:   IngestArgs{BlobID: blobID},
	}
	return (&ingestWorker{in: w.in}).Work(ctx, job)
}

// Retain runs retention and returns the partitions dropped and the number
// of blobs deleted.
func (w *Worker) Retain(ctx context.Context) ([]string, int64, error) {
	res, err := w.in.retain(ctx)
	return res.Partitions, res.Blobs, err
}

// Retention is what one retention run removed.
type Retention = retention

// RetainAll runs retention and returns all it did.
func (w *Worker) RetainAll(ctx context.Context) (Retention, error) {
	return w.in.retain(ctx)
}

// AppendJSONString is appendJSONString.
var AppendJSONString = appendJSONString

// RetainUntil runs retention, starting no step after the first once stop
// has passed, and reports whether it finished.
func (w *Worker) RetainUntil(ctx context.Context, stop time.Time) (Retention, bool, error) {
	return w.in.retainUntil(ctx, stop)
}
