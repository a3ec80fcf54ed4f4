package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/migrations"
)

// TestDownAndUpAgain rolls every migration back and applies them again on a
// database that holds rows, so each down part must really undo its up part.
func TestDownAndUpAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)

	v, err := migrations.Version(ctx, pool)
	require.NoError(t, err)
	require.Positive(t, v)
	_, err = pool.Exec(ctx, `INSERT INTO accounts (name) VALUES ('a')`)
	require.NoError(t, err)

	require.NoError(t, migrations.DownTo(ctx, pool, 0))
	var tables int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name NOT LIKE 'river%' AND table_name <> 'goose_db_version'`).Scan(&tables))
	require.Zero(t, tables, "down migrations must drop every table they created")

	require.NoError(t, migrations.Up(ctx, pool, nil))
	v2, err := migrations.Version(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, v, v2)
}

func TestUpIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	require.NoError(t, migrations.Up(context.Background(), pool, nil))
}

// TestServiceIncludesCarriedOver: 00031 turns each service's single SPF
// include into a list of it (none into an empty list), the edge's too,
// keeps the resolved ranges and cost, and holds the new bounds; its down
// part keeps the first include.
func TestServiceIncludesCarriedOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	require.NoError(t, migrations.DownTo(ctx, pool, 30))

	var account string
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO accounts (name) VALUES ('a') RETURNING replace(id::text, '-', '')`).Scan(&account))
	relay := "relay." + account
	for _, q := range []string{
		`INSERT INTO sender_services (slug, account_id, name, category, spf_include, resolved_ranges, spf_lookups, resolved_at)
		 VALUES ($1, $2::uuid, 'Relay', 'other', '_spf.relay.example.net', '{198.18.0.0/24}', 2, now())`,
		`INSERT INTO sender_services (slug, name, spf_include, helo_suffixes, spf_lookups)
		 VALUES ('old-vendor', 'Old vendor', '', '{.mta.old-vendor.example}', 0)`,
		`INSERT INTO edge_service (name, serial, ranges, include) VALUES ($1, nextval('edge_serial_seq'), '{198.18.0.0/24}', '_spf.relay.example.net')`,
		`INSERT INTO edge_service (name, serial, include) VALUES ('old-vendor', nextval('edge_serial_seq'), '')`,
	} {
		args := []any{relay, account}
		if !strings.Contains(q, "$2") {
			args = args[:1]
		}
		if !strings.Contains(q, "$1") {
			args = nil
		}
		_, err := pool.Exec(ctx, q, args...)
		require.NoError(t, err)
	}

	require.NoError(t, migrations.Up(ctx, pool, nil))
	var err error
	var includes, edgeIncludes, ranges []string
	var lookups *int32
	require.NoError(t, pool.QueryRow(ctx, `SELECT s.spf_includes, e.includes, s.resolved_ranges::text[], s.spf_lookups
		FROM sender_services s JOIN edge_service e ON e.name = s.slug WHERE s.slug = $1`, relay).Scan(&includes, &edgeIncludes, &ranges, &lookups))
	require.Equal(t, []string{"_spf.relay.example.net"}, includes)
	require.Equal(t, []string{"_spf.relay.example.net"}, edgeIncludes)
	require.Equal(t, []string{"198.18.0.0/24"}, ranges)
	require.Equal(t, int32(2), *lookups)
	require.NoError(t, pool.QueryRow(ctx, `SELECT s.spf_includes, e.includes FROM sender_services s JOIN edge_service e ON e.name = s.slug
		WHERE s.slug = 'old-vendor'`).Scan(&includes, &edgeIncludes))
	require.Equal(t, []string{}, includes)
	require.Equal(t, []string{}, edgeIncludes)

	// The bounds: at most 10 includes, each a host name, none twice.
	for _, bad := range [][]string{
		{"_spf.relay.example.net", "_spf.relay.example.net"},
		{"not a host"},
		{"Upper.example.net"},
		{"trailing.example.net."},
		{"single"},
		{"192.0.2.1"},
		{""},
		{"a." + strings.Repeat("b", 64) + ".example"},
		{"0.example", "1.example", "2.example", "3.example", "4.example", "5.example", "6.example", "7.example", "8.example", "9.example", "10.example"},
	} {
		_, err := pool.Exec(ctx, `UPDATE sender_services SET spf_includes = $2 WHERE slug = $1`, relay, bad)
		require.Error(t, err, "%q", bad)
	}
	_, err = pool.Exec(ctx, `UPDATE sender_services SET spf_includes = '{_spf.relay.example.net,spf2.relay.example.net}' WHERE slug = $1`, relay)
	require.NoError(t, err)

	// A deleted account's service leaves a tombstone with no includes.
	_, err = pool.Exec(ctx, `DELETE FROM accounts WHERE replace(id::text, '-', '') = $1`, account)
	require.NoError(t, err)
	var deleted bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT deleted, includes FROM edge_service WHERE name = $1`, relay).Scan(&deleted, &edgeIncludes))
	require.True(t, deleted)
	require.Empty(t, edgeIncludes)

	// Down again: the first include is kept.
	_, err = pool.Exec(ctx, `UPDATE sender_services SET spf_includes = '{_spf.old-vendor.example,_spf2.old-vendor.example}' WHERE slug = 'old-vendor'`)
	require.NoError(t, err)
	require.NoError(t, migrations.DownTo(ctx, pool, 30))
	var include string
	require.NoError(t, pool.QueryRow(ctx, `SELECT spf_include, spf_lookups FROM sender_services WHERE slug = 'old-vendor'`).Scan(&include, &lookups))
	require.Equal(t, "_spf.old-vendor.example", include)
	require.Nil(t, lookups, "the other include's cost is gone with it: unknown until resolved again")
	require.NoError(t, migrations.Up(ctx, pool, nil))
}
