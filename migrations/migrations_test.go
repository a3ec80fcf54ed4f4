package migrations_test

import (
	"context"
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
