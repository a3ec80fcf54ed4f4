package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/sources"
)

// ClassifySourcesArgs asks for the report sources queued for
// classification to be classified (package sources), and then for the
// report presets that are no longer current to be computed again
// (authreport.RefreshPresets).
type ClassifySourcesArgs struct{}

// Kind names the job.
func (ClassifySourcesArgs) Kind() string { return "sources.classify" }

// classifyInterval is how often queued sources are classified: a change to
// a domain's netblocks, keys or senders reaches its history within it.
const classifyInterval = time.Minute

type classifySourcesWorker struct {
	river.WorkerDefaults[ClassifySourcesArgs]
	classifier *sources.Classifier
	pool       *pgxpool.Pool
	log        *slog.Logger
	timeout    time.Duration
}

func (w *classifySourcesWorker) Timeout(*river.Job[ClassifySourcesArgs]) time.Duration {
	return w.timeout
}

// Work classifies queued days, then computes the stale presets, and starts
// neither after half the timeout; while some are left it snoozes (spending
// no attempt) and goes on.
func (w *classifySourcesWorker) Work(ctx context.Context, job *river.Job[ClassifySourcesArgs]) error {
	if w.classifier == nil {
		return nil
	}
	deadline := time.Now().Add(w.timeout / 2)
	run, err := w.classifier.Run(ctx, deadline)
	if run.Days > 0 || run.AccountDays > 0 {
		w.log.InfoContext(ctx, "classified report sources", "days", run.Days, "sources", run.Sources, "account_days", run.AccountDays)
	}
	if err != nil {
		return fmt.Errorf("classify report sources: %w", err)
	}
	if !run.Done {
		return river.JobSnooze(time.Second)
	}
	top, err := authreport.RefreshPresets(ctx, w.pool, time.Now(), deadline)
	if top.Stored > 0 {
		w.log.InfoContext(ctx, "computed the report presets", "presets", top.Stored)
	}
	if err != nil {
		return fmt.Errorf("compute the report presets: %w", err)
	}
	if !top.Done {
		return river.JobSnooze(time.Second)
	}
	return nil
}

// addClassify registers the worker and its periodic job.
func addClassify(workers *river.Workers, periodic []*river.PeriodicJob, pool *pgxpool.Pool, c *sources.Classifier, timeout time.Duration, log *slog.Logger) []*river.PeriodicJob {
	river.AddWorker(workers, &classifySourcesWorker{classifier: c, pool: pool, log: log, timeout: timeout})
	if c == nil {
		return periodic
	}
	return append(periodic, river.NewPeriodicJob(river.PeriodicInterval(classifyInterval), func() (river.JobArgs, *river.InsertOpts) {
		return ClassifySourcesArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: classifyInterval}}
	}, &river.PeriodicJobOpts{RunOnStart: true}))
}
