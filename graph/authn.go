package graph

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/auth"
)

var errBadToken = &apperr.Error{Code: apperr.Unauthenticated, Message: "invalid or expired token"}

// Authenticate turns a bearer credential into the request's principal; a
// credential that proves nothing is an UNAUTHENTICATED apperr.Error. The
// HTTP routes outside GraphQL (upload, job dashboard) use it too.
func (r *Resolver) Authenticate(ctx context.Context, bearer string) (access.Principal, error) {
	id, err := r.AuthSvc.Authenticate(ctx, bearer)
	if err != nil {
		return access.Principal{}, authError(err)
	}
	return id.Principal(), nil
}

// AuthenticateDashboard turns a job dashboard session id (the cookie) into
// the request's principal; anything else, a bearer token included, is
// UNAUTHENTICATED.
func (r *Resolver) AuthenticateDashboard(ctx context.Context, id string) (access.Principal, error) {
	ident, err := r.AuthSvc.AuthenticateDashboard(ctx, id)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			return access.Principal{}, &apperr.Error{Code: apperr.Unauthenticated, Message: "invalid or expired dashboard session", Err: err}
		}
		return access.Principal{}, err
	}
	return ident.Principal(), nil
}

// StartDashboardSession starts a job dashboard session for the context's
// principal (an instance operator; FORBIDDEN otherwise).
func (r *Resolver) StartDashboardSession(ctx context.Context) (string, time.Time, error) {
	s, err := r.AuthSvc.StartDashboardSession(ctx)
	if err != nil {
		return "", time.Time{}, authError(err)
	}
	return s.ID, s.ExpiresAt, nil
}

// authError maps the auth package's errors to API errors.
func authError(err error) error {
	var rl *auth.RateLimitError
	switch {
	case errors.As(err, &rl):
		return &apperr.Error{Code: apperr.RateLimited, Message: "too many failed logins; try again later", RetryAfter: rl.RetryAfter, Err: err}
	case errors.Is(err, auth.ErrInvalidCredentials):
		return &apperr.Error{Code: apperr.Unauthenticated, Message: "invalid e-mail address or password", Err: err}
	case errors.Is(err, auth.ErrUnauthenticated):
		return &apperr.Error{Code: apperr.Unauthenticated, Message: errBadToken.Message, Err: err}
	case errors.Is(err, auth.ErrInvalidTokenName):
		return apperr.Invalid("name", "%v", err)
	case errors.Is(err, auth.ErrNotOperator):
		return &apperr.Error{Code: apperr.Forbidden, Message: "the job dashboard is for instance operators", Err: err}
	case errors.Is(err, auth.ErrNotFound):
		return apperr.NotFoundf("not found")
	}
	return err
}

func (r *Resolver) authPayload(ctx context.Context, t auth.Tokens) (*model.AuthPayload, error) {
	id, err := r.AuthSvc.Authenticate(ctx, t.AccessToken)
	if err != nil {
		return nil, fmt.Errorf("read back new access token: %w", err)
	}
	// The new session's own principal reads its user.
	u, err := r.AccountSvc.User(access.NewContext(ctx, id.Principal()), id.UserID)
	if err != nil {
		return nil, err
	}
	p := &model.AuthPayload{
		AccessToken: t.AccessToken, AccessTokenExpiresAt: t.AccessExpiresAt,
		RefreshToken: t.RefreshToken, RefreshTokenExpiresAt: t.RefreshExpiresAt, User: &u,
	}
	if t.KnownClient != "" {
		p.KnownClientToken, p.KnownClientTokenExpiresAt = &t.KnownClient, &t.KnownClientExpiresAt
	}
	return p, nil
}

func (r *Resolver) login(ctx context.Context, email, password string, knownClient *string) (*model.AuthPayload, error) {
	from := loginClient(ctx)
	if knownClient != nil {
		from.KnownClient = *knownClient
	}
	t, err := r.AuthSvc.Login(ctx, email, password, from)
	if err != nil {
		return nil, authError(err)
	}
	return r.authPayload(ctx, t)
}

func (r *Resolver) refresh(ctx context.Context, token string) (*model.AuthPayload, error) {
	t, err := r.AuthSvc.Refresh(ctx, token)
	if err != nil {
		return nil, authError(err)
	}
	return r.authPayload(ctx, t)
}

// tokenAccount resolves the account of an API-token operation (the named
// one, or the principal's default); auth.Service decides whether the
// principal may manage its tokens.
func (r *Resolver) tokenAccount(ctx context.Context, accountID *string) (uuid.UUID, error) {
	return r.accountID(ctx, accountID)
}

func (r *Resolver) findToken(ctx context.Context, accountID, id uuid.UUID) (*auth.APIToken, error) {
	list, err := r.AuthSvc.ListAPITokens(ctx, accountID)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i], nil
		}
	}
	return nil, apperr.NotFoundf("API token not found")
}
