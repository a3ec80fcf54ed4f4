package auth

import (
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestNewServiceConfig(t *testing.T) {
	t.Parallel()
	pool := new(pgxpool.Pool) // never used by NewService
	keys := testKeySet(t, "k1")

	svc, err := NewService(pool, keys, Config{Params: testParams}, nil)
	require.NoError(t, err)
	require.Equal(t, DefaultIssuer, svc.cfg.Issuer)
	require.Equal(t, DefaultAudience, svc.cfg.Audience)
	require.Equal(t, DefaultAccessTTL, svc.cfg.AccessTTL)
	require.Equal(t, DefaultRefreshTTL, svc.cfg.RefreshTTL)
	require.Equal(t, DefaultLoginWindow, svc.cfg.LoginWindow)
	require.Equal(t, DefaultMaxEmailFailures, svc.cfg.MaxEmailFailures)
	require.Equal(t, DefaultMaxClientFailures, svc.cfg.MaxClientFailures)
	// The dummy hash costs what a real one does.
	p, _, _, err := decodeHash(svc.dummyHash)
	require.NoError(t, err)
	require.Equal(t, testParams, p)

	for name, cfg := range map[string]Config{
		"access TTL over max":       {Params: testParams, AccessTTL: MaxAccessTTL + time.Second},
		"negative access TTL":       {Params: testParams, AccessTTL: -time.Minute},
		"refresh TTL below access":  {Params: testParams, AccessTTL: 10 * time.Minute, RefreshTTL: 5 * time.Minute},
		"negative failure limit":    {Params: testParams, MaxEmailFailures: -1},
		"bad argon2 params":         {Params: Params{Memory: 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		"negative throttle window":  {Params: testParams, LoginWindow: -time.Minute},
		"negative client threshold": {Params: testParams, MaxClientFailures: -5},
	} {
		_, err := NewService(pool, keys, cfg, nil)
		require.Error(t, err, name)
	}
	_, err = NewService(nil, keys, Config{Params: testParams}, nil)
	require.Error(t, err)
	_, err = NewService(pool, nil, Config{Params: testParams}, nil)
	require.Error(t, err)
}

func TestLogin(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, _ := f.newUser(t, "alice@example.com", testPassword)
	now := f.clock.Now()

	tok, err := f.svc.Login(f.ctx, "  Alice@Example.COM ", testPassword, "192.0.2.1")
	require.NoError(t, err)
	require.Equal(t, now.Add(DefaultAccessTTL), tok.AccessExpiresAt)
	require.Equal(t, now.Add(DefaultRefreshTTL), tok.RefreshExpiresAt)
	require.True(t, strings.HasPrefix(tok.RefreshToken, "rrt_"), tok.RefreshToken)
	require.Len(t, tok.RefreshToken, 4+43)

	id, err := f.svc.Authenticate(f.ctx, tok.AccessToken)
	require.NoError(t, err)
	require.Equal(t, userID, id.UserID)
	require.NotEqual(t, uuid.Nil, id.SessionID)
	require.Nil(t, id.APITokenID)
	require.Nil(t, id.AccountID)
	require.False(t, id.IsAPIToken())

	// Only the hash is stored.
	h := sha256.Sum256([]byte(tok.RefreshToken))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM refresh_tokens WHERE token_hash = $1 AND family_id = $2 AND user_id = $3`, h[:], id.SessionID, userID))
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM login_failures`))
}

func TestLoginWrongPasswordAndUnknownEmail(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.newUser(t, "alice@example.com", testPassword)

	_, wrong := f.svc.Login(f.ctx, "alice@example.com", "not the password", "192.0.2.1")
	require.ErrorIs(t, wrong, ErrInvalidCredentials)
	_, unknown := f.svc.Login(f.ctx, "Mallory@Example.com", testPassword, "192.0.2.1")
	require.ErrorIs(t, unknown, ErrInvalidCredentials)
	require.Equal(t, wrong.Error(), unknown.Error())

	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com' AND client = '192.0.2.1'`))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'mallory@example.com'`))

	// Inputs that cannot match anything fail the same way, not with a
	// database error.
	for _, tc := range []struct{ email, pw string }{
		{"alice@example.com", strings.Repeat("p", MaxPasswordLen+1)},
		{"alice@example.com", ""},
		{"nul\x00@example.com", testPassword},
		{"bad\xffutf8@example.com", testPassword},
		{strings.Repeat("a", maxEmailLen+1) + "@example.com", testPassword},
		{"", testPassword},
	} {
		_, err := f.svc.Login(f.ctx, tc.email, tc.pw, "192.0.2.1")
		require.ErrorIs(t, err, ErrInvalidCredentials, "%q", tc.email)
	}
}

func TestLoginThrottlePerEmail(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxEmailFailures = 3 })
	aliceID, _ := f.newUser(t, "alice@example.com", testPassword)
	f.newUser(t, "bob@example.com", testPassword)

	// A success clears earlier failures.
	for range 2 {
		_, err := f.svc.Login(f.ctx, "alice@example.com", "wrong password!", "192.0.2.1")
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	_, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, "192.0.2.1")
	require.NoError(t, err)
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com'`))

	// Three failures from different clients are allowed; the fourth
	// attempt is refused even with the right password.
	for i := range 3 {
		_, err := f.svc.Login(f.ctx, "alice@example.com", "wrong password!", "192.0.2."+string(rune('1'+i)))
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	_, err = f.svc.Login(f.ctx, "ALICE@example.com", testPassword, "198.51.100.7")
	require.ErrorIs(t, err, ErrRateLimited)
	var rl *RateLimitError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, DefaultLoginWindow, rl.RetryAfter)

	// The password is not even looked at: a broken hash would be an error.
	_, err = f.pool.Exec(f.ctx, `UPDATE users SET password_hash = 'broken' WHERE id = $1`, aliceID)
	require.NoError(t, err)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, "198.51.100.7")
	require.ErrorIs(t, err, ErrRateLimited)
	hash, err := testParams.Hash(testPassword)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, aliceID, hash)
	require.NoError(t, err)

	// Refused attempts do not extend the lockout.
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com'`))

	// Other addresses from the same clients are unaffected.
	_, err = f.svc.Login(f.ctx, "bob@example.com", testPassword, "192.0.2.1")
	require.NoError(t, err)

	// RetryAfter counts down, and the lockout ends with the window.
	f.clock.Advance(10*time.Minute + 500*time.Millisecond)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, "198.51.100.7")
	require.ErrorAs(t, err, &rl)
	require.Equal(t, 5*time.Minute, rl.RetryAfter) // 4m59.5s rounded up
	f.clock.Advance(5 * time.Minute)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, "198.51.100.7")
	require.NoError(t, err)
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com'`))
}

func TestLoginThrottlePerClient(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxClientFailures = 5 })
	f.newUser(t, "alice@example.com", testPassword)

	// Five failures for different addresses from hosts of one IPv6 /64.
	for i := range 5 {
		_, err := f.svc.Login(f.ctx, "user"+string(rune('a'+i))+"@example.com", testPassword, "2001:db8:1:2::"+string(rune('1'+i)))
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	require.Equal(t, 5, f.count(t, `SELECT count(*) FROM login_failures WHERE client = '2001:db8:1:2::/64'`))

	// Any host of that /64 is now refused, even with the right password.
	for _, client := range []string{"2001:db8:1:2::ffff", "[2001:db8:1:2:aaaa::1]:443"} {
		_, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, client)
		var rl *RateLimitError
		require.ErrorAs(t, err, &rl, client)
		require.Equal(t, DefaultLoginWindow, rl.RetryAfter)
	}
	// The neighbouring /64 and IPv4 clients are not.
	_, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, "2001:db8:1:3::1")
	require.NoError(t, err)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, "192.0.2.1")
	require.NoError(t, err)

	f.clock.Advance(DefaultLoginWindow)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, "2001:db8:1:2::ffff")
	require.NoError(t, err)
}

// A burst of parallel attempts gets no more password checks than the limit:
// each attempt is recorded before the count.
func TestLoginThrottleConcurrent(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxEmailFailures = 3 })
	f.newUser(t, "alice@example.com", testPassword)

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = f.svc.Login(f.ctx, "alice@example.com", "wrong password!", "192.0.2.1")
		})
	}
	wg.Wait()
	checked := 0
	for _, err := range errs {
		if errors.Is(err, ErrInvalidCredentials) {
			checked++
		} else {
			require.ErrorIs(t, err, ErrRateLimited)
		}
	}
	// Attempts in flight count against each other, so the burst may even be
	// refused entirely; it must never get more than the limit.
	require.LessOrEqual(t, checked, 3)
	require.Equal(t, checked, f.count(t, `SELECT count(*) FROM login_failures`))
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":                "192.0.2.1",
		"192.0.2.1:5000":           "192.0.2.1",
		"::ffff:192.0.2.1":         "192.0.2.1",
		"[::ffff:192.0.2.1]:80":    "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:443":    "2001:db8:1:2::/64",
		"2001:DB8:1:2::1":          "2001:db8:1:2::/64",
		"fe80::1%eth0":             "fe80::/64",
		"::1":                      "::/64",
		"":                         "unknown",
		"example.com":              "unknown",
		"192.0.2.1, 198.51.100.1":  "unknown",
		"2001:db8::1/64":           "unknown",
		strings.Repeat("9", 10000): "unknown",
	} {
		require.Equal(t, want, clientKey(in), in)
	}
}

func TestLoginDisabledUser(t *testing.T) {
	t.Parallel()
	f := setup(t)
	userID, _ := f.newUser(t, "alice@example.com", testPassword)
	before, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, "192.0.2.1")
	require.NoError(t, err)

	f.disableUser(t, userID)

	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, "192.0.2.1")
	require.ErrorIs(t, err, ErrInvalidCredentials)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM login_failures`))

	_, err = f.svc.Authenticate(f.ctx, before.AccessToken)
	requireUnauthenticated(t, err)
	_, err = f.svc.Refresh(f.ctx, before.RefreshToken)
	requireUnauthenticated(t, err)
	// Refreshing for a disabled user ends the session for good.
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL`))
}

func TestPruneLoginFailures(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.svc.Login(f.ctx, "old@example.com", testPassword, "192.0.2.1")
	require.ErrorIs(t, err, ErrInvalidCredentials)
	f.clock.Advance(time.Hour)
	_, err = f.svc.Login(f.ctx, "new@example.com", testPassword, "192.0.2.1")
	require.ErrorIs(t, err, ErrInvalidCredentials)

	// Never below the window: the recent failure stays.
	n, err := f.svc.PruneLoginFailures(f.ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'new@example.com'`))

	f.clock.Advance(time.Hour)
	n, err = f.svc.PruneLoginFailures(f.ctx, 2*time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, 0, n)
	n, err = f.svc.PruneLoginFailures(f.ctx, 30*time.Minute)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}
