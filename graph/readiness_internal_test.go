package graph

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dbtest"
	"github.com/rampartmail/rampart/internal/readiness"
)

type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestReadinessBatched: the verdicts of 40 domains, resolved concurrently
// as gqlgen resolves the items of a page, are decided by the operation's
// loader in a handful of statements, not four per domain, each with its
// own domain's numbers; another account's domain in the same batch is
// NOT_FOUND and changes nothing for the others.
func TestReadinessBatched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.NewDB(t))
	require.NoError(t, err)
	var c statementCounter
	cfg.ConnConfig.Tracer = &c
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	accounts := account.NewService(pool)
	acct, user, err := accounts.CreateOwner(ctx, account.NewOwner{
		Email: "owner@ready-batched.example", Name: "Owner", PasswordHash: "x", AccountName: "Batched"})
	require.NoError(t, err)
	other, _, err := accounts.CreateOwner(ctx, account.NewOwner{
		Email: "owner@other-batched.example", Name: "Other", PasswordHash: "x", AccountName: "Other"})
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `INSERT INTO domains (account_id, name)
		SELECT $1, 'd' || g || '.ready-batched.example' FROM generate_series(1, 40) g ORDER BY g RETURNING id`, acct.ID)
	require.NoError(t, err)
	domains, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	var foreign uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO domains (account_id, name) VALUES ($1, 'foreign.ready-batched.example') RETURNING id`, other.ID).Scan(&foreign))
	// Domain i has 100·i messages on each of the last 3 days, i of them
	// failing DMARC; no source is classified yet, so all count as
	// unidentified.
	_, err = pool.Exec(ctx, `INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
			spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
		SELECT d, current_date - k, '192.0.2.1', 'r.example', 'x.example', '', 'none', ok, ok, ok, ok, false,
		       CASE WHEN ok THEN 99 * i ELSE i END, 1
		FROM unnest($1::uuid[]) WITH ORDINALITY AS t (d, i), generate_series(0, 2) k, (VALUES (true), (false)) v (ok)`, append(domains, foreign))
	require.NoError(t, err)

	r := &Resolver{ReadinessSvc: readiness.NewReader(pool, readiness.Defaults)}
	as := access.WithMemo(access.NewContext(ctx, access.Principal{UserID: user.ID}))
	keys := make([]uuid.UUID, 0, len(domains)+1)
	keys = append(keys, domains[:20]...)
	keys = append(keys, foreign)
	keys = append(keys, domains[20:]...)
	got := make([]readiness.Readiness, len(keys))
	errs := make([]error, len(keys))
	// The principal's standing is read once per operation, as a request's
	// first resolver would.
	_, err = access.New(pool).Reach(as, access.ViewReports)
	require.NoError(t, err)
	c.n.Store(0)
	r.withLoaders(as, func(ctx context.Context) graphql.ResponseHandler {
		var wg sync.WaitGroup
		for i, id := range keys {
			wg.Go(func() { got[i], errs[i] = r.readiness(ctx, acct.ID, id) })
		}
		wg.Wait()
		return nil
	})
	for i, id := range keys {
		if id == foreign {
			require.ErrorIs(t, errs[i], apperr.ErrNotFound, "another account's domain")
			continue
		}
		require.NoError(t, errs[i])
		n := int64(slices.Index(domains, id) + 1)
		require.Equal(t, 3*100*n, got[i].Messages, "domain %d", n)
		require.Equal(t, 3*100*n, got[i].Unidentified, "domain %d", n)
		require.Equal(t, 3, got[i].Days, "domain %d", n)
	}
	// Per batch: BEGIN, 4 reads, COMMIT, and the foreign domain's own
	// decision (its NOT_FOUND); gqlgen's concurrent resolvers may split
	// the 41 keys into two batches.
	require.LessOrEqual(t, c.n.Load(), int64(14), "41 verdicts in a handful of statements")
}
