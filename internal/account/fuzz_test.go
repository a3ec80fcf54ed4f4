package account

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/rampartmail/rampart/internal/apperr"
)

// FuzzNormalizeAddress: an invited or signing-up address is untrusted
// input. It is refused with BAD_USER_INPUT, or accepted as one bare, lower
// case address without spaces or control characters; never a panic.
func FuzzNormalizeAddress(f *testing.F) {
	for _, s := range []string{"Bob@Example.test", "Bob <bob@example.test>", "a@b", "x\r\nBcc: y@z", "\"a b\"@c.test", "@", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := normalizeAddress("email", s)
		if err != nil {
			if !errors.Is(err, apperr.ErrBadUserInput) {
				t.Fatalf("%q: %v is not BAD_USER_INPUT", s, err)
			}
			return
		}
		if got != strings.ToLower(got) || !strings.Contains(got, "@") || len(got) > 254 ||
			strings.ContainsFunc(got, func(r rune) bool { return unicode.IsControl(r) || r == '<' || r == '>' }) {
			t.Fatalf("%q accepted as %q", s, got)
		}
	})
}

// FuzzCheckName: names of people and accounts are bounded and printable.
func FuzzCheckName(f *testing.F) {
	f.Add("Bob")
	f.Add("  ")
	f.Add("a\x00b")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := checkName("name", s, true)
		if err != nil {
			return
		}
		if got == "" || strings.ContainsFunc(got, unicode.IsControl) || len([]rune(got)) > 200 {
			t.Fatalf("%q accepted as %q", s, got)
		}
	})
}
