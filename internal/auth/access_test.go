package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

const (
	testIssuer   = "rampart"
	testAudience = "rampart-api"
)

// jwtFixture is an access token verifier with a current key "k2" and a
// rotated key "k1", and the means to forge tokens.
type jwtFixture struct {
	access    *accessTokens
	clock     *clock
	current   ed25519.PrivateKey
	rotated   ed25519.PrivateKey
	oldAccess *accessTokens // signs with the rotated key, as before rotation
}

func newJWTFixture(t testing.TB) *jwtFixture {
	t.Helper()
	clk := newClock()
	seed1, err := GenerateSeed()
	require.NoError(t, err)
	seed2, err := GenerateSeed()
	require.NoError(t, err)
	k1, err := VerificationKeyFromSeed("k1", seed1)
	require.NoError(t, err)
	ks, err := NewKeySet("k2", seed2, k1)
	require.NoError(t, err)
	oldKS, err := NewKeySet("k1", seed1)
	require.NoError(t, err)
	return &jwtFixture{
		access:    newAccessTokens(ks, testIssuer, testAudience, DefaultAccessTTL, clk.Now),
		oldAccess: newAccessTokens(oldKS, testIssuer, testAudience, DefaultAccessTTL, clk.Now),
		clock:     clk,
		current:   ed25519.NewKeyFromSeed(seed2),
		rotated:   ed25519.NewKeyFromSeed(seed1),
	}
}

// claims returns the claims of a valid token issued now.
func (f *jwtFixture) claims() jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{
		"iss": testIssuer,
		"aud": []string{testAudience},
		"sub": uuid.NewString(),
		"sid": uuid.NewString(),
		"jti": uuid.NewString(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(DefaultAccessTTL).Unix(),
	}
}

// forge signs claims with the method and key; kid nil leaves it out.
func forge(t *testing.T, method jwt.SigningMethod, key any, kid any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != nil {
		tok.Header["kid"] = kid
	}
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func TestAccessTokenAccepted(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t)
	user, session, id := uuid.New(), uuid.New(), uuid.New()

	fresh, exp, err := f.access.sign(user, session, id)
	require.NoError(t, err)
	require.Equal(t, f.clock.Now().Add(DefaultAccessTTL), exp)
	require.Less(t, len(fresh), 600)
	got, err := f.access.verify(fresh)
	require.NoError(t, err)
	require.Equal(t, accessToken{UserID: user, SessionID: session, TokenID: id}, got)

	// Signed by the key before rotation, still in the set as "k1".
	old, _, err := f.oldAccess.sign(user, session, id)
	require.NoError(t, err)
	got, err = f.access.verify(old)
	require.NoError(t, err)
	require.Equal(t, user, got.UserID)

	// Within the leeway after expiry.
	f.clock.Advance(DefaultAccessTTL + clockLeeway/2)
	_, err = f.access.verify(fresh)
	require.NoError(t, err)
	f.clock.Advance(clockLeeway)
	_, err = f.access.verify(fresh)
	requireUnauthenticated(t, err)
	require.ErrorIs(t, err, jwt.ErrTokenExpired)

	// A hand-made token with the expected claims passes, so the rejections
	// below are down to the one thing each case changes.
	_, err = f.access.verify(forge(t, jwt.SigningMethodEdDSA, f.current, "k2", f.claims(), nil))
	require.NoError(t, err)
}

func TestAccessTokenRejected(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t)
	pub := f.current.Public().(ed25519.PublicKey)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, otherEd, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	now := f.clock.Now()

	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := f.claims()
		mod(c)
		return c
	}
	edDSA := func(c jwt.MapClaims) string { return forge(t, jwt.SigningMethodEdDSA, f.current, "k2", c, nil) }
	valid := edDSA(f.claims())
	parts := strings.Split(valid, ".")

	for _, tc := range []struct {
		name  string
		token string
	}{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k2", f.claims(), nil)},
		{"alg none, signature of a valid token", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k2","typ":"JWT"}`))
			return h + "." + parts[1] + "." + parts[2]
		}()},
		{"HS256 keyed with the public key", forge(t, jwt.SigningMethodHS256, []byte(pub), "k2", f.claims(), nil)},
		{"HS256 keyed with the public key, base64", forge(t, jwt.SigningMethodHS256, []byte(base64.StdEncoding.EncodeToString(pub)), "k2", f.claims(), nil)},
		{"RS256 with another key", forge(t, jwt.SigningMethodRS256, rsaKey, "k2", f.claims(), nil)},
		{"ES256 with another key", forge(t, jwt.SigningMethodES256, ecKey, "k2", f.claims(), nil)},
		{"EdDSA by another key with the same kid", forge(t, jwt.SigningMethodEdDSA, otherEd, "k2", f.claims(), nil)},
		{"current key under the old kid", forge(t, jwt.SigningMethodEdDSA, f.current, "k1", f.claims(), nil)},
		{"old key under the current kid", forge(t, jwt.SigningMethodEdDSA, f.rotated, "k2", f.claims(), nil)},
		{"unknown kid", forge(t, jwt.SigningMethodEdDSA, f.current, "k3", f.claims(), nil)},
		{"missing kid", forge(t, jwt.SigningMethodEdDSA, f.current, nil, f.claims(), nil)},
		{"kid not a string", forge(t, jwt.SigningMethodEdDSA, f.current, 2, f.claims(), nil)},
		{"crit header", forge(t, jwt.SigningMethodEdDSA, f.current, "k2", f.claims(), map[string]any{"crit": []string{"exp"}})},
		{"10 KB header", forge(t, jwt.SigningMethodEdDSA, f.current, "k2", f.claims(), map[string]any{"pad": strings.Repeat("x", 10<<10)})},
		{"missing exp", edDSA(with(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"expired", edDSA(with(func(c jwt.MapClaims) {
			c["iat"] = now.Add(-11 * time.Minute).Unix()
			c["nbf"] = c["iat"]
			c["exp"] = now.Add(-time.Minute).Unix()
		}))},
		{"exp not a number", edDSA(with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }))},
		{"wrong aud", edDSA(with(func(c jwt.MapClaims) { c["aud"] = []string{"other-api"} }))},
		{"missing aud", edDSA(with(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"wrong iss", edDSA(with(func(c jwt.MapClaims) { c["iss"] = "evil" }))},
		{"missing iss", edDSA(with(func(c jwt.MapClaims) { delete(c, "iss") }))},
		{"not yet valid", edDSA(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }))},
		{"issued in the future", edDSA(with(func(c jwt.MapClaims) {
			c["iat"] = now.Add(time.Minute).Unix()
			c["exp"] = now.Add(5 * time.Minute).Unix()
		}))},
		{"missing iat", edDSA(with(func(c jwt.MapClaims) { delete(c, "iat") }))},
		{"lifetime over the maximum", edDSA(with(func(c jwt.MapClaims) { c["exp"] = now.Add(MaxAccessTTL + time.Second).Unix() }))},
		{"sub not a UUID", edDSA(with(func(c jwt.MapClaims) { c["sub"] = "admin" }))},
		{"sub not canonical", edDSA(with(func(c jwt.MapClaims) { c["sub"] = strings.ToUpper(uuid.NewString()) }))},
		{"missing sub", edDSA(with(func(c jwt.MapClaims) { delete(c, "sub") }))},
		{"missing sid", edDSA(with(func(c jwt.MapClaims) { delete(c, "sid") }))},
		{"missing jti", edDSA(with(func(c jwt.MapClaims) { delete(c, "jti") }))},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"`+uuid.NewString()+`"}`)) + "." + parts[2]},
		{"signature removed", parts[0] + "." + parts[1] + "."},
		{"line break inside (base64 would skip it)", parts[0] + "." + parts[1] + "." + parts[2][:10] + "\r\n" + parts[2][10:]},
		{"space inside", parts[0] + " ." + parts[1] + "." + parts[2]},
		{"signature padded", valid + "="},
		{"extra segment", valid + ".e30"},
		{"garbage", "garbage"},
		{"empty", ""},
		{"dots", ".."},
		{"bearer prefix left in", "Bearer " + valid},
		{"over 4 KiB", valid + strings.Repeat("A", maxTokenLen)},
		{"JSON junk", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k2"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`[1,2]`)) + "." + parts[2]},
	} {
		_, err := f.access.verify(tc.token)
		require.Error(t, err, tc.name)
		require.ErrorIs(t, err, ErrUnauthenticated, tc.name)
		t.Logf("%s: %v", tc.name, err)
	}
}

// The size check comes before any decoding: a huge token is refused without
// its header being looked at.
func TestAccessTokenSizeCheckFirst(t *testing.T) {
	t.Parallel()
	f := newJWTFixture(t)
	big := forge(t, jwt.SigningMethodEdDSA, f.current, "k2", f.claims(), map[string]any{"pad": strings.Repeat("x", 10<<10)})
	_, err := f.access.verify(big)
	require.ErrorContains(t, err, "token longer than 4096 bytes")
}
