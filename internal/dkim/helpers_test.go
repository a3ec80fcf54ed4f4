package dkim_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// rfc8463Key is the ed25519 public key of the example in RFC 8463 Appendix A.
const rfc8463Key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

// rsaKeys generates each RSA key size once per test binary, since 4096-bit
// keys take a while.
var rsaKeys = map[int]func() *rsa.PrivateKey{
	1024: sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) }),
	2048: sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) }),
	4096: sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(4096) }),
}

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// rsaKey returns a generated RSA key of the given size.
func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	gen, ok := rsaKeys[bits]
	require.True(t, ok, "no generator for %d bits", bits)
	return gen()
}

// fakeRSA returns an RSA public key with a random odd modulus of the given
// size. It is no one's key, but parsers see only the public numbers, and it
// lets the tests build sizes and values that rsa.GenerateKey refuses.
func fakeRSA(t testing.TB, bits, e int) *rsa.PublicKey {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	require.NoError(t, err)
	n.SetBit(n, bits-1, 1)
	n.SetBit(n, 0, 1)
	return &rsa.PublicKey{N: n, E: e}
}

// spki returns the DER SubjectPublicKeyInfo of pub.
func spki(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return der
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

func pemBlock(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func ed25519Pair(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

func ecdsaPublic(t testing.TB) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return &k.PublicKey
}

// wrap cuts s into lines of n bytes, as pasted keys often are.
func wrap(s string, n int, sep string) string {
	var out string
	for len(s) > n {
		out += s[:n] + sep
		s = s[n:]
	}
	return out + s
}
