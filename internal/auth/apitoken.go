package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/auth/authdb"
)

const (
	// apiTokenHintLen is how much of the secret (after the prefix) is kept
	// in clear to tell tokens apart: 48 of 256 bits, leaving 208 unknown.
	apiTokenHintLen = 8
	// apiTokenTouchInterval is the resolution of last_used_at: at most one
	// write per token per interval, not one per request.
	apiTokenTouchInterval = time.Minute
	maxAPITokenNameLen    = 200
)

// APIToken describes an API token; the secret itself is never stored.
type APIToken struct {
	ID        uuid.UUID
	AccountID uuid.UUID  // the one account the token acts as
	CreatedBy *uuid.UUID // nil once that user is deleted
	Name      string
	// Hint is the first characters of the secret after "rmp_", for display
	// as "rmp_<hint>…".
	Hint      string
	CreatedAt time.Time
	// LastUsedAt is when the token last authenticated, to within a minute.
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// TokenPermission is what a principal must hold in an account to see,
// create and revoke its API tokens: a token acts as the account, so making
// one is managing who may act there.
const TokenPermission = access.ManageUsers

// authorizeTokens decides API-token management in the account for the
// context's principal (NOT_FOUND without standing, FORBIDDEN without the
// permission) and returns the principal.
func (s *Service) authorizeTokens(ctx context.Context, accountID uuid.UUID) (access.Principal, error) {
	if err := access.New(s.pool).Authorize(ctx, access.InAccount(accountID), TokenPermission); err != nil {
		return access.Principal{}, err
	}
	p, _ := access.FromContext(ctx)
	return p, nil
}

// CreateAPIToken creates, for the context's principal, an API token for
// automation that acts as the account accountID (see [Identity]) and
// returns its secret, "rmp_" and 43 base64url characters (256 random bits).
// The secret is returned only here; only its SHA-256 hash is stored. The
// signed-in user who made it is recorded for the audit trail (none when an
// API token made it). name is trimmed and must be 1 to 200 characters
// without control characters ([ErrInvalidTokenName]). The principal must
// hold [TokenPermission] in the account.
func (s *Service) CreateAPIToken(ctx context.Context, accountID uuid.UUID, name string) (string, APIToken, error) {
	p, err := s.authorizeTokens(ctx, accountID)
	if err != nil {
		return "", APIToken{}, err
	}
	name = strings.TrimSpace(name)
	if !validTokenName(name) {
		return "", APIToken{}, ErrInvalidTokenName
	}
	var by *uuid.UUID
	if !p.IsAPIToken() && p.UserID != uuid.Nil {
		by = &p.UserID
	}
	secret, hash := newSecret(apiTokenPrefix)
	row, err := s.q.InsertAPIToken(ctx, authdb.InsertAPITokenParams{
		AccountID: accountID,
		CreatedBy: by,
		Name:      name,
		Hint:      secret[len(apiTokenPrefix) : len(apiTokenPrefix)+apiTokenHintLen],
		TokenHash: hash,
		CreatedAt: s.now(),
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
			return "", APIToken{}, fmt.Errorf("create API token: account or user: %w", ErrNotFound)
		}
		return "", APIToken{}, fmt.Errorf("create API token: %w", err)
	}
	return secret, APIToken(row), nil
}

func validTokenName(name string) bool {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxAPITokenNameLen {
		return false
	}
	return strings.IndexFunc(name, unicode.IsControl) < 0
}

// RevokeAPIToken revokes the API token tokenID of the account accountID; it
// stops authenticating at once. Revoking a revoked token is not an error. A
// token that is not in that account yields [ErrNotFound], whether or not it
// exists elsewhere. The principal must hold [TokenPermission] in the
// account.
func (s *Service) RevokeAPIToken(ctx context.Context, accountID, tokenID uuid.UUID) error {
	if _, err := s.authorizeTokens(ctx, accountID); err != nil {
		return err
	}
	now := s.now()
	_, err := s.q.RevokeAPIToken(ctx, authdb.RevokeAPITokenParams{ID: tokenID, AccountID: accountID, RevokedAt: &now})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return fmt.Errorf("revoke API token: %w", err)
	}
	return nil
}

// ListAPITokens returns the API tokens of the account, revoked ones
// included, newest first. The principal must hold [TokenPermission] in the
// account.
func (s *Service) ListAPITokens(ctx context.Context, accountID uuid.UUID) ([]APIToken, error) {
	if _, err := s.authorizeTokens(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.q.ListAPITokens(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	tokens := make([]APIToken, len(rows))
	for i, r := range rows {
		tokens[i] = APIToken(r)
	}
	return tokens, nil
}

// authenticateAPIToken is Authenticate for a bearer with the "rmp_" prefix.
func (s *Service) authenticateAPIToken(ctx context.Context, secret string) (Identity, error) {
	hash, ok := parseSecret(secret, apiTokenPrefix)
	if !ok {
		return Identity{}, unauthenticatedf("malformed API token")
	}
	row, err := s.q.GetAPITokenByHash(ctx, hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Identity{}, unauthenticatedf("unknown API token")
	case err != nil:
		return Identity{}, fmt.Errorf("authenticate: load API token: %w", err)
	case row.RevokedAt != nil:
		return Identity{}, unauthenticatedf("API token revoked")
	}
	now := s.now()
	staleBefore := now.Add(-apiTokenTouchInterval)
	if row.LastUsedAt == nil || row.LastUsedAt.Before(staleBefore) {
		// The query repeats the condition, so racing requests write once.
		if err := s.q.TouchAPIToken(ctx, authdb.TouchAPITokenParams{ID: row.ID, Now: &now, StaleBefore: &staleBefore}); err != nil {
			return Identity{}, fmt.Errorf("authenticate: record API token use: %w", err)
		}
	}
	return Identity{APITokenID: &row.ID, AccountID: &row.AccountID}, nil
}
