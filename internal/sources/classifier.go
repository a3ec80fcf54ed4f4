package sources

import (
	"cmp"
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
	classes := make([]Result, len(srcs))
	for i, s := range srcs {
		classes[i] = Classify(Facts{IP: s.SourceIp, Domain: name, Netblocks: nets, Senders: senders, Keys: keys,
			Signatures: bySource[s.SourceIp], PTR: ptrs[s.SourceIp], ForwardReason: s.Forwarded})
	}
	if err := storeDay(ctx, tx, domainID, day, srcs, classes); err != nil {
		return 0, 0, err
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

var (
	classColumns = []string{"domain_id", "day", "source_ip", "class", "service", "evidence",
		"messages", "dmarc_pass", "spf_pass", "spf_aligned", "dkim_pass", "dkim_aligned",
		"disposition_none", "disposition_quarantine", "disposition_reject", "reporters"}
	dailyColumns = []string{"domain_id", "day", "class", "service",
		"messages", "dmarc_pass", "spf_pass", "spf_aligned", "dkim_pass", "dkim_aligned",
		"disposition_none", "disposition_quarantine", "disposition_reject", "reporters"}
)

// storeDay replaces a day's classes, each with its source's sums, and the
// day's summaries (report_daily: the sums per class and service), all
// written once: the rows are removed and copied in, one write per row,
// rather than stored and then updated with sums computed again in SQL.
// The sums are those of migration 00025's live views, which the tests of
// internal/authreport compare with these. The worker holds the day's
// classify_days row, so no other run writes the day meanwhile.
func storeDay(ctx context.Context, tx pgx.Tx, domainID uuid.UUID, day pgtype.Date, srcs []sourcesdb.DaySourcesRow, classes []Result) error {
	if err := sourcesdb.New(tx).ClearDay(ctx, sourcesdb.ClearDayParams{DomainID: domainID, Day: day}); err != nil {
		return fmt.Errorf("clear the day's classes: %w", err)
	}
	if len(srcs) == 0 {
		return nil
	}
	dom := pgtype.UUID{Bytes: domainID, Valid: true}
	type group struct{ class, service string }
	daily := map[group]*sourcesdb.DaySourcesRow{}
	var order []group
	row := make([]any, len(classColumns))
	row[0], row[1] = dom, day
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"source_classes"}, classColumns, pgx.CopyFromSlice(len(srcs), func(i int) ([]any, error) {
		s, r := &srcs[i], classes[i]
		if s.Reporters == nil {
			s.Reporters = []string{}
		}
		row[2], row[3], row[4], row[5] = s.SourceIp, string(r.Class), r.Service, r.Evidence
		row[6], row[7], row[8], row[9], row[10], row[11] = s.Messages, s.DmarcPass, s.SpfPass, s.SpfAligned, s.DkimPass, s.DkimAligned
		row[12], row[13], row[14], row[15] = s.DispositionNone, s.DispositionQuarantine, s.DispositionReject, s.Reporters
		g := group{class: string(r.Class)}
		if r.Class == Service {
			g.service = r.Service
		}
		d := daily[g]
		if d == nil {
			d = &sourcesdb.DaySourcesRow{}
			daily[g] = d
			order = append(order, g)
		}
		d.Messages += s.Messages
		d.DmarcPass += s.DmarcPass
		d.SpfPass += s.SpfPass
		d.SpfAligned += s.SpfAligned
		d.DkimPass += s.DkimPass
		d.DkimAligned += s.DkimAligned
		d.DispositionNone += s.DispositionNone
		d.DispositionQuarantine += s.DispositionQuarantine
		d.DispositionReject += s.DispositionReject
		for _, rep := range s.Reporters {
			if k, found := slices.BinarySearch(d.Reporters, rep); !found {
				d.Reporters = slices.Insert(d.Reporters, k, rep)
			}
		}
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("store classes: %w", err)
	}
	slices.SortFunc(order, func(a, b group) int {
		return cmp.Or(strings.Compare(a.class, b.class), strings.Compare(a.service, b.service))
	})
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"report_daily"}, dailyColumns, pgx.CopyFromSlice(len(order), func(i int) ([]any, error) {
		g := order[i]
		d := daily[g]
		if d.Reporters == nil {
			d.Reporters = []string{}
		}
		return []any{dom, day, g.class, g.service, d.Messages, d.DmarcPass, d.SpfPass, d.SpfAligned, d.DkimPass, d.DkimAligned,
			d.DispositionNone, d.DispositionQuarantine, d.DispositionReject, d.Reporters}, nil
	}))
	if err != nil {
		return fmt.Errorf("store the day's summaries: %w", err)
	}
	return nil
}
