package pgcopy_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/pgcopy"
)

// TestRoundTrip: every value the encoders write reads back as PostgreSQL
// stores it, NULLs and empty arrays included.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	type row struct {
		ID       uuid.UUID
		N        int32
		Big      int64
		OK       bool
		Day      time.Time
		Name     string
		IP       netip.Addr
		Tags     []string
		Blob     []byte
		Optional *string
	}
	rows := []row{
		{uuid.New(), 1, 1 << 40, true, time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), "a", netip.MustParseAddr("192.0.2.1"),
			[]string{"x", "é", ""}, []byte{0, 1, 2}, nil},
		{uuid.New(), -5, -1, false, time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), "", netip.MustParseAddr("2001:db8::1"),
			[]string{}, nil, nil},
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE t (id uuid, n int, big bigint, ok boolean, day date, name text, ip inet,
			tags text[], blob bytea, optional text) ON COMMIT DROP`); err != nil {
			return err
		}
		i := 0
		n, err := pgcopy.Rows(ctx, tx, "t", []string{"id", "n", "big", "ok", "day", "name", "ip", "tags", "blob", "optional"},
			func(b []byte) ([]byte, bool, error) {
				if i == len(rows) {
					return b, false, nil
				}
				r := rows[i]
				i++
				b = pgcopy.Row(b, 10)
				b = pgcopy.UUID(b, r.ID)
				b = pgcopy.Int4(b, r.N)
				b = pgcopy.Int8(b, r.Big)
				b = pgcopy.Bool(b, r.OK)
				b = pgcopy.Date(b, r.Day)
				b = pgcopy.Text(b, r.Name)
				b = pgcopy.Inet(b, r.IP)
				b = pgcopy.TextArray(b, r.Tags)
				b = pgcopy.Bytea(b, r.Blob)
				return pgcopy.Null(b), true, nil
			})
		require.NoError(t, err)
		require.EqualValues(t, len(rows), n)
		q, err := tx.Query(ctx, `SELECT id, n, big, ok, day, name, ip, tags, blob, optional FROM t ORDER BY n DESC`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(q, pgx.RowToStructByPos[row])
		require.NoError(t, err)
		require.Equal(t, rows, got)
		var card int
		require.NoError(t, tx.QueryRow(ctx, `SELECT cardinality(tags) FROM t WHERE n = -5`).Scan(&card))
		require.Zero(t, card)
		return nil
	})
	require.NoError(t, err)
}
