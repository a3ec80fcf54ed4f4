package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
)

// maxKeyIDLen bounds a key id; it travels in every token header.
const maxKeyIDLen = 64

// VerificationKey is an Ed25519 public key with its key id (the kid header
// of the tokens it verifies).
type VerificationKey struct {
	ID  string
	Key ed25519.PublicKey
}

// KeySet holds the Ed25519 key that signs access tokens and the public keys
// that verify them, each under its key id. A KeySet is immutable and safe for
// concurrent use.
//
// Rotation without rejecting live tokens, with several API replicas:
//
//  1. Generate a seed ([GenerateSeed]) under a new id, say "k2". Deploy
//     NewKeySet("k1", seed1, VerificationKeyFromSeed("k2", seed2)): every
//     replica now accepts k2 but still signs with k1.
//  2. Deploy NewKeySet("k2", seed2, VerificationKeyFromSeed("k1", seed1)):
//     new tokens are signed with k2; tokens signed with k1 stay valid.
//  3. After [MaxAccessTTL] has passed, deploy NewKeySet("k2", seed2) and
//     destroy seed1.
//
// For an emergency (a leaked seed) skip the waiting: sign with a new key and
// drop the old one at once; every user then refreshes their access token.
type KeySet struct {
	id     string
	signer ed25519.PrivateKey
	verify map[string]ed25519.PublicKey
}

// GenerateSeed returns a new random 32-byte Ed25519 seed for [NewKeySet].
// Keep it secret: whoever has it can sign access tokens for any user.
func GenerateSeed() ([]byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generate key seed: %w", err)
	}
	return seed, nil
}

// NewKeySet returns a key set that signs with the key derived from seed (32
// bytes) under the id kid, and also verifies tokens signed by the older keys
// in old. Key ids are 1 to 64 characters of [A-Za-z0-9._-] and must be
// distinct.
func NewKeySet(kid string, seed []byte, old ...VerificationKey) (*KeySet, error) {
	cur, err := VerificationKeyFromSeed(kid, seed)
	if err != nil {
		return nil, err
	}
	ks := &KeySet{
		id:     kid,
		signer: ed25519.NewKeyFromSeed(seed),
		verify: map[string]ed25519.PublicKey{kid: cur.Key},
	}
	for _, k := range old {
		if err := checkKeyID(k.ID); err != nil {
			return nil, err
		}
		if len(k.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key set: key %q: public key must be %d bytes", k.ID, ed25519.PublicKeySize)
		}
		if _, dup := ks.verify[k.ID]; dup {
			return nil, fmt.Errorf("key set: key id %q appears twice", k.ID)
		}
		ks.verify[k.ID] = append(ed25519.PublicKey(nil), k.Key...)
	}
	return ks, nil
}

// VerificationKeyFromSeed returns the public half of the key derived from
// seed, for passing a former signing key to [NewKeySet].
func VerificationKeyFromSeed(kid string, seed []byte) (VerificationKey, error) {
	if err := checkKeyID(kid); err != nil {
		return VerificationKey{}, err
	}
	if len(seed) != ed25519.SeedSize {
		return VerificationKey{}, fmt.Errorf("key set: key %q: seed must be %d bytes, not %d", kid, ed25519.SeedSize, len(seed))
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return VerificationKey{ID: kid, Key: pub}, nil
}

// Current returns the id and public key of the signing key.
func (k *KeySet) Current() VerificationKey {
	return VerificationKey{ID: k.id, Key: append(ed25519.PublicKey(nil), k.verify[k.id]...)}
}

// lookup returns the verification key with the id kid.
func (k *KeySet) lookup(kid string) (ed25519.PublicKey, bool) {
	pub, ok := k.verify[kid]
	return pub, ok
}

func checkKeyID(kid string) error {
	if len(kid) == 0 || len(kid) > maxKeyIDLen {
		return fmt.Errorf("key set: key id must be 1 to %d characters", maxKeyIDLen)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errors.New("key set: key id may contain only A-Z a-z 0-9 . _ -")
		}
	}
	return nil
}
