// Package access decides who may do what, in which account.
//
// Every exported method of a domain service that touches tenant data opens
// with [Authorizer.Authorize] (or, to list, [Authorizer.Reach],
// [Authorizer.ReachIn] or [Authorizer.Accounts]), which reads the
// [Principal] from the context: resolvers and HTTP handlers translate, they
// never decide. The question is always the same shape, a [Scope] (an
// account, and the domain within it when the operation is on one) and a
// [Permission]. The rules:
//
//   - An account's owners hold every [Permission] in it, and so do the
//     owners of its ancestors (MSP accounts) up to [MaxDepth] levels up:
//     customer accounts nest to the depth the operator allows
//     (`-msp-depth`, [SetMaxDepth]; an account cannot be given a parent
//     that would nest it deeper, [CheckParent]).
//   - Everyone else acts through grants. A grant names an account, a domain
//     set ([DomainSet]: every domain of the account, named domains, or the
//     domains carrying a label) and a [Level]; it holds the level's
//     permissions on the domains of the set, and on the account as a whole
//     only when the set is every domain. The levels, each holding what the
//     one before it does:
//     [LevelRead] holds [ViewReports];
//     [LevelManageSenders] adds [ManageSenders] and [ManageDKIM];
//     [LevelManagePolicy] adds [ManagePolicy];
//     [LevelAdmin] adds [ManageDomains] (adding a domain, or uploading
//     reports, is account-wide, so needs admin on every domain);
//     [LevelOwner] (API tokens only) adds [ManageUsers] and reaches the
//     account's customer accounts, as an owner does. [ManageUsers] (members,
//     teams, tokens) otherwise stays with owners.
//   - A member holds the grants of the teams they are on ([Teams]). A team
//     belongs to an account; its members are members of that account, and
//     its grants name that account or a customer account below it, so an
//     MSP's team acts in a customer per its grant there without being a
//     member of the customer. A grant applies in its account only, not in
//     that account's customers.
//   - An API token holds its scope: a grant of its own (account, domain set,
//     level), with an optional expiry (an expired token is UNAUTHENTICATED),
//     and, when it is read-only, no mutation at all ([AuthorizeWrite]).
//     Tokens made before scopes were migrated to an owner-level scope on
//     their account (every domain), without the right to mint tokens.
//   - A suspended account (and every account below it) gives nothing to
//     those who stand in it through it: its own owners, members, teams and
//     tokens, and those of the accounts below it, are refused everything in
//     it with FORBIDDEN, saying it is suspended. The owners, teams and
//     tokens of the accounts above it keep their access, so the MSP can look
//     and resume it. The decision is [Authorizer.Authorize]'s (and the
//     listings leave such accounts out), so every query and mutation obeys
//     it; the DNS edge never asks, so a suspended customer's domains are
//     served unchanged.
//   - A principal with no standing in an account (not an owner, member or
//     grantee) gets [apperr.ErrNotFound] for everything in it, never
//     FORBIDDEN, so the existence of another account's objects does not
//     leak. With standing, a domain outside the principal's grants is
//     NOT_FOUND too once it holds any grant in the account (a member
//     without any grant there is refused with FORBIDDEN, knowing only that
//     the account exists); a visible domain, or the account, without the
//     permission needed is FORBIDDEN.
//
// Listings filter with a [Reach]: the accounts in which the principal holds
// a permission on every domain, and the further domains on which it holds
// it. Queries apply it as
//
//	(d.account_id = ANY(@reach_accounts::uuid[]) OR d.id = ANY(@reach_domains::uuid[]))
//
// so that a member sees exactly the domains their teams grant, in every
// list and aggregate, and owners see all.
//
// Apart from the accounts stands the instance operator ([Authorizer.Operator]),
// who sees every tenant's jobs on the job dashboard. It is a role of its
// own, granted and revoked only with `rampart admin grant-operator` and
// `revoke-operator` ([GrantOperator], [RevokeOperator]); owning an account
// never implies it, and API tokens never hold it.
package access

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access/accessdb"
	"github.com/rampartmail/rampart/internal/apperr"
)

// The roles of a member of an account (account_members.role): what
// [standing.allows] maps to permissions. Who may change a member's role,
// and the rule that an account keeps an owner, are package account's.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// Permission is one kind of action in an account.
type Permission int

// The permissions. Owners hold all of them.
const (
	ViewReports Permission = iota + 1
	ManageSenders
	ManageDKIM
	ManagePolicy
	ManageDomains
	ManageUsers
)

var permissionNames = map[Permission]string{
	ViewReports: "view reports", ManageSenders: "manage senders", ManageDKIM: "manage DKIM",
	ManagePolicy: "manage policy", ManageDomains: "manage domains", ManageUsers: "manage users",
}

func (p Permission) String() string {
	if s, ok := permissionNames[p]; ok {
		return s
	}
	return fmt.Sprintf("permission(%d)", int(p))
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// UserID is the signed-in user; uuid.Nil for an API token.
	UserID uuid.UUID
	// SessionID is the user's login session (refresh-token family);
	// uuid.Nil for an API token.
	SessionID uuid.UUID
	// APITokenID and TokenAccountID are set when an API token authenticated
	// the request; TokenAccountID is the account of the token's scope, where
	// it acts (with an owner-level scope, and in the account's customers).
	APITokenID     uuid.UUID
	TokenAccountID uuid.UUID
	// ReadOnly is set for a read-only API token: it may run no mutation.
	ReadOnly bool
}

// IsAPIToken reports whether the principal is an API token.
func (p Principal) IsAPIToken() bool { return p.APITokenID != uuid.Nil }

type principalKey struct{}

// NewContext returns a context carrying the principal.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Require returns the request's principal, or UNAUTHENTICATED when there
// is none: the one answer every service gives a call without a principal.
func Require(ctx context.Context) (Principal, error) {
	p, ok := FromContext(ctx)
	if !ok {
		return Principal{}, &apperr.Error{Code: apperr.Unauthenticated, Message: "authentication required"}
	}
	return p, nil
}

// FromContext returns the request's principal, if it is authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Scope is what an operation acts on: an account and, for an operation on
// one of its domains, that domain. Naming the domain binds it to the
// account: a domain of another account is NOT_FOUND, so a caller cannot
// borrow its standing in one account to reach another's domain.
type Scope struct {
	Account uuid.UUID
	// Domain is uuid.Nil for an operation on the account as a whole.
	Domain uuid.UUID
}

// InAccount is the scope of an operation on an account as a whole.
func InAccount(accountID uuid.UUID) Scope { return Scope{Account: accountID} }

// OnDomain is the scope of an operation on one domain of an account.
func OnDomain(accountID, domainID uuid.UUID) Scope {
	return Scope{Account: accountID, Domain: domainID}
}

type memoKey struct{}

// memo holds the standings one request has read, so that a page of
// domains whose fields each authorise asks PostgreSQL once per domain, not
// once per field.
type memo struct {
	mu sync.Mutex
	m  map[memoEntry]memoStanding
}

type memoEntry struct {
	p  Principal
	sc Scope
}

type memoStanding struct {
	s  standing
	ok bool
}

// WithMemo returns a context in which the standings read by [Authorizer]
// are remembered for the context's lifetime: one request. A change of
// membership made by the request itself is seen by the next request.
func WithMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &memo{m: map[memoEntry]memoStanding{}})
}

// Authorizer answers access questions from the database.
type Authorizer struct {
	q *accessdb.Queries
}

// New returns an Authorizer reading through db (a pool or a transaction).
func New(db accessdb.DBTX) *Authorizer { return &Authorizer{q: accessdb.New(db)} }

// standing is what a principal is in one account.
type standing struct {
	owner   bool
	member  bool
	granted bool
	// account is the level held on every domain of the account; domain is
	// the level held on the scope's domain (when it names one).
	account, domain Level
	// suspended: the account is suspended (or below a suspended account)
	// and the principal stands in it through a suspended account: its
	// standing from there counts for nothing, and it is told why.
	suspended bool
}

func (s standing) known() bool { return s.owner || s.member || s.granted }

// allows is the one place that maps a standing to permissions.
func (s standing) allows(sc Scope, perm Permission) bool {
	if s.owner {
		return true
	}
	if sc.Domain != uuid.Nil {
		return s.domain.Holds(perm)
	}
	return s.account.Holds(perm)
}

// hidden reports whether the scope is invisible to a principal with the
// standing: a domain outside its grants, once it holds any.
func (s standing) hidden(sc Scope) bool {
	return !s.owner && sc.Domain != uuid.Nil && s.granted && s.domain == 0
}

func principalArgs(p Principal) (user, token uuid.UUID) {
	if p.IsAPIToken() {
		return uuid.Nil, p.APITokenID
	}
	return p.UserID, uuid.Nil
}

// standingIn reads the context's principal's standing in the scope's
// account; ok is false when the account does not exist or the scope's
// domain is not the account's.
func (a *Authorizer) standingIn(ctx context.Context, sc Scope) (s standing, ok bool, err error) {
	p, err := Require(ctx)
	if err != nil {
		return standing{}, false, err
	}
	mm, _ := ctx.Value(memoKey{}).(*memo)
	key := memoEntry{p: p, sc: sc}
	if mm != nil {
		mm.mu.Lock()
		got, hit := mm.m[key]
		mm.mu.Unlock()
		if hit {
			return got.s, got.ok, nil
		}
	}
	user, token := principalArgs(p)
	var domainID *uuid.UUID
	if sc.Domain != uuid.Nil {
		domainID = &sc.Domain
	}
	row, err := a.q.Standing(ctx, accessdb.StandingParams{
		UserID: user, TokenID: token, AccountID: sc.Account, DomainID: domainID, MaxDepth: maxDepth.Load(),
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return standing{}, false, fmt.Errorf("authorize: %w", err)
	default:
		s, ok = standing{
			owner: row.Owner, member: row.Member, granted: row.Granted,
			account: Level(row.AccountLevel), domain: Level(row.DomainLevel),
			suspended: row.Suspended,
		}, true
	}
	if mm != nil {
		mm.mu.Lock()
		mm.m[key] = memoStanding{s: s, ok: ok}
		mm.mu.Unlock()
	}
	return s, ok, nil
}

// Authorize returns nil when the context's principal holds perm in the
// scope; otherwise UNAUTHENTICATED, NOT_FOUND (no standing: the account's
// objects are invisible; a domain outside the principal's grants; or the
// domain is not the account's) or FORBIDDEN (standing without the
// permission).
func (a *Authorizer) Authorize(ctx context.Context, sc Scope, perm Permission) error {
	s, ok, err := a.standingIn(ctx, sc)
	switch {
	case err != nil:
		return err
	case ok && s.allows(sc, perm):
		return nil
	case ok && s.suspended && !s.known():
		return errSuspended
	case ok && s.known() && !s.hidden(sc):
		where := "this account"
		if sc.Domain != uuid.Nil {
			where = "this domain"
		}
		return &apperr.Error{Code: apperr.Forbidden, Message: "you do not have permission to " + perm.String() + " in " + where}
	default:
		return apperr.NotFoundf("not found")
	}
}

// errSuspended refuses the members and tokens of a suspended account.
var errSuspended = &apperr.Error{Code: apperr.Forbidden,
	Message: "this account is suspended: its members and API tokens can do nothing in it until the account above it resumes it (its domains are still served)"}

// Accounts lists the accounts in which the context's principal holds perm
// on every domain (and on the account as a whole).
func (a *Authorizer) Accounts(ctx context.Context, perm Permission) ([]uuid.UUID, error) {
	m, err := a.reach(ctx)
	if err != nil {
		return nil, err
	}
	return m.reach(perm).Accounts, nil
}

// Visible lists the accounts in which the context's principal has any
// standing (it may see the account itself, if nothing in it).
func (a *Authorizer) Visible(ctx context.Context) ([]uuid.UUID, error) {
	m, err := a.reach(ctx)
	if err != nil {
		return nil, err
	}
	return m.order, nil
}

// Reach is where a principal holds a permission: every domain of Accounts,
// and the further domains Domains (of other accounts). A query applies it
// as
//
//	(d.account_id = ANY(@reach_accounts::uuid[]) OR d.id = ANY(@reach_domains::uuid[]))
//
// Both are non-nil, so that they bind as empty arrays.
type Reach struct {
	Accounts []uuid.UUID
	Domains  []uuid.UUID
	// domainAccount maps each of Domains to its account, for In.
	domainAccount map[uuid.UUID]uuid.UUID
}

// Empty reports whether the reach covers nothing.
func (r Reach) Empty() bool { return len(r.Accounts) == 0 && len(r.Domains) == 0 }

// In narrows the reach to the accounts given.
func (r Reach) In(accounts ...uuid.UUID) Reach {
	out := Reach{Accounts: []uuid.UUID{}, Domains: []uuid.UUID{}, domainAccount: map[uuid.UUID]uuid.UUID{}}
	for _, id := range r.Accounts {
		if slices.Contains(accounts, id) {
			out.Accounts = append(out.Accounts, id)
		}
	}
	for _, d := range r.Domains {
		if acc := r.domainAccount[d]; slices.Contains(accounts, acc) {
			out.Domains = append(out.Domains, d)
			out.domainAccount[d] = acc
		}
	}
	return out
}

// Covers reports whether the reach covers the domain of the account.
func (r Reach) Covers(accountID, domainID uuid.UUID) bool {
	return slices.Contains(r.Accounts, accountID) || r.domainAccount[domainID] == accountID && slices.Contains(r.Domains, domainID)
}

// Reach returns where the context's principal holds perm.
func (a *Authorizer) Reach(ctx context.Context, perm Permission) (Reach, error) {
	m, err := a.reach(ctx)
	if err != nil {
		return Reach{}, err
	}
	return m.reach(perm), nil
}

// ReachStanding is [Authorizer.Reach] with the accounts in which the
// principal has any standing, read in the same one statement: for a read
// over many accounts at once that must refuse an account it cannot see.
func (a *Authorizer) ReachStanding(ctx context.Context, perm Permission) (Reach, map[uuid.UUID]bool, error) {
	m, err := a.reach(ctx)
	if err != nil {
		return Reach{}, nil, err
	}
	seen := make(map[uuid.UUID]bool, len(m.accounts))
	for id := range m.accounts {
		seen[id] = true
	}
	return m.reach(perm), seen, nil
}

// ReachIn authorises perm in an account for a listing or aggregate over its
// domains and returns the part of the account it covers: NOT_FOUND without
// standing in the account, FORBIDDEN when the principal holds perm on none
// of its domains (nor on the account).
func (a *Authorizer) ReachIn(ctx context.Context, accountID uuid.UUID, perm Permission) (Reach, error) {
	m, err := a.reach(ctx)
	if err != nil {
		return Reach{}, err
	}
	if _, ok := m.accounts[accountID]; !ok {
		// No standing: NOT_FOUND, or FORBIDDEN for the members of a
		// suspended account, as Authorize decides.
		if err := a.Authorize(ctx, InAccount(accountID), perm); err != nil {
			return Reach{}, err
		}
		return Reach{}, apperr.NotFoundf("not found")
	}
	r := m.reach(perm).In(accountID)
	if r.Empty() {
		// Nothing in it: the decision on the account as a whole says why.
		if err := a.Authorize(ctx, InAccount(accountID), perm); err != nil {
			return Reach{}, err
		}
	}
	return r, nil
}

// reachMap is a principal's standing everywhere.
type reachMap struct {
	order    []uuid.UUID
	accounts map[uuid.UUID]Level // the level on every domain (5: owner)
	domains  map[uuid.UUID]domainLevel
}

type domainLevel struct {
	account uuid.UUID
	level   Level
}

func (m reachMap) reach(perm Permission) Reach {
	r := Reach{Accounts: []uuid.UUID{}, Domains: []uuid.UUID{}, domainAccount: map[uuid.UUID]uuid.UUID{}}
	for _, id := range m.order {
		if m.accounts[id].Holds(perm) {
			r.Accounts = append(r.Accounts, id)
		}
	}
	for d, dl := range m.domains {
		if dl.level.Holds(perm) && !m.accounts[dl.account].Holds(perm) {
			r.Domains = append(r.Domains, d)
			r.domainAccount[d] = dl.account
		}
	}
	slices.SortFunc(r.Domains, func(x, y uuid.UUID) int { return strings.Compare(x.String(), y.String()) })
	return r
}

func (a *Authorizer) reach(ctx context.Context) (reachMap, error) {
	p, err := Require(ctx)
	if err != nil {
		return reachMap{}, err
	}
	user, token := principalArgs(p)
	rows, err := a.q.Reach(ctx, accessdb.ReachParams{UserID: user, TokenID: token, MaxDepth: maxDepth.Load()})
	if err != nil {
		return reachMap{}, fmt.Errorf("list grants: %w", err)
	}
	m := reachMap{accounts: map[uuid.UUID]Level{}, domains: map[uuid.UUID]domainLevel{}}
	for _, r := range rows {
		if _, seen := m.accounts[r.AccountID]; !seen {
			m.order = append(m.order, r.AccountID)
			m.accounts[r.AccountID] = 0
		}
		if r.DomainID == nil {
			m.accounts[r.AccountID] = max(m.accounts[r.AccountID], Level(r.Level))
			continue
		}
		dl := m.domains[*r.DomainID]
		m.domains[*r.DomainID] = domainLevel{account: r.AccountID, level: max(dl.level, Level(r.Level))}
	}
	slices.SortFunc(m.order, func(x, y uuid.UUID) int { return strings.Compare(x.String(), y.String()) })
	return m, nil
}

// See allows a principal to see an account (any standing), else NOT_FOUND.
func (a *Authorizer) See(ctx context.Context, accountID uuid.UUID) error {
	s, ok, err := a.standingIn(ctx, InAccount(accountID))
	if err != nil {
		return err
	}
	if ok && s.suspended && !s.known() {
		return errSuspended
	}
	if !ok || !s.known() {
		return apperr.NotFoundf("account not found")
	}
	return nil
}

// AuthorizeWrite refuses every change to a read-only API token (FORBIDDEN);
// the GraphQL handler asks it before running any mutation, and every
// write outside GraphQL (an upload) asks it too.
func AuthorizeWrite(ctx context.Context) error {
	p, err := Require(ctx)
	if err != nil {
		return err
	}
	if p.ReadOnly {
		return &apperr.Error{Code: apperr.Forbidden, Message: "this API token is read-only"}
	}
	return nil
}

// Operator reports whether the context's principal is an instance
// operator: a signed-in user granted the role by `rampart admin
// grant-operator`. Operators see and steer every tenant's jobs (the job
// dashboard), so the role is never implied by owning an account, however
// high, and an API token (which acts as an account) never holds it.
func (a *Authorizer) Operator(ctx context.Context) (bool, error) {
	p, ok := FromContext(ctx)
	if !ok || p.IsAPIToken() || p.UserID == uuid.Nil {
		return false, nil
	}
	op, err := a.q.IsOperator(ctx, p.UserID)
	if err != nil {
		return false, fmt.Errorf("check operator: %w", err)
	}
	return op, nil
}

// AuthorizeOperator returns nil when the context's principal is an
// instance operator; otherwise UNAUTHENTICATED or FORBIDDEN (API tokens
// never are operators). what names the refused action for the message.
func (a *Authorizer) AuthorizeOperator(ctx context.Context, what string) error {
	if _, err := Require(ctx); err != nil {
		return err
	}
	op, err := a.Operator(ctx)
	if err != nil {
		return err
	}
	if !op {
		return &apperr.Error{Code: apperr.Forbidden, Message: "only an instance operator may " + what}
	}
	return nil
}

// ErrNoSuchUser is returned by [GrantOperator] and [RevokeOperator] for an
// e-mail address no user has.
var ErrNoSuchUser = errors.New("no user has this e-mail address")

// GrantOperator makes the user with the e-mail address an instance
// operator (granting twice is not an error) and returns the user's id. It
// is for `rampart admin`, which holds the database credentials; no API
// call grants the role.
func GrantOperator(ctx context.Context, db accessdb.DBTX, email string) (uuid.UUID, error) {
	q := accessdb.New(db)
	u, err := userByEmail(ctx, q, email)
	if err != nil {
		return uuid.Nil, err
	}
	if err := q.GrantOperator(ctx, u); err != nil {
		return uuid.Nil, fmt.Errorf("grant operator: %w", err)
	}
	return u, nil
}

// RevokeOperator takes the instance operator role from the user with the
// e-mail address; held reports whether the user held it. The user's
// dashboard sessions stop working at their next request, which checks the
// role again.
func RevokeOperator(ctx context.Context, db accessdb.DBTX, email string) (id uuid.UUID, held bool, err error) {
	q := accessdb.New(db)
	u, err := userByEmail(ctx, q, email)
	if err != nil {
		return uuid.Nil, false, err
	}
	n, err := q.RevokeOperator(ctx, u)
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("revoke operator: %w", err)
	}
	return u, n > 0, nil
}

func userByEmail(ctx context.Context, q *accessdb.Queries, email string) (uuid.UUID, error) {
	if email == "" {
		return uuid.Nil, errors.New("an e-mail address is required (-email)")
	}
	u, err := q.UserByEmail(ctx, email)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, fmt.Errorf("%w: %q", ErrNoSuchUser, email)
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("find user %q: %w", email, err)
	}
	return u.ID, nil
}
