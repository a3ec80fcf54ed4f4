package graph

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/request"
)

// loginClient is the request's client as the auth service records it.
func loginClient(ctx context.Context) auth.LoginClient {
	info := request.FromContext(ctx)
	return auth.LoginClient{Addr: info.Client, UserAgent: info.UserAgent}
}

// peopleError maps the auth package's errors of the people flows to API
// errors, and leaves the rest to authError.
func peopleError(err error) error {
	switch {
	case errors.Is(err, auth.ErrWeakPassword):
		return apperr.Invalid("password", "%v", err)
	case errors.Is(err, auth.ErrWrongPassword):
		return apperr.Invalid("currentPassword", "%v", err)
	case errors.Is(err, auth.ErrInvalidResetToken):
		return apperr.Invalid("token", "%v", err)
	case errors.Is(err, auth.ErrNoMail):
		return &apperr.Error{Code: apperr.Forbidden, Message: err.Error(), Err: err}
	}
	var rl *auth.RateLimitError
	if errors.As(err, &rl) {
		return &apperr.Error{Code: apperr.RateLimited, Message: "too many attempts; try again later", RetryAfter: rl.RetryAfter, Err: err}
	}
	return authError(err)
}

func roleOf(r model.Role) string { return strings.ToLower(string(r)) }

// hasher hashes a new password with the auth service's parameters.
func (r *Resolver) hasher(ctx context.Context, pw string) func() (string, error) {
	return func() (string, error) {
		h, err := r.AuthSvc.HashNewPassword(ctx, pw)
		if err != nil {
			return "", peopleError(err)
		}
		return h, nil
	}
}

// newSession signs in a user just created (sign-up, an accepted
// invitation) and returns the payload login would.
func (r *Resolver) newSession(ctx context.Context, userID uuid.UUID) (*model.AuthPayload, error) {
	t, err := r.AuthSvc.StartSession(ctx, userID, loginClient(ctx))
	if err != nil {
		return nil, err
	}
	return r.authPayload(ctx, t)
}

func (r *Resolver) signUp(ctx context.Context, email, password, name, accountName string) (*model.AuthPayload, error) {
	admit := func() error {
		if err := r.AuthSvc.Admit(ctx, auth.PurposeSignUp, email, request.FromContext(ctx).Client); err != nil {
			return peopleError(err)
		}
		return nil
	}
	_, u, err := r.AccountSvc.SignUp(ctx, email, accountName, account.NewUser{Name: name, Hash: r.hasher(ctx, password)}, admit)
	if err != nil {
		return nil, err
	}
	return r.newSession(ctx, u.ID)
}

func (r *Resolver) acceptInvitation(ctx context.Context, token string, name, password *string) (*model.AcceptInvitationPayload, error) {
	var nu *account.NewUser
	if _, signedIn := access.FromContext(ctx); !signedIn {
		if name == nil || password == nil {
			return nil, apperr.Invalid("password", "sign in to accept as an existing user, or give a name and password to create one")
		}
		nu = &account.NewUser{Name: *name, Hash: r.hasher(ctx, *password)}
	}
	a, err := r.AccountSvc.AcceptInvitation(ctx, token, nu)
	if err != nil {
		return nil, err
	}
	out := &model.AcceptInvitationPayload{AccountID: a.AccountID.String(), AccountName: a.AccountName, Role: model.Role(strings.ToUpper(a.Role))}
	if a.NewUser {
		if out.Session, err = r.newSession(ctx, a.UserID); err != nil {
			return nil, err
		}
		out.User = out.Session.User
		return out, nil
	}
	u, err := r.AccountSvc.User(ctx, a.UserID)
	if err != nil {
		return nil, err
	}
	out.User = &u
	return out, nil
}

// invitationArgs parses the account and invitation ids.
func (r *Resolver) invitationArgs(ctx context.Context, accountID *string, id string) (uuid.UUID, uuid.UUID, error) {
	acct, err := r.accountID(ctx, accountID)
	if err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	inv, err := parseID(id, "invitation")
	return acct, inv, err
}

// memberArgs parses the account and user ids.
func (r *Resolver) memberArgs(ctx context.Context, accountID *string, userID string) (uuid.UUID, uuid.UUID, error) {
	acct, err := r.accountID(ctx, accountID)
	if err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	u, err := parseID(userID, "member")
	return acct, u, err
}
