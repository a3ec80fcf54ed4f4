package main

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/attacktest"
	"github.com/rampartmail/rampart/internal/auth"
	"github.com/rampartmail/rampart/internal/dbtest"
)

// TestCreateOwnerPasswordsAndExistingEmail runs `rampart admin
// create-owner` as an operator would: a password long enough in characters
// is taken whatever its bytes, one too short in characters or too common is
// refused, and an e-mail address that already has a user is refused with a
// message saying so, changing nothing (before, the existing user silently
// became the new account's owner and the password given was ignored).
func TestCreateOwnerPasswordsAndExistingEmail(t *testing.T) {
	t.Parallel()
	bin, _ := attacktest.Binaries(t)
	dbURL := dbtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	createOwner := func(email, account, password string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, "admin", "create-owner", "-email", email, "-name", "Owner", "-account", account)
		cmd.Env = []string{"DATABASE_URL=" + dbURL}
		cmd.Stdin = bytes.NewBufferString(password + "\n")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	counts := func() (users, accounts int) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM accounts)`).Scan(&users, &accounts))
		return users, accounts
	}

	const multibyte = "密码是长城上的一块砖头吧" // 12 characters, 36 bytes
	out, err := createOwner("first@example.com", "First", multibyte)
	require.NoError(t, err, out)
	require.Contains(t, out, "first@example.com")
	var hash string
	require.NoError(t, pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE email = 'first@example.com'`).Scan(&hash))
	ok, err := auth.VerifyPassword(hash, multibyte)
	require.NoError(t, err)
	require.True(t, ok)

	for _, tc := range []struct{ password, says string }{
		{"密码是长城上的一块砖头", "at least 12 characters"}, // 11 characters, 33 bytes
		{"éééééé", "at least 12 characters"},      // 12 bytes
		{"Password2024!", "most common passwords"},
		{"qwertyqwerty", "most common passwords"},
	} {
		out, err := createOwner("weak@example.com", "Weak", tc.password)
		require.Error(t, err, "%q accepted: %s", tc.password, out)
		require.Contains(t, out, tc.says, tc.password)
	}
	users, accounts := counts()
	require.Equal(t, 1, users)
	require.Equal(t, 1, accounts)

	// The same e-mail address again, in another case, with another password.
	out, err = createOwner("First@Example.com", "Second", "another long passphrase")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, out)
	require.NotZero(t, exit.ExitCode())
	require.Contains(t, out, "a user with the e-mail address first@example.com already exists")
	users, accounts = counts()
	require.Equal(t, 1, users, "no user created")
	require.Equal(t, 1, accounts, "no account created")
	var after string
	require.NoError(t, pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE email = 'first@example.com'`).Scan(&after))
	require.Equal(t, hash, after, "the password is unchanged")
}
