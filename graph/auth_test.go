package graph_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
)

const whoami = `{ viewer { user { email } } }`

// TestJWTRejected sends forged access tokens over HTTP: each must be
// UNAUTHENTICATED, while the same forgery with every claim right passes, so
// each case fails for its own reason.
func TestJWTRejected(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "JWT")
	key := ed25519.NewKeyFromSeed(env.Seed)

	real := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(o.Token, real)
	require.NoError(t, err)
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range real {
			c[k] = v
		}
		now := time.Now()
		c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(5*time.Minute).Unix()
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, c jwt.MapClaims, kid string, k any) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(k)
		require.NoError(t, err)
		return s
	}

	good := sign(jwt.SigningMethodEdDSA, claims(nil), "k1", key)
	r := env.Do(t, good, whoami, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, o.Email)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	bigHeader := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims(nil))
	bigHeader.Header["kid"] = "k1"
	bigHeader.Header["pad"] = strings.Repeat("A", 10<<10)
	big, err := bigHeader.SignedString(key)
	require.NoError(t, err)

	cases := map[string]string{
		"alg none":        sign(jwt.SigningMethodNone, claims(nil), "k1", jwt.UnsafeAllowNoneSignatureType),
		"HS256 confusion": sign(jwt.SigningMethodHS256, claims(nil), "k1", []byte(key.Public().(ed25519.PublicKey))),
		"RS256":           sign(jwt.SigningMethodRS256, claims(nil), "k1", rsaKey),
		"missing exp":     sign(jwt.SigningMethodEdDSA, claims(func(c jwt.MapClaims) { delete(c, "exp") }), "k1", key),
		"expired": sign(jwt.SigningMethodEdDSA, claims(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Hour).Unix(), time.Now().Add(-50*time.Minute).Unix()
		}), "k1", key),
		"wrong aud":    sign(jwt.SigningMethodEdDSA, claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" }), "k1", key),
		"wrong iss":    sign(jwt.SigningMethodEdDSA, claims(func(c jwt.MapClaims) { c["iss"] = "evil" }), "k1", key),
		"unknown kid":  sign(jwt.SigningMethodEdDSA, claims(nil), "k9", key),
		"missing kid":  sign(jwt.SigningMethodEdDSA, claims(nil), "", key),
		"other key":    sign(jwt.SigningMethodEdDSA, claims(nil), "k1", otherKey),
		"10 KB header": big,
		"garbage":      "not-a-token",
		"empty bearer": "",
	}
	for name, tok := range cases {
		var r *apitest.Response
		if name == "empty bearer" {
			r = apitest.Post(t, env.URL, "Bearer", whoami, nil)
		} else {
			r = env.Do(t, tok, whoami, nil)
		}
		r.RequireCode(t, "UNAUTHENTICATED")
		require.NotContains(t, r.Raw, o.Email, name)
	}
	// A scheme other than Bearer is refused too, not ignored.
	apitest.Post(t, env.URL, "Basic Zm9vOmJhcg==", whoami, nil).RequireCode(t, "UNAUTHENTICATED")
}

func TestRefreshRotationAndReuse(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Refresh")
	const refresh = `mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken user { email } } }`
	type payload struct {
		RefreshToken struct{ AccessToken, RefreshToken string }
	}

	r := env.Do(t, "", refresh, map[string]any{"t": o.RefreshToken})
	r.NoErrors(t)
	var p1 payload
	r.Decode(t, &p1)
	require.NotEqual(t, o.RefreshToken, p1.RefreshToken.RefreshToken, "refresh tokens rotate")
	env.Do(t, p1.RefreshToken.AccessToken, whoami, nil).NoErrors(t)

	r = env.Do(t, "", refresh, map[string]any{"t": p1.RefreshToken.RefreshToken})
	r.NoErrors(t)
	var p2 payload
	r.Decode(t, &p2)

	// Reusing the first token revokes the family: the newest token and the
	// access tokens of the session stop working.
	env.Do(t, "", refresh, map[string]any{"t": o.RefreshToken}).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, "", refresh, map[string]any{"t": p2.RefreshToken.RefreshToken}).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, p2.RefreshToken.AccessToken, whoami, nil).RequireCode(t, "UNAUTHENTICATED")

	// A new login is a new family and works.
	r = env.Do(t, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }`, map[string]any{"e": o.Email, "p": o.Password})
	r.NoErrors(t)
	var l struct {
		Login struct{ AccessToken, RefreshToken string }
	}
	r.Decode(t, &l)
	env.Do(t, l.Login.AccessToken, whoami, nil).NoErrors(t)
	r = env.Do(t, "", `mutation($t: String!) { logout(refreshToken: $t) }`, map[string]any{"t": l.Login.RefreshToken})
	r.NoErrors(t)
	env.Do(t, l.Login.AccessToken, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
}

func TestLoginErrorsAndThrottle(t *testing.T) {
	t.Parallel()
	// A minute's backoff, so that the throttle cannot lapse between two
	// requests of a slow test run.
	env := apitest.StartWith(t, func(c *app.Config) { c.LoginBackoff = time.Minute })
	o := env.NewOwner(t, "Throttle")
	const login = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`
	const knownLogin = `mutation($e: String!, $p: String!, $k: String) { login(email: $e, password: $p, knownClient: $k) { accessToken knownClientToken knownClientTokenExpiresAt } }`
	r0 := env.Do(t, "", knownLogin, map[string]any{"e": o.Email, "p": o.Password})
	r0.NoErrors(t)
	var known struct {
		Login struct{ KnownClientToken string }
	}
	r0.Decode(t, &known)
	require.NotEmpty(t, known.Login.KnownClientToken)
	r := env.Do(t, "", login, map[string]any{"e": "nobody@owner.test", "p": "whatever-password"})
	r.RequireCode(t, "UNAUTHENTICATED")
	unknown := r.Errors[0].Message
	r = env.Do(t, "", login, map[string]any{"e": o.Email, "p": "wrong-password!"})
	r.RequireCode(t, "UNAUTHENTICATED")
	require.Equal(t, unknown, r.Errors[0].Message, "unknown e-mail and wrong password look alike")

	var limited *apitest.Response
	for range 15 {
		limited = env.Do(t, "", login, map[string]any{"e": o.Email, "p": "wrong-password!"})
		if limited.Code() == "RATE_LIMITED" {
			break
		}
	}
	limited.RequireCode(t, "RATE_LIMITED")
	require.Positive(t, limited.Errors[0].Extensions["retryAfterSeconds"])
	// Even the right password is refused while throttled.
	env.Do(t, "", login, map[string]any{"e": o.Email, "p": o.Password}).RequireCode(t, "RATE_LIMITED")
	// But not for a client that logged in before and says so.
	env.Do(t, "", knownLogin, map[string]any{"e": o.Email, "p": o.Password, "k": known.Login.KnownClientToken}).NoErrors(t)
	env.Do(t, "", knownLogin, map[string]any{"e": o.Email, "p": o.Password, "k": "not-a-token"}).RequireCode(t, "RATE_LIMITED")
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Tokens")
	r := env.Do(t, o.Token, `mutation { createApiToken(name: "ci") { secret token { id name hint account { name } lastUsedAt revokedAt } } }`, nil)
	r.NoErrors(t)
	var c struct {
		CreateApiToken struct {
			Secret string
			Token  struct{ ID, Name, Hint string }
		}
	}
	r.Decode(t, &c)
	require.True(t, strings.HasPrefix(c.CreateApiToken.Secret, "rmp_"))
	require.True(t, strings.HasPrefix(c.CreateApiToken.Secret, "rmp_"+c.CreateApiToken.Token.Hint))

	r = env.Do(t, c.CreateApiToken.Secret, `{ viewer { user { email } apiToken { name lastUsedAt } accounts { name } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"user":null`)
	require.Contains(t, r.Raw, `"name":"ci"`)
	require.Contains(t, r.Raw, `"accounts":[{"name":"Tokens"}]`)
	// The token acts as an owner of its account.
	env.Do(t, c.CreateApiToken.Secret, `mutation { addDomain(name: "token-example.com") { name } }`, nil).NoErrors(t)

	r = env.Do(t, o.Token, `{ account { apiTokens { name lastUsedAt } } }`, nil)
	r.NoErrors(t)
	require.NotContains(t, r.Raw, `"lastUsedAt":null`)

	r = env.Do(t, o.Token, `mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }`, map[string]any{"id": c.CreateApiToken.Token.ID})
	r.NoErrors(t)
	require.NotContains(t, r.Raw, `"revokedAt":null`)
	env.Do(t, c.CreateApiToken.Secret, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
}
