package auth

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGenerateSeed(t *testing.T) {
	t.Parallel()
	a, err := GenerateSeed()
	require.NoError(t, err)
	b, err := GenerateSeed()
	require.NoError(t, err)
	require.Len(t, a, ed25519.SeedSize)
	require.NotEqual(t, a, b)
}

func TestNewKeySet(t *testing.T) {
	t.Parallel()
	seed, err := GenerateSeed()
	require.NoError(t, err)
	seed2, err := GenerateSeed()
	require.NoError(t, err)
	old, err := VerificationKeyFromSeed("k1", seed2)
	require.NoError(t, err)

	ks, err := NewKeySet("k2", seed, old)
	require.NoError(t, err)
	cur := ks.Current()
	require.Equal(t, "k2", cur.ID)
	require.Equal(t, ed25519.NewKeyFromSeed(seed).Public(), cur.Key)
	got, ok := ks.lookup("k1")
	require.True(t, ok)
	require.Equal(t, old.Key, got)
	_, ok = ks.lookup("k3")
	require.False(t, ok)

	// The set keeps its own copy of the keys it was given.
	old.Key[0] ^= 0xff
	got, _ = ks.lookup("k1")
	require.NotEqual(t, old.Key, got)

	for name, fn := range map[string]func() (*KeySet, error){
		"short seed":      func() (*KeySet, error) { return NewKeySet("k", seed[:31]) },
		"long seed":       func() (*KeySet, error) { return NewKeySet("k", append(seed, 0)) },
		"nil seed":        func() (*KeySet, error) { return NewKeySet("k", nil) },
		"empty kid":       func() (*KeySet, error) { return NewKeySet("", seed) },
		"long kid":        func() (*KeySet, error) { return NewKeySet(strings.Repeat("k", 65), seed) },
		"kid with quote":  func() (*KeySet, error) { return NewKeySet(`k"`, seed) },
		"duplicate kid":   func() (*KeySet, error) { return NewKeySet("k1", seed, VerificationKey{ID: "k1", Key: old.Key}) },
		"short old key":   func() (*KeySet, error) { return NewKeySet("k2", seed, VerificationKey{ID: "k1", Key: old.Key[:10]}) },
		"old key bad kid": func() (*KeySet, error) { return NewKeySet("k2", seed, VerificationKey{ID: "", Key: old.Key}) },
	} {
		_, err := fn()
		require.Error(t, err, name)
	}
}
