package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/sources/sourcesdb"
)

// Classifier keeps source_classes current: it classifies the days queued
// in classify_days, and the domains queued in classify_domains day by day,
// and rebuilds each day's report summaries (report_daily, and the sums per
// source next to the classes; migration 00025) with its classes.
// Ingest queues the day a report adds to; a change to a domain's netblocks,
// keys or senders queues the domain; a change to a sender's ranges queues
// every domain (an account's own service: every domain of the account).
// An account's own services classify that account's domains only.
type Classifier struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// awaitPTR: the sources' reverse names are looked up (enrich.sources
	// runs), so a day with sources not looked up yet is classified again
	// once they are, within awaitPTRFor of being first queued.
	awaitPTR bool
}

// NewClassifier returns a Classifier. awaitPTR says that the reverse names
// of report sources are looked up in this deployment.
func NewClassifier(pool *pgxpool.Pool, awaitPTR bool, log *slog.Logger) *Classifier {
	return &Classifier{pool: pool, awaitPTR: awaitPTR, log: log}
}

// How long a day waits for its sources' reverse names, and how often it is
// classified again meanwhile.
const (
	awaitPTRFor   = time.Hour
	awaitPTRRetry = 2 * time.Minute
)

// Run is what one Classifier.Run did.
type Run struct {
	// Days classified, and the sources in them.
	Days, Sources int
	// Done is false when the run stopped at its deadline with work left.
	Done bool
}

// maxRunDomains bounds the domains one step expands into days.
const maxRunDomains = 100

// Run classifies queued work until none is left or deadline passes (zero:
// no deadline), each day in a transaction of its own.
func (c *Classifier) Run(ctx context.Context, deadline time.Time) (Run, error) {
	var run Run
	more := func() bool { return deadline.IsZero() || time.Now().Before(deadline) }
	q := sourcesdb.New(c.pool)
	for i := 0; i < maxRunDomains && more(); i++ {
		n, err := q.ExpandQueuedDomain(ctx)
		if err != nil {
			return run, fmt.Errorf("expand queued domain: %w", err)
		}
		if n.Domains == 0 {
			break
		}
	}
	senders, err := c.senders(ctx)
	if err != nil {
		return run, err
	}
	for more() {
		found := false
		err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
			q := sourcesdb.New(tx)
			day, err := q.NextDay(ctx)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("next day to classify: %w", err)
			}
			found = true
			n, pending, err := c.classifyDay(ctx, tx, day.DomainID, day.Name, day.Day, senders.of(day.AccountID))
			if err != nil {
				return err
			}
			run.Days++
			run.Sources += n
			if pending > 0 && c.awaitPTR && time.Since(day.FirstQueuedAt) < awaitPTRFor {
				return q.PostponeDay(ctx, sourcesdb.PostponeDayParams{DomainID: day.DomainID, Day: day.Day,
					QueuedAt: day.QueuedAt, AfterSeconds: awaitPTRRetry.Seconds()})
			}
			return q.DoneDay(ctx, sourcesdb.DoneDayParams{DomainID: day.DomainID, Day: day.Day, QueuedAt: day.QueuedAt})
		})
		if err != nil {
			return run, err
		}
		if !found {
			run.Done = true
			return run, nil
		}
	}
	return run, nil
}

// knownSenders are the catalog's services and every account's own.
type knownSenders struct {
	catalog []Sender
	// own are the accounts' own services, by account.
	own map[uuid.UUID][]Sender
}

// of returns the services a domain of the account is classified with: the
// catalog's and the account's own, in slug order.
func (k knownSenders) of(accountID uuid.UUID) []Sender {
	own := k.own[accountID]
	if len(own) == 0 {
		return k.catalog
	}
	out := append(append(make([]Sender, 0, len(k.catalog)+len(own)), k.catalog...), own...)
	slices.SortFunc(out, func(a, b Sender) int { return strings.Compare(a.Slug, b.Slug) })
	return out
}

// senders reads every known service as the classification reads it.
func (c *Classifier) senders(ctx context.Context) (knownSenders, error) {
	rows, err := sourcesdb.New(c.pool).Senders(ctx)
	if err != nil {
		return knownSenders{}, fmt.Errorf("load senders: %w", err)
	}
	out := knownSenders{own: map[uuid.UUID][]Sender{}}
	for _, r := range rows {
		s := Sender{Slug: r.Slug, Ranges: append(append([]netip.Prefix{}, r.ResolvedRanges...), r.StaticRanges...),
			DKIMDomains: r.DkimDomains, Selectors: r.DkimSelectors}
		for _, h := range r.HeloSuffixes {
			if h = strings.Trim(strings.ToLower(h), "."); h != "" {
				s.HostSuffixes = append(s.HostSuffixes, h)
			}
		}
		if r.AccountID != nil {
			out.own[*r.AccountID] = append(out.own[*r.AccountID], s)
		} else {
			out.catalog = append(out.catalog, s)
		}
	}
	return out, nil
}

// classifyDay classifies the sources of one domain's day and replaces its
// classes; it returns how many sources there were, and how many of them
// the enrichment has not looked up yet.
func (c *Classifier) classifyDay(ctx context.Context, tx pgx.Tx, domainID uuid.UUID, name string, day pgtype.Date, senders []Sender) (n, pending int, err error) {
	q := sourcesdb.New(tx)
	srcs, err := q.DaySources(ctx, sourcesdb.DaySourcesParams{DomainID: domainID, Day: day})
	if err != nil {
		return 0, 0, fmt.Errorf("load sources: %w", err)
	}
	sigs, err := q.DaySignatures(ctx, sourcesdb.DaySignaturesParams{DomainID: domainID, Day: day})
	if err != nil {
		return 0, 0, fmt.Errorf("load signatures: %w", err)
	}
	nets, err := q.DomainNetblocks(ctx, domainID)
	if err != nil {
		return 0, 0, fmt.Errorf("load netblocks: %w", err)
	}
	keyRows, err := q.DomainKeys(ctx, domainID)
	if err != nil {
		return 0, 0, fmt.Errorf("load keys: %w", err)
	}
	ips := make([]netip.Addr, len(srcs))
	for i, s := range srcs {
		ips[i] = s.SourceIp
	}
	ptrRows, err := q.ConfirmedPTRs(ctx, ips)
	if err != nil {
		return 0, 0, fmt.Errorf("load PTR names: %w", err)
	}
	ptrs := make(map[netip.Addr]string, len(ptrRows))
	for _, p := range ptrRows {
		if p.Ptr != nil {
			ptrs[p.Ip] = *p.Ptr
		}
	}
	bySource := map[netip.Addr][]Signature{}
	for _, s := range sigs {
		bySource[s.SourceIp] = append(bySource[s.SourceIp], Signature{Domain: s.DkimDomain, Selector: s.Selector, Pass: s.Pass})
	}
	keys := make([]Key, len(keyRows))
	for i, k := range keyRows {
		keys[i] = Key{Selector: k.Selector, Service: k.Service}
	}
	p := sourcesdb.ReplaceDayClassesParams{DomainID: domainID, Day: day, Ips: ips,
		Classes: make([]string, len(srcs)), Services: make([]string, len(srcs)), Evidences: make([]string, len(srcs))}
	for i, s := range srcs {
		r := Classify(Facts{IP: s.SourceIp, Domain: name, Netblocks: nets, Senders: senders, Keys: keys,
			Signatures: bySource[s.SourceIp], PTR: ptrs[s.SourceIp], ForwardReason: s.Forwarded})
		p.Classes[i], p.Services[i], p.Evidences[i] = string(r.Class), r.Service, r.Evidence
	}
	if err := storeClasses(ctx, tx, q, p); err != nil {
		return 0, 0, fmt.Errorf("store classes: %w", err)
	}
	if err := q.SummarizeDay(ctx, sourcesdb.SummarizeDayParams{DomainID: domainID, Day: day}); err != nil {
		return 0, 0, fmt.Errorf("summarise day: %w", err)
	}
	if c.awaitPTR {
		p, err := q.PendingLookups(ctx, ips)
		if err != nil {
			return 0, 0, fmt.Errorf("count pending lookups: %w", err)
		}
		pending = int(p)
	}
	return len(srcs), pending, nil
}

var classColumns = []string{"domain_id", "day", "source_ip", "class", "service", "evidence"}

// storeClasses replaces a day's classes. A day classified for the first
// time (a report's new day, the common case) has them copied in: for a
// large report's 100,000 sources that costs a fraction of the upsert. The
// worker holds the day's classify_days row, so no other run writes its
// classes meanwhile.
func storeClasses(ctx context.Context, tx pgx.Tx, q *sourcesdb.Queries, p sourcesdb.ReplaceDayClassesParams) error {
	classified, err := q.DayClassified(ctx, sourcesdb.DayClassifiedParams{DomainID: p.DomainID, Day: p.Day})
	if err != nil {
		return err
	}
	if classified || len(p.Ips) == 0 {
		return q.ReplaceDayClasses(ctx, p)
	}
	row := make([]any, len(classColumns))
	row[0], row[1] = pgtype.UUID{Bytes: p.DomainID, Valid: true}, p.Day
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"source_classes"}, classColumns, pgx.CopyFromSlice(len(p.Ips), func(i int) ([]any, error) {
		row[2], row[3], row[4], row[5] = p.Ips[i], p.Classes[i], p.Services[i], p.Evidences[i]
		return row, nil
	}))
	return err
}
