package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/domain/domaindb"
)

// The ownership proof: a TXT record at ProofName(domain) whose text is
// ProofValue(the account's token).
//
// The proof sits at _rampart.<domain>, not at the apex: the apex TXT set is
// crowded (SPF, other vendors' proofs) and, for a subdomain that is a CNAME
// to a third party (shop.example.com -> a web host), a TXT lookup at the
// name itself would follow the CNAME into the third party's zone, whose
// owner could then prove "ownership" of shop.example.com. Nobody CNAMEs an
// underscore name by accident. The name is outside everything the edge is
// delegated (_dmarc, _domainkey, _bimi), so nothing the edge serves can
// prove a claim either. The token is per account: one record proves every
// claim the account makes on the name, and moving a domain to another
// account needs that account's token.
const (
	proofLabel  = "_rampart"
	proofPrefix = "rampart-verify="
)

// ProofName is where the ownership proof of a domain is published.
func ProofName(domain string) string { return proofLabel + "." + domain }

// ProofValue is the text of the ownership proof of the account with token.
func ProofValue(token string) string { return proofPrefix + token }

// ClaimTTL is how long an unverified claim lasts (from when it was made, or
// from when another account's verification displaced it).
const ClaimTTL = 7 * 24 * time.Hour

// checkTimeout bounds one proof lookup, so that a mutation or a job run is
// never held by a slow resolver.
const checkTimeout = 5 * time.Second

// VerificationMethod says how a claim was verified.
type VerificationMethod string

// The methods.
const (
	// ByDNS: the proof record was found through the resolver.
	ByDNS VerificationMethod = "dns"
	// ByOperator: `rampart admin verify-domain`.
	ByOperator VerificationMethod = "operator"
	// ByMigration: the domain was hosted before ownership proofs existed.
	ByMigration VerificationMethod = "migration"
)

// Ownership is where an account's claim on a name stands.
type Ownership struct {
	// VerifiedAt is set once the claim is verified; nil for an unverified
	// claim, which the edge does not serve.
	VerifiedAt *time.Time
	Method     VerificationMethod
	// ExpiresAt is when an unverified claim is deleted.
	ExpiresAt *time.Time
	// DisplacedAt is when another account's verification took the name.
	DisplacedAt *time.Time
	// CheckedAt and CheckResult are the last proof check's time and
	// finding, in a sentence for the owner.
	CheckedAt   *time.Time
	CheckResult string
}

// Proof returns the record that proves the account controls the domain.
// The principal must hold [access.ViewReports] on it.
func (s *Service) Proof(ctx context.Context, d Domain) (DNSRecord, error) {
	if err := s.authorize(ctx, d, access.ViewReports); err != nil {
		return DNSRecord{}, err
	}
	return s.ProofFor(ctx, d.AccountID, d.Name)
}

// ProofFor returns the record that would prove the account controls a name,
// for publishing before the name is added (the claim is then verified at
// once). The principal must be able to see the account.
func (s *Service) ProofFor(ctx context.Context, accountID uuid.UUID, name string) (DNSRecord, error) {
	if err := s.authz.See(ctx, accountID); err != nil {
		return DNSRecord{}, err
	}
	n, err := NormalizeName(name)
	if err != nil {
		return DNSRecord{}, err
	}
	token, err := s.proofToken(ctx, accountID)
	if err != nil {
		return DNSRecord{}, err
	}
	return DNSRecord{Name: ProofName(n) + ".", Type: "TXT", Value: ProofValue(token), TTL: setupTTL}, nil
}

// proofToken returns the account's proof token, making it on first use.
func (s *Service) proofToken(ctx context.Context, accountID uuid.UUID) (string, error) {
	q := domaindb.New(s.pool)
	token, err := q.ProofToken(ctx, accountID)
	if errors.Is(err, pgx.ErrNoRows) { // made concurrently: it exists now
		token, err = q.ProofToken(ctx, accountID)
	}
	if err != nil {
		return "", fmt.Errorf("proof token: %w", err)
	}
	return token, nil
}

// claim picks the principal's claim on a name (stored form) and authorises
// perm on it: the verified claim if the principal may act on it, else the
// oldest claim it may act on. With no such claim the answer is FORBIDDEN
// where the principal has standing in a claiming account (a member without
// the permission) and NOT_FOUND otherwise, as for a name nobody claims.
// Each claim is asked about as the domain it is, so that per-domain grants
// decide here without a change.
func (s *Service) claim(ctx context.Context, q *domaindb.Queries, n string, perm access.Permission, input string) (domaindb.Domain, error) {
	rows, err := q.ClaimsByName(ctx, n)
	if err != nil {
		return domaindb.Domain{}, fmt.Errorf("load domain: %w", err)
	}
	var refused error
	for _, r := range rows { // the verified claim first, then the oldest
		err := s.authz.Authorize(ctx, access.OnDomain(r.AccountID, r.ID), perm)
		switch {
		case err == nil:
			return r, nil
		case errors.Is(err, apperr.ErrNotFound):
		case errors.Is(err, apperr.ErrForbidden):
			if refused == nil {
				refused = err
			}
		default:
			return domaindb.Domain{}, err
		}
	}
	if refused != nil {
		return domaindb.Domain{}, refused
	}
	return domaindb.Domain{}, notFound(input)
}

// ownName refuses names in Rampart's own zones: the edge answers there, so
// they are not the customer's to claim.
func (s *Service) ownName(n string) error {
	for _, z := range []string{s.cfg.EdgeZone, s.cfg.ReportsDomain} {
		z = strings.ToLower(strings.TrimSuffix(z, "."))
		if z != "" && (n == z || strings.HasSuffix(n, "."+z)) {
			return apperr.Invalid("name", "%q is in Rampart's own zone %s", n, z)
		}
	}
	return nil
}

// proofCheck is what one look for the proof found.
type proofCheck struct {
	// ran is false when DNS checks are off.
	ran bool
	// found: the proof is published.
	found bool
	// definitive: the lookup got an answer (found or not).
	definitive bool
	// result says what was found, for the owner.
	result string
	at     time.Time
}

// checkProof looks for the proof of the account with token at the name,
// through the configured resolver. No database transaction is held.
func (s *Service) checkProof(ctx context.Context, name, token string) proofCheck {
	if s.cfg.Checker == nil {
		return proofCheck{}
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	r := s.cfg.Checker.TXT(ctx, ProofName(name))
	c := proofCheck{ran: true, definitive: r.Status.Definitive(), at: time.Now()}
	want := ProofValue(token)
	for _, txt := range r.TXT() {
		if strings.TrimSpace(txt) == want {
			c.found = true
			c.result = "found " + want + " at " + ProofName(name)
			return c
		}
	}
	c.result = r.Describe()
	if r.Status == dnscheck.Found {
		c.result = fmt.Sprintf("no TXT record %q at %s (%d other TXT record(s) there)", want, ProofName(name), len(r.Records))
	}
	return c
}

// settle applies a proof check to a claim locked in tx: verified when the
// proof was found, else the failure is recorded and the next check
// scheduled. displace says whether verifying may take the name from
// another account's verified claim (an owner's explicit request may; the
// periodic job may not, so that a stale proof cannot take a name back).
func (s *Service) settle(ctx context.Context, tx pgx.Tx, row domaindb.Domain, c proofCheck, displace bool) (domaindb.Domain, error) {
	if row.VerifiedAt != nil || !c.ran {
		return row, nil
	}
	if c.found {
		return s.verify(ctx, tx, row, ByDNS, c, displace)
	}
	next := c.at.Add(backoff(row.CheckAttempts))
	row, err := domaindb.New(tx).RecordCheck(ctx, domaindb.RecordCheckParams{ID: row.ID, CheckResult: c.result, NextAt: &next})
	if err != nil {
		return row, fmt.Errorf("record proof check: %w", err)
	}
	return row, nil
}

// backoff is the wait before the next proof check after attempts failed
// ones: a minute, doubling up to six hours (about 40 checks in a week).
func backoff(attempts int32) time.Duration {
	if attempts > 9 {
		return 6 * time.Hour
	}
	return min(time.Minute<<attempts, 6*time.Hour)
}

// verify makes the claim in row (locked in tx) the verified claim on its
// name: other accounts' unverified claims on the name are deleted, another
// verified claim becomes unverified (displaced; it expires after ClaimTTL),
// and the edge row is compiled from this claim.
func (s *Service) verify(ctx context.Context, tx pgx.Tx, row domaindb.Domain, how VerificationMethod, c proofCheck, displace bool) (domaindb.Domain, error) {
	if row.VerifiedAt != nil {
		return row, nil
	}
	q := domaindb.New(tx)
	if err := q.LockName(ctx, row.Name); err != nil {
		return row, fmt.Errorf("lock name: %w", err)
	}
	if !displace {
		v, err := q.VerifiedClaim(ctx, row.Name)
		switch {
		case err == nil && v.ID != row.ID:
			next := c.at.Add(backoff(row.CheckAttempts))
			row, err = q.RecordCheck(ctx, domaindb.RecordCheckParams{ID: row.ID, NextAt: &next,
				CheckResult: c.result + "; another account holds the verified claim on the domain: verify on request to take it over"})
			return row, err
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return row, fmt.Errorf("load verified claim: %w", err)
		}
	}
	// Unverified claims go first, so that the claim demoted next (which
	// keeps its history until it expires) is not among them.
	deleted, err := q.DeleteOtherUnverified(ctx, domaindb.DeleteOtherUnverifiedParams{Name: row.Name, Keep: row.ID})
	if err != nil {
		return row, fmt.Errorf("delete other claims: %w", err)
	}
	demoted, err := q.DemoteVerified(ctx, domaindb.DemoteVerifiedParams{Name: row.Name, Keep: row.ID, ClaimTtlSeconds: int64(ClaimTTL / time.Second)})
	if err != nil {
		return row, fmt.Errorf("displace verified claim: %w", err)
	}
	params := domaindb.MarkVerifiedParams{ID: row.ID, How: (*string)(&how), CheckResult: c.result}
	if c.ran {
		params.CheckedAt = &c.at
	}
	if row, err = q.MarkVerified(ctx, params); err != nil {
		return row, fmt.Errorf("mark verified: %w", err)
	}
	if err := s.publish(ctx, tx, fromRow(row)); err != nil {
		return row, err
	}
	for _, d := range demoted {
		s.log.WarnContext(ctx, "verified claim displaced by another account's proof", "domain", row.Name, "account", d.AccountID, "by", row.AccountID)
	}
	for _, d := range deleted {
		s.log.InfoContext(ctx, "unverified claim displaced", "domain", row.Name, "account", d.AccountID, "by", row.AccountID)
	}
	s.log.InfoContext(ctx, "domain verified", "domain", row.Name, "account", row.AccountID, "how", how)
	return row, nil
}

// Verify checks the proof of the principal's claim on a name now, through
// the configured resolver, and verifies the claim when the proof is
// published, displacing any other account's claim (a domain changing
// account). Otherwise the claim stays unverified and its Ownership says
// what the check found. CONFLICT when this server does not check DNS.
func (s *Service) Verify(ctx context.Context, name string) (Domain, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Domain{}, notFound(name)
	}
	row, err := s.claim(ctx, domaindb.New(s.pool), n, access.ManageDomains, name)
	if err != nil {
		return Domain{}, err
	}
	if row.VerifiedAt != nil {
		return fromRow(row), nil
	}
	if s.cfg.Checker == nil {
		return Domain{}, apperr.Conflictf("this server does not check DNS (RAMPART_DNS_RESOLVER is off): its operator can verify %q with `rampart admin verify-domain`", n)
	}
	token, err := s.proofToken(ctx, row.AccountID)
	if err != nil {
		return Domain{}, err
	}
	c := s.checkProof(ctx, n, token)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		locked, err := domaindb.New(tx).DomainByIDForUpdate(ctx, row.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(name)
		}
		if err != nil {
			return fmt.Errorf("lock domain: %w", err)
		}
		row, err = s.settle(ctx, tx, locked, c, true)
		return err
	})
	if err != nil {
		return Domain{}, err
	}
	return fromRow(row), nil
}

// VerifyAsOperator is `rampart admin verify-domain`: the operator's
// override, for a server without DNS checks or a customer who cannot
// publish the proof. It verifies an account's claim on a name (accountID
// may be nil when only one account claims it) without looking at DNS,
// displacing other claims as a proof would. The caller is the operator
// (the command line), not an API principal.
func (s *Service) VerifyAsOperator(ctx context.Context, name string, accountID *uuid.UUID) (Domain, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Domain{}, err
	}
	rows, err := domaindb.New(s.pool).ClaimsByName(ctx, n)
	if err != nil {
		return Domain{}, fmt.Errorf("load claims: %w", err)
	}
	var pick *domaindb.Domain
	for i := range rows {
		if accountID == nil && len(rows) == 1 || accountID != nil && rows[i].AccountID == *accountID {
			pick = &rows[i]
		}
	}
	if pick == nil {
		if accountID == nil && len(rows) > 1 {
			var ids []string
			for _, r := range rows {
				ids = append(ids, r.AccountID.String())
			}
			return Domain{}, apperr.Invalid("account", "%d accounts claim %s (%s): name the one to verify", len(rows), n, strings.Join(ids, ", "))
		}
		return Domain{}, apperr.NotFoundf("no claim on %s%s", n, map[bool]string{true: " by that account"}[accountID != nil])
	}
	var row domaindb.Domain
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		locked, err := domaindb.New(tx).DomainByIDForUpdate(ctx, pick.ID)
		if err != nil {
			return fmt.Errorf("lock domain: %w", err)
		}
		row, err = s.verify(ctx, tx, locked, ByOperator, proofCheck{result: "verified by the operator"}, true)
		return err
	})
	if err != nil {
		return Domain{}, err
	}
	return fromRow(row), nil
}

// ClaimsRun is what one run of [Service.CheckClaims] did.
type ClaimsRun struct {
	Checked, Verified, Expired int
}

// claimsPerRun bounds the proof lookups of one job run, and
// claimsConcurrency how many run at once: with the lookup timeout, a run
// ends within a minute even when every lookup times out.
const (
	claimsPerRun      = 40
	claimsConcurrency = 8
)

// CheckClaims is the periodic job's work, without a principal: it deletes
// expired unverified claims, and checks the proof of the claims whose next
// check is due (when DNS checks are on), verifying those whose proof is
// published. It never takes a name from a verified claim.
func (s *Service) CheckClaims(ctx context.Context) (ClaimsRun, error) {
	var run ClaimsRun
	q := domaindb.New(s.pool)
	expired, err := q.DeleteExpiredClaims(ctx)
	if err != nil {
		return run, fmt.Errorf("delete expired claims: %w", err)
	}
	for _, e := range expired {
		s.log.InfoContext(ctx, "unverified claim expired", "domain", e.Name, "account", e.AccountID)
	}
	run.Expired = len(expired)
	if s.cfg.Checker == nil {
		return run, nil
	}
	due, err := q.DueClaims(ctx, claimsPerRun)
	if err != nil {
		return run, fmt.Errorf("load due claims: %w", err)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, claimsConcurrency)
	)
	for _, claim := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			verified, err := s.checkClaim(ctx, claim)
			mu.Lock()
			defer mu.Unlock()
			run.Checked++
			if verified {
				run.Verified++
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return run, errors.Join(errs...)
}

func (s *Service) checkClaim(ctx context.Context, claim domaindb.Domain) (bool, error) {
	token, err := s.proofToken(ctx, claim.AccountID)
	if err != nil {
		return false, err
	}
	c := s.checkProof(ctx, claim.Name, token)
	var row domaindb.Domain
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		locked, err := domaindb.New(tx).DomainByIDForUpdate(ctx, claim.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("lock domain: %w", err)
		}
		row, err = s.settle(ctx, tx, locked, c, false)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("check claim on %s: %w", claim.Name, err)
	}
	return row.VerifiedAt != nil && row.ID == claim.ID, nil
}
