// Package account manages accounts and their users: the tenants of Rampart.
//
// An account has owners and members; an MSP account is the parent of its
// customer accounts. Reads authorise through [access.Authorizer]; creating an
// owner is an operator action (`rampart admin create-owner`, the demo seed)
// and takes no principal.
package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account/accountdb"
	"github.com/rampartmail/rampart/internal/apperr"
)

// Account is a tenant.
type Account struct {
	ID        uuid.UUID
	Name      string
	ParentID  *uuid.UUID
	CreatedAt time.Time
	// SuspendedAt is when the account above suspended it; nil: active.
	SuspendedAt *time.Time
}

// User is a person who signs in.
type User struct {
	ID        uuid.UUID
	Email     string
	Name      string
	CreatedAt time.Time
}

// Member is a user's membership of an account.
type Member struct {
	User User
	Role string
}

// Service reads and writes accounts.
type Service struct {
	pool  *pgxpool.Pool
	authz *access.Authorizer
	cfg   Config
}

type accountPool = *pgxpool.Pool

// NewService returns a Service.
func NewService(pool *pgxpool.Pool) *Service {
	return &Service{pool: pool, authz: access.New(pool)}
}

func fromRow(r accountdb.Account) Account {
	return Account{ID: r.ID, Name: r.Name, ParentID: r.ParentID, CreatedAt: r.CreatedAt, SuspendedAt: r.SuspendedAt}
}

// Get returns an account the principal may see.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Account, error) {
	if err := s.authz.See(ctx, id); err != nil {
		return Account{}, err
	}
	row, err := accountdb.New(s.pool).AccountByID(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, apperr.NotFoundf("account not found")
	}
	if err != nil {
		return Account{}, fmt.Errorf("load account: %w", err)
	}
	return fromRow(row), nil
}

// List returns every account the principal may see, by name.
func (s *Service) List(ctx context.Context) ([]Account, error) {
	ids, err := s.authz.Visible(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := accountdb.New(s.pool).AccountsByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]Account, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

// Default returns the account a request acts in when it names none: the API
// token's account, or the user's only account. A user with several accounts
// must name one.
func (s *Service) Default(ctx context.Context) (Account, error) {
	p, err := access.Require(ctx)
	if err != nil {
		return Account{}, err
	}
	if p.IsAPIToken() {
		return s.Get(ctx, p.TokenAccountID)
	}
	list, err := s.List(ctx)
	if err != nil {
		return Account{}, err
	}
	switch len(list) {
	case 0:
		return Account{}, apperr.NotFoundf("you belong to no account")
	case 1:
		return list[0], nil
	}
	return Account{}, apperr.Invalid("accountId", "you belong to %d accounts: name one with accountId", len(list))
}

// User returns a user by id: today only the signed-in user themself
// (anyone else, and an API token, gets NOT_FOUND).
func (s *Service) User(ctx context.Context, id uuid.UUID) (User, error) {
	p, err := access.Require(ctx)
	if err != nil {
		return User{}, err
	}
	if p.IsAPIToken() || p.UserID != id {
		return User{}, apperr.NotFoundf("user not found")
	}
	r, err := accountdb.New(s.pool).UserByID(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, apperr.NotFoundf("user not found")
	}
	if err != nil {
		return User{}, fmt.Errorf("load user: %w", err)
	}
	return User{ID: r.ID, Email: r.Email, Name: r.Name, CreatedAt: r.CreatedAt}, nil
}

// UserExists reports whether a user has the e-mail address. It is an
// operator action (the demo seed), with no principal: no request reaches
// it.
func (s *Service) UserExists(ctx context.Context, email string) (bool, error) {
	_, err := accountdb.New(s.pool).UserIDByEmail(ctx, strings.ToLower(strings.TrimSpace(email)))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up user: %w", err)
	}
	return true, nil
}

// Members lists an account's users; it needs the manage-users permission.
func (s *Service) Members(ctx context.Context, accountID uuid.UUID) ([]Member, error) {
	if err := s.authz.Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
		return nil, err
	}
	rows, err := accountdb.New(s.pool).MembersOfAccount(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	out := make([]Member, len(rows))
	for i, r := range rows {
		out[i] = Member{User: User{ID: r.ID, Email: r.Email, Name: r.Name}, Role: r.Role}
	}
	return out, nil
}

// NewOwner describes an owner created by an operator.
type NewOwner struct {
	Email        string
	Name         string
	PasswordHash string
	AccountName  string
	// ParentID makes the new account a customer of an MSP account.
	ParentID *uuid.UUID
}

// CreateOwner creates an account and its first owner, a new user. A parent
// that would nest the account deeper than [access.MaxDepth] is refused
// (BAD_USER_INPUT). An e-mail
// address that already has a user is a CONFLICT and nothing is created:
// the password given with it would otherwise be silently ignored. It is an
// operator action: no principal.
func (s *Service) CreateOwner(ctx context.Context, o NewOwner) (Account, User, error) {
	email := strings.ToLower(strings.TrimSpace(o.Email))
	if !strings.Contains(email, "@") {
		return Account{}, User{}, apperr.Invalid("email", "%q is not an e-mail address", o.Email)
	}
	if strings.TrimSpace(o.AccountName) == "" {
		return Account{}, User{}, apperr.Invalid("accountName", "an account name is required")
	}
	var acct Account
	var user User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := access.CheckParent(ctx, tx, o.ParentID); err != nil {
			return err
		}
		q := accountdb.New(tx)
		a, err := q.CreateAccount(ctx, accountdb.CreateAccountParams{Name: strings.TrimSpace(o.AccountName), ParentID: o.ParentID})
		if err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		acct = fromRow(a)
		u, err := q.CreateUser(ctx, accountdb.CreateUserParams{Email: email, Name: o.Name, PasswordHash: o.PasswordHash})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Taking the existing user would silently drop the password
			// given for it; the account is not created either.
			return &apperr.Error{Code: apperr.Conflict, Field: "email",
				Message: fmt.Sprintf("a user with the e-mail address %s already exists (nothing was created and the password was not changed)", email)}
		case err != nil:
			return fmt.Errorf("create user: %w", err)
		default:
			user = User{ID: u.ID, Email: u.Email, Name: u.Name, CreatedAt: u.CreatedAt}
		}
		return q.AddMember(ctx, accountdb.AddMemberParams{AccountID: acct.ID, UserID: user.ID, Role: RoleOwner})
	})
	return acct, user, err
}
