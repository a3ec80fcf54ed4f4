package graph

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/dmarc"
	"github.com/rampartmail/rampart/internal/domain"
)

// parseID reads an object id; a malformed id is an object that does not exist.
func parseID(id, what string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil, apperr.NotFoundf("%s not found", what)
	}
	return u, nil
}

// accountID resolves an optional accountId argument: the named account, or
// the caller's default one.
func (r *Resolver) accountID(ctx context.Context, id *string) (uuid.UUID, error) {
	if id != nil {
		return parseID(*id, "account")
	}
	a, err := r.AccountSvc.Default(ctx)
	if err != nil {
		return uuid.Nil, err
	}
	return a.ID, nil
}

func disposition(p dmarc.Policy) model.DmarcDisposition {
	return model.DmarcDisposition(strings.ToUpper(string(p)))
}

func dispositionPtr(p *dmarc.Policy) *model.DmarcDisposition {
	if p == nil {
		return nil
	}
	d := disposition(*p)
	return &d
}

func policyOf(d model.DmarcDisposition) dmarc.Policy { return dmarc.Policy(strings.ToLower(string(d))) }

func alignment(a dmarc.Alignment) model.Alignment {
	if a == dmarc.Strict {
		return model.AlignmentStrict
	}
	return model.AlignmentRelaxed
}

func alignmentOf(a model.Alignment) dmarc.Alignment {
	if a == model.AlignmentStrict {
		return dmarc.Strict
	}
	return dmarc.Relaxed
}

func policyModel(p domain.Policy) *model.DmarcPolicy {
	return &model.DmarcPolicy{
		P: disposition(p.P), Sp: dispositionPtr(p.SP), Np: dispositionPtr(p.NP),
		Pct: p.Percent, Adkim: alignment(p.ADKIM), Aspf: alignment(p.ASPF),
		Rua: nonNil(p.RUA), Ruf: nonNil(p.RUF), Fo: p.FailureOptions, Testing: p.Testing,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// applyPolicyInput edits a stored policy with the fields the caller gave.
func applyPolicyInput(in model.DmarcPolicyInput) func(*domain.Policy) {
	return func(p *domain.Policy) {
		if in.P != nil {
			p.P = policyOf(*in.P)
		}
		for _, f := range []struct {
			in interface {
				ValueOK() (*model.DmarcDisposition, bool)
			}
			out **dmarc.Policy
		}{{in.Sp, &p.SP}, {in.Np, &p.NP}} {
			if v, set := f.in.ValueOK(); set {
				*f.out = nil
				if v != nil {
					pol := policyOf(*v)
					*f.out = &pol
				}
			}
		}
		if in.Pct != nil {
			p.Percent = *in.Pct
		}
		if in.Adkim != nil {
			p.ADKIM = alignmentOf(*in.Adkim)
		}
		if in.Aspf != nil {
			p.ASPF = alignmentOf(*in.Aspf)
		}
		if in.Rua != nil {
			p.RUA = in.Rua
		}
		if in.Ruf != nil {
			p.RUF = in.Ruf
		}
		if v, set := in.Fo.ValueOK(); set {
			p.FailureOptions = v
		}
		if v, set := in.Testing.ValueOK(); set {
			p.Testing = v
		}
	}
}

func modeOf(m model.DomainMode) domain.Mode { return domain.Mode(strings.ToLower(string(m))) }

func filterOf(f *model.DomainFilter) domain.Filter {
	var out domain.Filter
	if f == nil {
		return out
	}
	if f.NamePrefix != nil {
		out.Prefix = *f.NamePrefix
	}
	if f.Mode != nil {
		out.Mode = modeOf(*f.Mode)
	}
	return out
}

func connection(p domain.Page) *model.DomainConnection {
	c := &model.DomainConnection{
		Edges: []*model.DomainEdge{}, Nodes: []*domain.Domain{}, TotalCount: int64(p.TotalCount),
		PageInfo: &model.PageInfo{HasNextPage: p.HasNext},
	}
	for i := range p.Domains {
		d := &p.Domains[i]
		c.Edges = append(c.Edges, &model.DomainEdge{Cursor: domain.Cursor(*d), Node: d})
		c.Nodes = append(c.Nodes, d)
	}
	if len(p.Domains) > 0 {
		c.PageInfo.StartCursor, c.PageInfo.EndCursor = &p.StartCursor, &p.EndCursor
	}
	return c
}

func (r *Resolver) listDomains(ctx context.Context, accountID *uuid.UUID, first *int, after *string, filter *model.DomainFilter) (*model.DomainConnection, error) {
	f := filterOf(filter)
	f.AccountID = accountID
	n := 50
	if first != nil {
		n = *first
	}
	a := ""
	if after != nil {
		a = *after
	}
	p, err := r.DomainSvc.List(ctx, f, n, a)
	if err != nil {
		return nil, err
	}
	return connection(p), nil
}

// ptr adapts a (value, error) service result to gqlgen's pointer results.
func ptr[T any](v T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// pointers adapts a slice of values to gqlgen's slices of pointers.
func pointers[T any](v []T) []*T {
	out := make([]*T, len(v))
	for i := range v {
		out[i] = &v[i]
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func deref0(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}

// customerPage reads a page of an account's customers for customers and
// customerOverview.
func (r *Resolver) customerPage(ctx context.Context, obj *account.Account, first *int, after *string, filter *model.CustomerFilter, all *bool) (account.CustomerPage, error) {
	f := account.CustomerFilter{All: all != nil && *all}
	if filter != nil {
		f.Prefix, f.Suspended = deref(filter.NamePrefix), filter.Suspended
	}
	n := 50
	if first != nil {
		n = *first
	}
	return r.AccountSvc.Customers(ctx, obj.ID, f, n, deref(after))
}

// nonEmpty is s, or nil for "".
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
