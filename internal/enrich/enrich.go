// Package enrich says who is behind the source IPs of stored reports: the
// forward-confirmed reverse DNS name (FCrDNS) through the configured
// resolver, and the autonomous system and country from the operator's
// MaxMind-format files when configured ([Geo]; nothing is downloaded).
//
// Answers are cached in PostgreSQL (ip_enrichment), one row per IP, with
// an expiry: [Config.FoundTTL] for a PTR name, [Config.NoneTTL] for none,
// and a backoff from [Config.FailTTL] to [Config.FailTTLMax] for a lookup
// that got no answer, which keeps the last name found and records why.
//
// [Enricher.Run] is the periodic job's work. It queues the source IPs of
// reports stored since the last run (reports.sources_queued, a partial
// index: one index read of each new report's records), then looks up the
// IPs due, with at most [Config.Workers] in flight and at most
// [Config.Rate] per second, and starts none after its deadline. An IP not
// seen in a report for [Config.RefreshWithin] is not looked up again until
// it is. [Enricher.Get] reads the cache.
package enrich

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/enrich/enrichdb"
)

// Outcome is what the reverse lookup found out.
type Outcome string

// The outcomes. The empty outcome means not looked up: no resolver is
// configured.
const (
	// Found: the IP has a PTR name (Confirmed says whether it resolves
	// back to the IP).
	Found Outcome = "found"
	// None: the reverse name does not exist or has no PTR record.
	None Outcome = "none"
	// Failed: no answer could be had (SERVFAIL, a timeout...); retried
	// with a backoff.
	Failed Outcome = "failed"
)

// The defaults of [Config].
const (
	DefaultWorkers       = 8
	DefaultRate          = 20
	DefaultMaxNames      = 3
	DefaultFoundTTL      = 24 * time.Hour
	DefaultNoneTTL       = 6 * time.Hour
	DefaultFailTTL       = 10 * time.Minute
	DefaultFailTTLMax    = 6 * time.Hour
	DefaultRefreshWithin = 30 * 24 * time.Hour
	DefaultBatch         = 200
	// DefaultReportsPerRun bounds the reports whose sources one run queues
	// before it looks any up; the rest wait for the next run.
	DefaultReportsPerRun = 1000
)

// Config configures an [Enricher]. Zero fields take the defaults.
type Config struct {
	// Checker asks the resolver; nil looks up no reverse DNS.
	Checker *dnscheck.Checker
	// Geo holds the MaxMind-format files; nil fills no ASN or country.
	Geo *Geo
	// Workers bounds the IPs looked up at once (default 8); each sends its
	// queries one after the other.
	Workers int
	// Rate bounds the IPs looked up per second (default 20), each one a
	// PTR query and at most MaxNames forward queries.
	Rate float64
	// MaxNames bounds the PTR names of one IP that are resolved forward
	// (default 3).
	MaxNames int
	// FoundTTL is how long an IP with a PTR name is cached (default 24 h),
	// NoneTTL one without (default 6 h).
	FoundTTL, NoneTTL time.Duration
	// FailTTL is how long a failed lookup is cached (default 10 min),
	// doubling with each consecutive failure up to FailTTLMax (default 6 h).
	FailTTL, FailTTLMax time.Duration
	// RefreshWithin: an IP is looked up again when it expires only if a
	// report of the last RefreshWithin (default 30 days) lists it.
	RefreshWithin time.Duration
	// Batch is how many due IPs are read at once (default 200).
	Batch int
	// ReportsPerRun bounds the reports queued per run (default 1000).
	ReportsPerRun int
	// Now is the clock of the TTLs (default time.Now); the deadline of
	// [Enricher.Run] is on the real clock.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.Workers = cmp.Or(c.Workers, DefaultWorkers)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.MaxNames = cmp.Or(c.MaxNames, DefaultMaxNames)
	c.FoundTTL = cmp.Or(c.FoundTTL, DefaultFoundTTL)
	c.NoneTTL = cmp.Or(c.NoneTTL, DefaultNoneTTL)
	c.FailTTL = cmp.Or(c.FailTTL, DefaultFailTTL)
	c.FailTTLMax = max(cmp.Or(c.FailTTLMax, DefaultFailTTLMax), c.FailTTL)
	c.RefreshWithin = cmp.Or(c.RefreshWithin, DefaultRefreshWithin)
	c.Batch = cmp.Or(c.Batch, DefaultBatch)
	c.ReportsPerRun = cmp.Or(c.ReportsPerRun, DefaultReportsPerRun)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Enricher fills and reads the cache. It is safe for concurrent use; the
// rate bound holds across its runs.
type Enricher struct {
	pool    *pgxpool.Pool
	q       *enrichdb.Queries
	cfg     Config
	limiter *rate.Limiter
	log     *slog.Logger
}

// New returns an Enricher over pool.
func New(pool *pgxpool.Pool, cfg Config, log *slog.Logger) *Enricher {
	cfg = cfg.withDefaults()
	return &Enricher{pool: pool, q: enrichdb.New(pool), cfg: cfg,
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), 1), log: log}
}

// Info is what is known about an IP.
type Info struct {
	IP netip.Addr
	// Outcome of the last reverse lookup; "" when none was made.
	Outcome Outcome
	// PTR is the forward-confirmed PTR name, or else the first one; a
	// failed lookup keeps the last one found. Confirmed says whether it
	// resolves back to IP.
	PTR       string
	Confirmed bool
	// ASN, ASOrg and Country come from the MaxMind-format files (zero
	// when not configured or not listed).
	ASN     int64
	ASOrg   string
	Country string
	// LookedUp is when the row was filled, Expires when it is due again.
	LookedUp, Expires time.Time
	// Error says why the last lookup failed.
	Error string
}

// Get returns what the cache holds for ips, those looked up at least once.
// The facts are public (DNS and the operator's files), no tenant's: the
// caller authorises the report that shows them.
func (e *Enricher) Get(ctx context.Context, ips []netip.Addr) (map[netip.Addr]Info, error) {
	rows, err := e.q.Get(ctx, ips)
	if err != nil {
		return nil, fmt.Errorf("read IP enrichment: %w", err)
	}
	out := make(map[netip.Addr]Info, len(rows))
	for _, r := range rows {
		info := Info{IP: r.Ip, PTR: deref(r.Ptr), Confirmed: r.PtrConfirmed, ASOrg: deref(r.AsOrg),
			Country: deref(r.Country), Expires: r.ExpiresAt, Error: deref(r.Error)}
		info.Outcome = Outcome(deref(r.Outcome))
		if r.Asn != nil {
			info.ASN = *r.Asn
		}
		if r.LookedUpAt != nil {
			info.LookedUp = *r.LookedUpAt
		}
		out[r.Ip] = info
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// RunStats counts one run's work.
type RunStats struct {
	// Reports whose sources were queued, and the IPs that became due.
	Reports, Queued int
	// LookedUp IPs, of which Found with a PTR name (Confirmed of them
	// forward-confirmed), None without one, Failed without an answer.
	LookedUp, Found, Confirmed, None, Failed int
	// Done: nothing is left due; otherwise the deadline stopped the run.
	Done bool
}

// Run queues the sources of new reports and looks up the IPs due, and
// starts no lookup after until (those started finish, each bounded by the
// resolver's timeouts).
func (e *Enricher) Run(ctx context.Context, until time.Time) (RunStats, error) {
	var st RunStats
	if err := e.queue(ctx, until, &st); err != nil {
		return st, err
	}
	now := e.cfg.Now()
	if _, err := e.q.Sleep(ctx, enrichdb.SleepParams{Now: now, SeenSince: date(now.Add(-e.cfg.RefreshWithin))}); err != nil {
		return st, fmt.Errorf("put unseen IPs to sleep: %w", err)
	}
	wctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	for {
		if wctx.Err() != nil {
			return st, ctx.Err()
		}
		due, err := e.q.Due(ctx, enrichdb.DueParams{Now: e.cfg.Now(), Max: limit(e.cfg.Batch)})
		if err != nil {
			return st, fmt.Errorf("read due IPs: %w", err)
		}
		if len(due) == 0 {
			st.Done = true
			return st, nil
		}
		stopped, err := e.lookupAll(ctx, wctx, due, &st)
		if err != nil || stopped {
			return st, err
		}
	}
}

// queue adds the source IPs of reports not queued yet, each report in its
// own transaction with its mark.
func (e *Enricher) queue(ctx context.Context, until time.Time, st *RunStats) error {
	reports, err := e.q.PendingReports(ctx, limit(e.cfg.ReportsPerRun))
	if err != nil {
		return fmt.Errorf("read reports to enrich: %w", err)
	}
	for _, r := range reports {
		if !time.Now().Before(until) {
			return nil
		}
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			q := e.q.WithTx(tx)
			n, err := q.QueueSources(ctx, enrichdb.QueueSourcesParams{ReportID: r.ID, Day: r.Day, Now: e.cfg.Now()})
			if err != nil {
				return err
			}
			st.Queued += int(n)
			return q.MarkQueued(ctx, r.ID)
		})
		if err != nil {
			return fmt.Errorf("queue the sources of report %s: %w", r.ID, err)
		}
		st.Reports++
	}
	return nil
}

// lookupAll looks up the due IPs, at most Workers at once and at the rate,
// until wctx ends; stopped says it ended first.
func (e *Enricher) lookupAll(ctx, wctx context.Context, due []enrichdb.DueRow, st *RunStats) (stopped bool, err error) {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, e.cfg.Workers)
	for _, row := range due {
		// Wait fails at once when the next token would come after the
		// deadline.
		if e.limiter.Wait(wctx) != nil {
			stopped = true
			break
		}
		sem <- struct{}{}
		mu.Lock()
		failing := len(errs) > 0
		mu.Unlock()
		if failing {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := e.enrich(ctx, row)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			st.LookedUp++
			switch out.Outcome {
			case Found:
				st.Found++
				if out.Confirmed {
					st.Confirmed++
				}
			case None:
				st.None++
			case Failed:
				st.Failed++
			}
		})
	}
	wg.Wait()
	return stopped, errors.Join(errs...)
}

// enrich looks one IP up and saves what it found.
func (e *Enricher) enrich(ctx context.Context, row enrichdb.DueRow) (Info, error) {
	now := e.cfg.Now()
	info := Info{IP: row.Ip, LookedUp: now}
	failures := int32(0)
	ttl := e.cfg.FoundTTL
	if e.cfg.Checker != nil {
		ptr := Confirm(ctx, e.cfg.Checker, row.Ip, e.cfg.MaxNames)
		info.Outcome, info.PTR, info.Confirmed = ptr.Outcome, ptr.Name, ptr.Confirmed
		switch ptr.Outcome {
		case None:
			ttl = e.cfg.NoneTTL
		case Failed:
			info.Error = ptr.Err.Error()
			failures = row.Failures + 1
			ttl = backoff(e.cfg.FailTTL, e.cfg.FailTTLMax, failures)
			if info.PTR == "" && Outcome(deref(row.Outcome)) != None {
				// Keep the last name found until an answer says otherwise.
				info.PTR, info.Confirmed = deref(row.Ptr), row.PtrConfirmed
			}
		}
	}
	geo, err := e.cfg.Geo.Lookup(row.Ip)
	if err != nil {
		info.Error = strings.TrimPrefix(info.Error+"; "+err.Error(), "; ")
		e.log.WarnContext(ctx, "reading the MaxMind-format file failed", "ip", row.Ip, "err", err)
	}
	info.ASN, info.ASOrg, info.Country = geo.ASN, geo.ASOrg, geo.Country
	info.Expires = now.Add(ttl)
	err = e.q.Save(ctx, enrichdb.SaveParams{
		Ip: row.Ip, Outcome: nonEmpty(string(info.Outcome)), Ptr: nonEmpty(info.PTR), PtrConfirmed: info.Confirmed,
		Asn: nonZero(info.ASN), AsOrg: nonEmpty(info.ASOrg), Country: nonEmpty(info.Country),
		Now: &now, ExpiresAt: info.Expires, Failures: failures, Error: nonEmpty(info.Error),
	})
	if err != nil {
		return info, fmt.Errorf("save the enrichment of %s: %w", row.Ip, err)
	}
	return info, nil
}

// backoff is the TTL after the n-th consecutive failure (n ≥ 1): first,
// doubled each time, at most last.
func backoff(first, last time.Duration, n int32) time.Duration {
	d := first
	for i := int32(1); i < n && d < last; i++ {
		d *= 2
	}
	return min(d, last)
}

// maxLimit bounds a statement's rows, whatever the configuration says.
const maxLimit = 100_000

func limit(n int) int32 {
	if n <= 0 || n > maxLimit {
		return maxLimit
	}
	return int32(n)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonZero(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

func date(t time.Time) pgtype.Date {
	y, m, d := t.UTC().Date()
	return pgtype.Date{Time: time.Date(y, m, d, 0, 0, 0, 0, time.UTC), Valid: true}
}
