package domainkey

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/miekg/dns"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dkim"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/domainkey/domainkeydb"
)

// DKIM discovery: the selectors that sign a domain's mail, as the DMARC
// reports tell (report_source_dkim), that the domain has no key for in
// Rampart; and the import of such a key, in one call, from what the
// domain's own DNS publishes at the selector now, through the configured
// resolver (internal/dnscheck).

// Discovered is a selector seen signing mail as the domain (d= the domain
// or a subdomain of it) in its reports.
type Discovered struct {
	Selector string
	// Messages signed with the selector; Passing those whose signature
	// passed.
	Messages, Passing int64
	// FirstSeen and LastSeen are the first and last report days (UTC).
	FirstSeen, LastSeen time.Time
	// DKIMDomains are the d= domains signed with the selector, sorted.
	DKIMDomains []string
	// Hosted: the domain has a key for the selector in Rampart.
	Hosted bool
	// Domain is the domain the selector was seen for.
	Domain domain.Domain
}

// Limits of [Manager.Discovered].
const (
	MaxDiscoveryDays       = 366
	MaxDiscoveredSelectors = 200
)

// Discovered lists the selectors seen signing the domain's mail in the
// last days days (today included, UTC), the most messages first, at most
// limit of them; the selectors the domain has a key for only with
// includeHosted. The principal must hold [access.ViewReports] on the
// domain.
func (m *Manager) Discovered(ctx context.Context, d domain.Domain, days, limit int, includeHosted bool) ([]Discovered, error) {
	if err := access.New(m.pool).Authorize(ctx, access.OnDomain(d.AccountID, d.ID), access.ViewReports); err != nil {
		return nil, err
	}
	if days < 1 || days > MaxDiscoveryDays {
		return nil, apperr.Invalid("days", "days must be between 1 and %d", MaxDiscoveryDays)
	}
	if limit < 1 || limit > MaxDiscoveredSelectors {
		return nil, apperr.Invalid("first", "first must be between 1 and %d", MaxDiscoveredSelectors)
	}
	now := time.Now().UTC()
	since := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -(days - 1))
	rows, err := domainkeydb.New(m.pool).DiscoveredSelectors(ctx, domainkeydb.DiscoveredSelectorsParams{
		DomainID: d.ID, Name: d.Name, Since: pgtype.Date{Time: since, Valid: true},
		IncludeHosted: includeHosted, MaxSelectors: int32(limit),
	})
	if err != nil {
		return nil, fmt.Errorf("list discovered DKIM selectors: %w", err)
	}
	out := make([]Discovered, len(rows))
	for i, r := range rows {
		out[i] = Discovered{
			Selector: r.Selector, Messages: r.Messages, Passing: r.Passing,
			FirstSeen: r.FirstDay.Time, LastSeen: r.LastDay.Time,
			DKIMDomains: r.DkimDomains, Hosted: r.Hosted, Domain: d,
		}
	}
	return out, nil
}

// lookupTimeout bounds the DNS lookups of one import or probe.
const lookupTimeout = 5 * time.Second

// maxProbes bounds the selector lookups ([Manager.Probe]) in flight in
// the process, whatever the number of requests.
const maxProbes = 16

var probes = make(chan struct{}, maxProbes)

// Resolution is what the domain's own DNS publishes at a selector now.
type Resolution struct {
	// Status is RESOLVES (a valid DKIM key, directly or through a CNAME),
	// REVOKED (p= empty), INVALID (a TXT record that is not a valid DKIM
	// key), MISSING (no TXT record), EDGE (the answer would come from
	// Rampart's edge: _domainkey or the selector points at it) or UNKNOWN
	// (no answer, or this server does not check DNS).
	Status string
	// CNAMETarget is the CNAME the selector points to, if any.
	CNAMETarget string
	// Detail says what was found, for the owner.
	Detail string
}

// The statuses of a [Resolution].
const (
	Resolves = "RESOLVES"
	Revoked  = "REVOKED"
	Invalid  = "INVALID"
	Missing  = "MISSING"
	AtEdge   = "EDGE"
	Unknown  = "UNKNOWN"
)

// Probe looks up, through the configured resolver, what the domain's
// own DNS publishes at <selector>._domainkey.<domain> now. The principal
// must hold [access.ViewReports] on the domain.
func (m *Manager) Probe(ctx context.Context, d domain.Domain, selector string) (Resolution, error) {
	if err := access.New(m.pool).Authorize(ctx, access.OnDomain(d.AccountID, d.ID), access.ViewReports); err != nil {
		return Resolution{}, err
	}
	sel, err := dkim.ParseSelector(selector)
	if err != nil {
		// A reporter's selector may be anything: it is no name to look up.
		return Resolution{Status: Invalid, Detail: err.Error()}, nil
	}
	select {
	case probes <- struct{}{}:
	case <-ctx.Done():
		return Resolution{}, ctx.Err()
	}
	defer func() { <-probes }()
	res, _ := m.resolve(ctx, d, sel)
	return res, nil
}

// resolve looks up the selector's record and the _domainkey delegation
// concurrently, and reads them; the record text is returned with
// Resolves.
func (m *Manager) resolve(ctx context.Context, d domain.Domain, sel string) (Resolution, string) {
	cfg := m.domains.Config()
	if cfg.Checker == nil {
		return Resolution{Status: Unknown, Detail: "this server does not check DNS (RAMPART_DNS_RESOLVER is off)"}, ""
	}
	name, err := dkim.RecordName(sel, d.Name)
	if err != nil {
		return Resolution{Status: Invalid, Detail: err.Error()}, ""
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var (
		wg      sync.WaitGroup
		txt, ns dnscheck.Result
	)
	wg.Go(func() { txt = cfg.Checker.TXT(ctx, name) })
	wg.Go(func() { ns = cfg.Checker.Lookup(ctx, "_domainkey."+d.Name, dns.TypeNS) })
	wg.Wait()

	zone := strings.ToLower(strings.TrimSuffix(cfg.EdgeZone, "."))
	if edgeDelegated(ns, cfg.NameServers) || (!ns.Status.Definitive() && d.Observed.DKIMDelegated != nil && *d.Observed.DKIMDelegated) {
		return Resolution{Status: AtEdge, Detail: "_domainkey." + d.Name + " is delegated to Rampart's edge, so " + name + " is answered by the edge, not by the domain's own DNS: a key it answers is hosted in Rampart already, and any other selector is unknown there"}, ""
	}
	r := Resolution{}
	if len(txt.Chain) > 0 {
		r.CNAMETarget = strings.ToLower(txt.Chain[0])
		if zone != "" && dns.IsSubDomain(dns.Fqdn(zone), dns.Fqdn(r.CNAMETarget)) {
			r.Status, r.Detail = AtEdge, name+" is a CNAME to "+r.CNAMETarget+", Rampart's edge: there is no key of the domain's own to import"
			return r, ""
		}
	}
	switch txt.Status {
	case dnscheck.Found:
	case dnscheck.NoData, dnscheck.NXDomain:
		r.Status, r.Detail = Missing, txt.Describe()
		return r, ""
	default:
		r.Status, r.Detail = Unknown, txt.Describe()
		return r, ""
	}
	var records []string
	for _, t := range txt.TXT() {
		if looksLikeKey(t) {
			records = append(records, t)
		}
	}
	switch len(records) {
	case 0:
		r.Status, r.Detail = Invalid, fmt.Sprintf("the TXT record(s) at %s are not DKIM key records", at(name, r))
		return r, ""
	case 1:
	default:
		r.Status, r.Detail = Invalid, fmt.Sprintf("%s has %d DKIM key records; a selector has one", at(name, r), len(records))
		return r, ""
	}
	if _, _, err := dkim.ParsePublicKey(records[0]); err != nil {
		switch {
		case errors.Is(err, dkim.ErrRevoked):
			r.Status, r.Detail = Revoked, "the key at "+at(name, r)+" is revoked (p= is empty): mail signed with the selector no longer verifies, and there is no key to import"
		case errors.Is(err, dkim.ErrNotDKIM):
			r.Status, r.Detail = Invalid, fmt.Sprintf("the TXT record at %s is not a DKIM key record: %v", at(name, r), err)
		default:
			r.Status, r.Detail = Invalid, fmt.Sprintf("the TXT record at %s is not a valid DKIM key: %v", at(name, r), err)
		}
		return r, ""
	}
	r.Status, r.Detail = Resolves, "a DKIM key at "+at(name, r)
	return r, records[0]
}

// at names where a record was found: the name, with the CNAME followed.
func at(name string, r Resolution) string {
	if r.CNAMETarget != "" {
		return name + " (CNAME " + r.CNAMETarget + ")"
	}
	return name
}

// looksLikeKey reports whether a TXT string is meant as a DKIM key record
// (a v=DKIM tag first, or a p= tag): other TXT records at the name (an
// SPF record, a verification token) are ignored.
func looksLikeKey(t string) bool {
	s := strings.ToLower(strings.TrimSpace(t))
	if strings.HasPrefix(s, "v=dkim") {
		return true
	}
	for tag := range strings.SplitSeq(s, ";") {
		if strings.HasPrefix(strings.TrimSpace(tag), "p=") {
			return true
		}
	}
	return false
}

// edgeDelegated reports whether an NS lookup found the name delegated to
// the edge's name servers (at least one NS record, each an edge server).
func edgeDelegated(r dnscheck.Result, servers []string) bool {
	if r.Status != dnscheck.Found || len(r.Chain) > 0 {
		return false
	}
	n := 0
	for _, rr := range r.Records {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		host := strings.TrimSuffix(ns.Ns, ".")
		for _, s := range servers {
			if strings.EqualFold(strings.TrimSuffix(s, "."), host) {
				n++
				break
			}
		}
	}
	return n > 0 && n == len(r.Records)
}

// Import adds the key the domain's own DNS publishes at
// <selector>._domainkey.<domain> now, as [Manager.Add] would with it: a
// TXT record as a hosted key (its tags kept), a CNAME as a CNAME key to
// its target (whose record must be a valid key). The principal must hold
// [access.ManageDKIM] on the domain; it is decided before any lookup.
// NOT_FOUND when there is no record, BAD_USER_INPUT when the record is not
// a valid DKIM key or revokes it, CONFLICT when the selector has a key in
// Rampart already, the answer would come from the edge, or the lookup got
// no answer.
func (m *Manager) Import(ctx context.Context, name, selector string) (Key, []string, error) {
	d, err := m.domains.Get(ctx, name)
	if err != nil {
		return Key{}, nil, err
	}
	if err := access.New(m.pool).Authorize(ctx, access.OnDomain(d.AccountID, d.ID), access.ManageDKIM); err != nil {
		return Key{}, nil, err
	}
	sel, err := dkim.ParseSelector(selector)
	if err != nil {
		return Key{}, nil, apperr.Invalid("selector", "%v", err)
	}
	if m.domains.Config().Checker == nil {
		return Key{}, nil, apperr.Conflictf("this server does not check DNS (RAMPART_DNS_RESOLVER is off): add the key with addDkimKey")
	}
	has, err := domainkeydb.New(m.pool).HasKey(ctx, domainkeydb.HasKeyParams{DomainID: d.ID, Selector: sel})
	if err != nil {
		return Key{}, nil, fmt.Errorf("look up DKIM key: %w", err)
	}
	if has {
		return Key{}, nil, apperr.Conflictf("selector %q already has a key on %s", sel, d.Name)
	}
	res, record := m.resolve(ctx, d, sel)
	switch res.Status {
	case Resolves:
	case Missing:
		return Key{}, nil, apperr.NotFoundf("nothing to import: %s", res.Detail)
	case Invalid, Revoked:
		return Key{}, nil, apperr.Invalid("selector", "cannot import: %s", res.Detail)
	case AtEdge:
		return Key{}, nil, apperr.Conflictf("cannot import: %s", res.Detail)
	default:
		return Key{}, nil, apperr.Conflictf("cannot import now: %s; try again", res.Detail)
	}
	k := NewKey{Selector: sel, PublicKey: record}
	if res.CNAMETarget != "" {
		k = NewKey{Selector: sel, CNAMETarget: res.CNAMETarget}
	}
	return m.Add(ctx, d.Name, k)
}
