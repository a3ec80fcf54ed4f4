package auth

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func (f *fixture) login(t testing.TB, email string) Tokens {
	t.Helper()
	tok, err := f.svc.Login(f.ctx, email, testPassword, LoginClient{Addr: "192.0.2.1"})
	require.NoError(t, err)
	return tok
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, _ := f.newUser(t, "alice@example.com", testPassword)
	t1 := f.login(t, "alice@example.com")
	other := f.login(t, "alice@example.com") // another device, another session
	first, err := f.svc.Authenticate(f.ctx, t1.AccessToken)
	require.NoError(t, err)

	f.clock.Advance(time.Minute)
	t2, err := f.svc.Refresh(f.ctx, t1.RefreshToken)
	require.NoError(t, err)
	require.NotEqual(t, t1.RefreshToken, t2.RefreshToken)
	require.NotEqual(t, t1.AccessToken, t2.AccessToken)
	require.Equal(t, f.clock.Now().Add(DefaultRefreshTTL), t2.RefreshExpiresAt)
	id, err := f.svc.Authenticate(f.ctx, t2.AccessToken)
	require.NoError(t, err)
	require.Equal(t, userID, id.UserID)
	require.Equal(t, first.SessionID, id.SessionID, "same session")
	// The access token of the used refresh token lives on until it expires.
	_, err = f.svc.Authenticate(f.ctx, t1.AccessToken)
	require.NoError(t, err)

	t3, err := f.svc.Refresh(f.ctx, t2.RefreshToken)
	require.NoError(t, err)

	// t1 again: reuse. The whole session goes, newest token included.
	_, err = f.svc.Refresh(f.ctx, t1.RefreshToken)
	requireUnauthenticated(t, err)
	require.ErrorContains(t, err, "reused")
	for _, tok := range []Tokens{t1, t2, t3} {
		_, err = f.svc.Refresh(f.ctx, tok.RefreshToken)
		requireUnauthenticated(t, err)
		_, err = f.svc.Authenticate(f.ctx, tok.AccessToken)
		requireUnauthenticated(t, err)
	}
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NOT NULL`, id.SessionID))

	// The other session is untouched.
	_, err = f.svc.Authenticate(f.ctx, other.AccessToken)
	require.NoError(t, err)
	_, err = f.svc.Refresh(f.ctx, other.RefreshToken)
	require.NoError(t, err)
}

func TestRefreshExpired(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.newUser(t, "alice@example.com", testPassword)
	a := f.login(t, "alice@example.com")
	b := f.login(t, "alice@example.com")

	f.clock.Advance(DefaultRefreshTTL - time.Second)
	a2, err := f.svc.Refresh(f.ctx, a.RefreshToken)
	require.NoError(t, err)
	// The new token lives RefreshTTL from now: a used session stays open.
	require.Equal(t, f.clock.Now().Add(DefaultRefreshTTL), a2.RefreshExpiresAt)

	f.clock.Advance(time.Second)
	_, err = f.svc.Refresh(f.ctx, b.RefreshToken)
	requireUnauthenticated(t, err)
	require.ErrorContains(t, err, "expired")
	// Expiry is not reuse: nothing was revoked.
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL`))
	_, err = f.svc.Refresh(f.ctx, a2.RefreshToken)
	require.NoError(t, err)
}

func TestRefreshMalformedOrUnknown(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, accountID := f.newUser(t, "alice@example.com", testPassword)
	tok := f.login(t, "alice@example.com")
	apiSecret, _, err := f.svc.CreateAPIToken(f.as(userID), accountID, "ci")
	require.NoError(t, err)
	unknown, _ := newSecret(refreshTokenPrefix)

	for _, s := range []string{"", "rrt_", "rrt_short", unknown, tok.AccessToken, apiSecret, "rrt_" + apiSecret[4:], tok.RefreshToken + "A", tok.RefreshToken[:46] + "!", tok.RefreshToken[:20] + "\r" + tok.RefreshToken[21:]} {
		_, err := f.svc.Refresh(f.ctx, s)
		requireUnauthenticated(t, err)
		requireUnauthenticated(t, f.svc.Logout(f.ctx, s))
	}
	// None of that disturbed the real session.
	_, err = f.svc.Refresh(f.ctx, tok.RefreshToken)
	require.NoError(t, err)
}

func TestLogout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.newUser(t, "alice@example.com", testPassword)
	tok := f.login(t, "alice@example.com")
	other := f.login(t, "alice@example.com")

	require.NoError(t, f.svc.Logout(f.ctx, tok.RefreshToken))
	_, err := f.svc.Refresh(f.ctx, tok.RefreshToken)
	requireUnauthenticated(t, err)
	_, err = f.svc.Authenticate(f.ctx, tok.AccessToken)
	requireUnauthenticated(t, err)
	require.NoError(t, f.svc.Logout(f.ctx, tok.RefreshToken), "logging out twice is fine")

	// A used token of the session ends it too, and the other session lives.
	o2, err := f.svc.Refresh(f.ctx, other.RefreshToken)
	require.NoError(t, err)
	require.NoError(t, f.svc.Logout(f.ctx, other.RefreshToken))
	_, err = f.svc.Refresh(f.ctx, o2.RefreshToken)
	requireUnauthenticated(t, err)
	_, err = f.svc.Authenticate(f.ctx, o2.AccessToken)
	requireUnauthenticated(t, err)
}

// Parallel refreshes with one token: at most one succeeds, the others count
// as reuse, and whatever the winner got is revoked with the session. No
// transaction fails for any other reason (deadlock, serialisation).
func TestRefreshConcurrentReuse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.newUser(t, "alice@example.com", testPassword)
	tok := f.login(t, "alice@example.com")

	const n = 8
	results := make([]Tokens, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = f.svc.Refresh(f.ctx, tok.RefreshToken) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			_, err := f.svc.Refresh(f.ctx, results[i].RefreshToken)
			requireUnauthenticated(t, err)
			_, err = f.svc.Authenticate(f.ctx, results[i].AccessToken)
			requireUnauthenticated(t, err)
			continue
		}
		requireUnauthenticated(t, err)
	}
	require.LessOrEqual(t, won, 1)
}

// The race the family lock exists for: an attacker rotates the newest token
// while the victim presents an old one. Whichever commits first, nothing the
// attacker gets may outlive the revocation.
func TestRefreshReuseRacesRotation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.newUser(t, "alice@example.com", testPassword)
	for range 10 {
		t1 := f.login(t, "alice@example.com")
		t2, err := f.svc.Refresh(f.ctx, t1.RefreshToken)
		require.NoError(t, err)

		var (
			wg       sync.WaitGroup
			stolen   Tokens
			stoleErr error
			reuseErr error
		)
		wg.Go(func() { stolen, stoleErr = f.svc.Refresh(f.ctx, t2.RefreshToken) })
		wg.Go(func() { _, reuseErr = f.svc.Refresh(f.ctx, t1.RefreshToken) })
		wg.Wait()
		requireUnauthenticated(t, reuseErr)
		if stoleErr != nil {
			requireUnauthenticated(t, stoleErr)
			continue
		}
		_, err = f.svc.Refresh(f.ctx, stolen.RefreshToken)
		requireUnauthenticated(t, err)
		_, err = f.svc.Authenticate(f.ctx, stolen.AccessToken)
		requireUnauthenticated(t, err)
	}
}

// Authenticate checks the session row named by jti against the token.
func TestAuthenticateSessionMismatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	aliceID, _ := f.newUser(t, "alice@example.com", testPassword)
	bobID, _ := f.newUser(t, "bob@example.com", testPassword)
	tok := f.login(t, "alice@example.com")
	id, err := f.svc.Authenticate(f.ctx, tok.AccessToken)
	require.NoError(t, err)
	var rowID uuid.UUID
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT id FROM refresh_tokens WHERE family_id = $1`, id.SessionID).Scan(&rowID))

	for name, ids := range map[string][3]uuid.UUID{
		"no such session row": {aliceID, id.SessionID, uuid.New()},
		"other user":          {bobID, id.SessionID, rowID},
		"other session":       {aliceID, uuid.New(), rowID},
	} {
		s, _, err := f.svc.access.sign(ids[0], ids[1], ids[2])
		require.NoError(t, err)
		_, err = f.svc.Authenticate(f.ctx, s)
		requireUnauthenticated(t, err)
		t.Logf("%s: %v", name, err)
	}

	// A deleted user's tokens die with the rows.
	_, err = f.pool.Exec(f.ctx, `DELETE FROM users WHERE id = $1`, aliceID)
	require.NoError(t, err)
	_, err = f.svc.Authenticate(f.ctx, tok.AccessToken)
	requireUnauthenticated(t, err)
	_, err = f.svc.Refresh(f.ctx, tok.RefreshToken)
	requireUnauthenticated(t, err)
}

// Database failures are not authentication failures.
func TestAuthenticateDatabaseDown(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.newUser(t, "alice@example.com", testPassword)
	tok := f.login(t, "alice@example.com")
	f.pool.Close()
	_, err := f.svc.Authenticate(f.ctx, tok.AccessToken)
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrUnauthenticated), err)
	_, err = f.svc.Refresh(f.ctx, tok.RefreshToken)
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrUnauthenticated), err)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrInvalidCredentials), err)
}
