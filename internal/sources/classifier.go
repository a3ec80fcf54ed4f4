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

	"github.com/rampartmail/rampart/internal/pgcopy"
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
	senders, err := c.senders(ctx, c.pool)
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
			return c.dequeue(ctx, q, day.DomainID, day.Day, day.QueuedAt, day.FirstQueuedAt, pending)
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

// dequeue takes a classified day off the queue, or leaves it there for
// another run once its sources' reverse names are known (see awaitPTR).
func (c *Classifier) dequeue(ctx context.Context, q *sourcesdb.Queries, domainID uuid.UUID, day pgtype.Date, queuedAt, firstQueuedAt time.Time, pending int) error {
	if pending > 0 && c.awaitPTR && time.Since(firstQueuedAt) < awaitPTRFor {
		return q.PostponeDay(ctx, sourcesdb.PostponeDayParams{DomainID: domainID, Day: day,
			QueuedAt: queuedAt, AfterSeconds: awaitPTRRetry.Seconds()})
	}
	return q.DoneDay(ctx, sourcesdb.DoneDayParams{DomainID: domainID, Day: day, QueuedAt: queuedAt})
}

// DaySource is one source of a day with its sums, as the classifier reads
// it from the day's rollups (report_sources, summed per address);
// DaySignature is one of the day's DKIM signatures (report_source_dkim).
type (
	DaySource    = sourcesdb.DaySourcesRow
	DaySignature = sourcesdb.DaySignaturesRow
)

// NewDay is the classification of a domain's day whose first rollups are
// being written (internal/ingest does it for a large report, holding the
// day's advisory lock), from those rollups as the classifier would read
// them back, instead of a run of the classifier reading them after they
// are committed. [Classifier.PrepareNewDay] reads the facts,
// [NewDay.Classify] decides (it needs no connection), [NewDay.Store]
// stores the classes and summaries as a run stores them, and
// [NewDay.Dequeue], once the rollups are committed (or in their own
// transaction, after them), handles the day's queue row, which the
// rollups' triggers put there, as a run handles it: removed, or left
// queued for the reverse names still to be looked up.
//
// The classes may be written in a transaction of their own, beside the
// rollups' and committed after them: until the day is taken off the
// queue, reads take its sums live from the rollups (migration 00025), and
// a run of the classifier that takes the day first, or a report that adds
// to it meanwhile, leaves Dequeue nothing to take off: the classes are
// then rolled back and the day classified by a run.
type NewDay struct {
	c *Classifier
	w dayWork
}

// PrepareNewDay reads, in tx, what classifying a domain's new day takes
// besides its sources: the domain, the services, its netblocks and keys,
// and what the enrichment knows of the addresses. srcs are the day's
// sources with their sums, in address order (as DaySources reads them);
// sigs their DKIM signatures, in report_source_dkim's key order (as
// DaySignatures reads them).
func (c *Classifier) PrepareNewDay(ctx context.Context, tx pgx.Tx, domainID uuid.UUID, day pgtype.Date, srcs []DaySource, sigs []DaySignature) (*NewDay, error) {
	q := sourcesdb.New(tx)
	dom, err := q.DayDomain(ctx, domainID)
	if err != nil {
		return nil, fmt.Errorf("load the day's domain: %w", err)
	}
	senders, err := c.senders(ctx, tx)
	if err != nil {
		return nil, err
	}
	d := &NewDay{c: c, w: dayWork{domainID: domainID, name: dom.Name, day: day, senders: senders.of(dom.AccountID), srcs: srcs, sigs: sigs}}
	if err := c.gather(ctx, q, &d.w); err != nil {
		return nil, err
	}
	return d, nil
}

// Classify classifies the day's sources. It uses no connection.
func (d *NewDay) Classify() { d.w.classify() }

// Store stores the classes and the day's summaries in tx (Classify must
// have returned). It returns how many sources were classified.
func (d *NewDay) Store(ctx context.Context, tx pgx.Tx) (int, error) {
	w := &d.w
	if err := storeDay(ctx, tx, w.domainID, w.day, w.srcs, w.classes); err != nil {
		return 0, err
	}
	return len(w.srcs), nil
}

// Dequeue takes the day off the queue in tx, or leaves it queued for the
// reverse names, as a run of the classifier would, provided its queue row
// is still the one the rollups' transaction queued at queuedAt (its
// now()) and no one else holds it. It reports whether it found the row so:
// if not, a run of the classifier or a later report has the day, and the
// caller rolls the classes back.
func (d *NewDay) Dequeue(ctx context.Context, tx pgx.Tx, queuedAt time.Time) (bool, error) {
	q := sourcesdb.New(tx)
	w := &d.w
	queued, err := q.QueuedDay(ctx, sourcesdb.QueuedDayParams{DomainID: w.domainID, Day: w.day, QueuedAt: queuedAt})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find the day's queue row: %w", err)
	}
	if err := d.c.dequeue(ctx, q, w.domainID, w.day, queued.QueuedAt, queued.FirstQueuedAt, w.pending); err != nil {
		return false, fmt.Errorf("dequeue the day: %w", err)
	}
	return true, nil
}

// senders reads every known service as the classification reads it.
func (c *Classifier) senders(ctx context.Context, db sourcesdb.DBTX) (knownSenders, error) {
	rows, err := sourcesdb.New(db).Senders(ctx)
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
	w := &dayWork{domainID: domainID, name: name, day: day, senders: senders, srcs: srcs, sigs: sigs}
	if err := c.gather(ctx, q, w); err != nil {
		return 0, 0, err
	}
	w.classify()
	if err := storeDay(ctx, tx, domainID, day, srcs, w.classes); err != nil {
		return 0, 0, err
	}
	return len(srcs), w.pending, nil
}

// dayWork is the classification of one domain's day: its sources with
// their sums, in address order, and their signatures, in
// report_source_dkim's key order (so each source's are together); the
// facts gathered for them; the classes.
type dayWork struct {
	domainID uuid.UUID
	name     string
	day      pgtype.Date
	senders  []Sender
	srcs     []DaySource
	sigs     []DaySignature

	nets []netip.Prefix
	keys []Key
	// ptrs are the sources' confirmed PTR names; pending counts the
	// sources the enrichment has not looked up yet (when awaitPTR).
	ptrs    map[netip.Addr]string
	pending int

	classes []Result
}

// gather reads the facts the day's sources are classified by, besides the
// sources themselves: the domain's netblocks and keys, and what the
// enrichment knows of the addresses.
func (c *Classifier) gather(ctx context.Context, q *sourcesdb.Queries, w *dayWork) error {
	var err error
	if w.nets, err = q.DomainNetblocks(ctx, w.domainID); err != nil {
		return fmt.Errorf("load netblocks: %w", err)
	}
	keyRows, err := q.DomainKeys(ctx, w.domainID)
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	w.keys = make([]Key, len(keyRows))
	for i, k := range keyRows {
		w.keys[i] = Key{Selector: k.Selector, Service: k.Service}
	}
	ips := make([]netip.Addr, len(w.srcs))
	for i, s := range w.srcs {
		ips[i] = s.SourceIp
	}
	rows, err := q.SourceLookups(ctx, ips)
	if err != nil {
		return fmt.Errorf("load PTR names: %w", err)
	}
	w.ptrs = map[netip.Addr]string{}
	looked := 0
	for _, r := range rows {
		if r.Ptr != "" {
			w.ptrs[r.Ip] = r.Ptr
		}
		if r.LookedUp {
			looked++
		}
	}
	if c.awaitPTR {
		// The sources are distinct addresses, and so are the rows.
		w.pending = len(ips) - looked
	}
	return nil
}

// classify classifies the sources. It uses no connection.
func (w *dayWork) classify() {
	w.classes = make([]Result, len(w.srcs))
	// The sources and signatures come in address order, each source's
	// signatures together: a walk along both finds each one's. Should
	// either not be in that order, a map does.
	walk := slices.IsSortedFunc(w.srcs, func(a, b DaySource) int { return a.SourceIp.Compare(b.SourceIp) }) &&
		slices.IsSortedFunc(w.sigs, func(a, b DaySignature) int { return a.SourceIp.Compare(b.SourceIp) })
	var bySource map[netip.Addr][]Signature
	if !walk {
		bySource = map[netip.Addr][]Signature{}
		for _, s := range w.sigs {
			bySource[s.SourceIp] = append(bySource[s.SourceIp], Signature{Domain: s.DkimDomain, Selector: s.Selector, Pass: s.Pass})
		}
	}
	var own []Signature
	j := 0
	for i, s := range w.srcs {
		if walk {
			for j < len(w.sigs) && w.sigs[j].SourceIp.Less(s.SourceIp) {
				j++
			}
			own = own[:0]
			for ; j < len(w.sigs) && w.sigs[j].SourceIp == s.SourceIp; j++ {
				own = append(own, Signature{Domain: w.sigs[j].DkimDomain, Selector: w.sigs[j].Selector, Pass: w.sigs[j].Pass})
			}
		} else {
			own = bySource[s.SourceIp]
		}
		// Classify keeps nothing of the facts: own is reused.
		w.classes[i] = Classify(Facts{IP: s.SourceIp, Domain: w.name, Netblocks: w.nets, Senders: w.senders, Keys: w.keys,
			Signatures: own, PTR: w.ptrs[s.SourceIp], ForwardReason: s.Forwarded})
	}
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
	// The classes in the binary COPY format, written from the values (a
	// large report's day is 100,000 rows; pgx's CopyFrom boxes each value).
	i := 0
	_, err := pgcopy.Rows(ctx, tx, "source_classes", classColumns, func(b []byte) ([]byte, bool, error) {
		if i == len(srcs) {
			return b, false, nil
		}
		s, r := &srcs[i], classes[i]
		i++
		b = pgcopy.Row(b, len(classColumns))
		b = pgcopy.UUID(b, domainID)
		b = pgcopy.Date(b, day.Time)
		b = pgcopy.Inet(b, s.SourceIp)
		b = pgcopy.Text(b, string(r.Class))
		b = pgcopy.Text(b, r.Service)
		b = pgcopy.Text(b, r.Evidence)
		for _, v := range [...]int64{s.Messages, s.DmarcPass, s.SpfPass, s.SpfAligned, s.DkimPass, s.DkimAligned,
			s.DispositionNone, s.DispositionQuarantine, s.DispositionReject} {
			b = pgcopy.Int8(b, v)
		}
		b = pgcopy.TextArray(b, s.Reporters)
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
		return b, true, nil
	})
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
