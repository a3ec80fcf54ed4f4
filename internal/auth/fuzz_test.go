package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzAuthenticate feeds arbitrary bearer strings to Authenticate against a
// real database holding one session and one API token. Every refusal must be
// ErrUnauthenticated (never a panic, never a database error from bad input),
// and only the two genuine tokens, byte for byte, may be accepted: no other
// encoding of a valid token passes.
func FuzzAuthenticate(f *testing.F) {
	fx := setup(f)
	userID, accountID := fx.newUser(f, "alice@example.com", testPassword)
	tok, err := fx.svc.Login(fx.ctx, "alice@example.com", testPassword, LoginClient{Addr: "192.0.2.1"})
	if err != nil {
		f.Fatal(err)
	}
	secret, _, err := fx.svc.CreateAPIToken(fx.as(userID), accountID, "fuzz")
	if err != nil {
		f.Fatal(err)
	}

	enc := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(tok.AccessToken, ".")
	for _, s := range []string{
		tok.AccessToken,
		secret,
		tok.RefreshToken,
		"",
		"garbage",
		"a.b.c",
		enc([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + ".",
		enc([]byte(`{"alg":"HS256","kid":"k1","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"EdDSA","kid":"k1","crit":["b64"]}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"EdDSA","kid":["k1"]}`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + enc([]byte(`{"exp":1e308,"iat":-1e308,"aud":[1,{}],"sub":null}`)) + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "A",
		"rmp_" + strings.Repeat("A", 43),
		secret[:len(secret)-1] + "B",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, bearer string) {
		id, err := fx.svc.Authenticate(fx.ctx, bearer)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Authenticate(%q): not ErrUnauthenticated: %v", bearer, err)
			}
			return
		}
		switch {
		case bearer == tok.AccessToken && id.UserID == userID && !id.IsAPIToken():
		case bearer == secret && id.IsAPIToken() && *id.AccountID == accountID:
		default:
			t.Fatalf("Authenticate(%q) accepted: %+v", bearer, id)
		}
	})
}

// FuzzAccessTokenSigned signs arbitrary header and claims JSON with the
// current key, so that the fuzzer gets past the signature into the JSON
// decoding and the claim checks. Nothing may panic, every refusal must be
// ErrUnauthenticated, and an accepted token must carry our issuer, our
// audience, an unexpired exp and a bounded lifetime.
func FuzzAccessTokenSigned(f *testing.F) {
	fx := newJWTFixture(f)
	c := fx.claims()
	claims, err := json.Marshal(c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"alg":"EdDSA","kid":"k2","typ":"JWT"}`), claims)
	f.Add([]byte(`{"alg":"EdDSA","kid":"k1"}`), claims)
	f.Add([]byte(`{"alg":"EdDSA","kid":"k2","crit":[]}`), claims)
	f.Add([]byte(`{"alg":"none"}`), claims)
	f.Add([]byte(`{"alg":"EdDSA","kid":"k2"}`), []byte(`{"exp":1e400}`))
	f.Add([]byte(`{"alg":"EdDSA","kid":"k2"}`), []byte(`{"iss":"rampart","aud":"rampart-api","exp":9e18,"iat":-9e18,"sub":"","sid":"","jti":""}`))
	f.Add([]byte(`{}`), []byte(`null`))
	enc := base64.RawURLEncoding.EncodeToString
	now := fx.clock.Now()
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		signing := enc(header) + "." + enc(claims)
		sig, err := jwt.SigningMethodEdDSA.Sign(signing, fx.current)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fx.access.verify(signing + "." + enc(sig))
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("not ErrUnauthenticated: %v", err)
			}
			return
		}
		var c accessClaims
		if err := json.Unmarshal(claims, &c); err != nil {
			t.Fatalf("accepted claims that do not decode: %v", err)
		}
		if c.Issuer != testIssuer || !slices.Contains(c.Audience, testAudience) || c.ExpiresAt == nil || c.IssuedAt == nil ||
			!now.Before(c.ExpiresAt.Add(clockLeeway)) || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxAccessTTL {
			t.Fatalf("accepted bad claims %s", claims)
		}
	})
}

// FuzzSecretTokens: reset and invitation tokens come from mail, untrusted.
// Only the exact secret of its prefix parses, to its hash; anything else,
// including the same secret under another prefix, is refused without a
// panic.
func FuzzSecretTokens(f *testing.F) {
	good, hash := NewSecret(resetTokenPrefix)
	f.Add(good)
	f.Add("rinv_" + good[len(resetTokenPrefix):])
	f.Add(good + "=")
	f.Add(strings.ToUpper(good))
	f.Add("rpr_")
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := ParseSecret(s, resetTokenPrefix)
		if s == good {
			if !ok || !slices.Equal(h, hash) {
				t.Fatal("the genuine token must parse to its hash")
			}
			return
		}
		if ok && slices.Equal(h, hash) {
			t.Fatalf("%q parses to the genuine token's hash", s)
		}
	})
}

// FuzzDescribeClient: the client shown in a session list comes from the
// request (address, User-Agent): it is always printable UTF-8 within the
// bound.
func FuzzDescribeClient(f *testing.F) {
	f.Add("192.0.2.1", "Mozilla/5.0")
	f.Add("", "\x00\r\nX-Injected: 1")
	f.Add("2001:db8::1", strings.Repeat("é", 400))
	f.Fuzz(func(t *testing.T, addr, ua string) {
		d := LoginClient{Addr: addr, UserAgent: ua}.describe()
		if len(d) > maxClientDescLen || !utf8.ValidString(d) {
			t.Fatalf("describe(%q, %q) = %q: too long or not UTF-8", addr, ua, d)
		}
		for _, r := range d {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in %q", d)
			}
		}
	})
}
