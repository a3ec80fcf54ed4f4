package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/auth/authdb"
)

// A job dashboard session is what a browser holds (in an HttpOnly cookie)
// to use the River UI: an opaque id ("rds_" and 256 random bits, stored
// only as SHA-256) that expires after [DashboardSessionTTL]. It is never a
// bearer token: a stolen cookie opens the dashboard and nothing else, and a
// bearer token presented as the cookie is refused. It belongs to the login
// session it was started from, so logging out (or refresh token reuse)
// ends it at once, as does disabling the user.

const dashboardSessionPrefix = "rds_"

// DashboardSessionTTL is how long a job dashboard session lasts.
const DashboardSessionTTL = time.Hour

// ErrNotOperator is returned by [Service.StartDashboardSession] when the
// caller is not an instance operator (an API token never is).
var ErrNotOperator = errors.New("the job dashboard is for instance operators")

// DashboardSession is a started job dashboard session.
type DashboardSession struct {
	// ID is the secret the browser presents; it is shown once.
	ID        string
	ExpiresAt time.Time
}

// StartDashboardSession starts a job dashboard session for the context's
// principal, which must be a signed-in instance operator; otherwise
// [ErrUnauthenticated] (no principal) or [ErrNotOperator]. Expired sessions
// of every user are deleted on the way.
func (s *Service) StartDashboardSession(ctx context.Context) (DashboardSession, error) {
	p, ok := access.FromContext(ctx)
	if !ok {
		return DashboardSession{}, unauthenticatedf("no principal")
	}
	op, err := access.New(s.pool).Operator(ctx)
	if err != nil {
		return DashboardSession{}, fmt.Errorf("start dashboard session: %w", err)
	}
	if !op || p.SessionID == uuid.Nil {
		return DashboardSession{}, ErrNotOperator
	}
	now := s.now()
	if _, err := s.q.DeleteExpiredDashboardSessions(ctx, now); err != nil {
		return DashboardSession{}, fmt.Errorf("prune dashboard sessions: %w", err)
	}
	secret, hash := newSecret(dashboardSessionPrefix)
	exp := now.Add(DashboardSessionTTL)
	err = s.q.InsertDashboardSession(ctx, authdb.InsertDashboardSessionParams{
		IDHash: hash, UserID: p.UserID, FamilyID: p.SessionID, CreatedAt: now, ExpiresAt: exp,
	})
	if err != nil {
		return DashboardSession{}, fmt.Errorf("store dashboard session: %w", err)
	}
	return DashboardSession{ID: secret, ExpiresAt: exp}, nil
}

// AuthenticateDashboard returns the identity a job dashboard session id
// proves. Anything else (a bearer token, an unknown, expired or ended
// session) yields an error matching [ErrUnauthenticated]. Whether the user
// is still an operator is for the caller to ask, on every request.
func (s *Service) AuthenticateDashboard(ctx context.Context, id string) (Identity, error) {
	hash, ok := parseSecret(id, dashboardSessionPrefix)
	if !ok {
		return Identity{}, unauthenticatedf("malformed dashboard session")
	}
	row, err := s.q.GetDashboardSession(ctx, hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Identity{}, unauthenticatedf("unknown dashboard session")
	case err != nil:
		return Identity{}, fmt.Errorf("authenticate dashboard session: %w", err)
	case !s.now().Before(row.ExpiresAt):
		return Identity{}, unauthenticatedf("dashboard session expired")
	case row.FamilyRevoked:
		return Identity{}, unauthenticatedf("login session revoked")
	case row.UserDisabledAt != nil:
		return Identity{}, unauthenticatedf("user disabled")
	}
	return Identity{UserID: row.UserID, SessionID: row.FamilyID}, nil
}

// EndDashboardSession deletes a job dashboard session; an unknown or
// malformed id is not an error (there is nothing to end).
func (s *Service) EndDashboardSession(ctx context.Context, id string) error {
	hash, ok := parseSecret(id, dashboardSessionPrefix)
	if !ok {
		return nil
	}
	if err := s.q.DeleteDashboardSession(ctx, hash); err != nil {
		return fmt.Errorf("end dashboard session: %w", err)
	}
	return nil
}
