package sender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/sender/senderdb"
	"github.com/rampartmail/rampart/internal/spf"
)

// ResolveRanges resolves every catalog service's SPF include into its
// current ranges (RFC 7208 flattening) and publishes the services whose
// ranges changed to the edge. A service whose include cannot be resolved
// keeps its last ranges and records why; the edge then still answers its
// HELO names with the include itself. It returns how many services failed.
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
		if s.SpfInclude == "" || s.Slug <= after {
			continue
		}
		if last != after && !stop.IsZero() && !time.Now().Before(stop) {
			return failed, last, nil
		}
		last = s.Slug
		fctx, cancel := context.WithTimeout(ctx, spf.DefaultTimeout)
		prefixes, lookups, ferr := spf.Flatten(fctx, resolver, s.SpfInclude)
		cancel()
		if ctx.Err() != nil {
			return failed, "", ctx.Err()
		}
		err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
			q := senderdb.New(tx)
			if ferr != nil && !(errors.Is(ferr, spf.ErrNotFlattenable) && lookups > 0) {
				return q.SetResolveError(ctx, senderdb.SetResolveErrorParams{Slug: s.Slug, Error: ferr.Error()})
			}
			if prefixes == nil {
				prefixes = []netip.Prefix{}
			}
			// The include itself is one term; Flatten counts the rest.
			if err := q.SetResolved(ctx, senderdb.SetResolvedParams{Slug: s.Slug, Ranges: prefixes, Lookups: int32(1 + lookups)}); err != nil { //nolint:gosec // G115: SPF allows 10 lookups; Flatten stops long before 2^31
				return err
			}
			if ferr != nil {
				if err := q.SetResolveError(ctx, senderdb.SetResolveErrorParams{Slug: s.Slug, Error: ferr.Error()}); err != nil {
					return err
				}
			}
			return publishService(ctx, q, s.Slug)
		})
		if err != nil {
			return failed, "", fmt.Errorf("store ranges of %s: %w", s.Slug, err)
		}
		if ferr != nil {
			failed++
			m.log.WarnContext(ctx, "could not resolve a sender's SPF include", "service", s.Slug, "include", s.SpfInclude, "err", ferr)
		}
	}
	return failed, "", nil
}
