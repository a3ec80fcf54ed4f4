// Package jobs runs Rampart's background work on River: each module's
// workers and the periodic maintenance jobs. Job kinds are namespaced
// (auth.prune_login_failures, sender.resolve_ranges, domain.check_claims,
// domain.maintain_edge, domain.check_published, report.ingest,
// enrich.sources, sources.classify); a job caused by a write is enqueued in
// the same transaction as that write (River InsertTx).
package jobs

import (
	"cmp"
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
	"github.com/rampartmail/rampart/internal/enrich"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/sender"
	"github.com/rampartmail/rampart/internal/sources"
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
	auth    *auth.Service
	log     *slog.Logger
	timeout time.Duration
}

func (w *pruneLoginFailuresWorker) Timeout(*river.Job[PruneLoginFailuresArgs]) time.Duration {
	return w.timeout
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
	timeout time.Duration
}

func (w *expirePinsWorker) Timeout(*river.Job[ExpirePinsArgs]) time.Duration { return w.timeout }

func (w *expirePinsWorker) Work(ctx context.Context, job *river.Job[ExpirePinsArgs]) error {
	_, done, err := w.senders.ExpirePinsUntil(ctx, time.Now().Add(w.timeout/2))
	if err == nil && !done {
		// The domains left are found again; snoozing spends no attempt.
		return river.JobSnooze(time.Second)
	}
	return err
}

// ResolveRangesArgs asks for every sender service's SPF include to be
// resolved into its current ranges (see package sender for which).
type ResolveRangesArgs struct {
	// After, set on a continuation, is the slug of the last service the
	// run before did; this run starts after it.
	After string `json:"after,omitempty"`
}

// Kind names the job.
func (ResolveRangesArgs) Kind() string { return "sender.resolve_ranges" }

type resolveRangesWorker struct {
	river.WorkerDefaults[ResolveRangesArgs]
	senders  *sender.Manager
	resolver string
	log      *slog.Logger
	timeout  time.Duration
}

func (w *resolveRangesWorker) Timeout(*river.Job[ResolveRangesArgs]) time.Duration { return w.timeout }

// Work resolves services one by one, each within spf.DefaultTimeout, and
// starts none after half the timeout: the rest goes to a continuation job
// that starts after the last service done, so that a long catalog or slow
// DNS spreads over several bounded runs.
func (w *resolveRangesWorker) Work(ctx context.Context, job *river.Job[ResolveRangesArgs]) error {
	failed, next, err := w.senders.ResolveRangesFrom(ctx, spf.NewDNSResolver(w.resolver), job.Args.After, time.Now().Add(w.timeout/2))
	if err != nil {
		return err
	}
	w.log.InfoContext(ctx, "resolved senders' SPF includes", "after", job.Args.After, "failed", failed, "next", next)
	if next == "" {
		return nil
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("continue resolving ranges: %w", err)
	}
	if _, err := client.Insert(ctx, ResolveRangesArgs{After: next}, nil); err != nil {
		return fmt.Errorf("continue resolving ranges: %w", err)
	}
	return nil
}

// MaintainEdgeArgs asks for the edge rows to be kept current: rows
// compiled before the current SPF form get their redirect target, and
// removed domains leave the edge at the end of their grace period.
type MaintainEdgeArgs struct{}

// Kind names the job.
func (MaintainEdgeArgs) Kind() string { return "domain.maintain_edge" }

type maintainEdgeWorker struct {
	river.WorkerDefaults[MaintainEdgeArgs]
	domains *domain.Service
	log     *slog.Logger
	timeout time.Duration
}

func (w *maintainEdgeWorker) Timeout(*river.Job[MaintainEdgeArgs]) time.Duration { return w.timeout }

func (w *maintainEdgeWorker) Work(ctx context.Context, job *river.Job[MaintainEdgeArgs]) error {
	run, err := w.domains.MaintainEdge(ctx, time.Now().Add(w.timeout/2))
	if err != nil {
		return fmt.Errorf("maintain edge rows: %w", err)
	}
	if run.Compiled > 0 || run.Expired > 0 {
		w.log.InfoContext(ctx, "edge rows maintained", "compiled", run.Compiled, "expired_removals", run.Expired)
	}
	if !run.Done {
		return river.JobSnooze(time.Second)
	}
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
	timeout time.Duration
}

func (w *checkClaimsWorker) Timeout(*river.Job[CheckClaimsArgs]) time.Duration { return w.timeout }

func (w *checkClaimsWorker) Work(ctx context.Context, job *river.Job[CheckClaimsArgs]) error {
	run, err := w.domains.CheckClaims(ctx)
	if run.Checked+run.Expired > 0 {
		w.log.InfoContext(ctx, "checked domain claims", "checked", run.Checked, "verified", run.Verified, "expired", run.Expired)
	}
	return err
}

// CheckPublishedArgs asks for the records verified domains publish in
// their own DNS (apex SPF, the _dmarc and _domainkey delegations) to be
// looked at again where due: about hourly, sooner after a lookup that got
// no answer (each domain on its own backoff).
type CheckPublishedArgs struct{}

// Kind names the job.
func (CheckPublishedArgs) Kind() string { return "domain.check_published" }

type checkPublishedWorker struct {
	river.WorkerDefaults[CheckPublishedArgs]
	domains *domain.Service
	log     *slog.Logger
	timeout time.Duration
}

func (w *checkPublishedWorker) Timeout(*river.Job[CheckPublishedArgs]) time.Duration {
	return w.timeout
}

// Work checks due domains in batches and starts none after half the
// timeout; the rest are due still and the next run (a minute on) takes
// them.
func (w *checkPublishedWorker) Work(ctx context.Context, job *river.Job[CheckPublishedArgs]) error {
	run, err := w.domains.CheckPublished(ctx, time.Now().Add(w.timeout/2))
	if run.Checked > 0 {
		w.log.InfoContext(ctx, "checked domains' published DNS", "checked", run.Checked, "unanswered", run.Problems)
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
	// Enricher enriches report sources; nil turns enrich.sources off.
	Enricher *enrich.Enricher
	// Sources classifies report sources; nil turns sources.classify off.
	Sources *sources.Classifier
}

// Config configures the River client.
type Config struct {
	// Workers is the number of concurrent jobs in the default queue; 0 makes
	// an insert-only client (this process enqueues, others work).
	Workers int
	// JobTimeout bounds the longest job run, report.ingest's; the other
	// kinds are bounded by the smaller of it and their own timeout
	// ([Timeouts]). Default [DefaultJobTimeout].
	JobTimeout time.Duration
	// RescueAfter is how long a job may be running before River takes it
	// for abandoned (its process died) and retries it. It must exceed
	// JobTimeout, or a job still working would be run twice. Default
	// [DefaultRescueAfter].
	RescueAfter time.Duration
}

const (
	// DefaultJobTimeout is report.ingest's timeout, the longest: see
	// ingest.DefaultIngestTimeout.
	DefaultJobTimeout = ingest.DefaultIngestTimeout
	// DefaultRescueAfter retries a job abandoned by a dead process within
	// five minutes: River's rescuer, run by the leader every 30 seconds,
	// finds it after this long and River's scheduler (every 5 seconds)
	// makes it available again about a second later.
	DefaultRescueAfter = 4 * time.Minute

	// maintenanceTimeout bounds one run of the periodic maintenance kinds:
	// each works in steps that commit on their own and starts no step after
	// half of it.
	maintenanceTimeout = time.Minute
	// pruneTimeout bounds auth.prune_login_failures: one indexed DELETE.
	pruneTimeout = 30 * time.Second
)

// Timeouts returns each job kind's timeout under cfg.
func Timeouts(cfg Config) map[string]time.Duration {
	cfg = cfg.withDefaults()
	return map[string]time.Duration{
		ingest.IngestArgs{}.Kind():      cfg.JobTimeout,
		ingest.RetentionArgs{}.Kind():   min(cfg.JobTimeout, ingest.RetentionTimeout),
		PruneLoginFailuresArgs{}.Kind(): min(cfg.JobTimeout, pruneTimeout),
		ExpirePinsArgs{}.Kind():         min(cfg.JobTimeout, maintenanceTimeout),
		ResolveRangesArgs{}.Kind():      min(cfg.JobTimeout, maintenanceTimeout),
		CheckClaimsArgs{}.Kind():        min(cfg.JobTimeout, maintenanceTimeout),
		MaintainEdgeArgs{}.Kind():       min(cfg.JobTimeout, maintenanceTimeout),
		CheckPublishedArgs{}.Kind():     min(cfg.JobTimeout, maintenanceTimeout),
		EnrichSourcesArgs{}.Kind():      min(cfg.JobTimeout, maintenanceTimeout),
		ClassifySourcesArgs{}.Kind():    min(cfg.JobTimeout, maintenanceTimeout),
	}
}

func (c Config) withDefaults() Config {
	c.JobTimeout = cmp.Or(c.JobTimeout, DefaultJobTimeout)
	c.RescueAfter = cmp.Or(c.RescueAfter, DefaultRescueAfter)
	return c
}

// Check refuses a configuration under which River could rescue a job that
// is still working.
func (c Config) Check() error {
	c = c.withDefaults()
	if c.JobTimeout < 0 || c.RescueAfter < 0 {
		return fmt.Errorf("job timeout %s and rescue delay %s cannot be negative", c.JobTimeout, c.RescueAfter)
	}
	if c.RescueAfter <= c.JobTimeout {
		return fmt.Errorf("job rescue delay %s must exceed the longest job timeout %s", c.RescueAfter, c.JobTimeout)
	}
	return nil
}

// NewClient returns a River client with every worker and periodic job.
// It refuses a configuration [Config.Check] refuses.
func NewClient(pool *pgxpool.Pool, cfg Config, svc Services, log *slog.Logger) (*river.Client[pgx.Tx], error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	timeouts := Timeouts(cfg)
	workers := river.NewWorkers()
	river.AddWorker(workers, &pruneLoginFailuresWorker{auth: svc.Auth, log: log,
		timeout: timeouts[PruneLoginFailuresArgs{}.Kind()]})
	river.AddWorker(workers, &expirePinsWorker{senders: svc.Senders, timeout: timeouts[ExpirePinsArgs{}.Kind()]})
	river.AddWorker(workers, &resolveRangesWorker{senders: svc.Senders, resolver: svc.Resolver, log: log,
		timeout: timeouts[ResolveRangesArgs{}.Kind()]})
	river.AddWorker(workers, &checkClaimsWorker{domains: svc.Domains, log: log, timeout: timeouts[CheckClaimsArgs{}.Kind()]})
	river.AddWorker(workers, &maintainEdgeWorker{domains: svc.Domains, log: log, timeout: timeouts[MaintainEdgeArgs{}.Kind()]})
	river.AddWorker(workers, &checkPublishedWorker{domains: svc.Domains, log: log, timeout: timeouts[CheckPublishedArgs{}.Kind()]})
	ingest.AddWorkers(workers, pool, ingest.Options{Timeout: cfg.JobTimeout, Classifier: svc.Sources}, log)
	periodic := []*river.PeriodicJob{ingest.RetentionPeriodicJob()}
	periodic = addEnrich(workers, periodic, svc.Enricher, timeouts[EnrichSourcesArgs{}.Kind()], log)
	periodic = addClassify(workers, periodic, pool, svc.Sources, timeouts[ClassifySourcesArgs{}.Kind()], log)
	if svc.Resolver != "" {
		// Senders' includes resolve at start and hourly. Not deduplicated
		// by period: a restart within the hour of the last run (a fix of
		// the resolver, a new catalog) resolves again rather than waiting
		// for the next hour. Only the leader inserts periodic jobs, so
		// processes starting together do not each add one; a new leader
		// runs it once more, which costs the vendors a few queries.
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(time.Hour), func() (river.JobArgs, *river.InsertOpts) {
			return ResolveRangesArgs{}, nil
		}, &river.PeriodicJobOpts{RunOnStart: true}))
	}
	rc := &river.Config{
		Logger:  log,
		Workers: workers,
		// Every kind sets its own timeout; this bounds any that would not.
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		PeriodicJobs: append(periodic,
			river.NewPeriodicJob(river.PeriodicInterval(time.Hour), func() (river.JobArgs, *river.InsertOpts) {
				return PruneLoginFailuresArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			// A claim's proof is looked for within a minute of its next
			// check (the backoff lives on each claim), and expired claims go.
			river.NewPeriodicJob(river.PeriodicInterval(time.Minute), func() (river.JobArgs, *river.InsertOpts) {
				return CheckClaimsArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Minute}}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			// Removed domains leave the edge within 10 minutes of the
			// end of their grace; rows from before the current SPF form
			// are compiled at start.
			river.NewPeriodicJob(river.PeriodicInterval(10*time.Minute), func() (river.JobArgs, *river.InsertOpts) {
				return MaintainEdgeArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: 10 * time.Minute}}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			// A domain's own DNS is looked at within a minute of its next
			// check (about hourly; the backoff lives on each domain).
			river.NewPeriodicJob(river.PeriodicInterval(time.Minute), func() (river.JobArgs, *river.InsertOpts) {
				return CheckPublishedArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Minute}}
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
