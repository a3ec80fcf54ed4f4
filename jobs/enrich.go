package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/rampartmail/rampart/internal/enrich"
)

// EnrichSourcesArgs asks for the source IPs of stored reports to be
// enriched: reverse DNS, forward-confirmed, and ASN and country (package
// enrich).
type EnrichSourcesArgs struct{}

// Kind names the job.
func (EnrichSourcesArgs) Kind() string { return "enrich.sources" }

// enrichInterval is how often the sources of new reports are looked up.
const enrichInterval = 5 * time.Minute

type enrichSourcesWorker struct {
	river.WorkerDefaults[EnrichSourcesArgs]
	enricher *enrich.Enricher
	log      *slog.Logger
	timeout  time.Duration
}

func (w *enrichSourcesWorker) Timeout(*river.Job[EnrichSourcesArgs]) time.Duration { return w.timeout }

// Work looks up the IPs due within the enricher's bounds and starts none
// after half the timeout; while some are left it snoozes (spending no
// attempt) and goes on a second later, so that a backlog drains at the
// configured rate in bounded runs.
func (w *enrichSourcesWorker) Work(ctx context.Context, job *river.Job[EnrichSourcesArgs]) error {
	if w.enricher == nil {
		return nil // enrichment is off in this process
	}
	st, err := w.enricher.Run(ctx, time.Now().Add(w.timeout/2))
	if st.Reports+st.LookedUp > 0 {
		w.log.InfoContext(ctx, "enriched report sources", "reports", st.Reports, "queued", st.Queued,
			"looked_up", st.LookedUp, "found", st.Found, "confirmed", st.Confirmed, "none", st.None, "failed", st.Failed)
	}
	if err != nil {
		return fmt.Errorf("enrich report sources: %w", err)
	}
	if !st.Done {
		return river.JobSnooze(time.Second)
	}
	return nil
}

// addEnrich registers the worker, and the periodic job when the process
// enriches.
func addEnrich(workers *river.Workers, periodic []*river.PeriodicJob, e *enrich.Enricher, timeout time.Duration, log *slog.Logger) []*river.PeriodicJob {
	river.AddWorker(workers, &enrichSourcesWorker{enricher: e, log: log, timeout: timeout})
	if e == nil {
		return periodic
	}
	return append(periodic, river.NewPeriodicJob(river.PeriodicInterval(enrichInterval), func() (river.JobArgs, *river.InsertOpts) {
		return EnrichSourcesArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: enrichInterval}}
	}, &river.PeriodicJobOpts{RunOnStart: true}))
}
