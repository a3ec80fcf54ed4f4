package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/rampartmail/rampart/internal/sources"
)

// ClassifySourcesArgs asks for the report sources queued for
// classification to be classified (package sources).
type ClassifySourcesArgs struct{}

// Kind names the job.
func (ClassifySourcesArgs) Kind() string { return "sources.classify" }

// classifyInterval is how often queued sources are classified: a change to
// a domain's netblocks, keys or senders reaches its history within it.
const classifyInterval = time.Minute

type classifySourcesWorker struct {
	river.WorkerDefaults[ClassifySourcesArgs]
	classifier *sources.Classifier
	log        *slog.Logger
	timeout    time.Duration
}

func (w *classifySourcesWorker) Timeout(*river.Job[ClassifySourcesArgs]) time.Duration {
	return w.timeout
}

// Work classifies queued days and starts none after half the timeout;
// while some are left it snoozes (spending no attempt) and goes on.
func (w *classifySourcesWorker) Work(ctx context.Context, job *river.Job[ClassifySourcesArgs]) error {
	if w.classifier == nil {
		return nil
	}
	run, err := w.classifier.Run(ctx, time.Now().Add(w.timeout/2))
	if run.Days > 0 {
		w.log.InfoContext(ctx, "classified report sources", "days", run.Days, "sources", run.Sources)
	}
	if err != nil {
		return fmt.Errorf("classify report sources: %w", err)
	}
	if !run.Done {
		return river.JobSnooze(time.Second)
	}
	return nil
}

// addClassify registers the worker and its periodic job.
func addClassify(workers *river.Workers, periodic []*river.PeriodicJob, c *sources.Classifier, timeout time.Duration, log *slog.Logger) []*river.PeriodicJob {
	river.AddWorker(workers, &classifySourcesWorker{classifier: c, log: log, timeout: timeout})
	if c == nil {
		return periodic
	}
	return append(periodic, river.NewPeriodicJob(river.PeriodicInterval(classifyInterval), func() (river.JobArgs, *river.InsertOpts) {
		return ClassifySourcesArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: classifyInterval}}
	}, &river.PeriodicJobOpts{RunOnStart: true}))
}
