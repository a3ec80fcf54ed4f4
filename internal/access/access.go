// Package access decides who may do what, in which account.
//
// Every exported method of a domain service that touches tenant data opens
// with [Authorizer.Authorize] (or, to list, [Authorizer.Accounts]), which
// reads the [Principal] from the context: resolvers and HTTP handlers
// translate, they never decide. The question is always the same shape, a
// [Scope] (an account, and the domain within it when the operation is on
// one) and a [Permission], so that per-domain grants (teams, scoped tokens)
// change [standing.allows] and the query behind it, not the callers. The
// rules:
//
//   - An account's owners hold every [Permission] in it; members hold none
//     until teams arrive.
//   - The owners of a parent (MSP) account act as owners in its child
//     accounts.
//   - An API token acts as an owner of the account it is scoped to and of
//     that account's children.
//   - A principal with no standing in an account gets [apperr.ErrNotFound]
//     for everything in it, never FORBIDDEN, so the existence of another
//     account's objects does not leak. A member lacking a permission in its
//     own account gets FORBIDDEN.
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
	// the request; the token acts only in TokenAccountID and its children.
	APITokenID     uuid.UUID
	TokenAccountID uuid.UUID
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
	role        string // "owner", "member" or ""
	parentOwner bool
	tokenScope  bool
}

func (s standing) known() bool { return s.role != "" || s.parentOwner || s.tokenScope }

// allows is the one place that maps a standing to permissions.
func (s standing) allows(Permission) bool {
	return s.role == RoleOwner || s.parentOwner || s.tokenScope
}

func principalArgs(p Principal) (user, token uuid.UUID) {
	if p.IsAPIToken() {
		return uuid.Nil, p.TokenAccountID
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
	row, err := a.q.Grant(ctx, accessdb.GrantParams{UserID: user, TokenAccount: token, AccountID: sc.Account, DomainID: domainID})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return standing{}, false, fmt.Errorf("authorize: %w", err)
	default:
		s, ok = standing{role: row.Role, parentOwner: row.ParentOwner, tokenScope: row.TokenScope}, true
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
// objects are invisible; or the domain is not the account's) or FORBIDDEN
// (a member without the permission).
func (a *Authorizer) Authorize(ctx context.Context, sc Scope, perm Permission) error {
	s, ok, err := a.standingIn(ctx, sc)
	switch {
	case err != nil:
		return err
	case ok && s.allows(perm):
		return nil
	case ok && s.known():
		return &apperr.Error{Code: apperr.Forbidden, Message: "you do not have permission to " + perm.String() + " in this account"}
	default:
		return apperr.NotFoundf("not found")
	}
}

// Accounts lists the accounts in which the context's principal holds perm.
func (a *Authorizer) Accounts(ctx context.Context, perm Permission) ([]uuid.UUID, error) {
	return a.accounts(ctx, func(s standing) bool { return s.allows(perm) })
}

// Visible lists the accounts in which the context's principal has any
// standing (it may see the account itself, if nothing in it).
func (a *Authorizer) Visible(ctx context.Context) ([]uuid.UUID, error) {
	return a.accounts(ctx, standing.known)
}

func (a *Authorizer) accounts(ctx context.Context, keep func(standing) bool) ([]uuid.UUID, error) {
	p, err := Require(ctx)
	if err != nil {
		return nil, err
	}
	user, token := principalArgs(p)
	rows, err := a.q.Grants(ctx, accessdb.GrantsParams{UserID: user, TokenAccount: token})
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	ids := make([]uuid.UUID, 0, len(rows))
	for _, r := range rows {
		if keep(standing{role: r.Role, parentOwner: r.ParentOwner, tokenScope: r.TokenScope}) {
			ids = append(ids, r.ID)
		}
	}
	return ids, nil
}

// See allows a principal to see an account (any standing), else NOT_FOUND.
func (a *Authorizer) See(ctx context.Context, accountID uuid.UUID) error {
	s, ok, err := a.standingIn(ctx, InAccount(accountID))
	if err != nil {
		return err
	}
	if !ok || !s.known() {
		return apperr.NotFoundf("account not found")
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
