package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/rampartmail/rampart/graph/generated"
	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/request"
)

// Limits bound what one operation may ask for. They are checked by the
// guard on the parsed document before gqlgen validates it and before
// authentication or any resolver, so an abusive query costs no SQL and
// little CPU. Counts expand fragment spreads where they are spread.
type Limits struct {
	// Complexity is the largest total cost; a list field costs its page size
	// times its children.
	Complexity int
	// Depth is the deepest selection nesting.
	Depth int
	// Aliases is the most aliased fields in one operation.
	Aliases int
	// Fields is the most field selections an operation or a fragment may
	// expand to (introspection included); it bounds validation's work.
	Fields int
	// ValidationWork bounds the number of definitions (operations and
	// fragments) times the number of selections in a document: gqlgen
	// validates each definition with the fragments it reaches.
	ValidationWork int
	// Tokens bounds the parser's work on one query document.
	Tokens int
	// UploadBytes bounds a multipart request (uploadReports).
	UploadBytes int64
}

// DefaultLimits suit the schema's legitimate queries with room to spare.
var DefaultLimits = Limits{
	Complexity: 5000, Depth: 12, Aliases: 30, Fields: 500, ValidationWork: 50_000,
	Tokens: 15000, UploadBytes: 100 << 20,
}

// NewHandler returns the GraphQL HTTP handler. Requests reach it with
// request.Info in their context (see package server).
func NewHandler(r *Resolver, limits Limits) http.Handler {
	es := executableSchema(r)
	srv := handler.New(es)
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: limits.UploadBytes, MaxMemory: 32 << 20})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(limits.Tokens)
	// Validation runs before anyone is signed in: it suggests nothing
	// ("Did you mean ...") about the schema to anyone.
	srv.SetDisableSuggestion(true)
	srv.SetValidationRulesFn(rulesWithoutSuggestions)
	srv.Use(guard{es: es, limits: limits, passed: lru.New[*ast.QueryDocument](1000)})
	// A second complexity check on the coerced variables; the guard has
	// bounded its work.
	srv.Use(extension.FixedComplexityLimit(limits.Complexity))
	srv.Use(authenticator{r: r})
	srv.AroundOperations(r.withLoaders)
	srv.AroundFields(r.markInternal)
	srv.AroundFields(refuseReadOnlyWrites)
	srv.SetErrorPresenter(r.presentError)
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		r.Log.ErrorContext(ctx, "panic in resolver", "panic", v, "request_id", request.FromContext(ctx).ID)
		return &internalError{err: fmt.Errorf("panic: %v", v)}
	})
	return rejectInvalidUTF8(srv)
}

// executableSchema is the schema with its complexity functions: a list
// costs its page size times its children.
func executableSchema(r *Resolver) graphql.ExecutableSchema {
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
	// One statement per domain, a row per selector; the resolution of
	// each is a DNS lookup of up to five seconds.
	cfg.Complexity.Domain.DiscoveredSelectors = func(child int, _ *int, first *int, _ *bool) int {
		return pageCost(child, first)
	}
	cfg.Complexity.DiscoveredSelector.Resolution = func(child int) int { return 20 + child }
	priceAuthReport(&cfg.Complexity)
	// A domain's readiness is a few aggregate queries over its window,
	// priced like a small page, so that a page of domains asking for it
	// stays within the limit only at a sane size.
	cfg.Complexity.Domain.Readiness = func(child int) int { return readinessCost + child }
	cfg.Complexity.Domain.PolicyChanges = func(child int, last *int) int { return pageCost(child, last) }
	return generated.NewExecutableSchema(cfg)
}

// readinessCost is what one Domain.readiness costs besides its fields.
const readinessCost = 10

func init() {
	// Refusals before execution (limits, bad strings) answer 422, or 400
	// for clients that accept application/graphql-response+json, like
	// gqlgen's parse and validation errors; errors from resolvers stay in a
	// 200 response.
	errcode.RegisterErrorType(string(apperr.BadUserInput), errcode.KindProtocol)
}

// rulesWithoutSuggestions is gqlparser's default rule set with every rule
// that can suggest names replaced by its variant that does not.
func rulesWithoutSuggestions() *rules.Rules {
	rs := rules.NewDefaultRules()
	for _, r := range []core.Rule{
		rules.FieldsOnCorrectTypeRuleWithoutSuggestions,
		rules.ScalarLeafsRuleWithoutSuggestions,
		rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
		rules.KnownArgumentNamesRuleWithoutSuggestions,
		rules.KnownTypeNamesRuleWithoutSuggestions,
	} {
		rs.RemoveRule(strings.TrimSuffix(r.Name, "WithoutSuggestions"))
		rs.AddRule(r.Name, r.RuleFunc)
	}
	return rs
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
		return next(access.WithMemo(ctx))
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
	// One operation is one request: the standings its fields read are
	// remembered for it (access.WithMemo).
	return next(access.WithMemo(access.NewContext(ctx, p)))
}

// internalError marks an error that must not reach the caller as it is.
type internalError struct{ err error }

func (e *internalError) Error() string { return "internal error" }
func (e *internalError) Unwrap() error { return e.err }

// markInternal logs a resolver's unexpected errors and hides them.
// It also stops resolving once the request's context has ended, as it does
// when the client disconnects: no field starts after that.
// refuseReadOnlyWrites answers every mutation of a read-only API token
// with FORBIDDEN before its resolver runs (access.AuthorizeWrite).
func refuseReadOnlyWrites(ctx context.Context, next graphql.Resolver) (any, error) {
	if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Object == "Mutation" {
		if p, ok := access.FromContext(ctx); ok && p.ReadOnly {
			return nil, access.AuthorizeWrite(ctx)
		}
	}
	return next(ctx)
}

func (r *Resolver) markInternal(ctx context.Context, next graphql.Resolver) (any, error) {
	if ctx.Err() != nil {
		return nil, &internalError{err: fmt.Errorf("request ended: %w", context.Cause(ctx))}
	}
	res, err := next(ctx)
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil { // nobody reads the answer; this is no failure of ours
		return res, &internalError{err: err}
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
		for k, v := range ae.Extensions {
			if _, taken := gerr.Extensions[k]; !taken {
				gerr.Extensions[k] = v
			}
		}
	default:
		if _, ok := gerr.Extensions["code"]; !ok {
			gerr.Extensions["code"] = string(apperr.BadUserInput)
		}
	}
	return gerr
}
