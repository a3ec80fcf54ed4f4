package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/auth/authdb"
	"github.com/rampartmail/rampart/internal/mailout"
)

// A user manages their own password and sessions here; nobody else can,
// and an API token, which has neither, is FORBIDDEN.

// resetTokenPrefix marks a password reset token ("rpr_" and 256 bits).
const resetTokenPrefix = "rpr_"

var (
	// ErrWrongPassword is returned by [Service.ChangePassword] when the
	// current password given is wrong.
	ErrWrongPassword = errors.New("the current password is wrong")
	// ErrInvalidResetToken is returned by [Service.ResetPassword] for a
	// reset token that is malformed, unknown, used, expired or of a
	// disabled user alike.
	ErrInvalidResetToken = errors.New("the password reset token is invalid, used or expired; ask for a new one")
	// ErrNoMail is returned when an action needs to send mail and the
	// server has no mail relay configured.
	ErrNoMail = errors.New("this server sends no mail (its operator has not configured a mail relay)")
)

// Session is one of a user's sessions: a login and the refreshes since.
type Session struct {
	ID         uuid.UUID // the refresh token family
	StartedAt  time.Time // the login
	LastUsedAt time.Time // the login or the latest refresh
	// ExpiresAt is when it ends unless refreshed before, and never later
	// than the absolute lifetime allows.
	ExpiresAt time.Time
	// Client is the address and user agent of the login.
	Client string
	// Current is the session of the request.
	Current bool
}

// self returns the context's principal, which must be a signed-in user.
func self(ctx context.Context) (access.Principal, error) {
	p, err := access.Require(ctx)
	if err != nil {
		return access.Principal{}, err
	}
	if p.IsAPIToken() {
		return access.Principal{}, &apperr.Error{Code: apperr.Forbidden, Message: "an API token has no password or sessions; sign in as a user"}
	}
	return p, nil
}

// ListSessions returns the signed-in user's sessions that can still be
// used, most recently used first.
func (s *Service) ListSessions(ctx context.Context) ([]Session, error) {
	p, err := self(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	rows, err := s.q.ListSessions(ctx, authdb.ListSessionsParams{UserID: p.UserID, Now: now, StartedAfter: now.Add(-s.cfg.SessionLifetime)})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out := make([]Session, len(rows))
	for i, r := range rows {
		exp := r.ExpiresAt
		if end := r.StartedAt.Add(s.cfg.SessionLifetime); end.Before(exp) {
			exp = end
		}
		out[i] = Session{ID: r.FamilyID, StartedAt: r.StartedAt, LastUsedAt: r.LastUsedAt, ExpiresAt: exp,
			Client: r.Client, Current: r.FamilyID == p.SessionID}
	}
	return out, nil
}

// RevokeSession ends one of the signed-in user's sessions (the current one
// too, if named): its refresh and access tokens stop working at once. A
// session of another user is NOT_FOUND; revoking an ended session is not
// an error.
func (s *Service) RevokeSession(ctx context.Context, id uuid.UUID) error {
	p, err := self(ctx)
	if err != nil {
		return err
	}
	owner, err := s.q.FamilyOwner(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && owner != p.UserID) {
		return apperr.NotFoundf("session not found")
	}
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return s.revokeLocked(ctx, id)
}

// SignOutEverywhere ends every session of the signed-in user, or every
// one but the request's own when keepCurrent, and returns how many it
// ended.
func (s *Service) SignOutEverywhere(ctx context.Context, keepCurrent bool) (int, error) {
	p, err := self(ctx)
	if err != nil {
		return 0, err
	}
	keep := uuid.Nil
	if keepCurrent {
		keep = p.SessionID
	}
	return s.revokeUserSessions(ctx, p.UserID, keep)
}

// revokeUserSessions ends every session of the user except keep.
func (s *Service) revokeUserSessions(ctx context.Context, userID, keep uuid.UUID) (int, error) {
	families, err := s.q.UserFamilies(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	for _, f := range families {
		if f == keep {
			continue
		}
		if err := s.revokeLocked(ctx, f); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// revokeLocked revokes a family under its lock, in a transaction of its
// own, as Logout does.
func (s *Service) revokeLocked(ctx context.Context, familyID uuid.UUID) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.LockRefreshFamily(ctx, familyLockKey(familyID)); err != nil {
			return fmt.Errorf("lock session: %w", err)
		}
		return s.revokeFamily(ctx, q, familyID)
	})
}

// HashNewPassword checks a new password against the policy (an error
// matching [ErrWeakPassword]) and hashes it with the service's parameters,
// within the bound on concurrent hashing.
func (s *Service) HashNewPassword(ctx context.Context, pw string) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.hashSlots }()
	return s.cfg.Params.Hash(pw)
}

// StartSession signs in a user who has just proved themself another way
// (signed up, or accepted an invitation as a new user) and returns the
// session's tokens. It is for those flows only: it checks nothing.
func (s *Service) StartSession(ctx context.Context, userID uuid.UUID, from LoginClient) (Tokens, error) {
	return s.startSession(ctx, userID, from)
}

// ChangePassword sets the signed-in user's password, given the current
// one, and ends every other session of the user (the request's own goes
// on), returning how many. A wrong current password is [ErrWrongPassword]
// and counts as a failed login from the client, throttled like one (a
// [*RateLimitError]); a new password outside the policy matches
// [ErrWeakPassword]. Unused password reset tokens of the user end too.
func (s *Service) ChangePassword(ctx context.Context, current, next string, from LoginClient) (int, error) {
	p, err := self(ctx)
	if err != nil {
		return 0, err
	}
	if err := ValidatePassword(next); err != nil {
		return 0, err
	}
	u, err := s.q.GetUserForPassword(ctx, p.UserID)
	if err != nil {
		return 0, fmt.Errorf("change password: load user: %w", err)
	}
	now := s.now()
	a := attempt{purpose: PurposeLogin, email: u.Email, client: clientKey(from.Addr), path: pathUnknown}
	if a.id, err = s.q.InsertLoginFailure(ctx, authdb.InsertLoginFailureParams{
		Email: a.email, Client: a.client, CreatedAt: now, Purpose: string(PurposeLogin),
	}); err != nil {
		return 0, fmt.Errorf("change password: record attempt: %w", err)
	}
	retry, err := s.throttle(ctx, a, now)
	if err != nil {
		return 0, fmt.Errorf("change password: %w", err)
	}
	if retry > 0 {
		if err := s.q.DeleteLoginFailure(ctx, a.id); err != nil {
			return 0, fmt.Errorf("change password: forget throttled attempt: %w", err)
		}
		return 0, &RateLimitError{RetryAfter: retry}
	}
	ok := false
	if len(current) <= MaxPasswordLen {
		if ok, err = s.verifyPassword(ctx, u.PasswordHash, current); err != nil {
			return 0, fmt.Errorf("change password: verify: %w", err)
		}
	}
	if !ok {
		return 0, ErrWrongPassword
	}
	if err := s.forget(ctx, a); err != nil {
		s.log.WarnContext(ctx, "change password: clear failures", "user_id", u.ID, "err", err)
	}
	hash, err := s.HashNewPassword(ctx, next)
	if err != nil {
		return 0, err
	}
	if err := s.setPassword(ctx, u.ID, hash); err != nil {
		return 0, fmt.Errorf("change password: %w", err)
	}
	n, err := s.revokeUserSessions(ctx, u.ID, p.SessionID)
	if err != nil {
		return 0, fmt.Errorf("change password: %w", err)
	}
	s.log.InfoContext(ctx, "password changed", "user_id", u.ID, "sessions_ended", n)
	return n, nil
}

func (s *Service) setPassword(ctx context.Context, userID uuid.UUID, hash string) error {
	now := s.now()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.SetPasswordHash(ctx, authdb.SetPasswordHashParams{ID: userID, PasswordHash: hash}); err != nil {
			return fmt.Errorf("store password: %w", err)
		}
		if err := q.EndPasswordResets(ctx, authdb.EndPasswordResetsParams{UserID: userID, UsedAt: &now}); err != nil {
			return fmt.Errorf("end reset tokens: %w", err)
		}
		return nil
	})
}

// RequestPasswordReset mails a password reset token, valid for
// [Config].ResetTTL and usable once, to the address if a user (not
// disabled) has it; any earlier unused token of the user ends. The answer
// is the same whether or not the address has a user: nil, or a
// [*RateLimitError] when the client or address asked too often (counted
// for every address alike, see [Service.Admit]). The mail is sent after
// the answer, so its delivery does not time the answer either; a failure
// to send is logged. [ErrNoMail] when the server has no mail relay.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, from LoginClient) error {
	if s.cfg.Mail == nil {
		return ErrNoMail
	}
	if err := s.Admit(ctx, PurposeReset, email, from.Addr); err != nil {
		return err
	}
	email, valid := normalizeEmail(email)
	if !valid {
		return nil
	}
	u, err := s.q.GetUserForLogin(ctx, email)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("password reset: load user: %w", err)
	case u.DisabledAt != nil:
		return nil
	}
	secret, hash := newSecret(resetTokenPrefix)
	now := s.now()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.EndPasswordResets(ctx, authdb.EndPasswordResetsParams{UserID: u.ID, UsedAt: &now}); err != nil {
			return err
		}
		return q.InsertPasswordReset(ctx, authdb.InsertPasswordResetParams{UserID: u.ID, TokenHash: hash, CreatedAt: now, ExpiresAt: now.Add(s.cfg.ResetTTL)})
	})
	if err != nil {
		return fmt.Errorf("password reset: store token: %w", err)
	}
	msg := mailout.Message{To: email, Subject: "Reset your Rampart password", Body: resetMail(email, s.cfg.LinkBase, secret, s.cfg.ResetTTL)}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*mailout.DefaultTimeout)
		defer cancel()
		if err := s.cfg.Mail.Send(ctx, msg); err != nil {
			s.log.ErrorContext(ctx, "password reset mail not sent", "user_id", u.ID, "err", err)
		}
	}()
	return nil
}

func resetMail(email, base, token string, ttl time.Duration) string {
	link := base + "/reset-password?token=" + url.QueryEscape(token)
	return fmt.Sprintf(`Someone, hopefully you, asked to reset the password of the Rampart user %s.

To choose a new password, open this link within %v:

  %s

or call the API's resetPassword mutation with the token:

  %s

The link works once. If you did not ask for it, ignore this mail: your
password stays as it is.
`, email, ttl, link, token)
}

// ResetPassword sets a new password with a reset token from
// [Service.RequestPasswordReset]. The token works once, within its
// lifetime; every session of the user ends, and every other unused reset
// token with it. A bad token of any kind is [ErrInvalidResetToken]; a
// password outside the policy matches [ErrWeakPassword] and leaves the
// token usable.
func (s *Service) ResetPassword(ctx context.Context, token, next string) error {
	hash, ok := parseSecret(token, resetTokenPrefix)
	if !ok {
		return ErrInvalidResetToken
	}
	if err := ValidatePassword(next); err != nil {
		return err
	}
	valid := func(r authdb.GetPasswordResetForUpdateRow) bool {
		return subtle.ConstantTimeCompare(r.TokenHash, hash) == 1 && r.UsedAt == nil &&
			s.now().Before(r.ExpiresAt) && r.UserDisabledAt == nil
	}
	// A first look, without locks, spares the hashing for a bad token.
	r, err := s.q.GetPasswordResetForUpdate(ctx, hash)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !valid(r)) {
		return ErrInvalidResetToken
	}
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	newHash, err := s.HashNewPassword(ctx, next)
	if err != nil {
		return err
	}
	var userID uuid.UUID
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		r, err := q.GetPasswordResetForUpdate(ctx, hash)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !valid(r)) {
			return ErrInvalidResetToken // used by a racing request
		}
		if err != nil {
			return err
		}
		userID = r.UserID
		now := s.now()
		if err := q.SetPasswordHash(ctx, authdb.SetPasswordHashParams{ID: r.UserID, PasswordHash: newHash}); err != nil {
			return err
		}
		return q.EndPasswordResets(ctx, authdb.EndPasswordResetsParams{UserID: r.UserID, UsedAt: &now})
	})
	if errors.Is(err, ErrInvalidResetToken) {
		return err
	}
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	n, err := s.revokeUserSessions(ctx, userID, uuid.Nil)
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	s.log.InfoContext(ctx, "password reset", "user_id", userID, "sessions_ended", n)
	return nil
}
