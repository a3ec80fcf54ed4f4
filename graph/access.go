package graph

import (
	"context"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
)

var levelModels = map[access.Level]model.AccessLevel{
	access.LevelRead: model.AccessLevelRead, access.LevelManageSenders: model.AccessLevelManageSenders,
	access.LevelManagePolicy: model.AccessLevelManagePolicy, access.LevelAdmin: model.AccessLevelAdmin,
	access.LevelOwner: model.AccessLevelOwner,
}

func levelModel(l access.Level) model.AccessLevel { return levelModels[l] }

func levelOf(m model.AccessLevel) (access.Level, error) {
	for l, lm := range levelModels {
		if lm == m {
			return l, nil
		}
	}
	return 0, apperr.Invalid("level", "unknown level %q", m)
}

// domainSetModel shows a domain set, naming its domains.
func (r *Resolver) domainSetModel(ctx context.Context, accountID uuid.UUID, s access.DomainSet) (*model.DomainSet, error) {
	out := &model.DomainSet{All: s.Kind == access.AllDomains, Domains: []string{}}
	switch s.Kind {
	case access.LabelDomains:
		out.Label = &s.Label
	case access.NamedDomains:
		names, err := r.TeamSvc.DomainNames(ctx, accountID, s.Domains)
		if err != nil {
			return nil, err
		}
		out.Domains = names
	}
	return out, nil
}

func domainSetInput(in *model.DomainSetInput) (names []string, label string) {
	if in == nil {
		return nil, ""
	}
	return in.Domains, deref(in.Label)
}

func (r *Resolver) teamID(id string) (uuid.UUID, error) { return parseID(id, "team") }

// pointersOf is pointers for a service's answer.
func pointersOf[T any](v []T, err error) ([]*T, error) {
	if err != nil {
		return nil, err
	}
	return pointers(v), nil
}
