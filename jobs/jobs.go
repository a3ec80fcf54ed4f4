// Package jobs runs Rampart's background work on River: each module's
// workers and the periodic maintenance jobs. Job kinds are namespaced
// (auth.prune_login_failures, sender.resolve_ranges, domain.check_claims,
// report.ingest); a job caused by a write is enqueued in the same
// transaction as that write (River InsertTx).
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/sender"
	"github.com/rampartmail/rampart/internal/spf"
)

// PruneLoginFailuresArgs asks for old failed-login rows to be deleted.
type PruneLoginFailuresArgs struct{}

// Kind names the job.
func (PruneLoginFailuresArgs) Kind() string { return "auth.prune_login_failures" }

// loginFailureRetention is how long failed logins are kept; the throttle
// looks back a day, the rest is for an operator's investigation.
const loginFailureRetention = 7 * 24 * time.Hour

type pruneLoginFailuresWorker struct {
	river.WorkerDefaults[PruneLoginFailuresArgs]
	auth *auth.Service
	log  *slog.Logger
}

func (w *pruneLoginFailuresWorker) Work(ctx context.Context, job *river.Job[PruneLoginFailuresArgs]) error {
	n, err := w.auth.PruneLoginFailures(ctx, loginFailureRetention)
	if err != nil {
		return fmt.Errorf("prune login failures: %w", err)
	}
	w.log.InfoContext(ctx, "pruned login failures", "rows", n)
	return nil
}

// ExpirePinsArgs asks for expired pinned SPF includes to be removed.
type ExpirePinsArgs struct{}

// Kind names the job.
func (ExpirePinsArgs) Kind() string { return "sender.expire_pins" }

type expirePinsWorker struct {
	river.WorkerDefaults[ExpirePinsArgs]
	senders *sender.Manager
}

func (w *expirePinsWorker) Work(ctx context.Context, job *river.Job[ExpirePinsArgs]) error {
	_, err := w.senders.ExpirePins(ctx)
	return err
}

// ResolveRangesArgs asks for every catalog service's SPF include to be
// resolved into its current ranges.
type ResolveRangesArgs struct{}

// Kind names the job.
func (ResolveRangesArgs) Kind() string { return "sender.resolve_ranges" }

type resolveRangesWorker struct {
	river.WorkerDefaults[ResolveRangesArgs]
	senders  *sender.Manager
	resolver string
	log      *slog.Logger
}

func (w *resolveRangesWorker) Work(ctx context.Context, job *river.Job[ResolveRangesArgs]) error {
	failed, err := w.senders.ResolveRanges(ctx, spf.NewDNSResolver(w.resolver))
	if err != nil {
		return err
	}
	w.log.InfoContext(ctx, "resolved senders' SPF includes", "failed", failed)
	return nil
}

// CheckClaimsArgs asks for the proofs of unverified domain claims to be
// checked (each on its own backoff) and for expired claims to be deleted.
type CheckClaimsArgs struct{}

// Kind names the job.
func (CheckClaimsArgs) Kind() string { return "domain.check_claims" }

type checkClaimsWorker struct {
	river.WorkerDefaults[CheckClaimsArgs]
	domains *domain.Service
	log     *slog.Logger
}

func (w *checkClaimsWorker) Work(ctx context.Context, job *river.Job[CheckClaimsArgs]) error {
	run, err := w.domains.CheckClaims(ctx)
	if run.Checked+run.Expired > 0 {
		w.log.InfoContext(ctx, "checked domain claims", "checked", run.Checked, "verified", run.Verified, "expired", run.Expired)
	}
	return err
}

// Services are what the workers call.
type Services struct {
	Auth    *auth.Service
	Senders *sender.Manager
	Domains *domain.Service
	// Resolver is the DNS server for resolving senders' includes; "" turns
	// the job off.
	Resolver string
}

// Config configures the River client.
type Config struct {
	// Workers is the number of concurrent jobs in the default queue; 0 makes
	// an insert-only client (this process enqueues, others work).
	Workers int
}

// NewClient returns a River client with every worker and periodic job.
func NewClient(pool *pgxpool.Pool, cfg Config, svc Services, log *slog.Logger) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &pruneLoginFailuresWorker{auth: svc.Auth, log: log})
	river.AddWorker(workers, &expirePinsWorker{senders: svc.Senders})
	river.AddWorker(workers, &resolveRangesWorker{senders: svc.Senders, resolver: svc.Resolver, log: log})
	river.AddWorker(workers, &checkClaimsWorker{domains: svc.Domains, log: log})
	ingest.AddWorkers(workers, pool, ingest.Options{}, log)
	periodic := []*river.PeriodicJob{ingest.RetentionPeriodicJob()}
	if svc.Resolver != "" {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(6*time.Hour), func() (river.JobArgs, *river.InsertOpts) {
			return ResolveRangesArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
		}, &river.PeriodicJobOpts{RunOnStart: true}))
	}
	rc := &river.Config{
		Logger:  log,
		Workers: workers,
		PeriodicJobs: append(periodic,
			river.NewPeriodicJob(river.PeriodicInterval(time.Hour), func() (river.JobArgs, *river.InsertOpts) {
				return PruneLoginFailuresArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			// A claim's proof is looked for within a minute of its next
			// check (the backoff lives on each claim), and expired claims go.
			river.NewPeriodicJob(river.PeriodicInterval(time.Minute), func() (river.JobArgs, *river.InsertOpts) {
				return CheckClaimsArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Minute}}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			// Pins expire within a minute of their time.
			river.NewPeriodicJob(river.PeriodicInterval(time.Minute), func() (river.JobArgs, *river.InsertOpts) {
				return ExpirePinsArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Minute}}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		),
	}
	if cfg.Workers > 0 {
		rc.Queues = map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: cfg.Workers},
			ingest.Queue:       ingest.QueueConfig(cfg.Workers),
		}
	}
	c, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return c, nil
}
