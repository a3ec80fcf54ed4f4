// Package readiness decides whether a domain is ready for DMARC enforcement:
// from its classified report sources (report_sources joined with
// source_classes) over a window, each sender's DMARC pass rate against a
// threshold, the share of mail nobody accounts for, the senders first seen
// lately and whether there is enough data at all. The verdict is one of
// NOT_READY, READY_FOR_QUARANTINE and READY_FOR_REJECT, with the reasons it
// is not stricter, each machine-readable and a sentence.
//
// [Decide] is the pure decision; [Compute] reads a domain's data and
// decides; [Reader] is the authorised read for the API. internal/domain
// asks [Compute] before it lets a policy tighten.
package readiness

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/readiness/readinessdb"
)

// Verdict is how far a domain's policy may go.
type Verdict string

// The verdicts.
const (
	NotReady           Verdict = "NOT_READY"
	ReadyForQuarantine Verdict = "READY_FOR_QUARANTINE"
	ReadyForReject     Verdict = "READY_FOR_REJECT"
)

// Allows is the strictest disposition the verdict allows.
func (v Verdict) Allows() dmarc.Policy {
	switch v {
	case ReadyForReject:
		return dmarc.Reject
	case ReadyForQuarantine:
		return dmarc.Quarantine
	}
	return dmarc.None
}

// Code is the machine-readable kind of a reason.
type Code string

// The reasons a verdict is not stricter.
const (
	// SenderFailing: an authorised sender's DMARC pass rate is below its
	// threshold: enforcement would quarantine or reject its mail.
	SenderFailing Code = "SENDER_FAILING"
	// UnidentifiedShare: too much of the mail comes from sources that are
	// neither the domain's own nor a known service, nor forwarded.
	UnidentifiedShare Code = "UNIDENTIFIED_SHARE"
	// NewSender: a sender first seen within the last days has too short a
	// history to judge.
	NewSender Code = "NEW_SENDER"
	// TooFewDays, TooFewMessages: too little data to decide anything.
	TooFewDays     Code = "TOO_FEW_DAYS"
	TooFewMessages Code = "TOO_FEW_MESSAGES"
)

// Reason is one reason the verdict is not stricter.
type Reason struct {
	Code Code `json:"code"`
	// Sender is the sender's key ("internal" or a service's slug) for
	// SenderFailing and NewSender, else "".
	Sender string `json:"sender,omitempty"`
	// Value and Threshold are what was measured and what it had to reach
	// (percent for rates and shares, days, messages).
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// Blocks is the least strict disposition the reason forbids:
	// quarantine (so reject too) or reject only.
	Blocks  dmarc.Policy `json:"blocks"`
	Message string       `json:"message"`
}

// Sender is one sender of the domain's mail in the window.
type Sender struct {
	// Key is "internal" for the domain's own servers, else the service's
	// slug.
	Key string
	// Name is what to call it: "Own servers" or the service's name.
	Name string
	// Internal is true for the domain's own servers.
	Internal bool
	// Authorized is true for the domain's own servers and the services it
	// enables. Every identified sender is held to a threshold: a known
	// service sending as the domain without being enabled would lose its
	// failing mail to enforcement just the same.
	Authorized bool
	// Messages and Passed (DMARC: SPF or DKIM aligned) in the window.
	Messages, Passed int64
	// PassRate is Passed / Messages in percent.
	PassRate float64
	// Threshold is the pass rate the sender must reach (percent): its own,
	// or the domain's. Own is true when it is the sender's own (an
	// enabled service's).
	Threshold float64
	Own       bool
	// FirstSeen is the first day in the window with its mail; New is true
	// when that is within Settings.NewSenderDays.
	FirstSeen time.Time
	New       bool
}

// Readiness is a domain's verdict with what it rests on.
type Readiness struct {
	Verdict Verdict
	Reasons []Reason
	// Senders are the identified senders (the domain's own servers first,
	// then services by volume).
	Senders []Sender
	// From and To are the window's first and last days; Days the days in
	// it with reports.
	From, To time.Time
	Days     int
	// Messages is all mail in the window; Unidentified and Forwarded are
	// part of it. Forwarded mail is expected to fail SPF and is left out
	// of the pass rates.
	Messages, Unidentified, Forwarded int64
	// UnidentifiedShare is Unidentified / Messages in percent.
	UnidentifiedShare float64
	// Threshold is the domain's pass-rate threshold (percent).
	Threshold float64
	Settings  Settings
}

// Settings are the rules of the decision.
type Settings struct {
	// WindowDays is how many days, today included, the verdict looks at.
	WindowDays int
	// NewSenderDays: a sender first seen within this many days is new.
	NewSenderDays int
	// MinDays and MinMessages are the data the verdict needs at all: days
	// with reports and messages in the window.
	MinDays     int
	MinMessages int64
	// QuarantineUnidentified and RejectUnidentified are the largest
	// unidentified shares (percent) that allow quarantine and reject.
	QuarantineUnidentified, RejectUnidentified float64
}

// Defaults are the settings unless configured.
var Defaults = Settings{WindowDays: 30, NewSenderDays: 14, MinDays: 7, MinMessages: 100, QuarantineUnidentified: 5, RejectUnidentified: 2}

// DefaultThreshold is a domain's pass-rate threshold until it sets one;
// thresholds are between MinThreshold and MaxThreshold.
const (
	DefaultThreshold = 95
	MinThreshold     = 50
	MaxThreshold     = 100
)

// CheckThreshold validates a threshold given for field.
func CheckThreshold(field string, t float64) error {
	if !(t >= MinThreshold && t <= MaxThreshold) { // also refuses NaN
		return apperr.Invalid(field, "the threshold must be a percentage between %d and %d, not %v", MinThreshold, MaxThreshold, t)
	}
	return nil
}

// Volume is one row of input: a class and service's mail in the window.
type Volume struct {
	// Class is internal, service, forwarded or unidentified.
	Class, Service   string
	Messages, Passed int64
	FirstSeen        time.Time
}

// Service is what the decision knows of a service.
type Service struct {
	Name    string
	Enabled bool
	// Threshold is the domain's own threshold for it; nil for the
	// domain's.
	Threshold *float64
}

// Input is what the decision reads.
type Input struct {
	Volumes   []Volume
	Days      int
	Threshold float64
	Services  map[string]Service
}

// Decide is the verdict for in, with today the window's last day.
func Decide(in Input, s Settings, today time.Time) Readiness {
	today = day(today)
	r := Readiness{
		From: today.AddDate(0, 0, 1-s.WindowDays), To: today, Days: in.Days,
		Threshold: in.Threshold, Settings: s,
	}
	bySender := map[string]*Sender{}
	for _, v := range in.Volumes {
		r.Messages += v.Messages
		switch v.Class {
		case "forwarded":
			r.Forwarded += v.Messages
			continue
		case "internal", "service":
		default:
			r.Unidentified += v.Messages
			continue
		}
		key := "internal"
		if v.Class == "service" {
			key = v.Service
		}
		sd := bySender[key]
		if sd == nil {
			sd = &Sender{Key: key, Internal: key == "internal", FirstSeen: day(v.FirstSeen)}
			bySender[key] = sd
		}
		sd.Messages += v.Messages
		sd.Passed += v.Passed
		if fs := day(v.FirstSeen); fs.Before(sd.FirstSeen) {
			sd.FirstSeen = fs
		}
	}
	for _, sd := range bySender {
		sd.PassRate = percent(sd.Passed, sd.Messages)
		sd.New = !sd.FirstSeen.Before(today.AddDate(0, 0, 1-s.NewSenderDays))
		sd.Threshold = in.Threshold
		if sd.Internal {
			sd.Name, sd.Authorized = "Own servers", true
		} else {
			svc, ok := in.Services[sd.Key]
			sd.Name = sd.Key
			if ok {
				sd.Name = svc.Name
			}
			sd.Authorized = svc.Enabled
			if svc.Enabled && svc.Threshold != nil {
				sd.Threshold, sd.Own = *svc.Threshold, true
			}
		}
		r.Senders = append(r.Senders, *sd)
	}
	slices.SortFunc(r.Senders, func(a, b Sender) int {
		switch {
		case a.Internal != b.Internal:
			if a.Internal {
				return -1
			}
			return 1
		case a.Messages != b.Messages:
			if a.Messages > b.Messages {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Key, b.Key)
	})
	r.UnidentifiedShare = percent(r.Unidentified, r.Messages)

	add := func(rs Reason) { r.Reasons = append(r.Reasons, rs) }
	if in.Days < s.MinDays {
		add(Reason{Code: TooFewDays, Value: float64(in.Days), Threshold: float64(s.MinDays), Blocks: dmarc.Quarantine,
			Message: fmt.Sprintf("Too little data: reports cover %d of the last %d days; at least %d are needed.", in.Days, s.WindowDays, s.MinDays)})
	}
	if r.Messages < s.MinMessages {
		add(Reason{Code: TooFewMessages, Value: float64(r.Messages), Threshold: float64(s.MinMessages), Blocks: dmarc.Quarantine,
			Message: fmt.Sprintf("Too little data: reports count %d messages in the last %d days; at least %d are needed.", r.Messages, s.WindowDays, s.MinMessages)})
	}
	for _, sd := range r.Senders {
		if sd.PassRate >= sd.Threshold {
			continue
		}
		msg := fmt.Sprintf("%s passes DMARC for %s of its %d messages; it needs %s: align its SPF or DKIM with the domain first.",
			sd.Name, pct(sd.PassRate), sd.Messages, pct(sd.Threshold))
		if !sd.Authorized {
			msg = fmt.Sprintf("%s, not enabled for the domain, passes DMARC for %s of its %d messages; it needs %s: if it sends for the domain, enable it and align its SPF or DKIM; if not, its mail is spoofing that enforcement stops: force the change.",
				sd.Name, pct(sd.PassRate), sd.Messages, pct(sd.Threshold))
		}
		add(Reason{Code: SenderFailing, Sender: sd.Key, Value: sd.PassRate, Threshold: sd.Threshold, Blocks: dmarc.Quarantine, Message: msg})
	}
	for _, sd := range r.Senders {
		if sd.New {
			add(Reason{Code: NewSender, Sender: sd.Key, Value: float64(daysBetween(sd.FirstSeen, today) + 1), Threshold: float64(s.NewSenderDays), Blocks: dmarc.Quarantine,
				Message: fmt.Sprintf("%s was first seen %s, less than %d days ago: wait until its mail has been watched for %d days.",
					sd.Name, sd.FirstSeen.Format(time.DateOnly), s.NewSenderDays, s.NewSenderDays)})
		}
	}
	switch {
	case r.Messages == 0:
	case r.UnidentifiedShare > s.QuarantineUnidentified:
		add(Reason{Code: UnidentifiedShare, Value: r.UnidentifiedShare, Threshold: s.QuarantineUnidentified, Blocks: dmarc.Quarantine,
			Message: fmt.Sprintf("%s of the mail (%d messages) comes from unidentified sources; quarantine needs at most %s: add the domain's servers as netblocks or enable the services that send for it.",
				pct(r.UnidentifiedShare), r.Unidentified, pct(s.QuarantineUnidentified))})
	case r.UnidentifiedShare > s.RejectUnidentified:
		add(Reason{Code: UnidentifiedShare, Value: r.UnidentifiedShare, Threshold: s.RejectUnidentified, Blocks: dmarc.Reject,
			Message: fmt.Sprintf("%s of the mail (%d messages) comes from unidentified sources; reject needs at most %s.",
				pct(r.UnidentifiedShare), r.Unidentified, pct(s.RejectUnidentified))})
	}
	r.Verdict = ReadyForReject
	for _, rs := range r.Reasons {
		switch {
		case rs.Blocks == dmarc.Quarantine:
			r.Verdict = NotReady
		case rs.Blocks == dmarc.Reject && r.Verdict == ReadyForReject:
			r.Verdict = ReadyForQuarantine
		}
	}
	if r.Reasons == nil {
		r.Reasons = []Reason{}
	}
	return r
}

// Compute reads a domain's data through db (a pool or a transaction) and
// decides, with now's UTC day the window's last. It does not authorise.
func Compute(ctx context.Context, db readinessdb.DBTX, domainID uuid.UUID, s Settings, now time.Time) (Readiness, error) {
	m, err := ComputeMany(ctx, db, []uuid.UUID{domainID}, s, now)
	if err != nil {
		return Readiness{}, err
	}
	return m[domainID], nil
}

// MaxBatch is the most domains [ComputeMany] and [Reader.GetMany] decide
// at once.
const MaxBatch = 500

// ComputeMany is [Compute] for several domains (at most [MaxBatch]), in
// four statements whatever their number. A domain that does not exist
// gets the verdict of a domain without data.
func ComputeMany(ctx context.Context, db readinessdb.DBTX, domainIDs []uuid.UUID, s Settings, now time.Time) (map[uuid.UUID]Readiness, error) {
	out, _, err := computeMany(ctx, db, domainIDs, s, now)
	return out, err
}

// computeMany is ComputeMany, with the account of each domain that exists.
func computeMany(ctx context.Context, db readinessdb.DBTX, domainIDs []uuid.UUID, s Settings, now time.Time) (map[uuid.UUID]Readiness, map[uuid.UUID]uuid.UUID, error) {
	if len(domainIDs) > MaxBatch {
		return nil, nil, fmt.Errorf("readiness of %d domains at once: the most is %d", len(domainIDs), MaxBatch)
	}
	q := readinessdb.New(db)
	today := day(now)
	since, until := date(today.AddDate(0, 0, 1-s.WindowDays)), date(today)
	inputs := make(map[uuid.UUID]*Input, len(domainIDs))
	for _, id := range domainIDs {
		inputs[id] = &Input{Services: map[string]Service{}}
	}
	thresholds, err := q.Thresholds(ctx, domainIDs)
	if err != nil {
		return nil, nil, fmt.Errorf("read readiness thresholds: %w", err)
	}
	accountOf := make(map[uuid.UUID]uuid.UUID, len(thresholds))
	for _, t := range thresholds {
		inputs[t.ID].Threshold = t.ReadinessThreshold
		accountOf[t.ID] = t.AccountID
	}
	rows, err := q.SenderVolumes(ctx, readinessdb.SenderVolumesParams{DomainIds: domainIDs, Since: since, Until: until})
	if err != nil {
		return nil, nil, fmt.Errorf("read sender volumes: %w", err)
	}
	named := map[uuid.UUID]map[string]bool{}
	var slugs []string
	for _, row := range rows {
		in := inputs[row.DomainID]
		in.Volumes = append(in.Volumes, Volume{Class: row.Class, Service: row.Service, Messages: row.Messages, Passed: row.Passed, FirstSeen: row.FirstSeen.Time})
		if row.Service != "" {
			if named[row.DomainID] == nil {
				named[row.DomainID] = map[string]bool{}
			}
			named[row.DomainID][row.Service] = true
			slugs = append(slugs, row.Service)
		}
	}
	days, err := q.ReportDays(ctx, readinessdb.ReportDaysParams{DomainIds: domainIDs, Since: since, Until: until})
	if err != nil {
		return nil, nil, fmt.Errorf("count report days: %w", err)
	}
	for _, d := range days {
		inputs[d.DomainID].Days = int(d.Days)
	}
	slices.Sort(slugs)
	svcs, err := q.Services(ctx, readinessdb.ServicesParams{DomainIds: domainIDs, Slugs: slices.Compact(slugs)})
	if err != nil {
		return nil, nil, fmt.Errorf("read services: %w", err)
	}
	for _, sv := range svcs {
		// Each domain's own: its enabled senders and the services its
		// sources were classified as.
		if sv.Enabled || named[sv.DomainID][sv.Slug] {
			inputs[sv.DomainID].Services[sv.Slug] = Service{Name: sv.Name, Enabled: sv.Enabled, Threshold: sv.PassThreshold}
		}
	}
	out := make(map[uuid.UUID]Readiness, len(inputs))
	for id, in := range inputs {
		out[id] = Decide(*in, s, today)
	}
	return out, accountOf, nil
}

// Reader reads domains' readiness for the API.
type Reader struct {
	pool     *pgxpool.Pool
	authz    *access.Authorizer
	settings Settings
	now      func() time.Time
}

// NewReader returns a Reader deciding with s.
func NewReader(pool *pgxpool.Pool, s Settings) *Reader {
	return &Reader{pool: pool, authz: access.New(pool), settings: s, now: time.Now}
}

// Get is the readiness of a domain of the account. The principal must hold
// [access.ViewReports] on it. It is [Reader.GetMany] of one domain, so
// that a page and a single read decide alike.
func (r *Reader) Get(ctx context.Context, accountID, domainID uuid.UUID) (Readiness, error) {
	out, errs, err := r.GetMany(ctx, []Domain{{Account: accountID, ID: domainID}})
	if err != nil {
		return Readiness{}, err
	}
	return out[0], errs[0]
}

// Domain names one domain of an account, for [Reader.GetMany].
type Domain struct{ Account, ID uuid.UUID }

// GetMany is [Reader.Get] for several domains (at most [MaxBatch]), read
// in one snapshot with the statements of [ComputeMany]: what a page of
// domains costs. Each domain is authorised on its own (access.OnDomain:
// a domain of another account is NOT_FOUND); one the principal
// may not read gets its error in errs, at its index.
func (r *Reader) GetMany(ctx context.Context, domains []Domain) (out []Readiness, errs []error, err error) {
	if len(domains) > MaxBatch {
		return nil, nil, apperr.Invalid("domains", "the readiness of %d domains at once; the most is %d", len(domains), MaxBatch)
	}
	reach, err := r.authz.Reach(ctx, access.ViewReports)
	if err != nil {
		return nil, nil, err
	}
	out, errs = make([]Readiness, len(domains)), make([]error, len(domains))
	var ids []uuid.UUID
	for i, d := range domains {
		switch {
		case d.ID == uuid.Nil:
			errs[i] = apperr.NotFoundf("domain not found")
		case reach.Covers(d.Account, d.ID):
			ids = append(ids, d.ID)
		default: // the single decision says why (NOT_FOUND or FORBIDDEN)
			if errs[i] = r.authz.Authorize(ctx, access.OnDomain(d.Account, d.ID), access.ViewReports); errs[i] == nil {
				ids = append(ids, d.ID)
			}
		}
	}
	if len(ids) == 0 {
		return out, errs, nil
	}
	var m map[uuid.UUID]Readiness
	var accountOf map[uuid.UUID]uuid.UUID
	err = pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		m, accountOf, err = computeMany(ctx, tx, ids, r.settings, r.now())
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	for i, d := range domains {
		switch acc, ok := accountOf[d.ID]; {
		case errs[i] != nil:
		case !ok || acc != d.Account: // as Get: a domain of another account is NOT_FOUND
			errs[i] = apperr.NotFoundf("domain not found")
		default:
			out[i] = m[d.ID]
		}
	}
	return out, errs, nil
}

// MaxNotReadyDomains bounds the domains [Reader.NotReady] decides in one
// call.
const MaxNotReadyDomains = 20 * MaxBatch

// NotReady counts, per account given, its sending domains the principal
// may read ([access.ViewReports]) whose verdict is [NotReady], deciding
// them [MaxBatch] at a time in one snapshot; domains it may not read are
// not counted. Every account given has an entry; one in which the
// principal has no standing is NOT_FOUND. More than [MaxNotReadyDomains]
// domains at once is BAD_USER_INPUT.
func (r *Reader) NotReady(ctx context.Context, accountIDs []uuid.UUID) (map[uuid.UUID]int64, error) {
	reach, standing, err := r.authz.ReachStanding(ctx, access.ViewReports)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]int64, len(accountIDs))
	for _, id := range accountIDs {
		if !standing[id] {
			return nil, apperr.NotFoundf("account not found")
		}
		out[id] = 0
	}
	err = pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := readinessdb.New(tx).SendingDomains(ctx, accountIDs)
		if err != nil {
			return fmt.Errorf("list sending domains: %w", err)
		}
		accountOf := make(map[uuid.UUID]uuid.UUID, len(rows))
		var ids []uuid.UUID
		for _, row := range rows {
			if reach.Covers(row.AccountID, row.ID) {
				ids = append(ids, row.ID)
				accountOf[row.ID] = row.AccountID
			}
		}
		if len(ids) > MaxNotReadyDomains {
			return apperr.Invalid("first", "the accounts asked for hold %d domains; the most whose readiness is counted at once is %d: ask for fewer", len(ids), MaxNotReadyDomains)
		}
		now := r.now()
		for chunk := range slices.Chunk(ids, MaxBatch) {
			m, err := ComputeMany(ctx, tx, chunk, r.settings, now)
			if err != nil {
				return err
			}
			for id, rd := range m {
				if rd.Verdict == NotReady {
					out[accountOf[id]]++
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PolicyChange is a recorded tightening of a domain's DMARC policy.
type PolicyChange struct {
	At time.Time
	// Actor is the user's e-mail address, or "API token <name>"; "" when
	// neither exists any more.
	Actor string
	// From and To are the policies as tag lists (p=...; sp=...; pct=...).
	From, To string
	// Verdict and Reasons are readiness's when the change was made; Forced
	// is true when the verdict did not allow it.
	Verdict Verdict
	Forced  bool
	Reasons []Reason
}

// MaxPolicyChanges is the most PolicyChanges returns.
const MaxPolicyChanges = 100

// PolicyChanges lists a domain's recorded tightenings, newest first, at
// most limit (1 to MaxPolicyChanges). The principal must hold
// [access.ViewReports] on the domain.
func (r *Reader) PolicyChanges(ctx context.Context, accountID, domainID uuid.UUID, limit int) ([]PolicyChange, error) {
	if domainID == uuid.Nil {
		return nil, apperr.NotFoundf("domain not found")
	}
	if err := r.authz.Authorize(ctx, access.OnDomain(accountID, domainID), access.ViewReports); err != nil {
		return nil, err
	}
	if limit < 1 || limit > MaxPolicyChanges {
		return nil, apperr.Invalid("last", "last must be between 1 and %d", MaxPolicyChanges)
	}
	rows, err := readinessdb.New(r.pool).PolicyChanges(ctx, readinessdb.PolicyChangesParams{DomainID: domainID, Lim: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list policy changes: %w", err)
	}
	out := make([]PolicyChange, len(rows))
	for i, row := range rows {
		c := PolicyChange{At: row.At, From: row.FromPolicy, To: row.ToPolicy, Verdict: Verdict(row.Verdict), Forced: row.Forced}
		switch {
		case row.UserEmail != nil:
			c.Actor = *row.UserEmail
		case row.TokenName != nil:
			c.Actor = "API token " + *row.TokenName
		}
		if err := json.Unmarshal(row.Reasons, &c.Reasons); err != nil {
			return nil, fmt.Errorf("policy change reasons: %w", err)
		}
		out[i] = c
	}
	return out, nil
}

func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func date(t time.Time) pgtype.Date { return pgtype.Date{Time: t, Valid: true} }

func daysBetween(a, b time.Time) int { return int(b.Sub(a).Hours() / 24) }

func percent(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) * 100 / float64(of)
}

// pct formats a percentage the way the reasons say it: 97.5%, 95%.
func pct(v float64) string {
	return fmt.Sprintf("%.4g%%", v)
}
