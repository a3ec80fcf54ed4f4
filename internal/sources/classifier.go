package sources

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/sketch"
	"github.com/rampartmail/rampart/internal/sources/sourcesdb"
)

// Classifier keeps source_classes current: it classifies the days queued
// in classify_days, and the domains queued in classify_domains day by day,
// and rebuilds each day's report summaries (report_daily, and the sums per
// source next to the classes; migration 00025) with its classes; then the
// accounts' summaries of the days queued in account_days (account_daily,
// migration 00032) once their domains' days are classified.
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
	// AccountDays summarised (account_daily).
	AccountDays int
	// Done is false when the run stopped at its deadline with work left.
	Done bool
}

// maxRunDomains bounds the domains one step expands into days.
const maxRunDomains = 100

// Run classifies queued work until none is left or deadline passes (zero:
// no deadline), each day in a transaction of its own, then summarises the
// queued account days whose domains' days are all classified.
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
			break
		}
	}
	for more() {
		found := false
		err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
			q := sourcesdb.New(tx)
			ad, err := q.NextAccountDay(ctx)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("next account day to summarise: %w", err)
			}
			found = true
			if err := summarizeAccountDay(ctx, tx, ad.AccountID, ad.Day); err != nil {
				return err
			}
			run.AccountDays++
			return q.DoneAccountDay(ctx, sourcesdb.DoneAccountDayParams(ad))
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
		"disposition_none", "disposition_quarantine", "disposition_reject", "reporters", "sources"}
)

// sums are one summary row's sums (report_daily, account_daily) with its
// sketch of addresses.
type sums struct {
	sourcesdb.DaySourcesRow
	addrs sketch.Addresses
}

func (d *sums) add(o sourcesdb.DaySourcesRow) {
	d.Messages += o.Messages
	d.DmarcPass += o.DmarcPass
	d.SpfPass += o.SpfPass
	d.SpfAligned += o.SpfAligned
	d.DkimPass += o.DkimPass
	d.DkimAligned += o.DkimAligned
	d.DispositionNone += o.DispositionNone
	d.DispositionQuarantine += o.DispositionQuarantine
	d.DispositionReject += o.DispositionReject
	for _, rep := range o.Reporters {
		if k, found := slices.BinarySearch(d.Reporters, rep); !found {
			d.Reporters = slices.Insert(d.Reporters, k, rep)
		}
	}
}

// group is a summary row's key.
type group struct{ class, service string }

// summaryRows are summary rows in key order, for COPY, each led by lead.
func summaryRows(lead []any, groups map[group]*sums) ([][]any, error) {
	keys := slices.SortedFunc(maps.Keys(groups), func(a, b group) int {
		return cmp.Or(strings.Compare(a.class, b.class), strings.Compare(a.service, b.service))
	})
	rows := make([][]any, len(keys))
	for i, g := range keys {
		d := groups[g]
		if d.Reporters == nil {
			d.Reporters = []string{}
		}
		sk, err := d.addrs.Bytes()
		if err != nil {
			return nil, err
		}
		rows[i] = append(slices.Clip(lead), g.class, g.service, d.Messages, d.DmarcPass, d.SpfPass, d.SpfAligned, d.DkimPass,
			d.DkimAligned, d.DispositionNone, d.DispositionQuarantine, d.DispositionReject, d.Reporters, sk)
	}
	return rows, nil
}

// storeDay replaces a day's classes, each with its source's sums, and the
// day's summaries (report_daily: the sums per class and service, and a
// sketch of their addresses), all written once: the rows are removed and
// copied in, one write per row, rather than stored and then updated with
// sums computed again in SQL. The sums are those of migration 00025's live
// views, which the tests of internal/authreport compare with these. The
// worker holds the day's classify_days row, so no other run writes the
// day meanwhile. Writing report_daily queues the account's day
// (migration 00032), summarised once its domains' days are classified.
func storeDay(ctx context.Context, tx pgx.Tx, domainID uuid.UUID, day pgtype.Date, srcs []sourcesdb.DaySourcesRow, classes []Result) error {
	q := sourcesdb.New(tx)
	if err := q.ClearDay(ctx, sourcesdb.ClearDayParams{DomainID: domainID, Day: day}); err != nil {
		return fmt.Errorf("clear the day's classes: %w", err)
	}
	if err := q.BumpGeneration(ctx, domainID); err != nil {
		return fmt.Errorf("count the domain's generation: %w", err)
	}
	if len(srcs) == 0 {
		return nil
	}
	dom := pgtype.UUID{Bytes: domainID, Valid: true}
	daily := map[group]*sums{}
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
			d = &sums{}
			daily[g] = d
		}
		d.add(*s)
		d.addrs.Add(s.SourceIp)
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("store classes: %w", err)
	}
	rows, err := summaryRows([]any{dom, day}, daily)
	if err != nil {
		return err
	}
	if _, err = tx.CopyFrom(ctx, pgx.Identifier{"report_daily"}, dailyColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("store the day's summaries: %w", err)
	}
	return nil
}

var accountColumns = append([]string{"account_id"}, dailyColumns[1:]...)

// summarizeAccountDay rebuilds an account's summaries of a day
// (account_daily) from its domains' (report_daily): their sums, and the
// merge of their sketches of addresses. The caller holds the day's
// account_days row and none of the domains' days is queued.
func summarizeAccountDay(ctx context.Context, tx pgx.Tx, accountID uuid.UUID, day pgtype.Date) error {
	q := sourcesdb.New(tx)
	rows, err := q.AccountDayGroups(ctx, sourcesdb.AccountDayGroupsParams{AccountID: accountID, Day: day})
	if err != nil {
		return fmt.Errorf("load the account's summaries: %w", err)
	}
	groups := map[group]*sums{}
	for _, r := range rows {
		g := group{class: r.Class, service: r.Service}
		d := groups[g]
		if d == nil {
			d = &sums{}
			groups[g] = d
		}
		d.add(sourcesdb.DaySourcesRow{Messages: r.Messages, DmarcPass: r.DmarcPass, SpfPass: r.SpfPass, SpfAligned: r.SpfAligned,
			DkimPass: r.DkimPass, DkimAligned: r.DkimAligned, DispositionNone: r.DispositionNone,
			DispositionQuarantine: r.DispositionQuarantine, DispositionReject: r.DispositionReject, Reporters: r.Reporters})
		if err := d.addrs.Merge(r.Sources); err != nil {
			return err
		}
		for _, ip := range r.Ips {
			d.addrs.Add(ip)
		}
	}
	if err := q.ClearAccountDay(ctx, sourcesdb.ClearAccountDayParams{AccountID: accountID, Day: day}); err != nil {
		return fmt.Errorf("clear the account's summaries: %w", err)
	}
	if err := q.BumpGeneration(ctx, accountID); err != nil {
		return fmt.Errorf("count the account's generation: %w", err)
	}
	out, err := summaryRows([]any{pgtype.UUID{Bytes: accountID, Valid: true}, day}, groups)
	if err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"account_daily"}, accountColumns, pgx.CopyFromRows(out)); err != nil {
		return fmt.Errorf("store the account's summaries: %w", err)
	}
	return nil
}
