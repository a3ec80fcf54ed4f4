// Package sender manages who may send mail as a hosted domain, as SPF sees
// it: the domain's own netblocks, the catalog services it enables, and
// literal includes pinned into its SPF records. It also keeps the sender
// catalog in the database and on the edge (edge_service rows).
//
// The customer publishes one SPF record at the domain's apex (see package
// spfanswer for the names):
//
//	v=spf1 include:%{i}._ip.<domain>._spf.<edge zone> redirect=<domain>._rspf.<edge zone>
//
// The include is answered per query by dnsedge: ip4:/ip6: of the querying
// address when it is a netblock or an enabled service's range, whatever the
// HELO. The redirect target holds the pinned includes, the HELO step (an
// include that hands over to an enabled service's own include when only
// the HELO names it) and ~all, or -all for a blocked domain. Its worst
// evaluation costs the include and the redirect, every pinned include's
// chain, and the HELO step with the costliest service's chain; a change
// that would take it past RFC 7208's limit of 10 is refused (domain.Published
// counts it, and the legacy form's cost).
package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/sender/senderdb"
	"github.com/rampartmail/rampart/internal/spf"
)

// MaxLookups is RFC 7208's limit on DNS-querying terms (§4.6.4).
const MaxLookups = 10

// Netblock is an address range the domain itself sends from.
type Netblock struct {
	Prefix    netip.Prefix
	Label     string
	CreatedAt time.Time
}

// Service is a sending service from the catalog.
type Service = senderdb.SenderService

// Ranges are the service's current ranges: static ones and those its SPF
// include resolved to last.
func Ranges(s Service) []netip.Prefix {
	out := append([]netip.Prefix(nil), s.StaticRanges...)
	return append(out, s.ResolvedRanges...)
}

// Pin is a literal include kept in the _nspf record until it expires.
type Pin struct {
	Include   string
	Lookups   int
	ExpiresAt time.Time
}

// Manager changes a domain's senders through the domain service, so that
// every change is authorised and reaches the edge in the same transaction.
type Manager struct {
	pool    *pgxpool.Pool
	domains *domain.Service
	authz   *access.Authorizer
	log     *slog.Logger
	now     func() time.Time
	// resolver looks senders' includes up for requests; nil: off.
	resolver spf.Resolver
}

// NewManager returns a Manager.
func NewManager(pool *pgxpool.Pool, domains *domain.Service, log *slog.Logger) *Manager {
	return &Manager{pool: pool, domains: domains, authz: access.New(pool), log: log, now: time.Now}
}

// ParseCIDR reads a netblock: a CIDR prefix or a single address, IPv4 or
// IPv6. Host bits must be zero, so that what is stored is what was meant.
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, apperr.Invalid("cidr", "%q is not an IP address or CIDR prefix", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, apperr.Invalid("cidr", "%q is not a CIDR prefix: %v", s, err)
	}
	if p.Masked() != p {
		return netip.Prefix{}, apperr.Invalid("cidr", "%q has host bits set; did you mean %s?", s, p.Masked())
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, apperr.Invalid("cidr", "%q covers every address; that would let anyone send as the domain", s)
	}
	return p, nil
}

// AddNetblock lets a netblock send as the domain (or relabels it).
func (m *Manager) AddNetblock(ctx context.Context, name, cidr, label string) (domain.Domain, error) {
	p, err := ParseCIDR(cidr)
	if err != nil {
		return domain.Domain{}, err
	}
	label = strings.TrimSpace(label)
	if len(label) > 200 {
		return domain.Domain{}, apperr.Invalid("label", "a label has at most 200 characters")
	}
	return m.domains.Change(ctx, name, access.ManageSenders, func(tx pgx.Tx, d domain.Domain) error {
		if err := m.AddNetblockIn(ctx, tx, d, p, label); err != nil {
			return err
		}
		// The legacy form's _nspf records grow with the netblocks.
		return m.checkLookups(ctx, tx, d)
	})
}

// The ...In methods are the tx-level parts of the Manager's changes, for
// composing several in one transaction on a domain locked by
// domain.Service.Configure (package domainconfig), which authorised them.
// They do not check the SPF record's cost: call [Manager.CheckLookups]
// after the last.

// AddNetblockIn lets the netblock p send as d (or relabels it), in tx.
func (m *Manager) AddNetblockIn(ctx context.Context, tx pgx.Tx, d domain.Domain, p netip.Prefix, label string) error {
	if _, err := senderdb.New(tx).InsertNetblock(ctx, senderdb.InsertNetblockParams{DomainID: d.ID, Cidr: p, Label: label}); err != nil {
		return fmt.Errorf("insert netblock: %w", err)
	}
	return nil
}

// RemoveNetblockIn stops the netblock p sending as d, in tx.
func (m *Manager) RemoveNetblockIn(ctx context.Context, tx pgx.Tx, d domain.Domain, p netip.Prefix) error {
	n, err := senderdb.New(tx).DeleteNetblock(ctx, senderdb.DeleteNetblockParams{DomainID: d.ID, Cidr: p})
	if err != nil {
		return fmt.Errorf("delete netblock: %w", err)
	}
	if n == 0 {
		return apperr.NotFoundf("netblock %s is not set on %s", p, d.Name)
	}
	return nil
}

// EnableSenderIn lets the catalog service (or the account's own) slug send
// as d, in tx.
func (m *Manager) EnableSenderIn(ctx context.Context, tx pgx.Tx, d domain.Domain, slug string) error {
	q := senderdb.New(tx)
	svc, err := q.ServiceBySlug(ctx, strings.ToLower(strings.TrimSpace(slug)))
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !usable(svc, d.AccountID) {
		return apperr.Invalid("service", "%q is not a service in the sender catalog or the account's own", slug)
	}
	if err != nil {
		return fmt.Errorf("load service: %w", err)
	}
	if err := q.EnableSender(ctx, senderdb.EnableSenderParams{DomainID: d.ID, Service: svc.Slug}); err != nil {
		return fmt.Errorf("enable sender: %w", err)
	}
	return nil
}

// DisableSenderIn stops the service slug sending as d, in tx.
func (m *Manager) DisableSenderIn(ctx context.Context, tx pgx.Tx, d domain.Domain, slug string) error {
	n, err := senderdb.New(tx).DisableSender(ctx, senderdb.DisableSenderParams{DomainID: d.ID, Service: strings.ToLower(strings.TrimSpace(slug))})
	if err != nil {
		return fmt.Errorf("disable sender: %w", err)
	}
	if n == 0 {
		return apperr.NotFoundf("%q is not enabled on %s", slug, d.Name)
	}
	return nil
}

// PinIncludeIn pins the include inc (as [ParseInclude] has it) on d until
// expiresAt, in tx.
func (m *Manager) PinIncludeIn(ctx context.Context, tx pgx.Tx, d domain.Domain, inc string, expiresAt time.Time) error {
	q := senderdb.New(tx)
	// A catalog service's include costs what its chain was measured to,
	// and is refused while that is not known; an include of no
	// catalog service counts as one term. The measure is of all the
	// service's includes together, so an include of a service with
	// several is counted at their sum: never cheaper than it is.
	lookups := int32(1)
	if svc, err := q.ServiceByInclude(ctx, senderdb.ServiceByIncludeParams{Include: inc, AccountID: d.AccountID}); err == nil {
		if svc.SpfLookups == nil {
			return unknownCost(domain.UnknownSender{Slug: svc.Slug, Name: svc.Name, Includes: []string{inc}, Error: svc.ResolveError}, m.resolver != nil, "")
		}
		lookups = max(*svc.SpfLookups, 1)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("look up include: %w", err)
	}
	if err := q.UpsertPin(ctx, senderdb.UpsertPinParams{DomainID: d.ID, Include: inc, Lookups: lookups, ExpiresAt: expiresAt}); err != nil {
		return fmt.Errorf("pin include: %w", err)
	}
	return nil
}

// UnpinIncludeIn removes the pinned include inc from d, in tx.
func (m *Manager) UnpinIncludeIn(ctx context.Context, tx pgx.Tx, d domain.Domain, inc string) error {
	n, err := senderdb.New(tx).DeletePin(ctx, senderdb.DeletePinParams{DomainID: d.ID, Include: inc})
	if err != nil {
		return fmt.Errorf("unpin include: %w", err)
	}
	if n == 0 {
		return apperr.NotFoundf("%q is not pinned on %s", inc, d.Name)
	}
	return nil
}

// CheckLookups refuses, inside tx, a state of d whose SPF record would
// cost more than RFC 7208's 10 DNS lookups, or whose cost is not known.
func (m *Manager) CheckLookups(ctx context.Context, tx pgx.Tx, d domain.Domain) error {
	return m.checkLookups(ctx, tx, d)
}

// State is a domain's senders as read in tx: its netblocks, enabled
// services and unexpired pins.
type State struct {
	Netblocks []Netblock
	Enabled   []Service
	Pins      []Pin
}

// StateIn reads d's senders in tx (the caller authorised).
func (m *Manager) StateIn(ctx context.Context, tx pgx.Tx, d domain.Domain) (State, error) {
	q := senderdb.New(tx)
	var st State
	nb, err := q.Netblocks(ctx, d.ID)
	if err != nil {
		return State{}, fmt.Errorf("list netblocks: %w", err)
	}
	for _, r := range nb {
		st.Netblocks = append(st.Netblocks, Netblock{Prefix: r.Cidr, Label: r.Label, CreatedAt: r.CreatedAt})
	}
	if st.Enabled, err = q.EnabledServices(ctx, d.ID); err != nil {
		return State{}, fmt.Errorf("list senders: %w", err)
	}
	pins, err := q.Pins(ctx, d.ID)
	if err != nil {
		return State{}, fmt.Errorf("list pins: %w", err)
	}
	for _, r := range pins {
		st.Pins = append(st.Pins, Pin{Include: r.Include, Lookups: int(r.Lookups), ExpiresAt: r.ExpiresAt})
	}
	return st, nil
}

// ValidatePin checks a pin's expiry as [Manager.PinInclude] does.
func (m *Manager) ValidatePin(expiresAt time.Time) error {
	now := m.now()
	if !expiresAt.After(now) {
		return apperr.Invalid("expiresAt", "the expiry must be in the future")
	}
	if expiresAt.Sub(now) > MaxPin {
		return apperr.Invalid("expiresAt", "an include may be pinned for at most a year")
	}
	return nil
}

// RemoveNetblock stops a netblock sending as the domain.
func (m *Manager) RemoveNetblock(ctx context.Context, name, cidr string) (domain.Domain, error) {
	p, err := ParseCIDR(cidr)
	if err != nil {
		return domain.Domain{}, err
	}
	return m.domains.Change(ctx, name, access.ManageSenders, func(tx pgx.Tx, d domain.Domain) error {
		return m.RemoveNetblockIn(ctx, tx, d, p)
	})
}

// EnableSender lets a catalog service send as the domain. A service whose
// include was never resolved is looked up first (within a bounded time,
// through the configured resolver): the change is refused while its cost
// is not known.
func (m *Manager) EnableSender(ctx context.Context, name, slug string) (domain.Domain, error) {
	if err := m.knowCostFor(ctx, name, strings.ToLower(strings.TrimSpace(slug))); err != nil {
		return domain.Domain{}, err
	}
	return m.domains.Change(ctx, name, access.ManageSenders, func(tx pgx.Tx, d domain.Domain) error {
		if err := m.EnableSenderIn(ctx, tx, d, slug); err != nil {
			return err
		}
		return m.checkLookups(ctx, tx, d)
	})
}

// DisableSender stops a catalog service sending as the domain.
func (m *Manager) DisableSender(ctx context.Context, name, slug string) (domain.Domain, error) {
	return m.domains.Change(ctx, name, access.ManageSenders, func(tx pgx.Tx, d domain.Domain) error {
		return m.DisableSenderIn(ctx, tx, d, slug)
	})
}

// MaxPin is how long a pinned include may be kept.
const MaxPin = 366 * 24 * time.Hour

// PinInclude keeps a literal include in the domain's _nspf record until
// expiresAt, for a vendor whose set-up checker looks for its include in the
// text of the domain's SPF record.
func (m *Manager) PinInclude(ctx context.Context, name, include string, expiresAt time.Time) (domain.Domain, error) {
	inc, err := ParseInclude(include)
	if err != nil {
		return domain.Domain{}, err
	}
	if err := m.ValidatePin(expiresAt); err != nil {
		return domain.Domain{}, err
	}
	// A catalog service's (or the account's own service's) include that
	// never resolved is looked up first.
	d, err := m.domains.Get(ctx, name)
	if err != nil {
		return domain.Domain{}, err
	}
	if svc, err := senderdb.New(m.pool).ServiceByInclude(ctx, senderdb.ServiceByIncludeParams{Include: inc, AccountID: d.AccountID}); err == nil {
		if err := m.knowCostFor(ctx, name, svc.Slug); err != nil {
			return domain.Domain{}, err
		}
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return domain.Domain{}, fmt.Errorf("look up include: %w", err)
	}
	return m.domains.Change(ctx, name, access.ManageSenders, func(tx pgx.Tx, d domain.Domain) error {
		if err := m.PinIncludeIn(ctx, tx, d, inc, expiresAt); err != nil {
			return err
		}
		return m.checkLookups(ctx, tx, d)
	})
}

// UnpinInclude removes a pinned include before its expiry.
func (m *Manager) UnpinInclude(ctx context.Context, name, include string) (domain.Domain, error) {
	inc, err := ParseInclude(include)
	if err != nil {
		return domain.Domain{}, err
	}
	return m.domains.Change(ctx, name, access.ManageSenders, func(tx pgx.Tx, d domain.Domain) error {
		return m.UnpinIncludeIn(ctx, tx, d, inc)
	})
}

// ParseInclude reads an SPF include target: a host name, lower case.
func ParseInclude(s string) (string, error) {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "include:"))), ".")
	if s == "" || len(s) > 253 || !strings.Contains(s, ".") {
		return "", apperr.Invalid("include", "%q is not a host name", s)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return "", apperr.Invalid("include", "%q is not a host name", s)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", apperr.Invalid("include", "%q is not a host name (macros are not allowed in a pinned include)", s)
			}
		}
	}
	return s, nil
}

// Lookups returns the DNS-querying terms the domain's published SPF record
// costs at worst, as compiled in tx: the current form's, and the legacy
// form's while the domain still publishes it (see domain.Published), and
// the enabled senders whose cost is not known (counted at one term each).
func (m *Manager) lookups(ctx context.Context, tx pgx.Tx, d domain.Domain) (current, legacy int, unknown []domain.UnknownSender, err error) {
	p, err := m.domains.Compile(ctx, tx, d)
	if err != nil {
		return 0, 0, nil, err
	}
	return p.Lookups, p.LegacyLookups, p.Unknown, nil
}

// checkLookups refuses a change, inside its transaction tx, that would take
// the domain's record past RFC 7208's limit of 10 DNS-querying terms, or
// whose cost cannot be known: an enabled sender's include was never
// resolved.
func (m *Manager) checkLookups(ctx context.Context, tx pgx.Tx, d domain.Domain) error {
	n, legacy, unknown, err := m.lookups(ctx, tx, d)
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		return unknownCost(unknown[0], m.resolver != nil, ", or disable "+unknown[0].Slug+" first")
	}
	if n > MaxLookups {
		return apperr.Invalid("spf", "this change would make %s's SPF record cost %d DNS lookups at worst; receivers give up after %d (RFC 7208 §4.6.4): disable a sender or remove a pinned include first", d.Name, n, MaxLookups)
	}
	if legacyInUse(d) && legacy > MaxLookups {
		return apperr.Invalid("spf", "this change would make the SPF record %s still publishes (the legacy form, with include:...._nspf) cost %d DNS lookups at worst; receivers give up after %d (RFC 7208 §4.6.4): publish the current record that dnsSetup shows, or disable a sender, remove a pinned include or merge netblocks first", d.Name, legacy, MaxLookups)
	}
	return nil
}

// unknownCost refuses a change judged by a cost that is not known: u's
// includes never resolved. alternative, if any, says how to do without it.
func unknownCost(u domain.UnknownSender, resolving bool, alternative string) error {
	why := u.Error
	if why == "" {
		why = "it was never resolved"
		if !resolving {
			why += " (this server's DNS resolver is off)"
		}
	}
	what := "include " + strings.Join(u.Includes, ", ")
	if len(u.Includes) > 1 {
		what = "includes " + strings.Join(u.Includes, ", ")
	}
	return apperr.Invalid("service", "cannot know the DNS lookup cost of %s's %s: %s; try again in a minute (refreshSenderRanges)%s", u.Name, what, why, alternative)
}

// legacyInUse reports whether d was last seen publishing the legacy SPF
// form, whose cost then counts too.
func legacyInUse(d domain.Domain) bool { return d.Observed.SPF == domain.SPFLegacy }

// view decides reading d's senders: [access.ViewReports] on the domain.
func (m *Manager) view(ctx context.Context, d domain.Domain) error {
	return m.authz.Authorize(ctx, access.OnDomain(d.AccountID, d.ID), access.ViewReports)
}

// Netblocks lists a domain's netblocks.
func (m *Manager) Netblocks(ctx context.Context, d domain.Domain) ([]Netblock, error) {
	if err := m.view(ctx, d); err != nil {
		return nil, err
	}
	rows, err := senderdb.New(m.pool).Netblocks(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("list netblocks: %w", err)
	}
	out := make([]Netblock, len(rows))
	for i, r := range rows {
		out[i] = Netblock{Prefix: r.Cidr, Label: r.Label, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// Enabled lists a domain's enabled services.
func (m *Manager) Enabled(ctx context.Context, d domain.Domain) ([]Service, error) {
	if err := m.view(ctx, d); err != nil {
		return nil, err
	}
	rows, err := senderdb.New(m.pool).EnabledServices(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("list senders: %w", err)
	}
	return rows, nil
}

// Pins lists a domain's unexpired pinned includes.
func (m *Manager) Pins(ctx context.Context, d domain.Domain) ([]Pin, error) {
	if err := m.view(ctx, d); err != nil {
		return nil, err
	}
	rows, err := senderdb.New(m.pool).Pins(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	out := make([]Pin, len(rows))
	for i, r := range rows {
		out[i] = Pin{Include: r.Include, Lookups: int(r.Lookups), ExpiresAt: r.ExpiresAt}
	}
	return out, nil
}

// LookupsOf returns the worst-case DNS lookups of d's published record,
// and whether that is known: false when an enabled sender's include was
// never resolved (it is counted at one term, a lower bound).
func (m *Manager) LookupsOf(ctx context.Context, d domain.Domain) (n int, known bool, err error) {
	if err := m.view(ctx, d); err != nil {
		return 0, false, err
	}
	var legacy int
	var unknown []domain.UnknownSender
	err = pgx.BeginTxFunc(ctx, m.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		n, legacy, unknown, err = m.lookups(ctx, tx, d)
		return err
	})
	if legacyInUse(d) {
		n = max(n, legacy)
	}
	return n, len(unknown) == 0, err
}

// Catalog lists every service in the sender catalog, and the own services
// of the accounts the caller can see.
func (m *Manager) Catalog(ctx context.Context) ([]Service, error) {
	accounts, err := m.authz.Visible(ctx)
	if err != nil {
		return nil, err
	}
	return senderdb.New(m.pool).VisibleServices(ctx, nonNilIDs(accounts))
}

// ExpirePins removes expired pinned includes and republishes the domains
// that had them. It is a periodic job's work.
func (m *Manager) ExpirePins(ctx context.Context) (int, error) {
	n, _, err := m.ExpirePinsUntil(ctx, time.Time{})
	return n, err
}

// ExpirePinsUntil is [Manager.ExpirePins] in bounded steps: each domain's
// pins go in their own transaction, and once stop has passed (zero: never)
// it starts no domain after its first and reports done false; the domains
// left are found again by the next run.
func (m *Manager) ExpirePinsUntil(ctx context.Context, stop time.Time) (n int, done bool, err error) {
	doms, err := senderdb.New(m.pool).DomainsWithExpiredPins(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("find expired pins: %w", err)
	}
	for _, d := range doms {
		if n > 0 && !stop.IsZero() && !time.Now().Before(stop) {
			return n, false, nil
		}
		err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
			if _, err := senderdb.New(tx).DeleteExpiredPins(ctx, d.ID); err != nil {
				return err
			}
			return m.domains.Republish(ctx, tx, d.ID)
		})
		if err != nil {
			return n, false, fmt.Errorf("expire pins of %s: %w", d.Name, err)
		}
		n++
		m.log.InfoContext(ctx, "expired pinned SPF includes", "domain", d.Name)
	}
	return n, true, nil
}

// notify sends the edge's NOTIFY for a serial.
func notify(ctx context.Context, q *senderdb.Queries, serial int64) error {
	return q.NotifyEdge(ctx, strconv.FormatInt(serial, 10))
}

// Service returns one service by slug, to any signed-in caller for a
// catalog service, as [Manager.Catalog] does, and to those who can see its
// account for an account's own.
func (m *Manager) Service(ctx context.Context, slug string) (Service, error) {
	if _, err := access.Require(ctx); err != nil {
		return Service{}, err
	}
	s, err := senderdb.New(m.pool).ServiceBySlug(ctx, slug)
	if err == nil && s.AccountID != nil && m.authz.See(ctx, *s.AccountID) != nil {
		err = pgx.ErrNoRows
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Service{}, apperr.NotFoundf("service %q not found", slug)
	}
	if err != nil {
		return Service{}, fmt.Errorf("load service: %w", err)
	}
	return s, nil
}
