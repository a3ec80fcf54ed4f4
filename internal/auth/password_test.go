package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHashPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := testParams.Hash(testPassword)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$"), h)

	ok, err := VerifyPassword(h, testPassword)
	require.NoError(t, err)
	require.True(t, ok)

	for _, wrong := range []string{"", testPassword + " ", "Correct horse battery staple", testPassword[:len(testPassword)-1]} {
		ok, err := VerifyPassword(h, wrong)
		require.NoError(t, err)
		require.False(t, ok, "%q", wrong)
	}

	h2, err := testParams.Hash(testPassword)
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salt must differ")
}

func TestHashPasswordDefaultParams(t *testing.T) {
	t.Parallel()
	h, err := HashPassword(testPassword)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=2,p=4$"), h)
	ok, err := VerifyPassword(h, testPassword)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"", false},
		{strings.Repeat("a", MinPasswordLen-1), false},
		{strings.Repeat("a", MinPasswordLen), true},
		// Length counts characters, not bytes.
		{strings.Repeat("é", 6), false},                // 12 bytes, 6 characters
		{strings.Repeat("é", MinPasswordLen-1), false}, // 22 bytes, 11 characters
		{strings.Repeat("é", MinPasswordLen), true},    // 24 bytes
		{"密码是长城上的一块砖头吧", true},                         // 12 characters of 3 bytes
		{"密码是长城上的一块砖头", false},                         // 11 characters, 33 bytes
		{"🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑", true},                         // 12 characters of 4 bytes
		{strings.Repeat("a", MaxPasswordLen), true},
		{strings.Repeat("a", MaxPasswordLen+1), false},
	} {
		err := ValidatePassword(tc.pw)
		_, herr := testParams.Hash(tc.pw)
		if tc.ok {
			require.NoError(t, err, len(tc.pw))
			require.NoError(t, herr, len(tc.pw))
		} else {
			require.ErrorIs(t, err, ErrWeakPassword, len(tc.pw))
			require.ErrorIs(t, herr, ErrWeakPassword, len(tc.pw))
		}
	}
	require.EqualError(t, ValidatePassword("short"), "password does not meet the policy: it must be at least 12 characters long")
}

func TestCommonPasswordsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pw     string
		common bool
	}{
		// In the list, long enough for the length rule.
		{"qwertyqwerty", true},
		{"1qaz2wsx3edc", true},
		{"123456qwerty", true},
		{"leavemealone", true},
		{"LeaveMeAlone", true}, // compared in lower case
		// A common password padded to the length with digits, punctuation
		// or spaces.
		{"password1234", true},
		{"Password2024!", true},
		{"!!qwertyuiop!!", true},
		{"  iloveyou 123", true},
		// Not common.
		{testPassword, false},
		{"member password 123", false},
		{"rampart-demo-password", false},
		{"passwordpassword-x", false},
		{"123456789012", false}, // all padding: nothing left to look up
	} {
		require.Equal(t, tc.common, IsCommonPassword(tc.pw), tc.pw)
		err := ValidatePassword(tc.pw)
		if tc.common {
			require.ErrorIs(t, err, ErrWeakPassword, tc.pw)
			require.ErrorContains(t, err, "one of the most common passwords")
		} else {
			require.NoError(t, err, tc.pw)
		}
	}
	// The embedded list is all there: its first and last entries.
	require.True(t, IsCommonPassword("123456"))
	require.True(t, IsCommonPassword("brady"))
	require.Len(t, commonSet(), 9913, "entries of the list, folded to lower case")
}

func TestHashRejectsBadParams(t *testing.T) {
	t.Parallel()
	for _, p := range []Params{
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 7, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		{Memory: maxMemory + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	} {
		_, err := p.Hash(testPassword)
		require.Error(t, err, "%+v", p)
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	t.Parallel()
	good, err := testParams.Hash(testPassword)
	require.NoError(t, err)
	f := strings.Split(good, "$")
	salt, key := f[4], f[5]
	for name, enc := range map[string]string{
		"empty":             "",
		"garbage":           "not a hash",
		"bcrypt":            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":           "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"argon2d":           "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"version 16":        "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"no version":        "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"missing hash":      "$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"trailing dollar":   good + "$",
		"leading junk":      "x" + good,
		"params reordered":  "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"params missing":    "$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"params extra":      "$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key,
		"leading zero":      "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"sign":              "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"t=0":               "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"p=0":               "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"p=256":             "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key,
		"m below 8p":        "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key,
		"m huge":            "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key,
		"m overflow":        "$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key,
		"t huge":            "$argon2id$v=19$m=64,t=4000000000,p=1$" + salt + "$" + key,
		"padded base64":     "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"url base64":        "$argon2id$v=19$m=64,t=1,p=1$" + strings.NewReplacer("+", "-", "/", "_").Replace(salt) + "-_$" + key,
		"short salt":        "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key,
		"short key":         "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA",
		"empty salt":        "$argon2id$v=19$m=64,t=1,p=1$$" + key,
		"too long":          good + strings.Repeat("A", maxEncodedLen),
		"non-canonical b64": "$argon2id$v=19$m=64,t=1,p=1$" + salt[:len(salt)-1] + "B$" + key,
	} {
		ok, err := VerifyPassword(enc, testPassword)
		require.Error(t, err, name)
		require.False(t, ok, name)
	}
}

// BenchmarkHashPassword measures DefaultParams; see DefaultParams for the
// figures that chose them.
func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword(testPassword); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzVerifyPassword feeds arbitrary encodings to the parser. Whatever it
// accepts must re-encode to the same string (one encoding per hash) and,
// when cheap enough to compute, verify without error; whatever it refuses,
// VerifyPassword must refuse too. Nothing may panic.
func FuzzVerifyPassword(f *testing.F) {
	good, err := testParams.Hash(testPassword)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, testPassword)
	f.Add(good, "wrong")
	f.Add("$argon2id$v=19$m=65536,t=2,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", "x")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$$", "")
	f.Add("$$$$$", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, encoded, pw string) {
		p, salt, key, err := decodeHash(encoded)
		if err != nil {
			ok, verr := VerifyPassword(encoded, pw)
			if verr == nil || ok {
				t.Fatalf("VerifyPassword accepted what decodeHash refused: %q", encoded)
			}
			return
		}
		if got := p.encode(salt, key); got != encoded {
			t.Fatalf("non-canonical encoding accepted: %q re-encodes as %q", encoded, got)
		}
		if uint64(p.Memory)*uint64(p.Time) > 4096 {
			return // valid but too slow for fuzzing
		}
		if _, err := VerifyPassword(encoded, pw); err != nil {
			t.Fatalf("VerifyPassword(%q): %v", encoded, err)
		}
	})
}
