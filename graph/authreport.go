package graph

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vikstrous/dataloadgen"

	"github.com/rampartmail/rampart/graph/generated"
	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/authreport"
	"github.com/rampartmail/rampart/internal/readiness"
)

// reportRange is a report's range from its arguments: from and to, given
// together, replace the preset range.
func reportRange(rng *model.ReportRange, from, to *time.Time) (authreport.Range, error) {
	if from != nil || to != nil {
		if from == nil || to == nil {
			return authreport.Range{}, apperr.Invalid("from", "from and to are given together")
		}
		return authreport.Between(*from, *to)
	}
	days := 30
	if rng != nil {
		switch *rng {
		case model.ReportRangeLast7Days:
			days = 7
		case model.ReportRangeLast90Days:
			days = 90
		}
	}
	return authreport.LastDays(time.Now(), days), nil
}

var senderSorts = map[model.SenderSort]authreport.Sort{
	model.SenderSortMessagesDesc:      authreport.ByMessages,
	model.SenderSortDmarcPassRateAsc:  authreport.ByPassRateAsc,
	model.SenderSortDmarcPassRateDesc: authreport.ByPassRateDesc,
	model.SenderSortNameAsc:           authreport.ByName,
}

func sourceCategory(c authreport.Category) model.SourceCategory {
	switch c {
	case authreport.Internal:
		return model.SourceCategoryInternal
	case authreport.Service:
		return model.SourceCategoryService
	case authreport.Forwarded:
		return model.SourceCategoryForwarded
	}
	return model.SourceCategoryUnidentified
}

// loaders batch, for one operation, reads that resolvers of many objects
// would otherwise repeat: the summaries (totals and categories) of every
// report an operation asks for are read in one statement per range, so a
// page of 100 domains, each with its report's totals, costs one.
type loaders struct {
	summaries *dataloadgen.Loader[*authreport.Scope, authreport.Summary]
	// readiness decides the verdicts of every domain an operation asks
	// for together: a page of domains with their readiness costs the
	// statements of one.
	readiness *dataloadgen.Loader[readiness.Domain, readiness.Readiness]
	// notReady counts the NOT_READY domains of a page of customer
	// accounts together.
	notReady *dataloadgen.Loader[uuid.UUID, int64]
	// statements counts the report sections the operation has read that
	// run a statement each (see spend).
	statements atomic.Int64
}

// maxReportStatements bounds the report sections, each one statement, one
// operation may read: the guard's prices keep an operation within the
// complexity limit to about as many, except below a list it cannot size
// (Viewer.accounts), which this bounds at run time.
const maxReportStatements = 100

// spend counts a report section that runs a statement of its own, and
// refuses it past maxReportStatements in the operation.
func spend(ctx context.Context) error {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	if ok && l.statements.Add(1) > maxReportStatements {
		return apperr.Invalid("authReport", "the operation asks for more than %d sections of authentication reports; ask for fewer", maxReportStatements)
	}
	return nil
}

type loadersKey struct{}

// withLoaders gives an operation its own loaders.
func (r *Resolver) withLoaders(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	l := &loaders{summaries: dataloadgen.NewLoader(func(ctx context.Context, scopes []*authreport.Scope) ([]authreport.Summary, []error) {
		s, err := r.AuthReports.Summaries(ctx, scopes)
		if err != nil {
			return nil, []error{err}
		}
		return s, nil
	}, dataloadgen.WithWait(2*time.Millisecond)),
		readiness: dataloadgen.NewLoader(func(ctx context.Context, domains []readiness.Domain) ([]readiness.Readiness, []error) {
			out, errs, err := r.ReadinessSvc.GetMany(ctx, domains)
			if err != nil {
				return nil, []error{err}
			}
			return out, errs
		}, dataloadgen.WithWait(2*time.Millisecond), dataloadgen.WithBatchCapacity(readiness.MaxBatch)),
		notReady: dataloadgen.NewLoader(func(ctx context.Context, accounts []uuid.UUID) ([]int64, []error) {
			m, err := r.ReadinessSvc.NotReady(ctx, accounts)
			if err != nil {
				return nil, []error{err}
			}
			out := make([]int64, len(accounts))
			for i, id := range accounts {
				out[i] = m[id]
			}
			return out, nil
		}, dataloadgen.WithWait(2*time.Millisecond)),
	}
	return next(context.WithValue(ctx, loadersKey{}, l))
}

// summary is a report's totals and categories, through the operation's
// loader.
func (r *Resolver) summary(ctx context.Context, s *authreport.Scope) (authreport.Summary, error) {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	if !ok { // not within an operation of the handler: read alone
		sums, err := r.AuthReports.Summaries(ctx, []*authreport.Scope{s})
		if err != nil {
			return authreport.Summary{}, err
		}
		return sums[0], nil
	}
	return l.summaries.Load(ctx, s)
}

// The prices of the report's fields, for the guard (see
// [executableSchema]): a field that runs a statement of its own costs
// statementCost, so that the operations within the complexity limit run
// at most a hundred of them; a page costs its size times its children.
// Totals and categories are batched per operation and cost what their
// children do.
const statementCost = 50

func priceAuthReport(cfg *generated.ComplexityRoot) {
	cfg.Account.AuthReport = func(child int, _ *model.ReportRange, _, _ *time.Time) int {
		return statementCost + child // the account's domains are listed
	}
	cfg.AuthReport.Senders = func(child int, first *int, _ *string, _ *model.SourceCategory, _ *model.SenderSort) int {
		n := 20
		if first != nil && *first > 0 {
			n = *first
		}
		return statementCost + n*child
	}
	cfg.AuthReport.Daily = func(child int, _ *model.SourceCategory) int { return statementCost + child }
	cfg.AuthReport.Unidentified = func(child int, first *int) int {
		n := 10
		if first != nil && *first > 0 {
			n = *first
		}
		return statementCost + n*child
	}
	cfg.AuthReport.Source = func(child int, _ string) int { return statementCost + child }
}
