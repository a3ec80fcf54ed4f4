package sender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/sender/senderdb"
	"github.com/rampartmail/rampart/internal/spf"
)

// Which services are resolved: every service with SPF includes, enabled
// or not, by the job (at start and hourly). That is every enabled service
// and more: classifying report sources needs the ranges of services a
// domain has not enabled yet, and a service resolved before it is enabled
// has a known cost when it is. On demand (refreshSenderRanges, `rampart
// senders refresh`) the services enabled by at least one domain are
// resolved, or one named service.

// RefreshEvery is how often one service's include may be looked up on
// demand (a request, or the synchronous look-up when a domain enables a
// service whose cost is not known): whoever asks, vendors' DNS sees at
// most one on-demand look-up of an include a minute.
const RefreshEvery = time.Minute

// syncTimeout bounds the look-up a request waits for.
const syncTimeout = 10 * time.Second

// refreshConcurrency is how many includes one refresh looks up at once.
const refreshConcurrency = 4

// SetResolver sets the DNS resolver requests resolve senders' includes
// through (refreshSenderRanges, enabling a sender whose cost is not
// known); nil, the default, turns that off.
func (m *Manager) SetResolver(r spf.Resolver) { m.resolver = r }

// ResolveRanges resolves every service's SPF includes into its current
// ranges (RFC 7208 flattening, the union of its includes') and publishes
// the services whose ranges changed to the edge. A service one of whose
// includes cannot be resolved keeps its last ranges and cost and records
// which include failed, why and when; the edge then still answers its HELO
// names with the includes themselves. It returns how many services failed.
func (m *Manager) ResolveRanges(ctx context.Context, resolver spf.Resolver) (failed int, err error) {
	failed, _, err = m.ResolveRangesFrom(ctx, resolver, "", time.Time{})
	return failed, err
}

// ResolveRangesFrom is [Manager.ResolveRanges] in bounded steps: it resolves
// the services whose slug sorts after after, one at a time (each within
// spf.DefaultTimeout, each stored in its own transaction), and starts none
// but the first once stop has passed (zero: never). It returns the last slug it did when it
// stopped early, to be passed as after in the next run, or "" when every
// service was done.
func (m *Manager) ResolveRangesFrom(ctx context.Context, resolver spf.Resolver, after string, stop time.Time) (failed int, next string, err error) {
	services, err := senderdb.New(m.pool).Services(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("list services: %w", err)
	}
	slices.SortFunc(services, func(a, b senderdb.SenderService) int { return strings.Compare(a.Slug, b.Slug) })
	last := after
	for _, s := range services {
		if len(s.SpfIncludes) == 0 || s.Slug <= after {
			continue
		}
		if last != after && !stop.IsZero() && !time.Now().Before(stop) {
			return failed, last, nil
		}
		last = s.Slug
		ferr, err := m.resolveService(ctx, resolver, s, spf.DefaultTimeout)
		if err != nil {
			return failed, "", err
		}
		if ferr != nil {
			failed++
		}
	}
	return failed, "", nil
}

// resolveService looks s's includes up within timeout and stores the
// outcome in its own transaction: on success the ranges and cost, published
// to the edge; on failure the error and its time, the last good ranges and
// cost kept. ferr is the look-up's error, err the storing's.
func (m *Manager) resolveService(ctx context.Context, resolver spf.Resolver, s Service, timeout time.Duration) (ferr, err error) {
	r := lookUpIncludes(ctx, resolver, s.SpfIncludes, timeout)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		q := senderdb.New(tx)
		if err := storeResolution(ctx, q, s.Slug, &r); err != nil {
			return err
		}
		return publishService(ctx, q, s.Slug)
	})
	if err != nil {
		return r.err, fmt.Errorf("store ranges of %s: %w", s.Slug, err)
	}
	m.logResolution(ctx, s.Slug, &r)
	return r.err, nil
}

// resolution is what looking a service's includes up found.
type resolution struct {
	// prefixes are the union of the includes' ranges, cost the terms they
	// cost together: each include is one term, and Flatten counts the
	// rest of its chain.
	prefixes []netip.Prefix
	cost     int
	// usable says prefixes and cost may be stored: every include resolved,
	// if only in part (a chain Flatten could not follow to its end but
	// whose cost it measured, spf.ErrNotFlattenable).
	usable bool
	// err says which includes failed and why; nil when none did.
	err error
}

// includeError is a failure to resolve one of a service's includes.
type includeError struct {
	include string
	err     error
}

func (e *includeError) Error() string { return "include " + e.include + ": " + e.err.Error() }
func (e *includeError) Unwrap() error { return e.err }

// lookUpIncludes resolves every include through resolver, at once, each
// within timeout.
func lookUpIncludes(ctx context.Context, resolver spf.Resolver, includes []string, timeout time.Duration) resolution {
	type one struct {
		prefixes []netip.Prefix
		lookups  int
		err      error
	}
	found := make([]one, len(includes))
	var wg sync.WaitGroup
	for i, inc := range includes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			found[i].prefixes, found[i].lookups, found[i].err = spf.Flatten(fctx, resolver, inc)
		}()
	}
	wg.Wait()
	r := resolution{usable: true}
	var errs []error
	for i, f := range found {
		if f.err != nil {
			errs = append(errs, &includeError{include: includes[i], err: f.err})
			if !errors.Is(f.err, spf.ErrNotFlattenable) || f.lookups == 0 {
				r.usable = false
			}
		}
		r.prefixes = append(r.prefixes, f.prefixes...)
		r.cost += 1 + f.lookups
	}
	slices.SortFunc(r.prefixes, comparePrefixes)
	r.prefixes = slices.Compact(r.prefixes)
	r.err = errors.Join(errs...)
	return r
}

// storeResolution stores r (nil: nothing) on the service slug: when every
// include resolved, the union of their ranges and their summed cost; when
// any failed, the error naming it and its time, the last good ranges and
// cost kept (a service is never half-resolved: its ranges and cost are
// always those of all its includes at one time). The caller publishes the
// service.
func storeResolution(ctx context.Context, q *senderdb.Queries, slug string, r *resolution) error {
	if r == nil {
		return nil
	}
	if !r.usable {
		return q.SetResolveError(ctx, senderdb.SetResolveErrorParams{Slug: slug, Error: r.err.Error()})
	}
	prefixes := r.prefixes
	if prefixes == nil {
		prefixes = []netip.Prefix{}
	}
	cost := int32(r.cost) //nolint:gosec // G115: at most 10 includes, each stopped by Flatten long before 2^31
	if err := q.SetResolved(ctx, senderdb.SetResolvedParams{Slug: slug, Ranges: prefixes, Lookups: &cost}); err != nil {
		return err
	}
	if r.err != nil {
		return q.SetResolveError(ctx, senderdb.SetResolveErrorParams{Slug: slug, Error: r.err.Error()})
	}
	return nil
}

// logResolution logs a failed look-up; the error names the includes that
// failed.
func (m *Manager) logResolution(ctx context.Context, slug string, r *resolution) {
	if r != nil && r.err != nil {
		m.log.WarnContext(ctx, "could not resolve a sender's SPF includes", "service", slug, "err", r.err)
	}
}

// claim takes the right to look slug's includes up now ([RefreshEvery]);
// ok is false when they were looked up more recently (or it has none).
func (m *Manager) claim(ctx context.Context, slug string) (s Service, ok bool, err error) {
	s, err = senderdb.New(m.pool).ClaimResolveAttempt(ctx, senderdb.ClaimResolveAttemptParams{Slug: slug, EverySeconds: RefreshEvery.Seconds()})
	if errors.Is(err, pgx.ErrNoRows) {
		return Service{}, false, nil
	}
	if err != nil {
		return Service{}, false, fmt.Errorf("claim a look-up of %s: %w", slug, err)
	}
	return s, true, nil
}

// RefreshRanges resolves now the includes of the services enabled on the
// domains the caller may manage the senders of (an operator: on any
// domain), or of the one service named, and returns them in their new
// state. Each include is looked up at most once per [RefreshEvery],
// whoever asks: a service looked up more recently is returned as it is,
// and naming one is refused with RATE_LIMITED. A service the caller may
// not refresh is NOT_FOUND.
func (m *Manager) RefreshRanges(ctx context.Context, slug string) ([]Service, error) {
	if _, err := access.Require(ctx); err != nil {
		return nil, err
	}
	op, err := m.authz.Operator(ctx)
	if err != nil {
		return nil, err
	}
	var reach access.Reach
	if !op {
		if reach, err = m.authz.Reach(ctx, access.ManageSenders); err != nil {
			return nil, err
		}
	}
	q := senderdb.New(m.pool)
	slugs, err := q.EnabledServiceSlugs(ctx, senderdb.EnabledServiceSlugsParams{
		AllAccounts: op, Accounts: nonNilIDs(reach.Accounts), ReachDomains: nonNilIDs(reach.Domains),
	})
	if err != nil {
		return nil, fmt.Errorf("list enabled services: %w", err)
	}
	if slug != "" {
		slug = strings.ToLower(strings.TrimSpace(slug))
		s, err := q.ServiceBySlug(ctx, slug)
		switch {
		case errors.Is(err, pgx.ErrNoRows) || err == nil && !op && !slices.Contains(slugs, slug) && !ownedBy(s, reach.Accounts):
			return nil, apperr.NotFoundf("not found") // as for any object of another account
		case err != nil:
			return nil, fmt.Errorf("load service: %w", err)
		case len(s.SpfIncludes) == 0:
			return nil, apperr.Invalid("service", "%s has no SPF include to resolve", s.Name)
		}
		slugs = []string{slug}
	}
	if m.resolver == nil {
		return nil, apperr.Conflictf("this server resolves no SPF includes (its DNS resolver is off)")
	}
	limited, err := m.refresh(ctx, m.resolver, slugs, true)
	if err != nil {
		return nil, err
	}
	if slug != "" && limited > 0 {
		return nil, &apperr.Error{Code: apperr.RateLimited, Message: fmt.Sprintf("%s's include was looked up less than %s ago; try again later", slug, RefreshEvery)}
	}
	return m.servicesBySlug(ctx, slugs)
}

// RefreshAsOperator is `rampart senders refresh`: it resolves now, through
// resolver, the includes of every service enabled on any domain, or of the
// one service named, whenever they were last looked up, and returns them
// in their new state.
func (m *Manager) RefreshAsOperator(ctx context.Context, resolver spf.Resolver, slug string) ([]Service, error) {
	q := senderdb.New(m.pool)
	var slugs []string
	if slug != "" {
		s, err := q.ServiceBySlug(ctx, strings.ToLower(strings.TrimSpace(slug)))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, apperr.NotFoundf("service %q not found", slug)
		}
		if err != nil {
			return nil, fmt.Errorf("load service: %w", err)
		}
		if len(s.SpfIncludes) == 0 {
			return nil, apperr.Invalid("service", "%s has no SPF include to resolve", s.Name)
		}
		slugs = []string{s.Slug}
	} else {
		var err error
		if slugs, err = q.EnabledServiceSlugs(ctx, senderdb.EnabledServiceSlugsParams{AllAccounts: true, Accounts: []uuid.UUID{}, ReachDomains: []uuid.UUID{}}); err != nil {
			return nil, fmt.Errorf("list enabled services: %w", err)
		}
	}
	if _, err := m.refresh(ctx, resolver, slugs, false); err != nil {
		return nil, err
	}
	return m.servicesBySlug(ctx, slugs)
}

// refresh resolves slugs' includes, a few at a time; limit keeps each to
// one on-demand look-up per [RefreshEvery], and limited counts those it
// left alone for it.
func (m *Manager) refresh(ctx context.Context, resolver spf.Resolver, slugs []string, limit bool) (limited int, err error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		sem  = make(chan struct{}, refreshConcurrency)
	)
	for _, slug := range slugs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var s Service
			var err error
			if limit {
				var ok bool
				if s, ok, err = m.claim(ctx, slug); err == nil && !ok {
					mu.Lock()
					limited++
					mu.Unlock()
					return
				}
			} else {
				s, err = senderdb.New(m.pool).ServiceBySlug(ctx, slug)
			}
			if err == nil {
				_, err = m.resolveService(ctx, resolver, s, syncTimeout)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return limited, errors.Join(errs...)
}

// servicesBySlug loads services in the order of slugs.
func (m *Manager) servicesBySlug(ctx context.Context, slugs []string) ([]Service, error) {
	all, err := senderdb.New(m.pool).Services(ctx)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]Service, 0, len(slugs))
	for _, slug := range slugs {
		if i := slices.IndexFunc(all, func(s Service) bool { return s.Slug == slug }); i >= 0 {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// knowCostFor resolves slug's include now when its cost is not known yet
// (never resolved), so that a domain enabling it is judged by what it
// costs; within [RefreshEvery] of the last look-up it does not look again
// and the change is judged (refused) by what is known. It is called
// before the change's transaction: DNS is not waited for holding the
// domain's lock.
// It looks nothing up for a caller who may not manage the senders of the
// domain name.
func (m *Manager) knowCostFor(ctx context.Context, name, slug string) error {
	d, err := m.domains.Get(ctx, name)
	if err != nil {
		return err
	}
	if err := m.authz.Authorize(ctx, access.OnDomain(d.AccountID, d.ID), access.ManageSenders); err != nil {
		return err
	}
	return m.KnowCost(ctx, d.AccountID, slug)
}

// KnowCost looks up, within a bounded time, the include of the service
// slug when its cost was never measured, so that enabling it for a domain
// of the account can be judged. The caller authorised managing senders.
func (m *Manager) KnowCost(ctx context.Context, accountID uuid.UUID, slug string) error {
	if m.resolver == nil {
		return nil
	}
	s, err := senderdb.New(m.pool).ServiceBySlug(ctx, slug)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the change says so
	}
	if err != nil {
		return fmt.Errorf("load service: %w", err)
	}
	if s.SpfLookups != nil || len(s.SpfIncludes) == 0 || !usable(s, accountID) {
		return nil
	}
	s, ok, err := m.claim(ctx, slug)
	if err != nil || !ok {
		return err
	}
	_, err = m.resolveService(ctx, m.resolver, s, syncTimeout)
	return err
}

// ownedBy reports whether s is the own service of one of accounts.
func ownedBy(s Service, accounts []uuid.UUID) bool {
	return s.AccountID != nil && slices.Contains(accounts, *s.AccountID)
}

func nonNilIDs(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
}
