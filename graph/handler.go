package graph

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rampartmail/rampart/graph/generated"
	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/request"
)

// Limits bound what one operation may ask for. They are checked after
// parsing and validation and before authentication or any resolver, so an
// abusive query costs no SQL.
type Limits struct {
	// Complexity is the largest total cost; a list field costs its page size
	// times its children.
	Complexity int
	// Depth is the deepest selection nesting.
	Depth int
	// Aliases is the most aliased fields in one operation.
	Aliases int
	// Tokens bounds the parser's work on one query document.
	Tokens int
	// UploadBytes bounds a multipart request (uploadReports).
	UploadBytes int64
}

// DefaultLimits suit the schema's legitimate queries with room to spare.
var DefaultLimits = Limits{Complexity: 5000, Depth: 12, Aliases: 30, Tokens: 15000, UploadBytes: 100 << 20}

// NewHandler returns the GraphQL HTTP handler. Requests reach it with
// request.Info in their context (see package server).
func NewHandler(r *Resolver, limits Limits) *handler.Server {
	cfg := generated.Config{Resolvers: r}
	pageCost := func(child int, first *int) int {
		n := 50
		if first != nil && *first > 0 {
			n = *first
		}
		return 1 + n*child
	}
	cfg.Complexity.Query.Domains = func(child int, _ *string, first *int, _ *string, _ *model.DomainFilter) int {
		return pageCost(child, first)
	}
	cfg.Complexity.Account.Domains = func(child int, first *int, _ *string, _ *model.DomainFilter) int {
		return pageCost(child, first)
	}
	srv := handler.New(generated.NewExecutableSchema(cfg))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: limits.UploadBytes, MaxMemory: 32 << 20})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(limits.Tokens)
	srv.Use(shapeLimit{depth: limits.Depth, aliases: limits.Aliases})
	srv.Use(extension.FixedComplexityLimit(limits.Complexity))
	srv.Use(authenticator{r: r})
	srv.AroundFields(r.markInternal)
	srv.SetErrorPresenter(r.presentError)
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		r.Log.ErrorContext(ctx, "panic in resolver", "panic", v, "request_id", request.FromContext(ctx).ID)
		return &internalError{err: fmt.Errorf("panic: %v", v)}
	})
	return srv
}

// shapeLimit rejects operations nested too deep or with too many aliases.
type shapeLimit struct{ depth, aliases int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = shapeLimit{}

func (shapeLimit) ExtensionName() string                          { return "ShapeLimit" }
func (shapeLimit) Validate(schema graphql.ExecutableSchema) error { return nil }

func (l shapeLimit) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	aliases := 0
	var walk func(set ast.SelectionSet, depth int, seen map[string]bool) int
	walk = func(set ast.SelectionSet, depth int, seen map[string]bool) int {
		deepest := depth
		for _, sel := range set {
			var d int
			switch s := sel.(type) {
			case *ast.Field:
				if s.Alias != "" && s.Alias != s.Name {
					aliases++
				}
				d = walk(s.SelectionSet, depth+1, seen)
			case *ast.InlineFragment:
				d = walk(s.SelectionSet, depth, seen)
			case *ast.FragmentSpread:
				if seen[s.Name] { // validation forbids cycles; be safe anyway
					continue
				}
				if f := oc.Doc.Fragments.ForName(s.Name); f != nil {
					seen[s.Name] = true
					d = walk(f.SelectionSet, depth, seen)
					delete(seen, s.Name)
				}
			}
			deepest = max(deepest, d)
		}
		return deepest
	}
	depth := walk(oc.Operation.SelectionSet, 0, map[string]bool{})
	if depth > l.depth {
		return limitError(fmt.Sprintf("operation is nested %d levels deep; the limit is %d", depth, l.depth))
	}
	if aliases > l.aliases {
		return limitError(fmt.Sprintf("operation uses %d aliases; the limit is %d", aliases, l.aliases))
	}
	return nil
}

func limitError(msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(apperr.BadUserInput)}}
}

// authenticator checks the bearer credential once the operation has passed
// the limits, puts the principal in the context, and allows introspection
// only to authenticated callers.
type authenticator struct{ r *Resolver }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = authenticator{}

func (authenticator) ExtensionName() string                          { return "Authenticator" }
func (authenticator) Validate(schema graphql.ExecutableSchema) error { return nil }

func (a authenticator) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if _, ok := access.FromContext(ctx); ok {
		// Authenticated before the body was read (an upload; see
		// server.GraphQLUploads).
		oc.DisableIntrospection = false
		return next(ctx)
	}
	oc.DisableIntrospection = true
	bearer := request.FromContext(ctx).Bearer
	if bearer == "" {
		return next(ctx)
	}
	p, err := a.r.Authenticate(ctx, bearer)
	if err != nil {
		var ae *apperr.Error
		if !errors.As(err, &ae) {
			a.r.Log.ErrorContext(ctx, "authenticate", "err", err, "request_id", request.FromContext(ctx).ID)
			err = &internalError{err: err}
		}
		gerr := a.r.presentError(ctx, err)
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{gerr}})
	}
	oc.DisableIntrospection = false
	return next(access.NewContext(ctx, p))
}

// internalError marks an error that must not reach the caller as it is.
type internalError struct{ err error }

func (e *internalError) Error() string { return "internal error" }
func (e *internalError) Unwrap() error { return e.err }

// markInternal logs a resolver's unexpected errors and hides them.
func (r *Resolver) markInternal(ctx context.Context, next graphql.Resolver) (any, error) {
	res, err := next(ctx)
	if err == nil {
		return res, nil
	}
	var ae *apperr.Error
	var ie *internalError
	if errors.As(err, &ae) || errors.As(err, &ie) {
		return res, err
	}
	fc := graphql.GetFieldContext(ctx)
	if strings.HasPrefix(fc.Field.Name, "__") { // gqlgen refused introspection
		return res, &apperr.Error{Code: apperr.Unauthenticated, Message: "introspection is available to authenticated callers only", Err: err}
	}
	r.Log.ErrorContext(ctx, "resolver failed", "field", fc.Path().String(), "err", err, "request_id", request.FromContext(ctx).ID)
	return res, &internalError{err: err}
}

// presentError maps errors to what the caller sees: domain errors keep
// their message and code; internal errors become a generic message with
// the request id; errors from parsing, validation and argument coercion keep
// gqlgen's message.
func (r *Resolver) presentError(ctx context.Context, err error) *gqlerror.Error {
	gerr := graphql.DefaultErrorPresenter(ctx, err)
	if gerr.Extensions == nil {
		gerr.Extensions = map[string]any{}
	}
	var ae *apperr.Error
	var ie *internalError
	switch {
	case errors.As(err, &ie):
		id := request.FromContext(ctx).ID
		gerr.Message = "internal error (request " + id + ")"
		gerr.Extensions = map[string]any{"code": string(apperr.Internal), "requestId": id}
	case errors.As(err, &ae) && ae.Message != "":
		gerr.Message = ae.Message
		gerr.Extensions["code"] = string(ae.Code)
		if ae.Field != "" {
			gerr.Extensions["field"] = ae.Field
		}
		if ae.RetryAfter > 0 {
			gerr.Extensions["retryAfterSeconds"] = int(ae.RetryAfter.Seconds() + 0.999)
		}
	default:
		if _, ok := gerr.Extensions["code"]; !ok {
			gerr.Extensions["code"] = string(apperr.BadUserInput)
		}
	}
	return gerr
}
