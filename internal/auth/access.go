package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Access token lifetimes. An access token cannot be recalled before it
// expires except through the session check in [Service.Authenticate], so it
// is kept short; the refresh token carries the long session.
const (
	DefaultAccessTTL = 10 * time.Minute
	MaxAccessTTL     = 15 * time.Minute
)

const (
	// maxTokenLen caps a bearer token before any decoding, so that a huge
	// header never reaches base64 or JSON. Our access tokens are about 400
	// bytes.
	maxTokenLen = 4096
	// clockLeeway absorbs clock skew between API replicas for exp, nbf and iat.
	clockLeeway = 10 * time.Second
	// algEdDSA is the one signing algorithm accepted.
	algEdDSA = "EdDSA"
)

// accessClaims are the claims of an access token: the registered ones and
// sid, the session (refresh-token family). jti is the id of the refresh token
// issued together with the access token, which [Service.Authenticate] checks
// for revocation.
type accessClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// Validate runs after the signature and the registered-claim checks of the
// parser; it insists on the claims that only we use.
func (c *accessClaims) Validate() error {
	if !isCanonicalUUID(c.Subject) {
		return errors.New("sub is not a UUID")
	}
	if !isCanonicalUUID(c.SessionID) {
		return errors.New("sid is not a UUID")
	}
	if !isCanonicalUUID(c.ID) {
		return errors.New("jti is not a UUID")
	}
	if c.IssuedAt == nil {
		return errors.New("iat missing")
	}
	// Defence in depth: a token living longer than we ever issue was not
	// made by this code, whatever its signature says.
	if c.ExpiresAt != nil && c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxAccessTTL {
		return errors.New("lifetime exceeds the maximum")
	}
	return nil
}

func isCanonicalUUID(s string) bool {
	id, err := uuid.Parse(s)
	return err == nil && id.String() == s
}

// accessToken is what a verified access token says.
type accessToken struct {
	UserID    uuid.UUID
	SessionID uuid.UUID
	TokenID   uuid.UUID // refresh_tokens.id issued with it
}

// accessTokens signs and verifies access tokens.
type accessTokens struct {
	keys     *KeySet
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	parser   *jwt.Parser
}

func newAccessTokens(keys *KeySet, issuer, audience string, ttl time.Duration, now func() time.Time) *accessTokens {
	return &accessTokens{
		keys:     keys,
		issuer:   issuer,
		audience: audience,
		ttl:      ttl,
		now:      now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{algEdDSA}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(clockLeeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}
}

// sign returns a new access token and its expiry.
func (a *accessTokens) sign(userID, sessionID, tokenID uuid.UUID) (string, time.Time, error) {
	now := a.now()
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.issuer,
			Subject:   userID.String(),
			Audience:  jwt.ClaimStrings{a.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        tokenID.String(),
		},
		SessionID: sessionID.String(),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, &c)
	t.Header["kid"] = a.keys.id
	s, err := t.SignedString(a.keys.signer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, c.ExpiresAt.Time, nil
}

// jwtShape refuses, before any parsing, a token longer than maxTokenLen
// or with a character outside base64url and the dots: encoding/base64
// would skip CR and LF inside the segments, letting one token be written
// many ways. Every JWT this package reads passes through it. The error
// wraps ErrUnauthenticated.
func jwtShape(s string) error {
	if len(s) > maxTokenLen {
		return unauthenticatedf("token longer than %d bytes", maxTokenLen)
	}
	if !isBase64(strings.ReplaceAll(s, ".", ""), '-', '_') {
		return unauthenticatedf("token contains characters outside base64url")
	}
	return nil
}

// verify checks an access token completely except for the session state in
// the database. Every error wraps ErrUnauthenticated.
func (a *accessTokens) verify(s string) (accessToken, error) {
	if err := jwtShape(s); err != nil {
		return accessToken{}, err
	}
	var c accessClaims
	if _, err := a.parser.ParseWithClaims(s, &c, a.key); err != nil {
		return accessToken{}, unauthenticated(err)
	}
	// Validate has checked these already; parsing again costs nothing and
	// keeps a panic out of reach.
	user, err1 := uuid.Parse(c.Subject)
	session, err2 := uuid.Parse(c.SessionID)
	token, err3 := uuid.Parse(c.ID)
	if err := errors.Join(err1, err2, err3); err != nil {
		return accessToken{}, unauthenticated(err)
	}
	return accessToken{UserID: user, SessionID: session, TokenID: token}, nil
}

// key is the parser's keyfunc: the verification key named by the kid header.
func (a *accessTokens) key(t *jwt.Token) (any, error) {
	// The parser has checked the algorithm already; checking again here
	// keeps the key and the algorithm decided in one place.
	if t.Method == nil || t.Method.Alg() != algEdDSA {
		return nil, errors.New("unexpected signing method")
	}
	// RFC 7515 4.1.11: a token with critical extensions we do not
	// understand must be rejected; we understand none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("unsupported crit header")
	}
	kid, ok := t.Header["kid"].(string)
	if !ok {
		return nil, errors.New("kid missing or not a string")
	}
	pub, ok := a.keys.lookup(kid)
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return pub, nil
}
