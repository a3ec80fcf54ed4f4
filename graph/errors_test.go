package graph

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/request"
)

// TestInternalErrorsHidden: an unexpected error from a resolver (here a
// PostgreSQL error) reaches the caller as INTERNAL with the request id and
// nothing of its text; domain errors keep their message and code.
func TestInternalErrorsHidden(t *testing.T) {
	t.Parallel()
	r := &Resolver{Log: slog.New(slog.DiscardHandler)}
	ctx := request.NewContext(context.Background(), request.Info{ID: "req-123"})
	ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: "domain", Alias: "domain"}}})

	sqlErr := &pgconn.PgError{Code: "23502", Message: `null value in column "dmarc_ruf" violates not-null constraint`}
	_, err := r.markInternal(ctx, func(context.Context) (any, error) { return nil, sqlErr })
	gerr := r.presentError(ctx, err)
	require.Equal(t, "internal error (request req-123)", gerr.Message)
	require.Equal(t, map[string]any{"code": "INTERNAL", "requestId": "req-123"}, gerr.Extensions)
	require.NotContains(t, gerr.Error(), "dmarc_ruf")

	// A panic is presented the same way.
	gerr = r.presentError(ctx, &internalError{err: errors.New("panic: index out of range")})
	require.Equal(t, "INTERNAL", gerr.Extensions["code"])
	require.NotContains(t, gerr.Message, "index")

	domainErr := apperr.Invalid("pct", "pct must be between 0 and 100, not 101")
	_, err = r.markInternal(ctx, func(context.Context) (any, error) { return nil, domainErr })
	gerr = r.presentError(ctx, err)
	require.Equal(t, "pct must be between 0 and 100, not 101", gerr.Message)
	require.Equal(t, "BAD_USER_INPUT", gerr.Extensions["code"])
	require.Equal(t, "pct", gerr.Extensions["field"])
}
