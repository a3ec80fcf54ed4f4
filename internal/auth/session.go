package auth

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/auth/authdb"
)

// A session is a family of refresh tokens (refresh_tokens.family_id)
// started by one login. Each refresh marks the presented token used and adds
// a new one to the family. The family is revoked as a whole (every row gets
// revoked_at) by logout, by reuse of a used token and by refreshing for a
// disabled user; each of these runs under an advisory lock on the family, so
// a revocation cannot miss a token being added at the same moment, and "this
// row is revoked" always means "this session is revoked".

// startSession creates a new refresh token family for the user and returns
// the first tokens.
func (s *Service) startSession(ctx context.Context, userID uuid.UUID, from LoginClient) (Tokens, error) {
	tokens, err := s.issue(ctx, s.q, userID, uuid.New(), s.now(), from.describe())
	if err != nil {
		return Tokens{}, fmt.Errorf("start session: %w", err)
	}
	return tokens, nil
}

// issue stores a new refresh token in the family and signs the access token
// that goes with it (its jti is the refresh token's id). started and client
// are the session's, carried by each of its tokens: the refresh token
// expires RefreshTTL after its issue, but never after the session's
// absolute end, SessionLifetime after it started.
func (s *Service) issue(ctx context.Context, q *authdb.Queries, userID, familyID uuid.UUID, started time.Time, client string) (Tokens, error) {
	now := s.now()
	id := uuid.New()
	access, accessExp, err := s.access.sign(userID, familyID, id)
	if err != nil {
		return Tokens{}, err
	}
	secret, hash := newSecret(refreshTokenPrefix)
	refreshExp := now.Add(s.cfg.RefreshTTL)
	if end := started.Add(s.cfg.SessionLifetime); end.Before(refreshExp) {
		refreshExp = end
	}
	err = q.InsertRefreshToken(ctx, authdb.InsertRefreshTokenParams{
		ID:               id,
		FamilyID:         familyID,
		UserID:           userID,
		TokenHash:        hash,
		CreatedAt:        now,
		ExpiresAt:        refreshExp,
		SessionStartedAt: started,
		Client:           client,
	})
	if err != nil {
		return Tokens{}, fmt.Errorf("store refresh token: %w", err)
	}
	return Tokens{AccessToken: access, AccessExpiresAt: accessExp, RefreshToken: secret, RefreshExpiresAt: refreshExp}, nil
}

// Refresh exchanges a refresh token for new tokens in the same session; the
// presented token can then not be used again.
//
// An unknown, expired or revoked token yields [ErrUnauthenticated]. So does
// a token that was already used, and then the whole session is revoked,
// including the newest token and the access tokens issued with any of them:
// either the client or an attacker holds a copy, and we cannot tell which.
// Two refreshes racing with the same token (two browser tabs) trip this
// too; clients must serialise refreshing. A disabled user's session is
// revoked as well.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	hash, ok := parseSecret(refreshToken, refreshTokenPrefix)
	if !ok {
		return Tokens{}, unauthenticatedf("malformed refresh token")
	}
	var (
		tokens Tokens
		refuse error // the answer when the transaction commits but grants nothing
	)
	err := s.inFamily(ctx, hash, func(q *authdb.Queries, familyID uuid.UUID) error {
		rt, err := q.GetRefreshTokenForUpdate(ctx, hash)
		if errors.Is(err, pgx.ErrNoRows) { // deleted with its user meanwhile
			refuse = unauthenticatedf("unknown refresh token")
			return nil
		}
		if err != nil {
			return fmt.Errorf("load refresh token: %w", err)
		}
		now := s.now()
		switch {
		case rt.RevokedAt != nil:
			refuse = unauthenticatedf("session revoked")
			return nil
		case rt.UsedAt != nil:
			if err := s.revokeFamily(ctx, q, familyID); err != nil {
				return err
			}
			s.log.WarnContext(ctx, "refresh token reused; session revoked",
				"user_id", rt.UserID, "session_id", familyID, "refresh_token_id", rt.ID, "used_at", *rt.UsedAt)
			refuse = unauthenticatedf("refresh token reused; session revoked")
			return nil
		case !now.Before(rt.ExpiresAt):
			refuse = unauthenticatedf("refresh token expired")
			return nil
		case !now.Before(rt.SessionStartedAt.Add(s.cfg.SessionLifetime)):
			refuse = unauthenticatedf("session lifetime over")
			return nil
		case rt.UserDisabledAt != nil:
			if err := s.revokeFamily(ctx, q, familyID); err != nil {
				return err
			}
			refuse = unauthenticatedf("user disabled")
			return nil
		}
		if err := q.MarkRefreshTokenUsed(ctx, authdb.MarkRefreshTokenUsedParams{ID: rt.ID, UsedAt: &now}); err != nil {
			return fmt.Errorf("mark refresh token used: %w", err)
		}
		tokens, err = s.issue(ctx, q, rt.UserID, familyID, rt.SessionStartedAt, rt.Client)
		return err
	})
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return Tokens{}, err
	case err != nil:
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	case refuse != nil:
		return Tokens{}, refuse
	}
	return tokens, nil
}

// Logout ends the session a refresh token belongs to: every refresh token of
// the session and every access token issued with one stop working at once.
// Any token of the session will do, even a used or expired one; logging out
// of an ended session is not an error. An unknown token yields
// [ErrUnauthenticated].
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	hash, ok := parseSecret(refreshToken, refreshTokenPrefix)
	if !ok {
		return unauthenticatedf("malformed refresh token")
	}
	err := s.inFamily(ctx, hash, func(q *authdb.Queries, familyID uuid.UUID) error {
		return s.revokeFamily(ctx, q, familyID)
	})
	if err != nil && !errors.Is(err, ErrUnauthenticated) {
		return fmt.Errorf("logout: %w", err)
	}
	return err
}

// inFamily runs fn in a transaction holding the lock of the family of the
// refresh token with the hash. An unknown token is ErrUnauthenticated.
func (s *Service) inFamily(ctx context.Context, hash []byte, fn func(q *authdb.Queries, familyID uuid.UUID) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		familyID, err := q.RefreshFamilyByHash(ctx, hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return unauthenticatedf("unknown refresh token")
		}
		if err != nil {
			return fmt.Errorf("find session: %w", err)
		}
		// The family lock comes before any row lock (fn's SELECT ... FOR
		// UPDATE), in every transaction, so they cannot deadlock.
		if err := q.LockRefreshFamily(ctx, familyLockKey(familyID)); err != nil {
			return fmt.Errorf("lock session: %w", err)
		}
		return fn(q, familyID)
	})
}

func (s *Service) revokeFamily(ctx context.Context, q *authdb.Queries, familyID uuid.UUID) error {
	now := s.now()
	if _, err := q.RevokeRefreshFamily(ctx, authdb.RevokeRefreshFamilyParams{FamilyID: familyID, RevokedAt: &now}); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// familyLockKey is the advisory lock key of a refresh token family: the
// first 8 bytes of its random id. A collision with another lock user only
// costs a wait.
func familyLockKey(familyID uuid.UUID) int64 {
	return int64(binary.BigEndian.Uint64(familyID[:8])) //nolint:gosec // G115: the bits of the random family id, reinterpreted as a lock key
}
