package domain

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apperr"
)

func TestNormalizeName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "Example.COM", want: "example.com"},
		{in: " example.com. ", want: "example.com"},
		{in: "mail.example.co.uk", want: "mail.example.co.uk"},
		{in: "example.co.uk", want: "example.co.uk"},
		{in: "bücher.example.de", want: "xn--bcher-kva.example.de"},
		{in: "BÜCHER.de", want: "xn--bcher-kva.de"},
		{in: "xn--bcher-kva.de", want: "xn--bcher-kva.de"},
		{in: "", err: "required"},
		{in: "com", err: "single label"},
		{in: "co.uk", err: "public suffix"},
		{in: "example.invalidtld", err: "known top-level"},
		{in: "exa mple.com", err: "not a valid"},
		{in: "_dmarc.example.com", err: "not a valid"},
		{in: "-bad.example.com", err: "not a valid"},
		{in: "a..example.com", err: "not a valid"},
		{in: string(make([]byte, 64)) + ".com", err: "not a valid"},
	} {
		got, err := NormalizeName(tc.in)
		if tc.err != "" {
			require.Error(t, err, tc.in)
			require.ErrorIs(t, err, apperr.ErrBadUserInput)
			require.Contains(t, err.Error(), tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	long := ""
	for len(long) < 250 {
		long += "abcdefghi."
	}
	_, err := NormalizeName(long + "com")
	require.ErrorContains(t, err, "too long")
}

func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"example.com", "bücher.de", "co.uk", "", ".", "xn--", "a.b.c.d.example.org."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeName(in)
		if err != nil {
			return
		}
		again, err := NormalizeName(got)
		require.NoError(t, err)
		require.Equal(t, got, again)
		require.LessOrEqual(t, len(got), maxNameLen)
	})
}
