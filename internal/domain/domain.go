// Package domain manages the mail domains an account hosts on Rampart: adding
// and removing them, proving ownership, their mode (sending or blocked) and
// their DMARC policy, and the DNS records the customer publishes to delegate
// to the edge.
//
// A domain row is an account's claim on a name. The edge serves a claim, and
// reports are stored for it, only once it is verified: the account has
// published the TXT record [ProofValue] of its token at [ProofName] (checked
// through the configured resolver with internal/dnscheck, on request and by
// a periodic job), or the operator ran `rampart admin verify-domain`.
// Several accounts may claim a name, so that a claim cannot lock the real
// owner out; at most one claim on a name is verified, and verifying
// displaces the others. Unverified claims expire after [ClaimTTL]. See
// ownership.go.
//
// Every change that affects DNS recompiles the domain's row of the edge
// contract (table edge_domain) in the same transaction and sends NOTIFY
// rampart_edge with the new serial, so dnsedge serves it within a second.
// Every call authorises through [access.Authorizer] first.
package domain

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
	"github.com/rampartmail/rampart/internal/readiness"
)

// Mode says whether a domain sends mail.
type Mode string

// The modes.
const (
	// Sending domains publish the owner's DMARC policy.
	Sending Mode = "sending"
	// Blocked (non-sending) domains are locked down: p=reject with strict
	// alignment, whatever policy the owner stored.
	Blocked Mode = "blocked"
)

// Policy is the DMARC policy of a domain. Nil pointers are tags left out.
type Policy struct {
	P       dmarc.Policy
	SP      *dmarc.Policy
	NP      *dmarc.Policy
	Percent int
	ADKIM   dmarc.Alignment
	ASPF    dmarc.Alignment
	// RUA and RUF are the owner's extra report addresses (mailto: URIs).
	RUA, RUF       []string
	FailureOptions *string
	Testing        *bool
}

// Domain is a hosted domain.
type Domain struct {
	ID        uuid.UUID
	AccountID uuid.UUID
	// Name is the ASCII (A-label) form.
	Name      string
	Mode      Mode
	CreatedAt time.Time
	UpdatedAt time.Time
	// Stored is the policy the owner set; Effective applies the mode.
	Stored Policy
	// BIMI is the owner's BIMI assertion; nil when none is set.
	BIMI *BIMI
	// ReportToken is the local part of the domain's own report address,
	// <token>@<reports domain>.
	ReportToken string
	// Ownership is where the account's claim on the name stands.
	Ownership Ownership
	// Observed is what the last check saw of the domain's own DNS.
	Observed Observed
	// ReadinessThreshold is the DMARC pass rate (percent) its senders must
	// reach before its policy may tighten (internal/readiness).
	ReadinessThreshold float64
	// Labels group domains for grants (package access): a team or token
	// granted a label acts on the domains carrying it.
	Labels []string
}

// Verified reports whether the account has proven it controls the domain:
// only then does the edge serve it and are reports stored for it.
func (d Domain) Verified() bool { return d.Ownership.VerifiedAt != nil }

// BIMI is a domain's BIMI assertion: where its logo (SVG Tiny PS) and the
// evidence document (a VMC or CMC) are.
type BIMI struct {
	LogoURL     string
	EvidenceURL string
}

// Effective is the policy published for the domain: the stored one while
// sending, and a full lock-down while blocked.
func (d Domain) Effective() Policy {
	if d.Mode != Blocked {
		return d.Stored
	}
	p := d.Stored
	reject := dmarc.Reject
	p.P, p.SP, p.NP = dmarc.Reject, &reject, &reject
	p.Percent = 100
	p.ADKIM, p.ASPF = dmarc.Strict, dmarc.Strict
	p.Testing = nil
	return p
}

// Record composes the DMARC record published at _dmarc.<name>: the
// effective policy, with Rampart's own report address (reportsDomain, when
// set) first in rua, then the owner's extra addresses.
func (d Domain) Record(reportsDomain string) dmarc.Record {
	r := d.Effective().record()
	if reportsDomain != "" && d.ReportToken != "" {
		own := dmarc.URI{Address: "mailto:" + d.ReportToken + "@" + reportsDomain}
		r.RUA = append([]dmarc.URI{own}, r.RUA...)
	}
	return r
}

// ReportAddress is the domain's own report address, "" without a reports
// domain.
func (d Domain) ReportAddress(reportsDomain string) string {
	if reportsDomain == "" || d.ReportToken == "" {
		return ""
	}
	return d.ReportToken + "@" + reportsDomain
}

func (p Policy) record() dmarc.Record {
	r := dmarc.Record{Policy: p.P}
	if p.SP != nil {
		r.SubdomainPolicy = *p.SP
	}
	if p.NP != nil {
		r.NonExistentPolicy = *p.NP
	}
	if p.Percent != 100 {
		pct := p.Percent
		r.Percent = &pct
	}
	if p.ADKIM == dmarc.Strict {
		r.ADKIM = dmarc.Strict
	}
	if p.ASPF == dmarc.Strict {
		r.ASPF = dmarc.Strict
	}
	r.RUA, r.RUF = uris(p.RUA), uris(p.RUF)
	if p.FailureOptions != nil {
		r.FailureOptions = *p.FailureOptions
	}
	if p.Testing != nil {
		r.Testing = map[bool]string{true: "y", false: "n"}[*p.Testing]
	}
	return r
}

// uris parses stored report addresses; they were validated on the way in.
func uris(list []string) []dmarc.URI {
	var out []dmarc.URI
	for _, s := range list {
		if u, err := dmarc.ParseURI(s); err == nil {
			out = append(out, u)
		}
	}
	return out
}

func fromRow(r domaindb.Domain) Domain {
	d := Domain{
		ID: r.ID, AccountID: r.AccountID, Name: r.Name, Mode: Mode(r.Mode),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ReportToken: r.ReportToken,
		Stored: Policy{
			P: dmarc.Policy(r.DmarcP), Percent: int(r.DmarcPct),
			ADKIM: dmarc.Alignment(r.DmarcAdkim), ASPF: dmarc.Alignment(r.DmarcAspf),
			RUA: r.DmarcRua, RUF: r.DmarcRuf, FailureOptions: r.DmarcFo, Testing: r.DmarcT,
		},
		Ownership: Ownership{
			VerifiedAt: r.VerifiedAt, ExpiresAt: r.ClaimExpiresAt, DisplacedAt: r.DisplacedAt,
			CheckedAt: r.CheckedAt, CheckResult: r.CheckResult,
		},
		Observed:           observedFromRow(r),
		ReadinessThreshold: r.ReadinessThreshold,
		Labels:             r.Labels,
	}
	if r.VerifiedHow != nil {
		d.Ownership.Method = VerificationMethod(*r.VerifiedHow)
	}
	if r.BimiLogoUrl != nil {
		d.BIMI = &BIMI{LogoURL: *r.BimiLogoUrl}
		if r.BimiEvidenceUrl != nil {
			d.BIMI.EvidenceURL = *r.BimiEvidenceUrl
		}
	}
	if r.DmarcSp != nil {
		sp := dmarc.Policy(*r.DmarcSp)
		d.Stored.SP = &sp
	}
	if r.DmarcNp != nil {
		np := dmarc.Policy(*r.DmarcNp)
		d.Stored.NP = &np
	}
	return d
}

// Config is what the service needs to know about the edge.
type Config struct {
	// EdgeZone is the edge's own zone, e.g. edge.rampart.example.
	EdgeZone string
	// NameServers are the edge's name server host names.
	NameServers []string
	// ReportsDomain is the domain of Rampart's report addresses; each
	// domain's DMARC record names <token>@<ReportsDomain> first in rua.
	// Empty leaves only the owner's addresses.
	ReportsDomain string
	// Checker looks up ownership proofs and the records the customer
	// published through the configured resolver; nil when DNS checks are
	// off (only the operator can verify then).
	Checker *dnscheck.Checker
	// RemovalGrace is how long the edge keeps answering a removed domain's
	// SPF names with a record that authorizes nothing, so that a record the
	// customer left in place is no error (0: [DefaultRemovalGrace]).
	RemovalGrace time.Duration
	// Readiness are the rules deciding whether a policy may tighten (zero:
	// [readiness.Defaults]).
	Readiness readiness.Settings
}

// Service is the domain store. Its methods authorise the context's principal.
type Service struct {
	pool  *pgxpool.Pool
	authz *access.Authorizer
	cfg   Config
	log   *slog.Logger
}

// NewService returns a Service.
func NewService(pool *pgxpool.Pool, cfg Config, log *slog.Logger) *Service {
	return &Service{pool: pool, authz: access.New(pool), cfg: cfg, log: log}
}

// Config returns the edge configuration the service publishes against.
func (s *Service) Config() Config { return s.cfg }

func notFound(name string) error { return apperr.NotFoundf("domain %q not found", name) }

// Get returns a domain the principal may view: the principal's claim on
// the name (see [Service.claim]).
func (s *Service) Get(ctx context.Context, name string) (Domain, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Domain{}, notFound(name)
	}
	row, err := s.claim(ctx, domaindb.New(s.pool), n, access.ViewReports, name)
	if err != nil {
		return Domain{}, err
	}
	return fromRow(row), nil
}

// authorize decides perm on a domain the caller already holds (read by an
// earlier call), hiding one the principal may not see behind NOT_FOUND.
func (s *Service) authorize(ctx context.Context, d Domain, perm access.Permission) error {
	err := s.authz.Authorize(ctx, access.OnDomain(d.AccountID, d.ID), perm)
	if errors.Is(err, apperr.ErrNotFound) {
		return notFound(d.Name)
	}
	return err
}

// Add claims a domain for an account, with the default policy (p=none,
// subdomains inherit, pct 100, relaxed alignment). The claim is unverified
// unless the account's proof is already published (it is checked at once
// when DNS checks are on): the edge serves nothing for it until then.
// Another account's claim on the name does not stop it. Adding a name the
// account claims already returns that claim unchanged (automation re-runs
// its calls), not a CONFLICT.
func (s *Service) Add(ctx context.Context, accountID uuid.UUID, name string) (Domain, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageDomains); err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			return Domain{}, apperr.NotFoundf("account not found")
		}
		return Domain{}, err
	}
	n, err := NormalizeName(name)
	if err != nil {
		return Domain{}, err
	}
	if err := s.ownName(n); err != nil {
		return Domain{}, err
	}
	if err := fitsEdge(n, s.cfg.EdgeZone); err != nil {
		return Domain{}, err
	}
	token, err := s.proofToken(ctx, accountID)
	if err != nil {
		return Domain{}, err
	}
	check := s.checkProof(ctx, n, token)
	var d Domain
	existing := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := domaindb.New(tx)
		row, err := q.InsertDomain(ctx, domaindb.InsertDomainParams{AccountID: accountID, Name: n})
		if errors.Is(err, pgx.ErrNoRows) {
			// The account claims the name already: adding it again is
			// not an error (automation re-runs), it returns the claim.
			claims, err := q.ClaimsByName(ctx, n)
			if err != nil {
				return fmt.Errorf("load domain: %w", err)
			}
			for _, c := range claims {
				if c.AccountID == accountID {
					d = fromRow(c)
					existing = true
					return nil
				}
			}
			return apperr.Conflictf("domain %q is already in this account", n)
		}
		if err != nil {
			return fmt.Errorf("insert domain: %w", err)
		}
		row, err = s.settle(ctx, tx, row, check, true)
		d = fromRow(row)
		return err
	})
	if err != nil {
		return Domain{}, err
	}
	if existing {
		return d, nil
	}
	s.log.InfoContext(ctx, "domain added", "domain", d.Name, "account", accountID, "verified", d.Verified())
	return d, nil
}

// locked runs fn in one transaction on the principal's claim on the name,
// locked, after authorising perm; a domain the principal may not see is
// NOT_FOUND.
func (s *Service) locked(ctx context.Context, name string, perm access.Permission, fn func(tx pgx.Tx, q *domaindb.Queries, d Domain) error) error {
	n, err := NormalizeName(name)
	if err != nil {
		return notFound(name)
	}
	claim, err := s.claim(ctx, domaindb.New(s.pool), n, perm, name)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := domaindb.New(tx)
		row, err := q.DomainByIDForUpdate(ctx, claim.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(name)
		}
		if err != nil {
			return fmt.Errorf("lock domain: %w", err)
		}
		return fn(tx, q, fromRow(row))
	})
}

// change updates the locked domain row with fn and republishes the domain
// to the edge, in one transaction.
func (s *Service) change(ctx context.Context, name string, perm access.Permission, fn func(q *domaindb.Queries, d Domain) (domaindb.Domain, error)) (Domain, error) {
	var d Domain
	err := s.locked(ctx, name, perm, func(tx pgx.Tx, q *domaindb.Queries, old Domain) error {
		row, err := fn(q, old)
		if err != nil {
			return err
		}
		d = fromRow(row)
		return s.publish(ctx, tx, d)
	})
	return d, err
}

// MaxLabels bounds how many labels a domain carries.
const MaxLabels = 20

// SetLabels replaces a domain's labels (each as [access.NormalizeLabel]
// has it; duplicates dropped, sorted). Labels decide which teams and
// tokens reach the domain, so setting them needs [access.ManageUsers].
func (s *Service) SetLabels(ctx context.Context, name string, labels []string) (Domain, error) {
	if len(labels) > MaxLabels {
		return Domain{}, apperr.Invalid("labels", "a domain carries at most %d labels", MaxLabels)
	}
	clean := make([]string, 0, len(labels))
	for _, l := range labels {
		n, err := access.NormalizeLabel(l)
		if err != nil {
			return Domain{}, err
		}
		clean = append(clean, n)
	}
	slices.Sort(clean)
	clean = slices.Compact(clean)
	var d Domain
	err := s.locked(ctx, name, access.ManageUsers, func(_ pgx.Tx, q *domaindb.Queries, old Domain) error {
		row, err := q.SetDomainLabels(ctx, domaindb.SetDomainLabelsParams{ID: old.ID, Labels: clean})
		if err != nil {
			return fmt.Errorf("set labels: %w", err)
		}
		d = fromRow(row)
		return nil
	})
	return d, err
}

// Removal is what removing a domain did.
type Removal struct {
	Domain
	// Warnings say what of the customer's own DNS still points at the
	// edge, and what happens to it; empty when nothing does or the claim
	// was never served.
	Warnings []string
}

// Remove stops hosting a domain: it deletes the principal's claim. When
// the claim was verified, the edge keeps the name for the removal grace
// period (Config.RemovalGrace) with SPF answers that authorise nothing and
// are no error, so that a customer whose record still points at the edge
// gets neutral rather than a permerror, and then a tombstone (MaintainEdge);
// an unverified claim was never served, and removing it leaves the edge (and
// any other account's claim) alone. Before removing a verified claim it
// looks (within a few seconds, never failing the removal) at whether the
// customer's DNS still points at the edge, and warns.
func (s *Service) Remove(ctx context.Context, name string) (Removal, error) {
	var warnings []string
	if n, err := NormalizeName(name); err == nil {
		claim, err := s.claim(ctx, domaindb.New(s.pool), n, access.ManageDomains, name)
		if err != nil {
			return Removal{}, err
		}
		if claim.VerifiedAt != nil {
			warnings = s.removalWarnings(ctx, claim.Name)
		}
	}
	var d Domain
	err := s.locked(ctx, name, access.ManageDomains, func(_ pgx.Tx, q *domaindb.Queries, old Domain) error {
		d = old
		if err := q.DeleteDomain(ctx, d.ID); err != nil {
			return fmt.Errorf("delete domain: %w", err)
		}
		if !d.Verified() {
			return nil
		}
		serial, err := q.RemoveEdgeDomain(ctx, domaindb.RemoveEdgeDomainParams{Name: d.Name, Spf: RemovedSPF})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // never compiled
		}
		if err != nil {
			return fmt.Errorf("mark edge row removed: %w", err)
		}
		return q.NotifyEdge(ctx, strconv.FormatInt(serial, 10))
	})
	if err != nil {
		return Removal{}, err
	}
	if !d.Verified() {
		warnings = nil
	}
	s.log.InfoContext(ctx, "domain removed", "domain", d.Name, "account", d.AccountID, "verified", d.Verified(), "warnings", len(warnings))
	return Removal{Domain: d, Warnings: append([]string{}, warnings...)}, nil
}

// Change runs fn in one transaction on the locked domain row, after
// authorising perm, then recompiles the domain's edge row and notifies the
// edges. Packages that own a domain's other records (senders, DKIM keys)
// make their writes through it so that every change reaches DNS.
func (s *Service) Change(ctx context.Context, name string, perm access.Permission, fn func(tx pgx.Tx, d Domain) error) (Domain, error) {
	var d Domain
	err := s.locked(ctx, name, perm, func(tx pgx.Tx, q *domaindb.Queries, old Domain) error {
		if err := fn(tx, old); err != nil {
			return err
		}
		row, err := q.DomainByID(ctx, old.ID)
		if err != nil {
			return fmt.Errorf("reload domain: %w", err)
		}
		d = fromRow(row)
		return s.publish(ctx, tx, d)
	})
	return d, err
}

// SetMode switches a domain between sending and blocked.
func (s *Service) SetMode(ctx context.Context, name string, mode Mode) (Domain, error) {
	if mode != Sending && mode != Blocked {
		return Domain{}, apperr.Invalid("mode", "unknown mode %q", mode)
	}
	return s.change(ctx, name, access.ManageDomains, func(q *domaindb.Queries, d Domain) (domaindb.Domain, error) {
		return q.SetDomainMode(ctx, domaindb.SetDomainModeParams{ID: d.ID, Mode: string(mode)})
	})
}

// UpdatePolicy changes a domain's DMARC policy: edit receives the current
// stored policy and changes it in place; the result is validated as a whole.
// A blocked domain's policy is fixed; switch it to sending first.
//
// A change that tightens the policy (p, sp or np to a stricter disposition,
// or a larger pct) must be one the domain's readiness verdict allows
// (internal/readiness); otherwise it is refused with a READINESS error
// listing the reasons, unless force is true. Every tightening is recorded
// in policy_changes, a forced one as forced. Loosening is always allowed.
func (s *Service) UpdatePolicy(ctx context.Context, name string, edit func(*Policy), force bool) (Domain, error) {
	var d Domain
	err := s.locked(ctx, name, access.ManagePolicy, func(tx pgx.Tx, q *domaindb.Queries, old Domain) error {
		if old.Mode == Blocked {
			return apperr.Invalid("mode", "domain %q is blocked: its policy is fixed at p=reject with strict alignment; set its mode to SENDING before changing the policy", old.Name)
		}
		p := old.Stored
		p.RUA = append([]string(nil), p.RUA...)
		p.RUF = append([]string(nil), p.RUF...)
		edit(&p)
		if err := p.normalize(); err != nil {
			return err
		}
		row, err := s.writePolicy(ctx, tx, q, old, p, force)
		if err != nil {
			return err
		}
		d = fromRow(row)
		return s.publish(ctx, tx, d)
	})
	return d, err
}

// writePolicy stores the normalised policy p on the locked domain d, after
// the readiness gate.
func (s *Service) writePolicy(ctx context.Context, tx pgx.Tx, q *domaindb.Queries, d Domain, p Policy, force bool) (domaindb.Domain, error) {
	if err := s.gate(ctx, tx, q, d, p, force); err != nil {
		return domaindb.Domain{}, err
	}
	return q.UpdateDmarcPolicy(ctx, domaindb.UpdateDmarcPolicyParams{
		ID: d.ID, P: string(p.P), Sp: (*string)(p.SP), Np: (*string)(p.NP), Pct: int32(p.Percent), //nolint:gosec // G115: normalize checked 0 <= Percent <= 100
		Adkim: string(p.ADKIM), Aspf: string(p.ASPF), Rua: p.RUA, Ruf: p.RUF,
		Fo: p.FailureOptions, T: p.Testing,
	})
}

// NormalizePolicy canonicalises and validates a policy as [Service.UpdatePolicy]
// does, so that a declared policy compares equal to the stored one it means.
func NormalizePolicy(p *Policy) error { return p.normalize() }

// SetPolicyIn stores the policy p (normalised by [NormalizePolicy]) on the
// domain d, locked in tx by [Service.Configure], behind the same readiness
// gate as [Service.UpdatePolicy] (a READINESS error unless force). A
// blocked domain's policy is fixed.
func (s *Service) SetPolicyIn(ctx context.Context, tx pgx.Tx, d Domain, p Policy, force bool) error {
	if d.Mode == Blocked {
		return apperr.Invalid("policy", "domain %q is blocked: its policy is fixed at p=reject with strict alignment; declare mode SENDING to change the policy", d.Name)
	}
	_, err := s.writePolicy(ctx, tx, domaindb.New(tx), d, p, force)
	return err
}

// SetModeIn sets the mode of the domain d, locked in tx by [Service.Configure].
func (s *Service) SetModeIn(ctx context.Context, tx pgx.Tx, d Domain, mode Mode) error {
	if mode != Sending && mode != Blocked {
		return apperr.Invalid("mode", "unknown mode %q", mode)
	}
	_, err := domaindb.New(tx).SetDomainMode(ctx, domaindb.SetDomainModeParams{ID: d.ID, Mode: string(mode)})
	return err
}

// Reload reads the domain d again inside tx, after changes made there.
func (s *Service) Reload(ctx context.Context, tx pgx.Tx, d Domain) (Domain, error) {
	row, err := domaindb.New(tx).DomainByID(ctx, d.ID)
	if err != nil {
		return Domain{}, fmt.Errorf("reload domain: %w", err)
	}
	return fromRow(row), nil
}

// maxReportAddresses bounds rua and ruf so the record stays a sane size.
const maxReportAddresses = 5

// normalize canonicalises owner input and validates the policy as a record.
func (p *Policy) normalize() error {
	var err error
	if p.P, err = dmarc.ParsePolicy(string(p.P)); err != nil {
		return apperr.Invalid("p", "%v", err)
	}
	// Fields are checked in record order, so the first bad one is reported.
	for _, f := range []struct {
		name string
		v    **dmarc.Policy
	}{{"sp", &p.SP}, {"np", &p.NP}} {
		field, v := f.name, f.v
		if *v == nil {
			continue
		}
		pol, err := dmarc.ParsePolicy(string(**v))
		if err != nil {
			return apperr.Invalid(field, "%v", err)
		}
		*v = &pol
	}
	if p.Percent < 0 || p.Percent > 100 {
		return apperr.Invalid("pct", "pct must be between 0 and 100, not %d", p.Percent)
	}
	for _, f := range []struct {
		name string
		a    *dmarc.Alignment
	}{{"adkim", &p.ADKIM}, {"aspf", &p.ASPF}} {
		field, a := f.name, f.a
		switch strings.ToLower(string(*a)) {
		case "r", "relaxed":
			*a = dmarc.Relaxed
		case "s", "strict":
			*a = dmarc.Strict
		default:
			return apperr.Invalid(field, "%s must be r (relaxed) or s (strict), not %q", field, *a)
		}
	}
	for _, f := range []struct {
		name string
		list *[]string
	}{{"rua", &p.RUA}, {"ruf", &p.RUF}} {
		field, list := f.name, f.list
		if len(*list) > maxReportAddresses {
			return apperr.Invalid(field, "at most %d %s addresses", maxReportAddresses, field)
		}
		seen := map[string]bool{}
		out := make([]string, 0, len(*list))
		for _, a := range *list {
			a = strings.TrimSpace(a)
			if !strings.HasPrefix(strings.ToLower(a), "mailto:") {
				a = "mailto:" + a
			}
			a = asciiMailDomain(a)
			u, err := dmarc.ParseURI(a)
			if err != nil {
				return apperr.Invalid(field, "%v", err)
			}
			if s := u.String(); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
		*list = out
	}
	if p.FailureOptions != nil && *p.FailureOptions == "" {
		p.FailureOptions = nil
	}
	if err := p.record().Validate(); err != nil {
		var se *dmarc.SyntaxError
		if errors.As(err, &se) {
			return apperr.Invalid(se.Tag, "%v", err)
		}
		return apperr.Invalid("policy", "%v", err)
	}
	return nil
}

// asciiMailDomain converts the domain of a mailto: URI to its A-label form,
// so owners may type internationalised domains.
func asciiMailDomain(uri string) string {
	at := strings.LastIndexByte(uri, '@')
	if at < 0 {
		return uri
	}
	host, size, _ := strings.Cut(uri[at+1:], "!")
	ascii, err := idnaProfile.ToASCII(host)
	if err != nil {
		return uri
	}
	if size != "" {
		ascii += "!" + size
	}
	return uri[:at+1] + strings.ToLower(ascii)
}

// Filter narrows a domain listing.
type Filter struct {
	// AccountID limits the listing to one account; nil lists every account
	// in which the principal may view domains.
	AccountID *uuid.UUID
	// Prefix matches the start of the ASCII name.
	Prefix string
	// Mode, if set, keeps only domains in that mode.
	Mode Mode
}

// Page is one page of a domain listing.
type Page struct {
	Domains     []Domain
	HasNext     bool
	TotalCount  int
	StartCursor string
	EndCursor   string
}

// MaxPage is the largest page a caller may ask for.
const MaxPage = 100

// Cursor returns the opaque cursor of a domain in listings.
func Cursor(d Domain) string { return base64.RawURLEncoding.EncodeToString([]byte("d:" + d.Name)) }

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), "d:") {
		return "", apperr.Invalid("after", "invalid cursor")
	}
	return string(b[2:]), nil
}

// List returns one page of the principal's domains, ordered by name.
func (s *Service) List(ctx context.Context, f Filter, first int, after string) (Page, error) {
	if first < 0 || first > MaxPage {
		return Page{}, apperr.Invalid("first", "first must be between 0 and %d", MaxPage)
	}
	var reach access.Reach
	var err error
	if f.AccountID != nil {
		if reach, err = s.authz.ReachIn(ctx, *f.AccountID, access.ViewReports); err != nil {
			if errors.Is(err, apperr.ErrNotFound) {
				return Page{}, apperr.NotFoundf("account not found")
			}
			return Page{}, err
		}
	} else if reach, err = s.authz.Reach(ctx, access.ViewReports); err != nil {
		return Page{}, err
	}
	var cursor string
	if after != "" {
		if cursor, err = decodeCursor(after); err != nil {
			return Page{}, err
		}
	}
	var prefix, mode *string
	if f.Prefix != "" {
		p := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(f.Prefix), "."))
		if a, err := idnaProfile.ToASCII(p); err == nil {
			p = a
		}
		prefix = &p
	}
	if f.Mode != "" {
		m := string(f.Mode)
		mode = &m
	}
	// The page and the count read one snapshot, so that they agree.
	lim := int32(first + 1)
	var rows []domaindb.Domain
	var total int64
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := domaindb.New(tx)
		var err error
		if rows, err = q.ListDomains(ctx, domaindb.ListDomainsParams{ReachAccounts: reach.Accounts, ReachDomains: reach.Domains, After: cursor, Prefix: prefix, Mode: mode, Lim: lim}); err != nil {
			return fmt.Errorf("list domains: %w", err)
		}
		if total, err = q.CountDomains(ctx, domaindb.CountDomainsParams{ReachAccounts: reach.Accounts, ReachDomains: reach.Domains, Prefix: prefix, Mode: mode}); err != nil {
			return fmt.Errorf("count domains: %w", err)
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	p := Page{TotalCount: int(total), HasNext: len(rows) > first}
	if p.HasNext {
		rows = rows[:first]
	}
	for _, r := range rows {
		p.Domains = append(p.Domains, fromRow(r))
	}
	if len(p.Domains) > 0 {
		p.StartCursor, p.EndCursor = Cursor(p.Domains[0]), Cursor(p.Domains[len(p.Domains)-1])
	}
	return p, nil
}

// SetBIMI sets (or, with an empty logo URL, clears) a domain's BIMI
// assertion. Both locations must be HTTPS URLs (the BIMI specification
// allows no other scheme); the record is served only while the domain's
// DMARC policy is at enforcement.
func (s *Service) SetBIMI(ctx context.Context, name, logoURL, evidenceURL string) (Domain, error) {
	logo, err := bimiURL("logoUrl", logoURL, ".svg")
	if err != nil {
		return Domain{}, err
	}
	evidence, err := bimiURL("evidenceUrl", evidenceURL, ".pem")
	if err != nil {
		return Domain{}, err
	}
	if logo == nil && evidence != nil {
		return Domain{}, apperr.Invalid("logoUrl", "an evidence document needs a logo")
	}
	return s.change(ctx, name, access.ManagePolicy, func(q *domaindb.Queries, d Domain) (domaindb.Domain, error) {
		return q.SetBIMI(ctx, domaindb.SetBIMIParams{ID: d.ID, LogoUrl: logo, EvidenceUrl: evidence})
	})
}

// bimiURL validates one BIMI location; "" means none.
func bimiURL(field, raw, ext string) (*string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, apperr.Invalid(field, "%q must be an https:// URL", raw)
	}
	if !strings.HasSuffix(strings.ToLower(u.Path), ext) {
		return nil, apperr.Invalid(field, "%q should end in %s", raw, ext)
	}
	if len(raw) > 1024 || strings.ContainsAny(raw, ";, \t\"") {
		return nil, apperr.Invalid(field, "%q cannot be published in a BIMI record (too long, or contains ';', ',' or spaces)", raw)
	}
	s := u.String()
	return &s, nil
}

// Republish recompiles a domain's edge row without a principal, for
// system work (jobs) after it changed the domain's rows in tx.
func (s *Service) Republish(ctx context.Context, tx pgx.Tx, domainID uuid.UUID) error {
	row, err := domaindb.New(tx).DomainByID(ctx, domainID)
	if err != nil {
		return fmt.Errorf("load domain: %w", err)
	}
	return s.publish(ctx, tx, fromRow(row))
}
