package graph_test

import (
	"crypto/sha256"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/mailout"
	"github.com/rampartmail/rampart/internal/mailout/mailtest"
)

// clock is a settable clock for the API: the real time moved by an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// peopleEnv runs the API with a real SMTP server as its mail relay and a
// settable clock.
func peopleEnv(t *testing.T, configure func(*app.Config)) (*apitest.Env, *mailtest.Box, *clock) {
	t.Helper()
	box := mailtest.Start(t, mailtest.Options{})
	clk := &clock{}
	env := apitest.StartWith(t, func(c *app.Config) {
		c.SMTPRelay, c.SMTPRelayTLS, c.SMTPFrom = box.Addr, mailout.TLSNone, "noreply@rampart.test"
		c.PublicURL = "https://rampart.test"
		c.Now = clk.Now
		if configure != nil {
			configure(c)
		}
	})
	return env, box, clk
}

var (
	invitationToken = regexp.MustCompile(`rinv_[A-Za-z0-9_-]{43}`)
	resetToken      = regexp.MustCompile(`rpr_[A-Za-z0-9_-]{43}`)
)

// mailedToken waits for the next mail, checks its recipient, and returns
// the token in it; the link in the mail carries the same token.
func mailedToken(t *testing.T, box *mailtest.Box, to string, re *regexp.Regexp) string {
	t.Helper()
	m := box.Next(t)
	require.Equal(t, []string{to}, m.To)
	require.Equal(t, "noreply@rampart.test", m.From)
	tokens := re.FindAllString(m.Body, -1)
	require.Len(t, tokens, 2, "a link and the bare token: %s", m.Body)
	require.Equal(t, tokens[0], tokens[1])
	require.Contains(t, m.Body, "https://rampart.test/")
	return tokens[0]
}

const (
	inviteQ = `mutation($a: ID, $e: String!, $r: Role!) { inviteMember(accountId: $a, email: $e, role: $r) { id email role expired expiresAt } }`
	acceptQ = `mutation($t: String!, $n: String, $p: String) { acceptInvitation(token: $t, name: $n, password: $p) {
		accountId accountName role user { email name } session { accessToken refreshToken } } }`
	loginQ    = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }`
	membersQ  = `query($a: ID) { account(id: $a) { members { role user { id email } } } }`
	newPass   = "a brand new passphrase 7"
	otherPass = "yet another passphrase 8"
)

type invitation struct {
	ID, Email, Role string
	Expired         bool
	ExpiresAt       time.Time
}

func invite(t *testing.T, env *apitest.Env, token, accountID, email, role string) invitation {
	t.Helper()
	r := env.Do(t, token, inviteQ, map[string]any{"a": accountID, "e": email, "r": role})
	r.NoErrors(t)
	var d struct{ InviteMember invitation }
	r.Decode(t, &d)
	return d.InviteMember
}

type accepted struct {
	AcceptInvitation struct {
		AccountID, AccountName, Role string
		User                         struct{ Email, Name string }
		Session                      *struct{ AccessToken, RefreshToken string }
	}
}

func login(t *testing.T, env *apitest.Env, email, password string) (access, refresh string) {
	t.Helper()
	r := env.Do(t, "", loginQ, map[string]any{"e": email, "p": password})
	r.NoErrors(t)
	var d struct {
		Login struct{ AccessToken, RefreshToken string }
	}
	r.Decode(t, &d)
	return d.Login.AccessToken, d.Login.RefreshToken
}

// TestSignUp: refused while the operator has sign-up off (the default);
// once open, it creates a user and an account they own, signed in.
func TestSignUp(t *testing.T) {
	t.Parallel()
	const q = `mutation($e: String!, $p: String!, $n: String!, $a: String!) { signUp(email: $e, password: $p, name: $n, accountName: $a) { accessToken user { email name } } }`
	vars := map[string]any{"e": "Newcomer@Example.test", "p": newPass, "n": "New Comer", "a": "Newco"}

	off := apitest.Start(t)
	r := off.Do(t, "", q, vars)
	r.RequireCode(t, "FORBIDDEN")
	require.Contains(t, r.Errors[0].Message, "sign-up is off")
	var users int
	require.NoError(t, off.Pool.QueryRow(t.Context(), `SELECT count(*) FROM users WHERE email = 'newcomer@example.test'`).Scan(&users))
	require.Zero(t, users)
	var attempts int
	require.NoError(t, off.Pool.QueryRow(t.Context(), `SELECT count(*) FROM login_failures`).Scan(&attempts))
	require.Zero(t, attempts, "a refused sign-up leaves nothing behind")

	env, _, _ := peopleEnv(t, func(c *app.Config) { c.SignUp = "open"; c.LoginBackoff = time.Minute })
	r = env.Do(t, "", q, vars)
	r.NoErrors(t)
	var d struct {
		SignUp struct {
			AccessToken string
			User        struct{ Email, Name string }
		}
	}
	r.Decode(t, &d)
	require.Equal(t, "newcomer@example.test", d.SignUp.User.Email)
	r = env.Do(t, d.SignUp.AccessToken, `{ viewer { accounts { name members { role user { email } } } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"accounts": [{"name": "Newco", "members": [{"role": "OWNER", "user": {"email": "newcomer@example.test"}}]}]}}`, string(r.Data))
	login(t, env, "newcomer@example.test", newPass)

	r = env.Do(t, "", q, vars)
	r.RequireCode(t, "CONFLICT")
	r = env.Do(t, "", q, map[string]any{"e": "weak@example.test", "p": "password", "n": "W", "a": "W"})
	r.RequireCode(t, "BAD_USER_INPUT")
	r = env.Do(t, "", q, map[string]any{"e": "not an address", "p": newPass, "n": "W", "a": "W"})
	r.RequireCode(t, "BAD_USER_INPUT")
	// Sign-ups are throttled like logins: past the free attempts of one
	// client and address, the next waits.
	for range 3 {
		env.Do(t, "", q, vars).RequireCode(t, "CONFLICT")
	}
	env.Do(t, "", q, vars).RequireCode(t, "RATE_LIMITED")
}

// TestInvitations: invite, list, resend (the old token dies), revoke,
// expire and accept, as a new user and as an existing one, with the token
// bound to the address and usable once.
func TestInvitations(t *testing.T) {
	t.Parallel()
	env, box, clk := peopleEnv(t, nil)
	o := env.NewOwner(t, "Acme")
	acct := o.AccountID.String()

	// Invite a new address; resend; only the newest token works.
	inv := invite(t, env, o.Token, acct, "Bob@Example.test", "MEMBER")
	require.Equal(t, "bob@example.test", inv.Email)
	require.False(t, inv.Expired)
	require.WithinDuration(t, clk.Now().Add(7*24*time.Hour), inv.ExpiresAt, time.Minute)
	first := mailedToken(t, box, "bob@example.test", invitationToken)
	// Stored only as its hash.
	var n int
	require.NoError(t, env.Pool.QueryRow(t.Context(), `SELECT count(*) FROM invitations WHERE token_hash = $1`, sha(first)).Scan(&n))
	require.Equal(t, 1, n)

	env.Do(t, o.Token, inviteQ, map[string]any{"a": acct, "e": "bob@example.test", "r": "MEMBER"}).RequireCode(t, "CONFLICT")
	r := env.Do(t, o.Token, `mutation($a: ID, $i: ID!) { resendInvitation(accountId: $a, id: $i) { id } }`, map[string]any{"a": acct, "i": inv.ID})
	r.NoErrors(t)
	second := mailedToken(t, box, "bob@example.test", invitationToken)
	require.NotEqual(t, first, second)
	r = env.Do(t, "", acceptQ, map[string]any{"t": first, "n": "Bob", "p": newPass})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "does not exist")

	r = env.Do(t, o.Token, `query($a: ID) { account(id: $a) { invitations { id email role expired } } }`, map[string]any{"a": acct})
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"invitations": [{"id": "`+inv.ID+`", "email": "bob@example.test", "role": "MEMBER", "expired": false}]}}`, string(r.Data))

	// A new user accepts with a name and password and is signed in.
	r = env.Do(t, "", acceptQ, map[string]any{"t": second, "p": newPass})
	r.RequireCode(t, "BAD_USER_INPUT") // no name
	r = env.Do(t, "", acceptQ, map[string]any{"t": second, "n": "Bob", "p": "short"})
	r.RequireCode(t, "BAD_USER_INPUT") // weak password: nothing created, the token still works
	r = env.Do(t, "", acceptQ, map[string]any{"t": second, "n": "Bob", "p": newPass})
	r.NoErrors(t)
	var a accepted
	r.Decode(t, &a)
	require.Equal(t, acct, a.AcceptInvitation.AccountID)
	require.Equal(t, "Acme", a.AcceptInvitation.AccountName)
	require.Equal(t, "MEMBER", a.AcceptInvitation.Role)
	require.Equal(t, "Bob", a.AcceptInvitation.User.Name)
	require.NotNil(t, a.AcceptInvitation.Session)
	bob := a.AcceptInvitation.Session.AccessToken
	r = env.Do(t, bob, `{ viewer { user { email } accounts { name } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"user": {"email": "bob@example.test"}, "accounts": [{"name": "Acme"}]}}`, string(r.Data))
	// Used: it works once.
	r = env.Do(t, "", acceptQ, map[string]any{"t": second, "n": "Bob", "p": newPass})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "used")
	env.Do(t, o.Token, inviteQ, map[string]any{"a": acct, "e": "bob@example.test", "r": "OWNER"}).RequireCode(t, "CONFLICT") // a member already

	// A member may not invite; a stranger does not see the account.
	stranger := env.NewOwner(t, "Stranger")
	env.Do(t, bob, inviteQ, map[string]any{"a": acct, "e": "x@example.test", "r": "MEMBER"}).RequireCode(t, "FORBIDDEN")
	env.Do(t, stranger.Token, inviteQ, map[string]any{"a": acct, "e": "x@example.test", "r": "MEMBER"}).RequireCode(t, "NOT_FOUND")
	env.Do(t, bob, `query($a: ID) { account(id: $a) { invitations { id } } }`, map[string]any{"a": acct}).RequireCode(t, "FORBIDDEN")

	// Revoked.
	carol := invite(t, env, o.Token, acct, "carol@example.test", "MEMBER")
	carolToken := mailedToken(t, box, "carol@example.test", invitationToken)
	env.Do(t, o.Token, `mutation($a: ID, $i: ID!) { revokeInvitation(accountId: $a, id: $i) { revokedAt } }`, map[string]any{"a": acct, "i": carol.ID}).NoErrors(t)
	r = env.Do(t, "", acceptQ, map[string]any{"t": carolToken, "n": "Carol", "p": newPass})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "revoked")
	env.Do(t, o.Token, `mutation($a: ID, $i: ID!) { resendInvitation(accountId: $a, id: $i) { id } }`, map[string]any{"a": acct, "i": carol.ID}).RequireCode(t, "NOT_FOUND")

	// Expired, then invited afresh.
	dave := invite(t, env, o.Token, acct, "dave@example.test", "MEMBER")
	daveToken := mailedToken(t, box, "dave@example.test", invitationToken)
	clk.Advance(7*24*time.Hour + time.Second)
	r = env.Do(t, "", acceptQ, map[string]any{"t": daveToken, "n": "Dave", "p": newPass})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "expired")
	// The access tokens expired with the clock.
	o.Token, _ = login(t, env, o.Email, o.Password)
	bob, _ = login(t, env, "bob@example.test", newPass)
	stranger.Token, _ = login(t, env, stranger.Email, stranger.Password)
	r = env.Do(t, o.Token, `query($a: ID) { account(id: $a) { invitations { id expired } } }`, map[string]any{"a": acct})
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"invitations": [{"id": "`+dave.ID+`", "expired": true}]}}`, string(r.Data))
	invite(t, env, o.Token, acct, "dave@example.test", "MEMBER")
	daveToken = mailedToken(t, box, "dave@example.test", invitationToken)
	env.Do(t, "", acceptQ, map[string]any{"t": daveToken, "n": "Dave", "p": newPass}).NoErrors(t)

	// An existing user: the invitation is theirs only. Accepting without
	// signing in is refused, and so is another signed-in user.
	invite(t, env, o.Token, acct, stranger.Email, "OWNER")
	strangerToken := mailedToken(t, box, stranger.Email, invitationToken)
	env.Do(t, "", acceptQ, map[string]any{"t": strangerToken, "n": "Imposter", "p": newPass}).RequireCode(t, "CONFLICT")
	r = env.Do(t, bob, acceptQ, map[string]any{"t": strangerToken})
	r.RequireCode(t, "FORBIDDEN")
	require.Contains(t, r.Errors[0].Message, "another e-mail address")
	r = env.Do(t, stranger.Token, acceptQ, map[string]any{"t": strangerToken})
	r.NoErrors(t)
	a = accepted{}
	r.Decode(t, &a)
	require.Equal(t, "OWNER", a.AcceptInvitation.Role)
	require.Nil(t, a.AcceptInvitation.Session)
	r = env.Do(t, stranger.Token, membersQ, map[string]any{"a": acct})
	r.NoErrors(t)
	require.Contains(t, r.Raw, stranger.Email)

	// Garbage is refused before the database.
	env.Do(t, "", acceptQ, map[string]any{"t": "rinv_short", "n": "X", "p": newPass}).RequireCode(t, "BAD_USER_INPUT")
	box.NoMore(t, 100*time.Millisecond)
}

func sha(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// member invites and signs in a new member of the owner's account.
func member(t *testing.T, env *apitest.Env, box *mailtest.Box, o apitest.Owner, email, role string) (token, id string) {
	t.Helper()
	invite(t, env, o.Token, o.AccountID.String(), email, role)
	tok := mailedToken(t, box, email, invitationToken)
	r := env.Do(t, "", acceptQ, map[string]any{"t": tok, "n": email, "p": newPass})
	r.NoErrors(t)
	var a accepted
	r.Decode(t, &a)
	token = a.AcceptInvitation.Session.AccessToken
	r = env.Do(t, token, `{ viewer { user { id } } }`, nil)
	r.NoErrors(t)
	var v struct {
		Viewer struct{ User struct{ ID string } }
	}
	r.Decode(t, &v)
	return token, v.Viewer.User.ID
}

// TestMembersAndOwnership: removing members, leaving, changing roles and
// transferring ownership, each by whom it is allowed, and never leaving an
// account without an owner, even when two owners demote each other at once.
func TestMembersAndOwnership(t *testing.T) {
	t.Parallel()
	env, box, _ := peopleEnv(t, nil)
	o := env.NewOwner(t, "Acme")
	acct := o.AccountID.String()
	bob, bobID := member(t, env, box, o, "bob@example.test", "MEMBER")
	carol, carolID := member(t, env, box, o, "carol@example.test", "MEMBER")
	const (
		removeQ   = `mutation($a: ID, $u: ID!) { removeMember(accountId: $a, userId: $u) }`
		roleQ     = `mutation($a: ID, $u: ID!, $r: Role!) { changeMemberRole(accountId: $a, userId: $u, role: $r) { role user { email } } }`
		transferQ = `mutation($a: ID, $u: ID!) { transferOwnership(accountId: $a, userId: $u) { name } }`
	)
	roles := func() map[string]string {
		r := env.Do(t, o.Token, membersQ, map[string]any{"a": acct})
		r.NoErrors(t)
		var d struct {
			Account struct {
				Members []struct {
					Role string
					User struct{ ID, Email string }
				}
			}
		}
		r.Decode(t, &d)
		out := map[string]string{}
		for _, m := range d.Account.Members {
			out[m.User.Email] = m.Role
		}
		return out
	}
	ownerID := o.UserID.String()

	// A member manages nobody but may leave.
	env.Do(t, bob, removeQ, map[string]any{"a": acct, "u": carolID}).RequireCode(t, "FORBIDDEN")
	env.Do(t, bob, roleQ, map[string]any{"a": acct, "u": bobID, "r": "OWNER"}).RequireCode(t, "FORBIDDEN")
	env.Do(t, bob, transferQ, map[string]any{"a": acct, "u": bobID}).RequireCode(t, "FORBIDDEN")
	env.Do(t, carol, removeQ, map[string]any{"a": acct, "u": carolID}).NoErrors(t)
	require.Equal(t, map[string]string{o.Email: "OWNER", "bob@example.test": "MEMBER"}, roles())
	env.Do(t, carol, `{ viewer { accounts { name } } }`, nil).NoErrors(t)
	env.Do(t, carol, membersQ, map[string]any{"a": acct}).RequireCode(t, "NOT_FOUND")

	// The last owner can neither leave, be removed nor be demoted.
	r := env.Do(t, o.Token, removeQ, map[string]any{"a": acct, "u": ownerID})
	r.RequireCode(t, "CONFLICT")
	require.Contains(t, r.Errors[0].Message, "last owner")
	env.Do(t, o.Token, roleQ, map[string]any{"a": acct, "u": ownerID, "r": "MEMBER"}).RequireCode(t, "CONFLICT")
	env.Do(t, o.Token, removeQ, map[string]any{"a": acct, "u": "00000000-0000-0000-0000-000000000001"}).RequireCode(t, "NOT_FOUND")

	// Transfer: bob owns, the owner is a member, and can no longer manage.
	env.Do(t, o.Token, transferQ, map[string]any{"a": acct, "u": ownerID}).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, o.Token, transferQ, map[string]any{"a": acct, "u": bobID}).NoErrors(t)
	r = env.Do(t, bob, membersQ, map[string]any{"a": acct})
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"role":"OWNER","user":{"id":"`+bobID+`","email":"bob@example.test"}}`)
	require.Contains(t, r.Raw, `{"role":"MEMBER","user":{"id":"`+ownerID+`","email":"`+o.Email+`"}}`)
	env.Do(t, o.Token, removeQ, map[string]any{"a": acct, "u": bobID}).RequireCode(t, "FORBIDDEN")
	env.Do(t, bob, roleQ, map[string]any{"a": acct, "u": bobID, "r": "MEMBER"}).RequireCode(t, "CONFLICT")

	// Two owners demoting each other at the same moment: one wins, and the
	// account keeps an owner. Repeated to give the race its chances.
	r = env.Do(t, bob, roleQ, map[string]any{"a": acct, "u": ownerID, "r": "OWNER"})
	r.NoErrors(t)
	for round := range 10 {
		var wg sync.WaitGroup
		results := make([]*apitest.Response, 2)
		for i, c := range []struct{ token, target string }{{o.Token, bobID}, {bob, ownerID}} {
			wg.Go(func() {
				q, vars := roleQ, map[string]any{"a": acct, "u": c.target, "r": "MEMBER"}
				if round%2 == 1 {
					q, vars = removeQ, map[string]any{"a": acct, "u": c.target}
				}
				results[i] = env.Do(t, c.token, q, vars)
			})
		}
		wg.Wait()
		ok := 0
		for _, res := range results {
			if len(res.Errors) == 0 {
				ok++
			} else {
				// The last-owner check, or the loser is no longer an
				// owner (FORBIDDEN) or no longer a member (NOT_FOUND).
				require.Contains(t, []string{"CONFLICT", "FORBIDDEN", "NOT_FOUND"}, res.Code(), res.Raw)
			}
		}
		require.Equal(t, 1, ok, "exactly one change wins: %s / %s", results[0].Raw, results[1].Raw)
		var owners int
		require.NoError(t, env.Pool.QueryRow(t.Context(), `SELECT count(*) FROM account_members WHERE account_id = $1 AND role = 'owner'`, o.AccountID).Scan(&owners))
		require.Equal(t, 1, owners, "round %d", round)
		// Restore two owners (whoever holds ownership promotes or re-invites the other).
		var winner, loserEmail, loserID string
		if len(results[0].Errors) == 0 {
			winner, loserEmail, loserID = o.Token, "bob@example.test", bobID
		} else {
			winner, loserEmail, loserID = bob, o.Email, ownerID
		}
		if round%2 == 0 {
			env.Do(t, winner, roleQ, map[string]any{"a": acct, "u": loserID, "r": "OWNER"}).NoErrors(t)
			continue
		}
		r := env.Do(t, winner, inviteQ, map[string]any{"a": acct, "e": loserEmail, "r": "OWNER"})
		r.NoErrors(t)
		tok := mailedToken(t, box, loserEmail, invitationToken)
		loserToken := o.Token
		if loserID == bobID {
			loserToken = bob
		}
		env.Do(t, loserToken, acceptQ, map[string]any{"t": tok}).NoErrors(t)
	}
}

type session struct {
	ID, Client           string
	Current              bool
	StartedAt, ExpiresAt time.Time
}

func sessions(t *testing.T, env *apitest.Env, token string) []session {
	t.Helper()
	r := env.Do(t, token, `{ viewer { sessions { id client current startedAt lastUsedAt expiresAt } } }`, nil)
	r.NoErrors(t)
	var d struct{ Viewer struct{ Sessions []session } }
	r.Decode(t, &d)
	return d.Viewer.Sessions
}

const refreshQ = `mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken refreshTokenExpiresAt } }`

// TestSessionsAndPasswordChange: a user lists and revokes their own
// sessions, signs out everywhere, and changes their password, which ends
// their other sessions; nobody reaches another user's sessions, and an API
// token has none.
func TestSessionsAndPasswordChange(t *testing.T) {
	t.Parallel()
	env, _, _ := peopleEnv(t, func(c *app.Config) { c.LoginBackoff = time.Minute })
	o := env.NewOwner(t, "Acme")
	other := env.NewOwner(t, "Other")
	a2, r2 := login(t, env, o.Email, o.Password)
	a3, r3 := login(t, env, o.Email, o.Password)

	list := sessions(t, env, o.Token)
	require.Len(t, list, 3)
	current := 0
	for _, s := range list {
		require.Contains(t, s.Client, "127.0.0.1")
		require.Contains(t, s.Client, "Go-http-client")
		if s.Current {
			current++
		}
	}
	require.Equal(t, 1, current)
	require.Len(t, sessions(t, env, other.Token), 1, "the other user sees only their own")

	// Revoke the third session: its tokens stop working at once.
	var third string
	for _, s := range sessions(t, env, a3) {
		if s.Current {
			third = s.ID
		}
	}
	const revokeQ = `mutation($id: ID!) { revokeSession(id: $id) }`
	env.Do(t, other.Token, revokeQ, map[string]any{"id": third}).RequireCode(t, "NOT_FOUND")
	env.Do(t, a3, whoami, nil).NoErrors(t)
	env.Do(t, o.Token, revokeQ, map[string]any{"id": third}).NoErrors(t)
	env.Do(t, a3, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, "", refreshQ, map[string]any{"t": r3}).RequireCode(t, "UNAUTHENTICATED")
	require.Len(t, sessions(t, env, o.Token), 2)

	// An API token has no sessions or password.
	r := env.Do(t, o.Token, `mutation { createApiToken(name: "auto") { secret } }`, nil)
	r.NoErrors(t)
	var tok struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &tok)
	api := tok.CreateApiToken.Secret
	r = env.Do(t, api, `{ viewer { sessions { id } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"sessions": []}}`, string(r.Data))
	const changeQ = `mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }`
	env.Do(t, api, changeQ, map[string]any{"c": o.Password, "n": newPass}).RequireCode(t, "FORBIDDEN")
	env.Do(t, api, `mutation { signOutEverywhere }`, nil).RequireCode(t, "FORBIDDEN")

	// Change the password: the current one is required, the new one must
	// meet the policy; the other session ends, this one goes on.
	r = env.Do(t, o.Token, changeQ, map[string]any{"c": "wrong password here", "n": newPass})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "currentPassword", r.Errors[0].Extensions["field"], r.Raw)
	env.Do(t, o.Token, changeQ, map[string]any{"c": o.Password, "n": "password1234"}).RequireCode(t, "BAD_USER_INPUT")
	r = env.Do(t, o.Token, changeQ, map[string]any{"c": o.Password, "n": newPass})
	r.NoErrors(t)
	require.JSONEq(t, `{"changePassword": 1}`, string(r.Data))
	env.Do(t, a2, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, "", refreshQ, map[string]any{"t": r2}).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, o.Token, whoami, nil).NoErrors(t)
	env.Do(t, "", loginQ, map[string]any{"e": o.Email, "p": o.Password}).RequireCode(t, "UNAUTHENTICATED")
	a4, _ := login(t, env, o.Email, newPass)

	// Sign out everywhere, keeping this session, then everywhere.
	r = env.Do(t, o.Token, `mutation { signOutEverywhere(keepCurrent: true) }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"signOutEverywhere": 1}`, string(r.Data))
	env.Do(t, a4, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, o.Token, whoami, nil).NoErrors(t)
	r = env.Do(t, o.Token, `mutation { signOutEverywhere }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"signOutEverywhere": 1}`, string(r.Data))
	env.Do(t, o.Token, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, other.Token, whoami, nil).NoErrors(t)

	// Wrong current passwords are throttled like failed logins.
	codes := []string{}
	for range 7 {
		codes = append(codes, env.Do(t, other.Token, changeQ, map[string]any{"c": "not my password!", "n": otherPass}).Code())
	}
	// Five free failures per client and address, then a wait.
	require.Equal(t, []string{"BAD_USER_INPUT", "BAD_USER_INPUT", "BAD_USER_INPUT", "BAD_USER_INPUT", "BAD_USER_INPUT", "RATE_LIMITED", "RATE_LIMITED"}, codes)
}

// TestPasswordReset: a reset mail goes only to an address with a user,
// with the same answer either way; its token works once, within an hour,
// ends every session, and a newer request replaces it.
func TestPasswordReset(t *testing.T) {
	t.Parallel()
	env, box, clk := peopleEnv(t, func(c *app.Config) { c.LoginBackoff = time.Minute })
	o := env.NewOwner(t, "Acme")
	const (
		requestQ = `mutation($e: String!) { requestPasswordReset(email: $e) }`
		resetQ   = `mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }`
	)
	known := env.Do(t, "", requestQ, map[string]any{"e": o.Email})
	known.NoErrors(t)
	first := mailedToken(t, box, o.Email, resetToken)
	unknown := env.Do(t, "", requestQ, map[string]any{"e": "nobody@example.test"})
	unknown.NoErrors(t)
	require.Equal(t, known.Raw, unknown.Raw, "the same answer whether or not the address has a user")
	box.NoMore(t, 300*time.Millisecond)

	// A newer request ends the older token.
	env.Do(t, "", requestQ, map[string]any{"e": o.Email}).NoErrors(t)
	second := mailedToken(t, box, o.Email, resetToken)
	env.Do(t, "", resetQ, map[string]any{"t": first, "p": newPass}).RequireCode(t, "BAD_USER_INPUT")

	// A weak password leaves the token usable; then it works once.
	env.Do(t, "", resetQ, map[string]any{"t": second, "p": "short"}).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, o.Token, whoami, nil).NoErrors(t)
	env.Do(t, "", resetQ, map[string]any{"t": second, "p": newPass}).NoErrors(t)
	env.Do(t, "", resetQ, map[string]any{"t": second, "p": otherPass}).RequireCode(t, "BAD_USER_INPUT")
	// Every session ended; the new password logs in, the old does not.
	env.Do(t, o.Token, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, "", refreshQ, map[string]any{"t": o.RefreshToken}).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, "", loginQ, map[string]any{"e": o.Email, "p": o.Password}).RequireCode(t, "UNAUTHENTICATED")
	login(t, env, o.Email, newPass)

	// An hour later the token is dead.
	env.Do(t, "", requestQ, map[string]any{"e": o.Email}).NoErrors(t)
	third := mailedToken(t, box, o.Email, resetToken)
	clk.Advance(time.Hour + time.Second)
	env.Do(t, "", resetQ, map[string]any{"t": third, "p": otherPass}).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, "", resetQ, map[string]any{"t": "rpr_garbage", "p": otherPass}).RequireCode(t, "BAD_USER_INPUT")

	// Requests are throttled like logins, for a known and an unknown
	// address alike: five free per client and address (three were made
	// for o within the window), then a wait.
	codes := func(email string, n int) []string {
		var out []string
		for range n {
			out = append(out, env.Do(t, "", requestQ, map[string]any{"e": email}).Code())
		}
		return out
	}
	require.Equal(t, []string{"", "", "RATE_LIMITED"}, codes(o.Email, 3))
	require.Equal(t, []string{"", "", "", "", "", "RATE_LIMITED"}, codes("nobody-else@example.test", 6))
	for range 2 {
		box.Next(t) // the two admitted mails to o
	}
	box.NoMore(t, 300*time.Millisecond)
}

// TestSessionLifetime: however often it is refreshed, a session ends at
// its absolute lifetime after the login.
func TestSessionLifetime(t *testing.T) {
	t.Parallel()
	env, _, clk := peopleEnv(t, func(c *app.Config) { c.SessionLifetime = 48 * time.Hour })
	o := env.NewOwner(t, "Acme")
	started := clk.Now()
	refresh := o.RefreshToken
	var access string
	for range 3 { // refresh at +15h, +30h, +45h
		clk.Advance(15 * time.Hour)
		r := env.Do(t, "", refreshQ, map[string]any{"t": refresh})
		r.NoErrors(t)
		var d struct {
			RefreshToken struct {
				AccessToken, RefreshToken string
				RefreshTokenExpiresAt     time.Time
			}
		}
		r.Decode(t, &d)
		refresh, access = d.RefreshToken.RefreshToken, d.RefreshToken.AccessToken
		require.WithinDuration(t, started.Add(48*time.Hour), d.RefreshToken.RefreshTokenExpiresAt, 5*time.Second,
			"the refresh token never outlives the session")
	}
	list := sessions(t, env, access)
	require.Len(t, list, 1)
	require.WithinDuration(t, started.Add(48*time.Hour), list[0].ExpiresAt, 5*time.Second)
	clk.Advance(3*time.Hour + time.Second) // +48h and a second
	env.Do(t, "", refreshQ, map[string]any{"t": refresh}).RequireCode(t, "UNAUTHENTICATED")
	env.Do(t, access, whoami, nil).RequireCode(t, "UNAUTHENTICATED")
	// A new login is a new session.
	a, _ := login(t, env, o.Email, o.Password)
	env.Do(t, a, whoami, nil).NoErrors(t)
}
