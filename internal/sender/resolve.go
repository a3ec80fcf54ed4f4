package sender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

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
	services, err := senderdb.New(m.pool).Services(ctx)
	if err != nil {
		return 0, fmt.Errorf("list services: %w", err)
	}
	for _, s := range services {
		if s.SpfInclude == "" {
			continue
		}
		prefixes, lookups, ferr := spf.Flatten(ctx, resolver, s.SpfInclude)
		if ctx.Err() != nil {
			return failed, ctx.Err()
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
			return failed, fmt.Errorf("store ranges of %s: %w", s.Slug, err)
		}
		if ferr != nil {
			failed++
			m.log.WarnContext(ctx, "could not resolve a sender's SPF include", "service", s.Slug, "include", s.SpfInclude, "err", ferr)
		}
	}
	return failed, nil
}
