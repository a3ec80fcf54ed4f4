package sources

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/sketch"
)

// FillSketches writes the sketch of addresses of every summary that has
// none (report_daily.sources), from the classes of its day: for summaries
// built in bulk by report_summarize (a bulk load), which sums in SQL and
// leaves the sketches to Go. The classifier writes both itself. The
// caller queues the account days (account_days) the bulk build changed,
// for the classifier's next run.
func FillSketches(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	type key struct {
		domain         uuid.UUID
		day            time.Time
		class, service string
	}
	var keys []key
	var sketches [][]byte
	var cur key
	var sk sketch.Addresses
	flush := func() error {
		b, err := sk.Bytes()
		if err != nil {
			return err
		}
		if b != nil {
			keys, sketches = append(keys, cur), append(sketches, b)
		}
		sk = sketch.Addresses{}
		return nil
	}
	rows, err := pool.Query(ctx, `SELECT c.domain_id, c.day, c.class, (CASE WHEN c.class = 'service' THEN c.service ELSE '' END), c.source_ip
		FROM source_classes c
		WHERE EXISTS (SELECT 1 FROM report_daily d WHERE d.domain_id = c.domain_id AND d.day = c.day AND d.sources IS NULL)
		ORDER BY 1, 2, 3, 4`)
	if err != nil {
		return 0, fmt.Errorf("read classes: %w", err)
	}
	var k key
	var ip netip.Addr
	_, err = pgx.ForEachRow(rows, []any{&k.domain, &k.day, &k.class, &k.service, &ip}, func() error {
		if k != cur {
			if err := flush(); err != nil {
				return err
			}
			cur = k
		}
		sk.Add(ip)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return 0, fmt.Errorf("read classes: %w", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE sketch_fill (domain_id uuid, day date, class text, service text, sources bytea) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sketch_fill"}, []string{"domain_id", "day", "class", "service", "sources"},
			pgx.CopyFromSlice(len(keys), func(i int) ([]any, error) {
				k := keys[i]
				return []any{k.domain, pgtype.Date{Time: k.day, Valid: true}, k.class, k.service, sketches[i]}, nil
			})); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE report_daily d SET sources = f.sources FROM sketch_fill f
			WHERE d.domain_id = f.domain_id AND d.day = f.day AND d.class = f.class AND d.service = f.service AND d.sources IS NULL`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store sketches: %w", err)
	}
	return len(keys), nil
}
