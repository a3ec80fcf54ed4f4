package dkim_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/dkim"
)

// FuzzParsePublicKey checks that ParsePublicKey never panics, and that a key
// it accepts is canonical: its Record reads back as the same key and is
// composed again byte for byte.
func FuzzParsePublicKey(f *testing.F) {
	for _, tc := range validCases(f) {
		f.Add(tc.in)
	}
	for _, s := range []string{
		"v=DKIM1; k=rsa; p=MIIB!!!",
		"p=ab==cd",
		dkim.RevokedRecord,
		"v=spf1 -all",
		`"v=DKIM1; k=ed25519; " "p=` + rfc8463Key + `"`,
		"v=DKIM1; k=ed25519; h=sha256; s=email; t=s; n=note; p=" + rfc8463Key,
		`v=DKIM1\059 k=ed25519\; p=` + rfc8463Key,
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		k, warnings, err := dkim.ParsePublicKey(in)
		if err != nil {
			require.Zero(t, k)
			require.Nil(t, warnings)
			return
		}
		require.Contains(t, []string{dkim.TypeRSA, dkim.TypeEd25519}, k.Type)
		rec := k.Record()
		again, _, err := dkim.ParsePublicKey(rec)
		require.NoError(t, err, "record %q of input %q", rec, in)
		require.Equal(t, k, again, "record %q", rec)
		require.Equal(t, rec, again.Record())
	})
}
