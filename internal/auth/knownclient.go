package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// DefaultKnownClientTTL is how long a known-client token stays valid
// without a login; each successful login with it issues a fresh one.
const DefaultKnownClientTTL = 180 * 24 * time.Hour

// knownClientAudience is the aud of known-client tokens. It differs from
// every access-token audience, so neither kind of token passes for the
// other.
const knownClientAudience = "rampart-known-client"

// knownClientClaims are the claims of a known-client token: sub is the
// user, jti the client's id, which names its throttling bucket.
type knownClientClaims struct {
	jwt.RegisteredClaims
}

// Validate insists on the claims the throttle relies on.
func (c *knownClientClaims) Validate() error {
	if !isCanonicalUUID(c.Subject) {
		return errors.New("sub is not a UUID")
	}
	if !isCanonicalUUID(c.ID) {
		return errors.New("jti is not a UUID")
	}
	if c.IssuedAt == nil {
		return errors.New("iat missing")
	}
	return nil
}

// knownClients signs and verifies known-client tokens: proof, issued at a
// successful login, that a client has logged in to the user's account
// before (see login.go). They are signed with the access-token keys, so
// every replica verifies them and key rotation covers them.
type knownClients struct {
	keys   *KeySet
	issuer string
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
	key    jwt.Keyfunc
}

func newKnownClients(keys *KeySet, issuer string, ttl time.Duration, now func() time.Time, key jwt.Keyfunc) *knownClients {
	return &knownClients{
		keys: keys, issuer: issuer, ttl: ttl, now: now, key: key,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{algEdDSA}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(knownClientAudience),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(clockLeeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}
}

// sign returns a known-client token for the user and client id.
func (k *knownClients) sign(userID, clientID uuid.UUID) (string, time.Time, error) {
	now := k.now()
	c := knownClientClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    k.issuer,
		Subject:   userID.String(),
		Audience:  jwt.ClaimStrings{knownClientAudience},
		ExpiresAt: jwt.NewNumericDate(now.Add(k.ttl)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        clientID.String(),
	}}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, &c)
	t.Header["kid"] = k.keys.id
	s, err := t.SignedString(k.keys.signer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign known-client token: %w", err)
	}
	return s, c.ExpiresAt.Time, nil
}

// verify returns the client id of a valid known-client token issued to the
// user; a token of anyone else is as good as none.
func (k *knownClients) verify(s string, userID uuid.UUID) (uuid.UUID, error) {
	if err := jwtShape(s); err != nil {
		return uuid.Nil, fmt.Errorf("malformed known-client token: %w", err)
	}
	var c knownClientClaims
	if _, err := k.parser.ParseWithClaims(s, &c, k.key); err != nil {
		return uuid.Nil, fmt.Errorf("known-client token: %w", err)
	}
	if c.Subject != userID.String() {
		return uuid.Nil, errors.New("known-client token of another user")
	}
	id, err := uuid.Parse(c.ID)
	if err != nil {
		return uuid.Nil, fmt.Errorf("known-client token: %w", err)
	}
	return id, nil
}
