package auth

import (
	"crypto/sha256"
	"errors"
	"strconv"
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
	require.Equal(t, DefaultMaxPairFailures, svc.cfg.MaxPairFailures)
	require.Equal(t, DefaultLoginBackoff, svc.cfg.LoginBackoff)
	require.Equal(t, DefaultLoginBackoffMax, svc.cfg.LoginBackoffMax)
	require.Equal(t, DefaultKnownClientTTL, svc.cfg.KnownClientTTL)
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
		"negative pair threshold":   {Params: testParams, MaxPairFailures: -1},
		"negative backoff":          {Params: testParams, LoginBackoff: -time.Second},
		"ceiling below backoff":     {Params: testParams, LoginBackoff: time.Minute, LoginBackoffMax: time.Second},
		"ceiling beyond window":     {Params: testParams, LoginWindow: time.Minute, LoginBackoffMax: time.Hour},
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

	tok, err := f.svc.Login(f.ctx, "  Alice@Example.COM ", testPassword, LoginClient{Addr: "192.0.2.1"})
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

	_, wrong := f.svc.Login(f.ctx, "alice@example.com", "not the password", LoginClient{Addr: "192.0.2.1"})
	require.ErrorIs(t, wrong, ErrInvalidCredentials)
	_, unknown := f.svc.Login(f.ctx, "Mallory@Example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
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
		_, err := f.svc.Login(f.ctx, tc.email, tc.pw, LoginClient{Addr: "192.0.2.1"})
		require.ErrorIs(t, err, ErrInvalidCredentials, "%q", tc.email)
	}
}

func TestLoginThrottlePerEmail(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxEmailFailures = 3 })
	aliceID, _ := f.newUser(t, "alice@example.com", testPassword)
	f.newUser(t, "bob@example.com", testPassword)

	// A success clears the client's earlier failures.
	for range 2 {
		_, err := f.svc.Login(f.ctx, "alice@example.com", "wrong password!", LoginClient{Addr: "192.0.2.1"})
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	_, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.NoError(t, err)
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com'`))

	// Three failures from different clients are free; the fourth attempt
	// from any unknown client must wait, even with the right password.
	for i := range 3 {
		_, err := f.svc.Login(f.ctx, "alice@example.com", "wrong password!", LoginClient{Addr: "192.0.2." + string(rune('1'+i))})
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	_, err = f.svc.Login(f.ctx, "ALICE@example.com", testPassword, LoginClient{Addr: "198.51.100.7"})
	require.ErrorIs(t, err, ErrRateLimited)
	var rl *RateLimitError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, DefaultLoginBackoff, rl.RetryAfter)

	// The password is not even looked at: a broken hash would be an error.
	_, err = f.pool.Exec(f.ctx, `UPDATE users SET password_hash = 'broken' WHERE id = $1`, aliceID)
	require.NoError(t, err)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.7"})
	require.ErrorIs(t, err, ErrRateLimited)
	hash, err := testParams.Hash(testPassword)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, aliceID, hash)
	require.NoError(t, err)

	// Refused attempts do not extend the backoff.
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com'`))

	// Other addresses from the same clients are unaffected.
	_, err = f.svc.Login(f.ctx, "bob@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.NoError(t, err)

	// Once the backoff has passed, a login succeeds. It clears only its
	// own client's failures: the address's others stay, so the next
	// failure doubles the wait.
	f.clock.Advance(DefaultLoginBackoff)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.7"})
	require.NoError(t, err)
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com'`))
	_, err = f.svc.Login(f.ctx, "alice@example.com", "wrong password!", LoginClient{Addr: "192.0.2.9"})
	require.ErrorIs(t, err, ErrInvalidCredentials)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.7"})
	require.ErrorAs(t, err, &rl)
	require.Equal(t, 2*DefaultLoginBackoff, rl.RetryAfter)

	// Failures leave the window eventually.
	f.clock.Advance(DefaultLoginWindow)
	_, err = f.svc.Login(f.ctx, "alice@example.com", "wrong password!", LoginClient{Addr: "192.0.2.9"})
	require.ErrorIs(t, err, ErrInvalidCredentials)
}

func TestLoginThrottlePerClient(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxClientFailures = 5; c.LoginBackoff = time.Minute })
	f.newUser(t, "alice@example.com", testPassword)

	// Five failures for different addresses from hosts of one IPv6 /64.
	for i := range 5 {
		_, err := f.svc.Login(f.ctx, "user"+string(rune('a'+i))+"@example.com", testPassword, LoginClient{Addr: "2001:db8:1:2::" + string(rune('1'+i))})
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	require.Equal(t, 5, f.count(t, `SELECT count(*) FROM login_failures WHERE client = '2001:db8:1:2::/64'`))

	// Any host of that /64 must now wait, even with the right password.
	for _, client := range []string{"2001:db8:1:2::ffff", "[2001:db8:1:2:aaaa::1]:443"} {
		_, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: client})
		var rl *RateLimitError
		require.ErrorAs(t, err, &rl, client)
		require.Equal(t, time.Minute, rl.RetryAfter)
	}
	// The neighbouring /64 and IPv4 clients are not.
	_, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "2001:db8:1:3::1"})
	require.NoError(t, err)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.NoError(t, err)

	f.clock.Advance(time.Minute)
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "2001:db8:1:2::ffff"})
	require.NoError(t, err)
}

// One client guessing one address: its waits double from the first
// backoff up to the ceiling and stay there; never longer, never for good.
func TestLoginBackoffUpToCeiling(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) {
		c.MaxPairFailures, c.LoginBackoff, c.LoginBackoffMax = 2, time.Second, 8*time.Second
	})
	f.newUser(t, "alice@example.com", testPassword)
	var waits []time.Duration
	for len(waits) < 6 {
		_, err := f.svc.Login(f.ctx, "alice@example.com", "wrong password!", LoginClient{Addr: "192.0.2.1"})
		var rl *RateLimitError
		if errors.As(err, &rl) {
			waits = append(waits, rl.RetryAfter)
			f.clock.Advance(rl.RetryAfter)
			continue
		}
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	require.Equal(t, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}, waits)
	// Another unknown client at the same address is still within the
	// address's free failures (10), and so gets in.
	_, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.7"})
	require.NoError(t, err)
}

// An attack on an account from many addresses slows every unknown client,
// but not one that has logged in before and shows its known-client token;
// that one is slowed only by its own failures.
func TestLoginKnownClientNotThrottledByOthers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	aliceID, _ := f.newUser(t, "alice@example.com", testPassword)
	f.newUser(t, "bob@example.com", testPassword)
	first, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.NoError(t, err)
	require.NotEmpty(t, first.KnownClient)
	require.Equal(t, f.clock.Now().Add(DefaultKnownClientTTL), first.KnownClientExpiresAt)
	bob, err := f.svc.Login(f.ctx, "bob@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.NoError(t, err)

	// The attack: each address guesses a few times, freely; together they
	// exhaust the account's free failures and are slowed.
	limited := 0
	for i := range 40 {
		_, err := f.svc.Login(f.ctx, "alice@example.com", "guess", LoginClient{Addr: "203.0.113." + strconv.Itoa(i/3)})
		if errors.Is(err, ErrRateLimited) {
			limited++
			continue
		}
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	require.Equal(t, 40-DefaultMaxEmailFailures, limited)

	// Unknown clients, the owner on a new device included, must wait.
	for _, kc := range []string{
		"",                // none
		bob.KnownClient,   // another user's
		first.AccessToken, // not a known-client token
		forgedKnownClient(t, aliceID),
		badSignature(first.KnownClient),
	} {
		_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.7", KnownClient: kc})
		require.ErrorIs(t, err, ErrRateLimited, "known-client token %q", kc)
	}

	// The known client gets in from anywhere, and its token is renewed
	// for the same client.
	again, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.8", KnownClient: first.KnownClient})
	require.NoError(t, err)
	id1, err := f.svc.known.verify(first.KnownClient, aliceID)
	require.NoError(t, err)
	id2, err := f.svc.known.verify(again.KnownClient, aliceID)
	require.NoError(t, err)
	require.Equal(t, id1, id2)

	// Its own failures slow it, and no one else.
	for range DefaultMaxPairFailures {
		_, err := f.svc.Login(f.ctx, "alice@example.com", "typo", LoginClient{Addr: "198.51.100.8", KnownClient: again.KnownClient})
		require.ErrorIs(t, err, ErrInvalidCredentials)
	}
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.8", KnownClient: again.KnownClient})
	require.ErrorIs(t, err, ErrRateLimited)
	require.Equal(t, DefaultMaxPairFailures, f.count(t, `SELECT count(*) FROM login_failures WHERE known_client = $1`, id1))
	other, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1", KnownClient: first.KnownClient})
	require.ErrorIs(t, err, ErrRateLimited, "the same client id, so the same bucket")
	require.Empty(t, other.KnownClient)

	// The attackers' wait has a ceiling: they are slowed, not shut out.
	f.clock.Advance(DefaultLoginBackoffMax)
	_, err = f.svc.Login(f.ctx, "alice@example.com", "guess", LoginClient{Addr: "203.0.113.99"})
	require.ErrorIs(t, err, ErrInvalidCredentials)
	// And the known client's success clears only its own failures.
	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "198.51.100.8", KnownClient: again.KnownClient})
	require.NoError(t, err)
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM login_failures WHERE known_client IS NOT NULL`))
	require.Equal(t, DefaultMaxEmailFailures+1, f.count(t, `SELECT count(*) FROM login_failures WHERE email = 'alice@example.com'`))
}

// forgedKnownClient is a well-formed known-client token for the user signed
// with a key the service does not know under its kid.
// badSignature changes the first character of a JWT's signature. (Changing
// its last characters may change nothing: an Ed25519 signature's last
// byte is small, and base64's last character carries padding bits.)
func badSignature(jwt string) string {
	i := strings.LastIndexByte(jwt, '.') + 1
	c := byte('A')
	if jwt[i] == 'A' {
		c = 'B'
	}
	return jwt[:i] + string(c) + jwt[i+1:]
}

func forgedKnownClient(t *testing.T, userID uuid.UUID) string {
	t.Helper()
	other := testKeySet(t, "k1")
	k := newKnownClients(other, DefaultIssuer, time.Hour, time.Now, nil)
	s, _, err := k.sign(userID, uuid.New())
	require.NoError(t, err)
	return s
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
			_, errs[i] = f.svc.Login(f.ctx, "alice@example.com", "wrong password!", LoginClient{Addr: "192.0.2.1"})
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
	before, err := f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.NoError(t, err)

	f.disableUser(t, userID)

	_, err = f.svc.Login(f.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
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
	f := setup(t, func(c *Config) { c.LoginWindow = 15 * time.Minute; c.LoginBackoffMax = 15 * time.Minute })
	_, err := f.svc.Login(f.ctx, "old@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	require.ErrorIs(t, err, ErrInvalidCredentials)
	f.clock.Advance(time.Hour)
	_, err = f.svc.Login(f.ctx, "new@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
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
