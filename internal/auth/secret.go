package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Opaque secrets (refresh and API tokens) are a prefix and 32 random bytes
// in unpadded base64url: 256 bits, beyond guessing, so a fast hash (SHA-256)
// is enough to store them; a leaked table gives nothing usable. The prefix
// tells the kinds apart and lets secret scanners recognise a leaked token.
const (
	refreshTokenPrefix = "rrt_"
	apiTokenPrefix     = "rmp_"
	secretBytes        = 32
)

var b64url = base64.RawURLEncoding.Strict()

// newSecret returns a new secret with the prefix, and its hash to store.
func newSecret(prefix string) (secret string, hash []byte) {
	b := make([]byte, secretBytes)
	rand.Read(b) // crypto/rand.Read never fails; it crashes the program instead.
	secret = prefix + b64url.EncodeToString(b)
	return secret, hashSecret(secret)
}

// parseSecret checks that s is a well-formed secret with the prefix and
// returns its hash; the database is not asked about anything malformed.
func parseSecret(s, prefix string) ([]byte, bool) {
	body, ok := strings.CutPrefix(s, prefix)
	if !ok || len(body) != b64url.EncodedLen(secretBytes) || !isBase64(body, '-', '_') {
		return nil, false
	}
	if b, err := b64url.DecodeString(body); err != nil || len(b) != secretBytes {
		return nil, false
	}
	return hashSecret(s), true
}

func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// NewSecret returns a new opaque secret with the prefix (which ends in
// "_") and the SHA-256 hash to store in its place, for other packages'
// single-use tokens (invitations).
func NewSecret(prefix string) (secret string, hash []byte) { return newSecret(prefix) }

// ParseSecret checks that s is a well-formed secret with the prefix and
// returns its hash; ok is false for anything malformed, which then need not
// reach the database.
func ParseSecret(s, prefix string) (hash []byte, ok bool) { return parseSecret(s, prefix) }
