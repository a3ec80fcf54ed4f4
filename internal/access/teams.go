package access

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access/accessdb"
	"github.com/rampartmail/rampart/internal/apperr"
)

// TeamPermission is what managing an account's teams (and their members
// and grants) needs: a team gives its members permissions.
const TeamPermission = ManageUsers

// Team is a group of an account's members holding grants.
type Team struct {
	ID        uuid.UUID
	AccountID uuid.UUID
	Name      string
	CreatedAt time.Time
}

// TeamMember is a user on a team.
type TeamMember struct {
	ID        uuid.UUID
	Email     string
	Name      string
	CreatedAt time.Time
}

// Grant is a team's grant: a level on a domain set of an account.
type Grant struct {
	ID        uuid.UUID
	TeamID    uuid.UUID
	AccountID uuid.UUID
	Level     Level
	Domains   DomainSet
	CreatedAt time.Time
}

// GrantRequest names a domain set by domain names or a label; with
// neither it is every domain.
type GrantRequest struct {
	Level       Level
	DomainNames []string
	Label       string
}

// Teams manages teams. Every method authorises the context's principal:
// [TeamPermission] in the team's account (NOT_FOUND without standing,
// FORBIDDEN without the permission).
type Teams struct {
	pool  *pgxpool.Pool
	authz *Authorizer
}

// NewTeams returns a Teams over the pool.
func NewTeams(pool *pgxpool.Pool) *Teams { return &Teams{pool: pool, authz: New(pool)} }

const maxTeamNameLen = 200

func teamName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxTeamNameLen || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", apperr.Invalid("name", "a team name has 1 to %d characters, without control characters", maxTeamNameLen)
	}
	return name, nil
}

func teamFromRow(r accessdb.Team) Team {
	return Team{ID: r.ID, AccountID: r.AccountID, Name: r.Name, CreatedAt: r.CreatedAt}
}

func grantFromRow(r accessdb.TeamGrant) Grant {
	g := Grant{
		ID: r.ID, TeamID: r.TeamID, AccountID: r.AccountID, Level: Level(r.Level), CreatedAt: r.CreatedAt,
		Domains: DomainSet{Kind: SetKind(r.DomainSet), Domains: r.DomainIds},
	}
	if r.Label != nil {
		g.Domains.Label = *r.Label
	}
	return g
}

// team loads a team and authorises [TeamPermission] in its account; a team
// of an account the principal cannot see is NOT_FOUND.
func (t *Teams) team(ctx context.Context, id uuid.UUID) (Team, error) {
	if _, err := Require(ctx); err != nil {
		return Team{}, err
	}
	row, err := t.authz.q.TeamByID(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Team{}, apperr.NotFoundf("not found")
	}
	if err != nil {
		return Team{}, fmt.Errorf("load team: %w", err)
	}
	if err := t.authz.Authorize(ctx, InAccount(row.AccountID), TeamPermission); err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			return Team{}, apperr.NotFoundf("not found")
		}
		return Team{}, err
	}
	return teamFromRow(row), nil
}

// Create makes a team in the account; a name the account already has is a
// CONFLICT.
func (t *Teams) Create(ctx context.Context, accountID uuid.UUID, name string) (Team, error) {
	if err := t.authz.Authorize(ctx, InAccount(accountID), TeamPermission); err != nil {
		return Team{}, err
	}
	name, err := teamName(name)
	if err != nil {
		return Team{}, err
	}
	row, err := t.authz.q.CreateTeam(ctx, accessdb.CreateTeamParams{AccountID: accountID, Name: name})
	if errors.Is(err, pgx.ErrNoRows) {
		return Team{}, apperr.Conflictf("the account already has a team named %q", name)
	}
	if err != nil {
		return Team{}, fmt.Errorf("create team: %w", err)
	}
	return teamFromRow(row), nil
}

// Get returns a team.
func (t *Teams) Get(ctx context.Context, id uuid.UUID) (Team, error) { return t.team(ctx, id) }

// List returns the account's teams by name.
func (t *Teams) List(ctx context.Context, accountID uuid.UUID) ([]Team, error) {
	if err := t.authz.Authorize(ctx, InAccount(accountID), TeamPermission); err != nil {
		return nil, err
	}
	rows, err := t.authz.q.TeamsOfAccount(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	out := make([]Team, len(rows))
	for i, r := range rows {
		out[i] = teamFromRow(r)
	}
	return out, nil
}

// Rename renames a team.
func (t *Teams) Rename(ctx context.Context, id uuid.UUID, name string) (Team, error) {
	if _, err := t.team(ctx, id); err != nil {
		return Team{}, err
	}
	name, err := teamName(name)
	if err != nil {
		return Team{}, err
	}
	row, err := t.authz.q.RenameTeam(ctx, accessdb.RenameTeamParams{ID: id, Name: name})
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return Team{}, apperr.Conflictf("the account already has a team named %q", name)
	case errors.Is(err, pgx.ErrNoRows):
		return Team{}, apperr.NotFoundf("not found")
	case err != nil:
		return Team{}, fmt.Errorf("rename team: %w", err)
	}
	return teamFromRow(row), nil
}

// Delete deletes a team, its memberships and its grants, and returns it.
func (t *Teams) Delete(ctx context.Context, id uuid.UUID) (Team, error) {
	tm, err := t.team(ctx, id)
	if err != nil {
		return Team{}, err
	}
	if _, err := t.authz.q.DeleteTeam(ctx, id); err != nil {
		return Team{}, fmt.Errorf("delete team: %w", err)
	}
	return tm, nil
}

// AddMember puts a user on a team; the user must be a member of the team's
// account (BAD_USER_INPUT otherwise). Adding twice is not an error.
func (t *Teams) AddMember(ctx context.Context, teamID, userID uuid.UUID) (Team, error) {
	tm, err := t.team(ctx, teamID)
	if err != nil {
		return Team{}, err
	}
	err = t.authz.q.AddTeamMember(ctx, accessdb.AddTeamMemberParams{TeamID: teamID, AccountID: tm.AccountID, UserID: userID})
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23503": // foreign_key_violation
		return Team{}, apperr.Invalid("userId", "the user is not a member of the team's account")
	case err != nil:
		return Team{}, fmt.Errorf("add team member: %w", err)
	}
	return tm, nil
}

// RemoveMember takes a user off a team; a user not on it is NOT_FOUND.
func (t *Teams) RemoveMember(ctx context.Context, teamID, userID uuid.UUID) (Team, error) {
	tm, err := t.team(ctx, teamID)
	if err != nil {
		return Team{}, err
	}
	n, err := t.authz.q.RemoveTeamMember(ctx, accessdb.RemoveTeamMemberParams{TeamID: teamID, UserID: userID})
	if err != nil {
		return Team{}, fmt.Errorf("remove team member: %w", err)
	}
	if n == 0 {
		return Team{}, apperr.NotFoundf("not found")
	}
	return tm, nil
}

// Members lists a team's members by e-mail address.
func (t *Teams) Members(ctx context.Context, teamID uuid.UUID) ([]TeamMember, error) {
	if _, err := t.team(ctx, teamID); err != nil {
		return nil, err
	}
	rows, err := t.authz.q.TeamMembers(ctx, teamID)
	if err != nil {
		return nil, fmt.Errorf("list team members: %w", err)
	}
	out := make([]TeamMember, len(rows))
	for i, r := range rows {
		out[i] = TeamMember(r)
	}
	return out, nil
}

// Grants lists a team's grants, oldest first.
func (t *Teams) Grants(ctx context.Context, teamID uuid.UUID) ([]Grant, error) {
	if _, err := t.team(ctx, teamID); err != nil {
		return nil, err
	}
	rows, err := t.authz.q.TeamGrants(ctx, teamID)
	if err != nil {
		return nil, fmt.Errorf("list team grants: %w", err)
	}
	out := make([]Grant, len(rows))
	for i, r := range rows {
		out[i] = grantFromRow(r)
	}
	return out, nil
}

// Grant gives a team a level on a domain set of accountID: the team's own
// account or a customer account below it (NOT_FOUND otherwise, as for any
// account out of reach). Named domains must be the account's. The level is
// read to admin: a team never holds [ManageUsers].
func (t *Teams) Grant(ctx context.Context, teamID, accountID uuid.UUID, req GrantRequest) (Grant, error) {
	tm, err := t.team(ctx, teamID)
	if err != nil {
		return Grant{}, err
	}
	if err := t.authz.Authorize(ctx, InAccount(accountID), TeamPermission); err != nil {
		return Grant{}, err
	}
	within, err := t.authz.q.IsWithin(ctx, accessdb.IsWithinParams{AncestorID: tm.AccountID, AccountID: accountID, MaxDepth: maxDepth.Load()})
	if err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	if !within {
		return Grant{}, apperr.NotFoundf("account not found")
	}
	if req.Level < LevelRead || req.Level > LevelAdmin {
		return Grant{}, apperr.Invalid("level", "a team's level is read, manage senders, manage policy or admin")
	}
	set, err := t.domainSet(ctx, accountID, req.DomainNames, req.Label)
	if err != nil {
		return Grant{}, err
	}
	var label *string
	if set.Kind == LabelDomains {
		label = &set.Label
	}
	ids := set.Domains
	if ids == nil {
		ids = []uuid.UUID{}
	}
	row, err := t.authz.q.InsertTeamGrant(ctx, accessdb.InsertTeamGrantParams{
		TeamID: teamID, AccountID: accountID, Level: int16(req.Level), DomainSet: string(set.Kind), DomainIds: ids, Label: label,
	})
	if err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	return grantFromRow(row), nil
}

// domainSet resolves a requested set in an account.
func (t *Teams) domainSet(ctx context.Context, accountID uuid.UUID, names []string, label string) (DomainSet, error) {
	switch {
	case len(names) > 0 && label != "":
		return DomainSet{}, apperr.Invalid("domains", "name domains or a label, not both")
	case label != "":
		l, err := NormalizeLabel(label)
		if err != nil {
			return DomainSet{}, err
		}
		return DomainSet{Kind: LabelDomains, Label: l}, nil
	case len(names) == 0:
		return DomainSet{Kind: AllDomains}, nil
	}
	clean := make([]string, 0, len(names))
	for _, n := range names {
		clean = append(clean, strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), ".")))
	}
	slices.Sort(clean)
	clean = slices.Compact(clean)
	rows, err := t.authz.q.DomainIDsByName(ctx, accessdb.DomainIDsByNameParams{AccountID: accountID, Names: clean})
	if err != nil {
		return DomainSet{}, fmt.Errorf("find domains: %w", err)
	}
	if len(rows) != len(clean) {
		for _, n := range clean {
			if !slices.ContainsFunc(rows, func(r accessdb.DomainIDsByNameRow) bool { return r.Name == n }) {
				return DomainSet{}, apperr.NotFoundf("domain %q not found", n)
			}
		}
	}
	set := DomainSet{Kind: NamedDomains}
	for _, r := range rows {
		set.Domains = append(set.Domains, r.ID)
	}
	return set, nil
}

// RevokeGrant deletes a team's grant and returns it.
func (t *Teams) RevokeGrant(ctx context.Context, teamID, grantID uuid.UUID) (Grant, error) {
	if _, err := t.team(ctx, teamID); err != nil {
		return Grant{}, err
	}
	rows, err := t.authz.q.TeamGrants(ctx, teamID)
	if err != nil {
		return Grant{}, fmt.Errorf("list team grants: %w", err)
	}
	i := slices.IndexFunc(rows, func(r accessdb.TeamGrant) bool { return r.ID == grantID })
	if i < 0 {
		return Grant{}, apperr.NotFoundf("not found")
	}
	if _, err := t.authz.q.DeleteTeamGrant(ctx, accessdb.DeleteTeamGrantParams{ID: grantID, TeamID: teamID}); err != nil {
		return Grant{}, fmt.Errorf("revoke grant: %w", err)
	}
	return grantFromRow(rows[i]), nil
}

// DomainNames returns the names of the account's domains among ids (those
// that still exist), to show a named set of a grant in it; the principal
// must see the account.
func (t *Teams) DomainNames(ctx context.Context, accountID uuid.UUID, ids []uuid.UUID) ([]string, error) {
	if err := t.authz.See(ctx, accountID); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []string{}, nil
	}
	rows, err := t.authz.q.DomainNames(ctx, accessdb.DomainNamesParams{AccountID: accountID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("name domains: %w", err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Name
	}
	return out, nil
}

// Effective is one thing the caller holds: owning an account, a team's
// grant, or its API token's scope.
type Effective struct {
	AccountID uuid.UUID
	Level     Level
	Domains   DomainSet
	// Source is "owner", "team" or "token"; Team names the team (nil
	// otherwise).
	Source string
	Team   *string
}

// Effective lists what the context's principal holds: the accounts it owns
// (each once, not their customers), its teams' grants, or its token's
// scope. It needs no permission: it is the caller's own.
func (t *Teams) Effective(ctx context.Context) ([]Effective, error) {
	p, err := Require(ctx)
	if err != nil {
		return nil, err
	}
	var out []Effective
	if p.IsAPIToken() {
		row, err := t.authz.q.TokenScope(ctx, p.APITokenID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load token scope: %w", err)
		}
		e := Effective{AccountID: row.AccountID, Level: Level(row.Level), Source: "token",
			Domains: DomainSet{Kind: SetKind(row.DomainSet), Domains: row.DomainIds}}
		if row.Label != nil {
			e.Domains.Label = *row.Label
		}
		return append(out, e), nil
	}
	owned, err := t.authz.q.OwnedAccounts(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("list owned accounts: %w", err)
	}
	for _, id := range owned {
		out = append(out, Effective{AccountID: id, Level: LevelOwner, Domains: DomainSet{Kind: AllDomains}, Source: "owner"})
	}
	rows, err := t.authz.q.UserTeamGrants(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("list team grants: %w", err)
	}
	for _, r := range rows {
		g := grantFromRow(accessdb.TeamGrant{ID: r.ID, TeamID: r.TeamID, AccountID: r.AccountID, Level: r.Level,
			DomainSet: r.DomainSet, DomainIds: r.DomainIds, Label: r.Label, CreatedAt: r.CreatedAt})
		out = append(out, Effective{AccountID: g.AccountID, Level: g.Level, Domains: g.Domains, Source: "team", Team: &r.TeamName})
	}
	return out, nil
}
