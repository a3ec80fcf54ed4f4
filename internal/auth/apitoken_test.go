package auth

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/apperr"
)

func (f *fixture) lastUsed(t testing.TB, id uuid.UUID) *time.Time {
	t.Helper()
	var at *time.Time
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_used_at FROM api_tokens WHERE id = $1`, id).Scan(&at))
	return at
}

func TestAPITokenLifecycle(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, accountID := f.newUser(t, "alice@example.com", testPassword)
	bobID, otherAccount := f.newUser(t, "bob@example.com", testPassword)
	alice, bob := f.as(userID), f.as(bobID)
	created := f.clock.Now()

	secret, tok, err := f.svc.CreateAPIToken(alice, accountID, "  CI deploy ")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(secret, "rmp_"), secret)
	require.Len(t, secret, 4+43)
	require.Equal(t, accountID, tok.AccountID)
	require.Equal(t, &userID, tok.CreatedBy)
	require.Equal(t, "CI deploy", tok.Name)
	require.Equal(t, secret[4:12], tok.Hint)
	require.True(t, tok.CreatedAt.Equal(created))
	require.Nil(t, tok.LastUsedAt)
	require.Nil(t, tok.RevokedAt)

	// Only the hash is stored.
	h := sha256.Sum256([]byte(secret))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM api_tokens WHERE token_hash = $1`, h[:]))

	// Authenticating acts as the account, not as its creator, and records
	// the use.
	f.clock.Advance(time.Second)
	id, err := f.svc.Authenticate(f.ctx, secret)
	require.NoError(t, err)
	require.Equal(t, Identity{APITokenID: &tok.ID, AccountID: &accountID}, id)
	require.True(t, id.IsAPIToken())
	require.Equal(t, uuid.Nil, id.UserID)
	first := f.clock.Now()
	require.True(t, f.lastUsed(t, tok.ID).Equal(first))

	// At most one write a minute.
	f.clock.Advance(59 * time.Second)
	_, err = f.svc.Authenticate(f.ctx, secret)
	require.NoError(t, err)
	require.True(t, f.lastUsed(t, tok.ID).Equal(first))
	f.clock.Advance(2 * time.Second)
	_, err = f.svc.Authenticate(f.ctx, secret)
	require.NoError(t, err)
	require.True(t, f.lastUsed(t, tok.ID).Equal(f.clock.Now()))

	list, err := f.svc.ListAPITokens(alice, accountID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, tok.ID, list[0].ID)
	require.Equal(t, tok.Hint, list[0].Hint)
	require.NotNil(t, list[0].LastUsedAt)

	// Another account cannot revoke it, nor learn that it exists; nobody
	// acts on an account where they have no standing.
	require.ErrorIs(t, f.svc.RevokeAPIToken(bob, otherAccount, tok.ID), ErrNotFound)
	require.ErrorIs(t, f.svc.RevokeAPIToken(bob, accountID, tok.ID), apperr.ErrNotFound)
	require.ErrorIs(t, f.svc.RevokeAPIToken(alice, accountID, uuid.New()), ErrNotFound)
	_, err = f.svc.ListAPITokens(bob, accountID)
	require.ErrorIs(t, err, apperr.ErrNotFound)
	_, _, err = f.svc.CreateAPIToken(bob, accountID, "intruder")
	require.ErrorIs(t, err, apperr.ErrNotFound)
	_, err = f.svc.ListAPITokens(f.ctx, accountID)
	require.ErrorIs(t, err, apperr.ErrUnauthenticated, "no principal, no answer")
	_, err = f.svc.Authenticate(f.ctx, secret)
	require.NoError(t, err)
	empty, err := f.svc.ListAPITokens(bob, otherAccount)
	require.NoError(t, err)
	require.Empty(t, empty)

	require.NoError(t, f.svc.RevokeAPIToken(alice, accountID, tok.ID))
	_, err = f.svc.Authenticate(f.ctx, secret)
	requireUnauthenticated(t, err)
	require.NoError(t, f.svc.RevokeAPIToken(alice, accountID, tok.ID), "revoking twice is fine")
	list, err = f.svc.ListAPITokens(alice, accountID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NotNil(t, list[0].RevokedAt)
}

func TestCreateAPITokenValidation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, accountID := f.newUser(t, "alice@example.com", testPassword)
	alice := f.as(userID)

	for _, name := range []string{"", "   ", strings.Repeat("n", 201), "line\nbreak", "nul\x00", "bad\xffutf8"} {
		_, _, err := f.svc.CreateAPIToken(alice, accountID, name)
		require.ErrorIs(t, err, ErrInvalidTokenName, "%q", name)
	}
	_, tok, err := f.svc.CreateAPIToken(alice, accountID, strings.Repeat("é", 200))
	require.NoError(t, err, "200 characters, 400 bytes")
	require.Equal(t, strings.Repeat("é", 200), tok.Name)

	_, _, err = f.svc.CreateAPIToken(alice, uuid.New(), "ci")
	require.ErrorIs(t, err, apperr.ErrNotFound)
	_, _, err = f.svc.CreateAPIToken(f.as(uuid.New()), accountID, "ci")
	require.ErrorIs(t, err, apperr.ErrNotFound)

	// A token made by an API token (one allowed to make tokens) records no
	// user, but the token; an unknown token makes none.
	_, _, err = f.svc.CreateAPIToken(access.NewContext(f.ctx, access.Principal{APITokenID: uuid.New(), TokenAccountID: accountID}), accountID, "ci")
	require.ErrorIs(t, err, apperr.ErrNotFound)
	_, maker, err := f.svc.CreateScopedAPIToken(alice, accountID, NewAPIToken{Name: "maker", CanCreateTokens: true})
	require.NoError(t, err)
	byToken := access.NewContext(f.ctx, access.Principal{APITokenID: maker.ID, TokenAccountID: accountID})
	_, tok, err = f.svc.CreateAPIToken(byToken, accountID, "ci")
	require.NoError(t, err)
	require.Nil(t, tok.CreatedBy)
	require.Equal(t, &maker.ID, tok.CreatedByToken)
}

func TestListAPITokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, a := f.newUser(t, "alice@example.com", testPassword)
	bobID, b := f.newUser(t, "bob@example.com", testPassword)
	alice, bob := f.as(userID), f.as(bobID)

	var want []uuid.UUID
	for _, name := range []string{"one", "two", "three"} {
		_, tok, err := f.svc.CreateAPIToken(alice, a, name)
		require.NoError(t, err)
		want = append([]uuid.UUID{tok.ID}, want...) // newest first
		_, _, err = f.svc.CreateAPIToken(bob, b, name)
		require.NoError(t, err)
		f.clock.Advance(time.Second)
	}
	list, err := f.svc.ListAPITokens(alice, a)
	require.NoError(t, err)
	var got []uuid.UUID
	for _, tok := range list {
		require.Equal(t, a, tok.AccountID)
		got = append(got, tok.ID)
	}
	require.Equal(t, want, got)
}

// The token belongs to the account: it outlives its creator.
func TestAPITokenOutlivesCreator(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, accountID := f.newUser(t, "alice@example.com", testPassword)
	secret, tok, err := f.svc.CreateAPIToken(f.as(userID), accountID, "ci")
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `DELETE FROM users WHERE id = $1`, userID)
	require.NoError(t, err)
	id, err := f.svc.Authenticate(f.ctx, secret)
	require.NoError(t, err)
	require.Equal(t, &tok.ID, id.APITokenID)
	list, err := f.svc.ListAPITokens(access.NewContext(f.ctx, id.Principal()), accountID)
	require.NoError(t, err)
	require.Nil(t, list[0].CreatedBy)

	// Deleting the account deletes its tokens.
	_, err = f.pool.Exec(f.ctx, `DELETE FROM accounts WHERE id = $1`, accountID)
	require.NoError(t, err)
	_, err = f.svc.Authenticate(f.ctx, secret)
	requireUnauthenticated(t, err)
}

func TestAuthenticateAPITokenMalformed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, accountID := f.newUser(t, "alice@example.com", testPassword)
	secret, _, err := f.svc.CreateAPIToken(f.as(userID), accountID, "ci")
	require.NoError(t, err)
	unknown, _ := newSecret(apiTokenPrefix)
	for _, s := range []string{
		"rmp_",
		"rmp_short",
		unknown,
		secret + "A",
		secret[:len(secret)-1],
		secret[:len(secret)-1] + "!",
		secret[:len(secret)-1] + "=",
		"rmp_" + strings.Repeat("A", 42) + "B", // non-canonical last character
		"RMP_" + secret[4:],
		"rrt_" + secret[4:],
		" " + secret,
		secret[:20] + "\n" + secret[21:],
	} {
		_, err := f.svc.Authenticate(f.ctx, s)
		requireUnauthenticated(t, err)
	}
	_, err = f.svc.Authenticate(f.ctx, secret)
	require.NoError(t, err)
}
