// Package authreport reads the authentication report: for a domain, or for
// an account's domains (an MSP's with its customer accounts'), over a range
// of UTC days, the messages reported as sent with those domains in the From
// header, by category of source (internal, a known service, forwarded,
// unidentified) and by sender, with their SPF, DKIM and DMARC outcomes, the
// dispositions applied and the reporters; a daily series; the top
// unidentified sources; and one source address in detail.
//
// Every read aggregates in PostgreSQL, in one statement per section,
// whatever the number of domains, over the summaries the classifier keeps
// (migrations 00025 and 00032): per domain and day (report_daily) and per
// account and day (account_daily), each class and service with its sums
// and a sketch of its addresses (package sketch), a day queued for
// classification read live from the rollups, so that every read is exact
// (a source not classified yet, for up to a minute after its report
// arrived, counts as unidentified). The top unidentified sources and one
// address's detail read the sums per source next to their classes
// (source_classes), and ip_enrichment for what is known of an address. A
// message passed DMARC when SPF or DKIM passed aligned.
//
// A [Scope] is made by [Reader.Domain] or [Reader.Account], which
// authorise it; every read of a scope authorises it again (free within a
// request: access memoises standings).
package authreport

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/authreport/authreportdb"
	"github.com/rampartmail/rampart/internal/sketch"
)

// MaxDays is the longest range a report covers.
const MaxDays = 366

// MaxPage is the largest page of senders or sources.
const MaxPage = 100

// Range is a range of UTC days, both ends included.
type Range struct {
	// From and To are UTC midnights.
	From, To time.Time
}

// LastDays is the range of the n UTC days that end with now's, today
// included.
func LastDays(now time.Time, n int) Range {
	to := day(now)
	return Range{From: to.AddDate(0, 0, -(n - 1)), To: to}
}

// Between is the range from one UTC day to another, both included; from
// must not be after to, and the range at most [MaxDays] long.
func Between(from, to time.Time) (Range, error) {
	r := Range{From: day(from), To: day(to)}
	switch {
	case r.From.After(r.To):
		return Range{}, apperr.Invalid("from", "from (%s) is after to (%s)", r.From.Format(time.DateOnly), r.To.Format(time.DateOnly))
	case r.Days() > MaxDays:
		return Range{}, apperr.Invalid("to", "the range covers %d days; the most is %d", r.Days(), MaxDays)
	}
	return r, nil
}

// Days is how many days the range covers.
func (r Range) Days() int { return int(r.To.Sub(r.From)/(24*time.Hour)) + 1 }

func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func pgDate(t time.Time) pgtype.Date { return pgtype.Date{Time: t, Valid: true} }

// Category is a class of source.
type Category string

// The categories, in the order a report lists them.
const (
	Internal     Category = "internal"
	Service      Category = "service"
	Forwarded    Category = "forwarded"
	Unidentified Category = "unidentified"
)

// Categories are every category, in the report's order.
var Categories = []Category{Internal, Service, Forwarded, Unidentified}

// Stats are message counts. DMARCPass counts the messages whose SPF or
// DKIM passed aligned.
type Stats struct {
	Messages, DMARCPass, SPFPass, SPFAligned, DKIMPass, DKIMAligned int64
	// Messages by the disposition the receiver applied.
	None, Quarantine, Reject int64
	// Reporters are the reporting organisations, sorted.
	Reporters []string
}

// Rate is n out of the messages, between 0 and 1; 0 without messages.
func (s Stats) Rate(n int64) float64 {
	if s.Messages == 0 {
		return 0
	}
	return float64(n) / float64(s.Messages)
}

func (s *Stats) add(o Stats) {
	s.Messages += o.Messages
	s.DMARCPass += o.DMARCPass
	s.SPFPass += o.SPFPass
	s.SPFAligned += o.SPFAligned
	s.DKIMPass += o.DKIMPass
	s.DKIMAligned += o.DKIMAligned
	s.None += o.None
	s.Quarantine += o.Quarantine
	s.Reject += o.Reject
	for _, r := range o.Reporters {
		if i, found := slices.BinarySearch(s.Reporters, r); !found {
			s.Reporters = slices.Insert(s.Reporters, i, r)
		}
	}
}

// Scope is what a report covers: a domain, or an account's domains, and a
// range. Only [Reader.Domain] and [Reader.Account] make one.
type Scope struct {
	principal access.Principal
	account   uuid.UUID
	domain    uuid.UUID // uuid.Nil for an account's report
	// domains are every domain the scope covers; whole are the accounts
	// it covers whole (read through their summaries, account_daily), and
	// single the domains of the others it covers (read one by one).
	domains       []uuid.UUID
	whole, single []uuid.UUID
	rng           Range
}

// Range is the scope's range.
func (s *Scope) Range() Range { return s.rng }

// DomainCount is how many domains the scope covers.
func (s *Scope) DomainCount() int { return len(s.domains) }

// Reader reads authentication reports.
type Reader struct {
	pool  *pgxpool.Pool
	q     *authreportdb.Queries
	authz *access.Authorizer
}

// New returns a Reader.
func New(pool *pgxpool.Pool) *Reader {
	return &Reader{pool: pool, q: authreportdb.New(pool), authz: access.New(pool)}
}

// Domain is the scope of a domain's report (the domain of the account).
// The principal must hold [access.ViewReports] on it.
func (r *Reader) Domain(ctx context.Context, accountID, domainID uuid.UUID, rng Range) (*Scope, error) {
	p, err := access.Require(ctx)
	if err != nil {
		return nil, err
	}
	if domainID == uuid.Nil {
		return nil, apperr.NotFoundf("domain not found")
	}
	if err := r.authz.Authorize(ctx, access.OnDomain(accountID, domainID), access.ViewReports); err != nil {
		return nil, err
	}
	return &Scope{principal: p, account: accountID, domain: domainID, domains: []uuid.UUID{domainID},
		whole: []uuid.UUID{}, single: []uuid.UUID{domainID}, rng: rng}, nil
}

// Account is the scope of an account's report: the domains of it and of
// its customer accounts (when it is an MSP's) on which the principal holds
// [access.ViewReports] ([access.Authorizer.Reach]: all of them for an
// owner, the granted ones for a team member), as it must on some of the
// account's own.
func (r *Reader) Account(ctx context.Context, accountID uuid.UUID, rng Range) (*Scope, error) {
	p, err := access.Require(ctx)
	if err != nil {
		return nil, err
	}
	// The account's domains the principal may read (all of them, or those
	// its grants name), and those of its customer accounts.
	if _, err := r.authz.ReachIn(ctx, accountID, access.ViewReports); err != nil {
		return nil, err
	}
	children, err := r.q.ChildAccounts(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list customer accounts: %w", err)
	}
	reach, err := r.authz.Reach(ctx, access.ViewReports)
	if err != nil {
		return nil, err
	}
	reach = reach.In(append(children, accountID)...)
	rows, err := r.q.ReportDomains(ctx, authreportdb.ReportDomainsParams{ReachAccounts: reach.Accounts, ReachDomains: reach.Domains})
	if err != nil {
		return nil, fmt.Errorf("list the accounts' domains: %w", err)
	}
	s := &Scope{principal: p, account: accountID, whole: reach.Accounts, single: []uuid.UUID{}, rng: rng}
	for _, d := range rows {
		s.domains = append(s.domains, d.ID)
		if !slices.Contains(reach.Accounts, d.AccountID) {
			s.single = append(s.single, d.ID)
		}
	}
	return s, nil
}

// check authorises a read of a scope: by the principal that made it, who
// still holds [access.ViewReports] on it.
func (r *Reader) check(ctx context.Context, s *Scope) error {
	p, err := access.Require(ctx)
	if err != nil {
		return err
	}
	if s.domain != uuid.Nil {
		if err := r.authz.Authorize(ctx, access.OnDomain(s.account, s.domain), access.ViewReports); err != nil {
			return err
		}
	} else if _, err := r.authz.ReachIn(ctx, s.account, access.ViewReports); err != nil {
		return err
	}
	if p != s.principal {
		return apperr.NotFoundf("report not found")
	}
	return nil
}

// Summary is a scope's totals and its messages by category.
type Summary struct {
	Totals Stats
	// Categories holds every category, in the order of [Categories].
	Categories []CategoryStats
}

// CategoryStats are one category's messages.
type CategoryStats struct {
	Category Category
	Stats    Stats
}

// Summaries reads the summaries of many scopes, in one statement for the
// scopes of each range: what a page of domains, each with its report,
// needs.
func (r *Reader) Summaries(ctx context.Context, scopes []*Scope) ([]Summary, error) {
	out := make([]Summary, len(scopes))
	byRange := map[Range][]int{}
	for i, s := range scopes {
		if err := r.check(ctx, s); err != nil {
			return nil, err
		}
		out[i].Categories = make([]CategoryStats, len(Categories))
		for j, c := range Categories {
			out[i].Categories[j] = CategoryStats{Category: c, Stats: Stats{Reporters: []string{}}}
		}
		out[i].Totals.Reporters = []string{}
		byRange[s.rng] = append(byRange[s.rng], i)
	}
	for rng, idx := range byRange {
		p := authreportdb.SummariesParams{FromDay: pgDate(rng.From), ToDay: pgDate(rng.To),
			AccountIds: []uuid.UUID{}, AccountScopes: []int64{}, DomainIds: []uuid.UUID{}, DomainScopes: []int64{}}
		for _, i := range idx {
			for _, a := range scopes[i].whole {
				p.AccountIds = append(p.AccountIds, a)
				p.AccountScopes = append(p.AccountScopes, int64(i))
			}
			for _, d := range scopes[i].single {
				p.DomainIds = append(p.DomainIds, d)
				p.DomainScopes = append(p.DomainScopes, int64(i))
			}
		}
		if len(p.AccountIds)+len(p.DomainIds) == 0 {
			continue
		}
		rows, err := r.q.Summaries(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("read report summaries: %w", err)
		}
		for _, row := range rows {
			st := Stats{Messages: row.Messages, DMARCPass: row.DmarcPass, SPFPass: row.SpfPass, SPFAligned: row.SpfAligned,
				DKIMPass: row.DkimPass, DKIMAligned: row.DkimAligned, None: row.DispositionNone,
				Quarantine: row.DispositionQuarantine, Reject: row.DispositionReject, Reporters: row.Reporters}
			sum := &out[row.Scope]
			j := slices.Index(Categories, Category(row.Class))
			if j < 0 {
				return nil, fmt.Errorf("unknown source class %q", row.Class)
			}
			sum.Categories[j].Stats.add(st)
			sum.Totals.add(st)
		}
	}
	return out, nil
}

// Sort orders senders.
type Sort string

// The orders of senders; each ends by name.
const (
	ByMessages     Sort = "messages"
	ByPassRateAsc  Sort = "rate_asc"
	ByPassRateDesc Sort = "rate_desc"
	ByName         Sort = "name"
)

// SenderQuery asks for a page of senders.
type SenderQuery struct {
	// First is the page size, at most [MaxPage].
	First int
	// After is the cursor of the sender before the page.
	After string
	// Category keeps only the senders of a category ("" for every one).
	Category Category
	Sort     Sort
}

// Sender is a service, or a category other than [Service] as a whole.
type Sender struct {
	Category Category
	// Service is the service's slug; "" for another category.
	Service string
	// Name is the service's name, or the category's.
	Name string
	// ServiceCategory is the service's category in the catalog.
	ServiceCategory string
	// Sources is how many distinct addresses sent: exact in practice up
	// to a few thousand, within about 1% beyond (package sketch).
	Sources int64
	Stats   Stats
	// Cursor is the sender's place in its page's order.
	Cursor string
}

// SenderPage is a page of senders.
type SenderPage struct {
	Senders    []Sender
	HasNext    bool
	HasPrev    bool
	TotalCount int64
}

// Senders reads a page of the scope's senders.
func (r *Reader) Senders(ctx context.Context, s *Scope, q SenderQuery) (SenderPage, error) {
	if err := r.check(ctx, s); err != nil {
		return SenderPage{}, err
	}
	if q.First < 0 || q.First > MaxPage {
		return SenderPage{}, apperr.Invalid("first", "first must be between 0 and %d", MaxPage)
	}
	off := 0
	if q.After != "" {
		n, err := decodeCursor(q.After)
		if err != nil {
			return SenderPage{}, err
		}
		off = n + 1
	}
	switch q.Sort {
	case "":
		q.Sort = ByMessages
	case ByMessages, ByPassRateAsc, ByPassRateDesc, ByName:
	default:
		return SenderPage{}, apperr.Invalid("sort", "unknown order %q", q.Sort)
	}
	p := authreportdb.SendersParams{AccountIds: s.whole, DomainIds: s.single, FromDay: pgDate(s.rng.From), ToDay: pgDate(s.rng.To),
		Sort: string(q.Sort), Lim: int32(q.First + 1), Off: int32(off), Members: []uuid.UUID{}}
	if id, days, members, ok := s.preset(time.Now()); ok {
		p.PresetID, p.PresetDays, p.Members = &id, days, members
	}
	if q.Category != "" {
		c := string(q.Category)
		p.Class = &c
	}
	rows, err := r.q.Senders(ctx, p)
	if err != nil {
		return SenderPage{}, fmt.Errorf("read senders: %w", err)
	}
	page := SenderPage{HasPrev: off > 0}
	if len(rows) > q.First {
		rows, page.HasNext = rows[:q.First], true
	}
	for i, row := range rows {
		page.TotalCount = row.Total
		n := row.PresetSources
		if !row.Preset {
			if n, err = sources(row.Sketches, row.Ips); err != nil {
				return SenderPage{}, fmt.Errorf("count the addresses of %s %s: %w", row.Class, row.Service, err)
			}
		}
		page.Senders = append(page.Senders, Sender{
			Category: Category(row.Class), Service: row.Service, Name: row.Name, ServiceCategory: row.ServiceCategory,
			Sources: n, Cursor: encodeCursor(off + i),
			Stats: Stats{Messages: row.Messages, DMARCPass: row.DmarcPass, SPFPass: row.SpfPass, SPFAligned: row.SpfAligned,
				DKIMPass: row.DkimPass, DKIMAligned: row.DkimAligned, None: row.DispositionNone,
				Quarantine: row.DispositionQuarantine, Reject: row.DispositionReject, Reporters: row.Reporters},
		})
	}
	if len(rows) == 0 && off > 0 {
		// Past the end: the count still says how many there are.
		all, err := r.Senders(ctx, s, SenderQuery{First: 1, Category: q.Category, Sort: q.Sort})
		if err != nil {
			return SenderPage{}, err
		}
		page.TotalCount = all.TotalCount
	}
	return page, nil
}

// sources counts a sender's distinct addresses: the merge of its
// sketches per day (package sketch; exact in practice up to a few
// thousand addresses, within about 1% beyond), with the addresses of the
// days not summarised yet.
func sources(sketches [][]byte, ips []netip.Addr) (int64, error) {
	var sk sketch.Addresses
	for _, b := range sketches {
		if err := sk.Merge(b); err != nil {
			return 0, err
		}
	}
	for _, ip := range ips {
		sk.Add(ip)
	}
	return sk.Count(), nil
}

// A sender's cursor is its position in the order of its query: senders
// are few (one per service and category) and aggregated on every read.
func encodeCursor(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("s:" + strconv.Itoa(n)))
}

func decodeCursor(c string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	s, ok := strings.CutPrefix(string(b), "s:")
	n, nerr := strconv.Atoi(s)
	if err != nil || !ok || nerr != nil || n < 0 || n > 1<<20 {
		return 0, apperr.Invalid("after", "invalid cursor")
	}
	return n, nil
}

// Day is one day's messages.
type Day struct {
	Day   time.Time
	Stats Stats
}

// Daily reads the scope's messages per day, every day of its range (days
// without reports at zero); with a category, that category's only.
func (r *Reader) Daily(ctx context.Context, s *Scope, category Category) ([]Day, error) {
	if err := r.check(ctx, s); err != nil {
		return nil, err
	}
	p := authreportdb.DailyParams{AccountIds: s.whole, DomainIds: s.single, FromDay: pgDate(s.rng.From), ToDay: pgDate(s.rng.To)}
	if category != "" {
		c := string(category)
		p.Class = &c
	}
	rows, err := r.q.Daily(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("read daily series: %w", err)
	}
	out := make([]Day, len(rows))
	for i, row := range rows {
		out[i] = Day{Day: row.Day.Time, Stats: Stats{Messages: row.Messages, DMARCPass: row.DmarcPass, SPFPass: row.SpfPass,
			SPFAligned: row.SpfAligned, DKIMPass: row.DkimPass, DKIMAligned: row.DkimAligned, None: row.DispositionNone,
			Quarantine: row.DispositionQuarantine, Reject: row.DispositionReject, Reporters: row.Reporters}}
	}
	return out, nil
}

// Address is what is known of a source address: its forward-confirmed
// reverse name and, from the operator's GeoIP files, its network.
type Address struct {
	IP           string
	PTR          *string
	PTRConfirmed bool
	ASN          *int64
	ASOrg        *string
	Country      *string
}

// Source is a source address and its messages.
type Source struct {
	Address
	Stats Stats
}

// Unidentified reads the n unidentified sources with the most messages,
// most first: over a preset range (see [PresetDays]), from the scope's
// preset while it is exact, else summed over the range.
func (r *Reader) Unidentified(ctx context.Context, s *Scope, n int) ([]Source, error) {
	if err := r.check(ctx, s); err != nil {
		return nil, err
	}
	if n < 0 || n > MaxPage {
		return nil, apperr.Invalid("first", "first must be between 0 and %d", MaxPage)
	}
	p := authreportdb.TopUnidentifiedParams{DomainIds: s.domains, FromDay: pgDate(s.rng.From), ToDay: pgDate(s.rng.To),
		Lim: int32(n), Members: []uuid.UUID{}}
	if id, days, members, ok := s.preset(time.Now()); ok {
		p.PresetID, p.PresetDays, p.Members = &id, days, members
	}
	rows, err := r.q.TopUnidentified(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("read unidentified sources: %w", err)
	}
	out := make([]Source, len(rows))
	for i, row := range rows {
		out[i] = Source{
			Address: Address{IP: row.Ip, PTR: row.Ptr, PTRConfirmed: row.PtrConfirmed, ASN: row.Asn, ASOrg: row.AsOrg, Country: row.Country},
			Stats: Stats{Messages: row.Messages, DMARCPass: row.DmarcPass, SPFPass: row.SpfPass, SPFAligned: row.SpfAligned,
				DKIMPass: row.DkimPass, DKIMAligned: row.DkimAligned, None: row.DispositionNone,
				Quarantine: row.DispositionQuarantine, Reject: row.DispositionReject, Reporters: row.Reporters},
		}
	}
	return out, nil
}

// SourceDetail is one source address in detail.
type SourceDetail struct {
	Source
	// Category, Service and Evidence are its latest day's class.
	Category          Category
	Service, Evidence string
	HeaderFrom        []HeaderFrom
	DKIM              []Signature
}

// HeaderFrom counts the messages with one From domain.
type HeaderFrom struct {
	HeaderFrom string `json:"headerFrom"`
	Messages   int64  `json:"messages"`
	DMARCPass  int64  `json:"dmarcPass"`
}

// Signature counts the messages with one DKIM signature outcome.
type Signature struct {
	Domain   string `json:"domain"`
	Selector string `json:"selector"`
	Result   string `json:"result"`
	Messages int64  `json:"messages"`
}

// Source reads one source address of the scope in detail; nil when it
// sent nothing in the range.
func (r *Reader) Source(ctx context.Context, s *Scope, ip string) (*SourceDetail, error) {
	if err := r.check(ctx, s); err != nil {
		return nil, err
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Zone() != "" {
		return nil, apperr.Invalid("ip", "%q is not an IP address", ip)
	}
	row, err := r.q.Source(ctx, authreportdb.SourceParams{DomainIds: s.domains, FromDay: pgDate(s.rng.From),
		ToDay: pgDate(s.rng.To), Ip: addr.Unmap()})
	if err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	if row.N == 0 {
		return nil, nil
	}
	d := &SourceDetail{
		Source: Source{
			Address: Address{IP: addr.Unmap().String(), PTR: row.Ptr, PTRConfirmed: row.PtrConfirmed, ASN: row.Asn, ASOrg: row.AsOrg, Country: row.Country},
			Stats: Stats{Messages: row.Messages, DMARCPass: row.DmarcPass, SPFPass: row.SpfPass, SPFAligned: row.SpfAligned,
				DKIMPass: row.DkimPass, DKIMAligned: row.DkimAligned, None: row.DispositionNone,
				Quarantine: row.DispositionQuarantine, Reject: row.DispositionReject, Reporters: row.Reporters},
		},
		Category: Category(row.Class), Service: row.Service, Evidence: row.Evidence,
	}
	if err := json.Unmarshal([]byte(row.HeaderFrom), &d.HeaderFrom); err != nil {
		return nil, fmt.Errorf("decode From domains: %w", err)
	}
	if err := json.Unmarshal([]byte(row.Dkim), &d.DKIM); err != nil {
		return nil, fmt.Errorf("decode DKIM signatures: %w", err)
	}
	return d, nil
}
