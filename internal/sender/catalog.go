package sender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/catalog"
	"github.com/rampartmail/rampart/internal/sender/senderdb"
)

// SyncCatalog writes the shipped catalog into sender_services and compiles
// each service's edge row, notifying the edges of the services that
// changed. It is idempotent: an unchanged catalog writes nothing.
func (m *Manager) SyncCatalog(ctx context.Context, services []catalog.Service) error {
	return pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		q := senderdb.New(tx)
		for _, s := range services {
			if err := q.UpsertService(ctx, senderdb.UpsertServiceParams{
				Slug: s.Slug, Name: s.Name, Category: s.Category, SpfIncludes: nonNil(s.SPFIncludes),
				HeloSuffixes: nonNil(s.HELOSuffixes), DkimDomains: nonNil(s.DKIMDomains), DkimSelectors: nonNil(s.DKIMSelectors),
				StaticRanges: nonNilPrefixes(s.StaticRanges), SetupUrl: s.SetupURL, SourceUrl: s.SourceURL,
			}); err != nil {
				return fmt.Errorf("sync service %s: %w", s.Slug, err)
			}
			if err := publishService(ctx, q, s.Slug); err != nil {
				return err
			}
		}
		return nil
	})
}

// publishService compiles one service's edge row if it changed.
func publishService(ctx context.Context, q *senderdb.Queries, slug string) error {
	serial, err := q.PublishService(ctx, slug)
	if errors.Is(err, pgx.ErrNoRows) { // unchanged
		return nil
	}
	if err != nil {
		return fmt.Errorf("publish service %s: %w", slug, err)
	}
	return notify(ctx, q, serial)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilPrefixes(p []netip.Prefix) []netip.Prefix {
	if p == nil {
		return []netip.Prefix{}
	}
	return p
}
