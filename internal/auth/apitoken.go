package auth

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

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
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
	AccountID uuid.UUID  // the account the token acts in (its scope's account)
	CreatedBy *uuid.UUID // the user who made it; nil once deleted, or when a token made it
	// CreatedByToken is the token that made it, if one did.
	CreatedByToken *uuid.UUID
	Name           string
	// Hint is the first characters of the secret after "rmp_", for display
	// as "rmp_<hint>…".
	Hint      string
	CreatedAt time.Time
	// LastUsedAt is when the token last authenticated, to within a minute.
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	Scope      TokenScope
}

// TokenScope is what an API token may do in its account (see package
// access): a level on a domain set, or read-only (the read level, and no
// mutation at all); until an optional expiry.
type TokenScope struct {
	// AccountID is the token's account, where the scope applies.
	AccountID uuid.UUID
	Level     access.Level
	ReadOnly  bool
	Domains   access.DomainSet
	// CanCreateTokens lets the token make tokens, never wider than itself.
	CanCreateTokens bool
	ExpiresAt       *time.Time
}

// MaxAPITokenLifetime bounds a token's expiry.
const MaxAPITokenLifetime = 366 * 24 * time.Hour

// NewAPIToken is what [Service.CreateAPIToken] is asked to make. Zero
// fields take the widest value the creator may give: for a user (an
// owner), the owner level on every domain without expiry; for a token, its
// own scope.
type NewAPIToken struct {
	Name     string
	Level    access.Level
	ReadOnly bool
	// DomainNames names the domains of a named set; Label the label of a
	// label set; EveryDomain asks for every domain; with none of them,
	// every domain, or the creating token's set.
	DomainNames     []string
	Label           string
	EveryDomain     bool
	CanCreateTokens bool
	ExpiresAt       *time.Time
}

// TokenPermission is what a principal must hold in an account to see,
// create and revoke its API tokens: a token acts as the account, so making
// one is managing who may act there. A token holding [TokenScope.CanCreateTokens]
// may also create tokens within its own scope without it.
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

// CreateAPIToken is [Service.CreateScopedAPIToken] with the default scope
// (the widest the creator may give) and only a name.
func (s *Service) CreateAPIToken(ctx context.Context, accountID uuid.UUID, name string) (string, APIToken, error) {
	return s.CreateScopedAPIToken(ctx, accountID, NewAPIToken{Name: name})
}

// CreateScopedAPIToken creates, for the context's principal, an API token for
// automation that acts in the account accountID within its scope and
// returns its secret, "rmp_" and 43 base64url characters (256 random bits).
// The secret is returned only here; only its SHA-256 hash is stored. Who
// made it is recorded: the signed-in user, or the token. name is trimmed
// and must be 1 to 200 characters without control characters
// ([ErrInvalidTokenName]).
//
// A user must hold [TokenPermission] in the account. A token must hold
// [TokenScope.CanCreateTokens], and the new token never exceeds it: its
// level, read-only-ness, account (the token's own, or with an owner-level
// token one below it), domain set and expiry all lie within the creator's
// (FORBIDDEN otherwise). Only a principal holding [access.ManageUsers] may
// give CanCreateTokens. An expiry must be in the future and at most
// [MaxAPITokenLifetime] away.
func (s *Service) CreateScopedAPIToken(ctx context.Context, accountID uuid.UUID, req NewAPIToken) (string, APIToken, error) {
	p, err := access.Require(ctx)
	if err != nil {
		return "", APIToken{}, err
	}
	var creator *APIToken
	if p.IsAPIToken() {
		row, err := s.q.GetAPIToken(ctx, p.APITokenID)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", APIToken{}, apperr.NotFoundf("not found")
		}
		if err != nil {
			return "", APIToken{}, fmt.Errorf("create API token: load creator: %w", err)
		}
		c := tokenFromRow(authdb.ListAPITokensRow(row))
		creator = &c
		if err := access.New(s.pool).See(ctx, accountID); err != nil {
			return "", APIToken{}, err
		}
		if !c.Scope.CanCreateTokens {
			return "", APIToken{}, forbidden("this API token may not create tokens")
		}
	} else if _, err := s.authorizeTokens(ctx, accountID); err != nil {
		return "", APIToken{}, err
	}
	name := strings.TrimSpace(req.Name)
	if !validTokenName(name) {
		return "", APIToken{}, ErrInvalidTokenName
	}
	scope, err := s.tokenScope(ctx, accountID, req, creator)
	if err != nil {
		return "", APIToken{}, err
	}
	if scope.CanCreateTokens {
		if err := access.New(s.pool).Authorize(ctx, access.InAccount(accountID), access.ManageUsers); err != nil {
			return "", APIToken{}, forbidden("only a principal who manages users may let a token create tokens")
		}
	}
	var by, byToken *uuid.UUID
	if creator != nil {
		byToken = &creator.ID
	} else if p.UserID != uuid.Nil {
		by = &p.UserID
	}
	var label *string
	if scope.Domains.Kind == access.LabelDomains {
		label = &scope.Domains.Label
	}
	ids := scope.Domains.Domains
	if ids == nil {
		ids = []uuid.UUID{}
	}
	level := int(scope.Level)
	if level < int(access.LevelRead) || level > int(access.LevelOwner) {
		return "", APIToken{}, apperr.Invalid("level", "unknown level")
	}
	secret, hash := newSecret(apiTokenPrefix)
	row, err := s.q.InsertAPIToken(ctx, authdb.InsertAPITokenParams{
		AccountID:       accountID,
		CreatedBy:       by,
		CreatedByToken:  byToken,
		Name:            name,
		Hint:            secret[len(apiTokenPrefix) : len(apiTokenPrefix)+apiTokenHintLen],
		TokenHash:       hash,
		CreatedAt:       s.now(),
		Level:           int16(level),
		ReadOnly:        scope.ReadOnly,
		DomainSet:       string(scope.Domains.Kind),
		DomainIds:       ids,
		Label:           label,
		CanCreateTokens: scope.CanCreateTokens,
		ExpiresAt:       scope.ExpiresAt,
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
			return "", APIToken{}, fmt.Errorf("create API token: account or user: %w", ErrNotFound)
		}
		return "", APIToken{}, fmt.Errorf("create API token: %w", err)
	}
	return secret, tokenFromRow(authdb.ListAPITokensRow(row)), nil
}

func forbidden(msg string) error { return &apperr.Error{Code: apperr.Forbidden, Message: msg} }

// tokenScope works out the scope a request asks for, filling the defaults
// and checking it against the creating token, if a token creates it.
func (s *Service) tokenScope(ctx context.Context, accountID uuid.UUID, req NewAPIToken, creator *APIToken) (TokenScope, error) {
	sc := TokenScope{Level: req.Level, ReadOnly: req.ReadOnly, CanCreateTokens: req.CanCreateTokens, ExpiresAt: req.ExpiresAt}
	switch {
	case len(req.DomainNames) > 0 && req.Label != "":
		return TokenScope{}, apperr.Invalid("domains", "name domains or a label, not both")
	case len(req.DomainNames) > 0:
		names := make([]string, 0, len(req.DomainNames))
		for _, n := range req.DomainNames {
			names = append(names, strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), ".")))
		}
		ids, err := s.q.DomainIDsByName(ctx, authdb.DomainIDsByNameParams{AccountID: accountID, Names: names})
		if err != nil {
			return TokenScope{}, fmt.Errorf("create API token: find domains: %w", err)
		}
		if len(ids) != len(slices.Compact(slices.Sorted(slices.Values(names)))) {
			return TokenScope{}, apperr.NotFoundf("domain not found")
		}
		sc.Domains = access.DomainSet{Kind: access.NamedDomains, Domains: ids}
	case req.Label != "":
		l, err := access.NormalizeLabel(req.Label)
		if err != nil {
			return TokenScope{}, err
		}
		sc.Domains = access.DomainSet{Kind: access.LabelDomains, Label: l}
	case creator != nil && creator.AccountID == accountID && !req.EveryDomain:
		sc.Domains = creator.Scope.Domains
	default:
		sc.Domains = access.DomainSet{Kind: access.AllDomains}
	}
	if sc.ReadOnly && sc.Level == 0 {
		sc.Level = access.LevelRead
	}
	if sc.Level == 0 {
		sc.Level = access.LevelOwner
		if creator != nil {
			sc.Level = creator.Scope.Level
		}
	}
	if creator != nil && sc.ExpiresAt == nil {
		sc.ExpiresAt = creator.Scope.ExpiresAt
	}
	if creator != nil && creator.Scope.ReadOnly {
		sc.ReadOnly = true
	}
	switch {
	case !sc.Level.Valid():
		return TokenScope{}, apperr.Invalid("level", "unknown level")
	case sc.ReadOnly && sc.Level != access.LevelRead:
		return TokenScope{}, apperr.Invalid("readOnly", "a read-only token has the read level")
	case sc.Level == access.LevelOwner && sc.Domains.Kind != access.AllDomains:
		return TokenScope{}, apperr.Invalid("level", "an owner-level token acts on every domain")
	}
	now := s.now()
	if sc.ExpiresAt != nil {
		switch {
		case !sc.ExpiresAt.After(now):
			return TokenScope{}, apperr.Invalid("expiresAt", "the expiry must be in the future")
		case sc.ExpiresAt.Sub(now) > MaxAPITokenLifetime && (creator == nil || creator.Scope.ExpiresAt == nil || !sc.ExpiresAt.Equal(*creator.Scope.ExpiresAt)):
			return TokenScope{}, apperr.Invalid("expiresAt", "a token expires at most a year from now")
		}
	}
	if creator == nil {
		return sc, nil
	}
	// A token's token lies within it.
	c := creator.Scope
	wider := func(what string) error {
		return forbidden("a token cannot create a token wider than itself (" + what + ")")
	}
	if sc.Level > c.Level {
		return TokenScope{}, wider("level")
	}
	if c.ReadOnly && !sc.ReadOnly {
		return TokenScope{}, wider("read-only")
	}
	if c.ExpiresAt != nil && (sc.ExpiresAt == nil || sc.ExpiresAt.After(*c.ExpiresAt)) {
		return TokenScope{}, wider("expiry")
	}
	if accountID == creator.AccountID {
		if !sc.Domains.Within(c.Domains) {
			return TokenScope{}, wider("domains")
		}
		return sc, nil
	}
	// Another account: only below the creator's, and only for an owner-level
	// creator (which acts there on every domain).
	within, err := access.Within(ctx, s.pool, creator.AccountID, accountID)
	if err != nil {
		return TokenScope{}, fmt.Errorf("create API token: %w", err)
	}
	if !within || c.Level != access.LevelOwner {
		return TokenScope{}, wider("account")
	}
	return sc, nil
}

func tokenFromRow(r authdb.ListAPITokensRow) APIToken {
	t := APIToken{
		ID: r.ID, AccountID: r.AccountID, CreatedBy: r.CreatedBy, CreatedByToken: r.CreatedByToken, Name: r.Name,
		Hint: r.Hint, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt,
		Scope: TokenScope{
			AccountID: r.AccountID, Level: access.Level(r.Level), ReadOnly: r.ReadOnly, CanCreateTokens: r.CanCreateTokens, ExpiresAt: r.ExpiresAt,
			Domains: access.DomainSet{Kind: access.SetKind(r.DomainSet), Domains: r.DomainIds},
		},
	}
	if r.Label != nil {
		t.Scope.Domains.Label = *r.Label
	}
	return t
}

func validTokenName(name string) bool {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxAPITokenNameLen {
		return false
	}
	return strings.IndexFunc(name, unicode.IsControl) < 0
}

// RevokeAPIToken revokes the API token tokenID of the account accountID,
// and every token created under it (by it, or by a token it created, and so
// on); they stop authenticating at once. Revoking a revoked token is not an error. A
// token that is not in that account yields [ErrNotFound], whether or not it
// exists elsewhere. The principal must hold [TokenPermission] in the
// account.
func (s *Service) RevokeAPIToken(ctx context.Context, accountID, tokenID uuid.UUID) error {
	if _, err := s.authorizeTokens(ctx, accountID); err != nil {
		return err
	}
	now := s.now()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := authdb.New(tx)
		_, err := q.RevokeAPIToken(ctx, authdb.RevokeAPITokenParams{ID: tokenID, AccountID: accountID, RevokedAt: &now})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return fmt.Errorf("revoke API token: %w", err)
		}
		if _, err := q.RevokeAPITokensCreatedBy(ctx, authdb.RevokeAPITokensCreatedByParams{ID: &tokenID, RevokedAt: &now}); err != nil {
			return fmt.Errorf("revoke the tokens created by the API token: %w", err)
		}
		return nil
	})
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
		tokens[i] = tokenFromRow(r)
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
	case row.ExpiresAt != nil && !s.now().Before(*row.ExpiresAt):
		return Identity{}, unauthenticatedf("API token expired")
	}
	now := s.now()
	staleBefore := now.Add(-apiTokenTouchInterval)
	if row.LastUsedAt == nil || row.LastUsedAt.Before(staleBefore) {
		// The query repeats the condition, so racing requests write once.
		if err := s.q.TouchAPIToken(ctx, authdb.TouchAPITokenParams{ID: row.ID, Now: &now, StaleBefore: &staleBefore}); err != nil {
			return Identity{}, fmt.Errorf("authenticate: record API token use: %w", err)
		}
	}
	return Identity{APITokenID: &row.ID, AccountID: &row.AccountID, ReadOnly: row.ReadOnly}, nil
}

// Self returns the API token that authenticated the request, whatever its
// scope: a token may always read itself. A user gets NOT_FOUND.
func (s *Service) Self(ctx context.Context) (APIToken, error) {
	p, err := access.Require(ctx)
	if err != nil {
		return APIToken{}, err
	}
	if !p.IsAPIToken() {
		return APIToken{}, apperr.NotFoundf("API token not found")
	}
	row, err := s.q.GetAPIToken(ctx, p.APITokenID)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIToken{}, apperr.NotFoundf("API token not found")
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("load API token: %w", err)
	}
	return tokenFromRow(authdb.ListAPITokensRow(row)), nil
}

// CreatorEmail returns the e-mail address of the user who created a token
// of the account, for its list of tokens; it needs [TokenPermission] there,
// as the list does. A user who created no token of the account, or was
// deleted, has none (nil).
func (s *Service) CreatorEmail(ctx context.Context, accountID, userID uuid.UUID) (*string, error) {
	if _, err := s.authorizeTokens(ctx, accountID); err != nil {
		return nil, err
	}
	email, err := s.q.TokenCreatorEmail(ctx, authdb.TokenCreatorEmailParams{UserID: userID, AccountID: accountID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load token creator: %w", err)
	}
	return &email, nil
}
