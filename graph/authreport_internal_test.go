package graph

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/dbtest"
)

type summaryCounter struct{ n atomic.Int64 }

func (c *summaryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "report_sources") {
		c.n.Add(1)
	}
	return ctx
}

func (c *summaryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestSummariesBatched: the totals of 40 domains' reports, resolved
// concurrently as gqlgen resolves the items of a page, are read by the
// operation's loader in a statement or two, not one per domain.
func TestSummariesBatched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.NewDB(t))
	require.NoError(t, err)
	var c summaryCounter
	cfg.ConnConfig.Tracer = &c
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	acct, user, err := account.NewService(pool).CreateOwner(ctx, account.NewOwner{
		Email: "owner@batched.example", Name: "Owner", PasswordHash: "x", AccountName: "Batched"})
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `INSERT INTO domains (account_id, name)
		SELECT $1, 'd' || g || '.batched.example' FROM generate_series(1, 40) g RETURNING id`, acct.ID)
	require.NoError(t, err)
	domains, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
			spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
		SELECT d, current_date, '192.0.2.1', 'r.example', 'x.example', '', 'none', true, true, true, true, false, i, 1
		FROM unnest($1::uuid[]) WITH ORDINALITY AS t (d, i)`, domains)
	require.NoError(t, err)

	r := &Resolver{AuthReports: authreport.New(pool)}
	as := access.WithMemo(access.NewContext(ctx, access.Principal{UserID: user.ID}))
	week := authreport.LastDays(time.Now(), 7)
	scopes := make([]*authreport.Scope, len(domains))
	for i, d := range domains {
		scopes[i], err = r.AuthReports.Domain(as, acct.ID, d, week)
		require.NoError(t, err)
	}
	c.n.Store(0)
	got := make([]int64, len(scopes))
	errs := make([]error, len(scopes))
	r.withLoaders(as, func(ctx context.Context) graphql.ResponseHandler {
		var wg sync.WaitGroup
		for i, s := range scopes {
			wg.Go(func() {
				var sum authreport.Summary
				sum, errs[i] = r.summary(ctx, s)
				got[i] = sum.Totals.Messages
			})
		}
		wg.Wait()
		return nil
	})
	for i := range got {
		require.NoError(t, errs[i])
		require.EqualValues(t, i+1, got[i])
	}
	require.LessOrEqual(t, c.n.Load(), int64(2), "40 reports' totals in a statement or two")
}
