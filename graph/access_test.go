package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/access"
	"github.com/rampartmail/rampart/internal/account"
	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/auth"
)

// newMember makes a user, a member (not an owner) of the account, and logs
// them in.
func newMember(t *testing.T, env *apitest.Env, accountID uuid.UUID) (userID, token string) {
	t.Helper()
	ctx := context.Background()
	hash, err := auth.HashPassword("member password 123")
	require.NoError(t, err)
	email := uuid.NewString()[:8] + "@member.test"
	require.NoError(t, env.Pool.QueryRow(ctx, `INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id`, email, hash).Scan(&userID))
	_, err = env.Pool.Exec(ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'member')`, accountID, userID)
	require.NoError(t, err)
	r := env.Do(t, "", `mutation($e: String!) { login(email: $e, password: "member password 123") { accessToken } }`, map[string]any{"e": email})
	r.NoErrors(t)
	var l struct{ Login struct{ AccessToken string } }
	r.Decode(t, &l)
	return userID, l.Login.AccessToken
}

// newTeam makes a team in the account and puts the users on it.
func newTeam(t *testing.T, env *apitest.Env, ownerToken string, accountID uuid.UUID, name string, users ...string) string {
	t.Helper()
	r := env.Do(t, ownerToken, `mutation($a: ID, $n: String!) { createTeam(accountId: $a, name: $n) { id } }`, map[string]any{"a": accountID.String(), "n": name})
	r.NoErrors(t)
	var c struct{ CreateTeam struct{ ID string } }
	r.Decode(t, &c)
	for _, u := range users {
		env.Do(t, ownerToken, `mutation($t: ID!, $u: ID!) { addTeamMember(teamId: $t, userId: $u) { id } }`, map[string]any{"t": c.CreateTeam.ID, "u": u}).NoErrors(t)
	}
	return c.CreateTeam.ID
}

// grant gives a team a level on a domain set (nil: every domain) of an
// account and returns the grant's id.
func grant(t *testing.T, env *apitest.Env, ownerToken, team string, accountID uuid.UUID, level string, domains map[string]any) string {
	t.Helper()
	r := env.Do(t, ownerToken, `mutation($t: ID!, $a: ID, $l: AccessLevel!, $d: DomainSetInput) { grantTeam(teamId: $t, accountId: $a, level: $l, domains: $d) { id } }`,
		map[string]any{"t": team, "a": accountID.String(), "l": level, "d": domains})
	r.NoErrors(t)
	var g struct{ GrantTeam struct{ ID string } }
	r.Decode(t, &g)
	return g.GrantTeam.ID
}

// domainNames lists the names of the caller's domains, in every account.
func domainNames(t *testing.T, env *apitest.Env, token string) []string {
	t.Helper()
	r := env.Do(t, token, `{ domains(first: 100) { totalCount nodes { name } } }`, nil)
	r.NoErrors(t)
	var d struct {
		Domains struct {
			TotalCount int
			Nodes      []struct{ Name string }
		}
	}
	r.Decode(t, &d)
	names := []string{}
	for _, n := range d.Domains.Nodes {
		names = append(names, n.Name)
	}
	require.Len(t, names, d.Domains.TotalCount, "the count agrees with the list")
	return names
}

func addDomains(t *testing.T, env *apitest.Env, token string, accountID uuid.UUID, names ...string) {
	t.Helper()
	for _, n := range names {
		env.Do(t, token, `mutation($a: ID, $n: String!) { addDomain(accountId: $a, name: $n) { name } }`, map[string]any{"a": accountID.String(), "n": n}).NoErrors(t)
	}
}

// TestTeamLabelReadOnly: a member of "Marketing, read only on marketing
// domains" sees exactly the domains labelled marketing, in every list and
// report, is FORBIDDEN to change them, and finds every other domain
// NOT_FOUND; the owner sees all.
func TestTeamLabelReadOnly(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Acme")
	addDomains(t, env, o.Token, o.AccountID, "mkt-one-example.com", "mkt-two-example.com", "corp-example.com")
	env.Do(t, o.Token, `mutation { a: setDomainLabels(name: "mkt-one-example.com", labels: ["marketing", "eu"]) { labels } b: setDomainLabels(name: "mkt-two-example.com", labels: [" Marketing "]) { labels } }`, nil).NoErrors(t)
	r := env.Do(t, o.Token, `{ domain(name: "mkt-two-example.com") { labels } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"labels": ["marketing"]}}`, string(r.Data))
	env.Do(t, o.Token, `mutation { setDomainLabels(name: "corp-example.com", labels: ["no spaces"]) { labels } }`, nil).RequireCode(t, "BAD_USER_INPUT")

	memberID, member := newMember(t, env, o.AccountID)
	team := newTeam(t, env, o.Token, o.AccountID, "Marketing", memberID)
	grant(t, env, o.Token, team, o.AccountID, "READ", map[string]any{"label": "marketing"})

	marketing := []string{"mkt-one-example.com", "mkt-two-example.com"}
	require.Equal(t, marketing, domainNames(t, env, member))
	require.Equal(t, []string{"corp-example.com", "mkt-one-example.com", "mkt-two-example.com"}, domainNames(t, env, o.Token))

	// The account, its lists and its report cover the marketing domains only.
	r = env.Do(t, member, `{ viewer { accounts { name domains { totalCount nodes { name } } authReport { domainCount } } grants { level source team domains { all label domains } } } account { authReport { domainCount } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"accounts": [{"name": "Acme", "domains": {"totalCount": 2, "nodes": [{"name": "mkt-one-example.com"}, {"name": "mkt-two-example.com"}]}, "authReport": {"domainCount": 2}}],
		"grants": [{"level": "READ", "source": "TEAM", "team": "Marketing", "domains": {"all": false, "label": "marketing", "domains": []}}]},
		"account": {"authReport": {"domainCount": 2}}}`, string(r.Data))
	r = env.Do(t, o.Token, `{ account { authReport { domainCount } } viewer { grants { level source team } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"authReport": {"domainCount": 3}}, "viewer": {"grants": [{"level": "OWNER", "source": "OWNER", "team": null}]}}`, string(r.Data))

	// A granted domain reads in full: record, settings, reports.
	r = env.Do(t, member, `{ domain(name: "mkt-one-example.com") { name dmarcRecord netblocks { cidr } authReport { domainCount } reports(first: 5) { nodes { id } } readiness { verdict } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"domainCount":1`)

	// Every change to it is FORBIDDEN; the other domain does not exist.
	for name, q := range map[string]string{
		"policy":   `mutation { updateDmarcPolicy(name: "mkt-one-example.com", policy: {p: REJECT}, force: true) { name } }`,
		"netblock": `mutation { addNetblock(domain: "mkt-one-example.com", cidr: "192.0.2.0/24") { name } }`,
		"mode":     `mutation { setDomainMode(name: "mkt-one-example.com", mode: BLOCKED) { name } }`,
		"bimi":     `mutation { setBimi(domain: "mkt-one-example.com", logoUrl: "https://example.com/logo.svg") { name } }`,
		"labels":   `mutation { setDomainLabels(name: "mkt-one-example.com", labels: []) { name } }`,
		"remove":   `mutation { removeDomain(name: "mkt-one-example.com") { name } }`,
	} {
		r := env.Do(t, member, q, nil)
		r.RequireCode(t, "FORBIDDEN")
		requireNoData(t, r, name)
	}
	for _, q := range []string{
		`{ domain(name: "corp-example.com") { name } }`,
		`mutation { updateDmarcPolicy(name: "corp-example.com", policy: {p: REJECT}, force: true) { name } }`,
		`mutation { addNetblock(domain: "corp-example.com", cidr: "192.0.2.0/24") { name } }`,
		`{ explainSpf(domain: "corp-example.com", ip: "192.0.2.1", helo: "mx.example.net") { record } }`,
	} {
		r := env.Do(t, member, q, nil)
		r.RequireCode(t, "NOT_FOUND")
		requireNoData(t, r, q)
		require.Equal(t, `domain "corp-example.com" not found`, r.Errors[0].Message, "the same answer as a name nobody has")
	}
	// Account-wide changes and managing people stay with the owner.
	for _, q := range []string{
		`mutation { addDomain(name: "new-example.com") { name } }`,
		`mutation { createTeam(name: "mine") { id } }`,
		`mutation { createApiToken(name: "mine") { secret } }`,
		`{ account { members { role } } }`,
		`{ account { teams { name } } }`,
	} {
		env.Do(t, member, q, nil).RequireCode(t, "FORBIDDEN")
	}

	// Taking the label off a domain takes it out of the member's sight.
	env.Do(t, o.Token, `mutation { setDomainLabels(name: "mkt-two-example.com", labels: []) { name } }`, nil).NoErrors(t)
	require.Equal(t, []string{"mkt-one-example.com"}, domainNames(t, env, member))
	env.Do(t, member, `{ domain(name: "mkt-two-example.com") { name } }`, nil).RequireCode(t, "NOT_FOUND")
	// Off the team, the member is back to a member without grants: the
	// account, and nothing in it.
	env.Do(t, o.Token, `mutation($t: ID!, $u: ID!) { removeTeamMember(teamId: $t, userId: $u) { id } }`, map[string]any{"t": team, "u": memberID}).NoErrors(t)
	require.Empty(t, domainNames(t, env, member))
	env.Do(t, member, `{ domain(name: "mkt-one-example.com") { name } }`, nil).RequireCode(t, "FORBIDDEN")

	// The owner sees the team as it is.
	r = env.Do(t, o.Token, `{ account { teams { name members { email } grants { level domains { all label } } } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"teams": [{"name": "Marketing", "members": [], "grants": [{"level": "READ", "domains": {"all": false, "label": "marketing"}}]}]}}`, string(r.Data))
	env.Do(t, o.Token, `mutation { createTeam(name: "Marketing") { id } }`, nil).RequireCode(t, "CONFLICT")
	env.Do(t, o.Token, `mutation($t: ID!) { addTeamMember(teamId: $t, userId: "00000000-0000-0000-0000-000000000001") { id } }`, map[string]any{"t": team}).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, o.Token, `mutation($t: ID!) { grantTeam(teamId: $t, level: OWNER) { id } }`, map[string]any{"t": team}).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, o.Token, `mutation($t: ID!) { grantTeam(teamId: $t, level: READ, domains: {domains: ["nowhere-example.com"]}) { id } }`, map[string]any{"t": team}).RequireCode(t, "NOT_FOUND")
	r = env.Do(t, o.Token, `mutation($t: ID!) { renameTeam(id: $t, name: "Brand") { name } }`, map[string]any{"t": team})
	r.NoErrors(t)
	r = env.Do(t, o.Token, `mutation($t: ID!) { deleteTeam(id: $t) { name } }`, map[string]any{"t": team})
	r.NoErrors(t)
	require.JSONEq(t, `{"deleteTeam": {"name": "Brand"}}`, string(r.Data))
	var grants int
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM team_grants`).Scan(&grants))
	require.Zero(t, grants, "the team's grants went with it")
}

// TestTeamLevels: each level allows what it should on its domains and no
// more; admin on named domains adds none, admin on every domain does.
func TestTeamLevels(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Levels")
	addDomains(t, env, o.Token, o.AccountID, "lv-example.com", "other-lv-example.com")
	memberID, member := newMember(t, env, o.AccountID)
	team := newTeam(t, env, o.Token, o.AccountID, "Ops", memberID)

	ops := []struct {
		name, q string
		need    int // the lowest level allowing it (5: owners only)
	}{
		{"read", `{ domain(name: "lv-example.com") { name dmarcRecord netblocks { cidr } } }`, 1},
		{"senders", `mutation { addNetblock(domain: "lv-example.com", cidr: "192.0.2.0/24") { name } }`, 2},
		{"senders again", `mutation { removeNetblock(domain: "lv-example.com", cidr: "192.0.2.0/24") { name } }`, 2},
		{"policy", `mutation { updateDmarcPolicy(name: "lv-example.com", policy: {p: QUARANTINE}, force: true) { name } }`, 3},
		{"mode", `mutation { setDomainMode(name: "lv-example.com", mode: SENDING) { name } }`, 4},
		{"labels", `mutation { setDomainLabels(name: "lv-example.com", labels: ["x"]) { name } }`, 5},
		{"add", `mutation { addDomain(name: "lv-new-example.com") { name } }`, 6}, // needs admin on every domain
	}
	levels := []string{"READ", "MANAGE_SENDERS", "MANAGE_POLICY", "ADMIN"}
	var last string
	for i, level := range levels {
		if last != "" {
			env.Do(t, o.Token, `mutation($t: ID!, $g: ID!) { revokeTeamGrant(teamId: $t, id: $g) { id } }`, map[string]any{"t": team, "g": last}).NoErrors(t)
		}
		last = grant(t, env, o.Token, team, o.AccountID, level, map[string]any{"domains": []string{"LV-example.com."}})
		dkim := struct {
			name, q string
			need    int
		}{"dkim", fmt.Sprintf(`mutation { addDkimKey(domain: "lv-example.com", selector: "s%d", cnameTarget: "s%d.dkim.example.net") { warnings } }`, i, i), 2}
		for _, op := range append(ops, dkim) {
			r := env.Do(t, member, op.q, nil)
			if i+1 >= op.need {
				r.NoErrors(t)
				continue
			}
			r.RequireCode(t, "FORBIDDEN")
			require.Contains(t, r.Errors[0].Message, "permission", "%s at %s", op.name, level)
		}
		require.Equal(t, []string{"lv-example.com"}, domainNames(t, env, member), level)
		env.Do(t, member, `{ domain(name: "other-lv-example.com") { name } }`, nil).RequireCode(t, "NOT_FOUND")
	}
	// Admin on every domain adds domains, and still manages no people.
	grant(t, env, o.Token, team, o.AccountID, "ADMIN", nil)
	env.Do(t, member, `mutation { addDomain(name: "lv-new-example.com") { name } }`, nil).NoErrors(t)
	require.Equal(t, []string{"lv-example.com", "lv-new-example.com", "other-lv-example.com"}, domainNames(t, env, member))
	env.Do(t, member, `mutation { setDomainLabels(name: "lv-example.com", labels: ["x"]) { name } }`, nil).RequireCode(t, "FORBIDDEN")
	env.Do(t, member, `{ account { apiTokens { name } } }`, nil).RequireCode(t, "FORBIDDEN")
}

// TestMSPNestingAndTeams: owners act three levels down, a fourth level is
// refused, and an MSP team's member acts in a customer per the team's
// grant there, and nowhere else.
func TestMSPNestingAndTeams(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	require.Equal(t, 3, access.MaxDepth())
	msp := env.NewOwner(t, "MSP")
	c1 := env.NewOwnerUnder(t, "C1", &msp.AccountID)
	c2 := env.NewOwnerUnder(t, "C2", &c1.AccountID)
	c3 := env.NewOwnerUnder(t, "C3", &c2.AccountID)
	_, _, err := account.NewService(env.Pool).CreateOwner(context.Background(), account.NewOwner{
		Email: "deep@owner.test", Name: "deep", PasswordHash: "x", AccountName: "C4", ParentID: &c3.AccountID,
	})
	require.ErrorIs(t, err, apperr.ErrBadUserInput)
	var n int
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM accounts WHERE name = 'C4'`).Scan(&n))
	require.Zero(t, n, "nothing made at depth 4")

	// The MSP's owner acts in the customer's customer's customer.
	addDomains(t, env, msp.Token, c3.AccountID, "deep-example.com")
	addDomains(t, env, msp.Token, c1.AccountID, "c1-example.com")
	addDomains(t, env, msp.Token, c2.AccountID, "c2-example.com")
	addDomains(t, env, msp.Token, msp.AccountID, "msp-example.com")
	env.Do(t, msp.Token, `mutation { updateDmarcPolicy(name: "deep-example.com", policy: {p: QUARANTINE}, force: true) { name } }`, nil).NoErrors(t)
	r := env.Do(t, msp.Token, `{ viewer { accounts { name } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"accounts": [{"name": "C1"}, {"name": "C2"}, {"name": "C3"}, {"name": "MSP"}]}}`, string(r.Data))
	// C2's owner acts below, not above.
	require.Equal(t, []string{"c2-example.com", "deep-example.com"}, domainNames(t, env, c2.Token))
	env.Do(t, c3.Token, `{ domain(name: "c2-example.com") { name } }`, nil).RequireCode(t, "NOT_FOUND")

	// A member of the MSP on the NOC team manages C1's policies, and only
	// C1's.
	nocID, noc := newMember(t, env, msp.AccountID)
	team := newTeam(t, env, msp.Token, msp.AccountID, "NOC", nocID)
	grant(t, env, msp.Token, team, c1.AccountID, "MANAGE_POLICY", nil)
	require.Equal(t, []string{"c1-example.com"}, domainNames(t, env, noc))
	r = env.Do(t, noc, `{ viewer { accounts { name } grants { account { name } level source team } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"accounts": [{"name": "C1"}, {"name": "MSP"}], "grants": [{"account": {"name": "C1"}, "level": "MANAGE_POLICY", "source": "TEAM", "team": "NOC"}]}}`, string(r.Data))
	env.Do(t, noc, `mutation { updateDmarcPolicy(name: "c1-example.com", policy: {p: REJECT}, force: true) { name } }`, nil).NoErrors(t)
	env.Do(t, noc, `mutation { setDomainMode(name: "c1-example.com", mode: BLOCKED) { name } }`, nil).RequireCode(t, "FORBIDDEN")
	env.Do(t, noc, `mutation { updateDmarcPolicy(name: "c2-example.com", policy: {p: REJECT}, force: true) { name } }`, nil).RequireCode(t, "NOT_FOUND")
	env.Do(t, noc, `{ domain(name: "msp-example.com") { name } }`, nil).RequireCode(t, "FORBIDDEN") // a member of the MSP without a grant there
	r = env.Do(t, noc, `query($c: ID) { account(id: $c) { name authReport { domainCount } } }`, map[string]any{"c": c1.AccountID.String()})
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"name": "C1", "authReport": {"domainCount": 1}}}`, string(r.Data))

	// The MSP's automation makes a customer's token: an owner-level minter
	// reaches down; the read-only token it makes acts in that account only.
	minter, _, r := createTokenIn(t, env, msp.Token, &msp.AccountID, "msp automation", map[string]any{"canCreateTokens": true})
	r.NoErrors(t)
	r = env.Do(t, minter, `mutation($a: ID) { createApiToken(accountId: $a, name: "c2 dashboard", scope: {readOnly: true}) { secret } }`, map[string]any{"a": c2.AccountID.String()})
	r.NoErrors(t)
	var c2Token struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &c2Token)
	require.Equal(t, []string{"c2-example.com"}, domainNames(t, env, c2Token.CreateApiToken.Secret))
	narrow, _, r := createTokenIn(t, env, msp.Token, &msp.AccountID, "narrow", map[string]any{"level": "ADMIN", "canCreateTokens": true})
	r.NoErrors(t)
	// A lower level acts in its own account only: the customer is not its
	// to see.
	env.Do(t, narrow, `mutation($a: ID) { createApiToken(accountId: $a, name: "x", scope: {level: READ}) { secret } }`, map[string]any{"a": c1.AccountID.String()}).RequireCode(t, "NOT_FOUND")

	// A team's members are its account's members; its grants reach down,
	// never up or across.
	c1Team := newTeam(t, env, c1.Token, c1.AccountID, "C1 team")
	env.Do(t, c1.Token, `mutation($t: ID!, $u: ID!) { addTeamMember(teamId: $t, userId: $u) { id } }`, map[string]any{"t": c1Team, "u": nocID}).RequireCode(t, "BAD_USER_INPUT")
	for _, acct := range []uuid.UUID{msp.AccountID, c3.AccountID} {
		r := env.Do(t, c1.Token, `mutation($t: ID!, $a: ID) { grantTeam(teamId: $t, accountId: $a, level: READ) { id } }`, map[string]any{"t": c1Team, "a": acct.String()})
		if acct == c3.AccountID {
			r.NoErrors(t) // two levels down
			continue
		}
		r.RequireCode(t, "NOT_FOUND")
	}
}

// createToken creates an API token with the bearer in its default account
// and returns its secret and id (or the response, when it is refused).
func createToken(t *testing.T, env *apitest.Env, bearer, name string, scope map[string]any) (secret, id string, r *apitest.Response) {
	t.Helper()
	return createTokenIn(t, env, bearer, nil, name, scope)
}

// createTokenIn is createToken in the account named.
func createTokenIn(t *testing.T, env *apitest.Env, bearer string, account *uuid.UUID, name string, scope map[string]any) (secret, id string, r *apitest.Response) {
	t.Helper()
	vars := map[string]any{"n": name, "s": scope}
	if account != nil {
		vars["a"] = account.String()
	}
	r = env.Do(t, bearer, `mutation($a: ID, $n: String!, $s: ApiTokenScopeInput) { createApiToken(accountId: $a, name: $n, scope: $s) { secret token { id } } }`, vars)
	if len(r.Errors) > 0 {
		return "", "", r
	}
	var c struct {
		CreateApiToken struct {
			Secret string
			Token  struct{ ID string }
		}
	}
	r.Decode(t, &c)
	return c.CreateApiToken.Secret, c.CreateApiToken.Token.ID, r
}

// TestScopedTokens: a read-only token reads and changes nothing; a
// domain-scoped token sees its domains only; an expired token is refused;
// a token never mints a wider one; revoking a token revokes what it made.
func TestScopedTokens(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Tokens")
	addDomains(t, env, o.Token, o.AccountID, "tok-a-example.com", "tok-b-example.com", "tok-c-example.com")
	env.Do(t, o.Token, `mutation { setDomainLabels(name: "tok-c-example.com", labels: ["brand"]) { name } }`, nil).NoErrors(t)
	month := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)

	// The read-only dashboard token.
	dash, dashID, r := createToken(t, env, o.Token, "dashboard", map[string]any{"readOnly": true, "expiresAt": month.Format(time.RFC3339)})
	r.NoErrors(t)
	r = env.Do(t, dash, `{ account { authReport(range: LAST_7_DAYS) { domainCount totals { messages dmarcPass } } } domains { totalCount } viewer { apiToken { name scope { level readOnly canCreateTokens expiresAt domains { all } } } grants { level source } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, fmt.Sprintf(`{"account": {"authReport": {"domainCount": 3, "totals": {"messages": 0, "dmarcPass": 0}}}, "domains": {"totalCount": 3},
		"viewer": {"apiToken": {"name": "dashboard", "scope": {"level": "READ", "readOnly": true, "canCreateTokens": false, "expiresAt": %q, "domains": {"all": true}}}, "grants": [{"level": "READ", "source": "TOKEN"}]}}`, month.Format(time.RFC3339)), string(r.Data))
	for _, q := range []string{
		`mutation { addDomain(name: "dash-example.com") { name } }`,
		`mutation { updateDmarcPolicy(name: "tok-a-example.com", policy: {p: REJECT}, force: true) { name } }`,
		`mutation { addNetblock(domain: "tok-a-example.com", cidr: "192.0.2.0/24") { name } }`,
		`mutation { createApiToken(name: "more") { secret } }`,
		`mutation($id: ID!) { revokeApiToken(id: $id) { name } }`,
		`mutation { createTeam(name: "t") { id } }`,
		`mutation { setDomainLabels(name: "tok-a-example.com", labels: []) { name } }`,
		`mutation { refreshSenderRanges { slug } }`,
		`mutation { uploadReports(files: []) { filename } }`,
	} {
		r := env.Do(t, dash, q, map[string]any{"id": dashID})
		r.RequireCode(t, "FORBIDDEN")
		require.Equal(t, "this API token is read-only", r.Errors[0].Message, q)
	}
	require.Equal(t, http.StatusForbidden, uploadStatus(t, env, dash), "the upload endpoint refuses it too")
	var revoked *time.Time
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT revoked_at FROM api_tokens WHERE id = $1`, dashID).Scan(&revoked))
	require.Nil(t, revoked)

	// A token on named domains (and one on a label) sees those only.
	scoped, _, r := createToken(t, env, o.Token, "policy bot", map[string]any{"level": "MANAGE_POLICY", "domains": map[string]any{"domains": []string{"tok-a-example.com"}}})
	r.NoErrors(t)
	require.Equal(t, []string{"tok-a-example.com"}, domainNames(t, env, scoped))
	env.Do(t, scoped, `mutation { updateDmarcPolicy(name: "tok-a-example.com", policy: {p: REJECT}, force: true) { name } }`, nil).NoErrors(t)
	env.Do(t, scoped, `mutation { setDomainMode(name: "tok-a-example.com", mode: BLOCKED) { name } }`, nil).RequireCode(t, "FORBIDDEN")
	env.Do(t, scoped, `{ domain(name: "tok-b-example.com") { name } }`, nil).RequireCode(t, "NOT_FOUND")
	env.Do(t, scoped, `mutation { addDomain(name: "scoped-new-example.com") { name } }`, nil).RequireCode(t, "FORBIDDEN")
	r = env.Do(t, scoped, `{ account { authReport { domainCount } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"authReport": {"domainCount": 1}}}`, string(r.Data))
	brand, _, r := createToken(t, env, o.Token, "brand", map[string]any{"level": "READ", "domains": map[string]any{"label": "brand"}})
	r.NoErrors(t)
	require.Equal(t, []string{"tok-c-example.com"}, domainNames(t, env, brand))

	// Expiry: in the future, at most a year; once past, UNAUTHENTICATED.
	for _, when := range []time.Time{time.Now().Add(-time.Minute), time.Now().Add(400 * 24 * time.Hour)} {
		_, _, r := createToken(t, env, o.Token, "bad expiry", map[string]any{"expiresAt": when.UTC().Format(time.RFC3339)})
		r.RequireCode(t, "BAD_USER_INPUT")
	}
	_, err := env.Pool.Exec(context.Background(), `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, dashID)
	require.NoError(t, err)
	env.Do(t, dash, `{ domains { totalCount } }`, nil).RequireCode(t, "UNAUTHENTICATED")

	// A token without the right makes no token, and a token made without a
	// scope (like every token made before scopes) has none.
	plain, _, r := createToken(t, env, o.Token, "plain", nil)
	r.NoErrors(t)
	r = env.Do(t, plain, `{ viewer { apiToken { scope { level canCreateTokens expiresAt domains { all } } } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"apiToken": {"scope": {"level": "OWNER", "canCreateTokens": false, "expiresAt": null, "domains": {"all": true}}}}}`, string(r.Data))
	_, _, r = createToken(t, env, plain, "child", nil)
	r.RequireCode(t, "FORBIDDEN")
	_, _, r = createToken(t, env, scoped, "child", nil)
	r.RequireCode(t, "FORBIDDEN")

	// A minting token makes tokens within itself only.
	minter, minterID, r := createToken(t, env, o.Token, "minter", map[string]any{"level": "MANAGE_SENDERS", "canCreateTokens": true, "expiresAt": month.Format(time.RFC3339),
		"domains": map[string]any{"domains": []string{"tok-a-example.com", "tok-b-example.com"}}})
	r.NoErrors(t)
	for name, scope := range map[string]map[string]any{
		"level":             {"level": "MANAGE_POLICY"},
		"owner":             {"level": "OWNER", "domains": map[string]any{}},
		"expiry":            {"expiresAt": month.Add(time.Hour).Format(time.RFC3339)},
		"every domain":      {"domains": map[string]any{}},
		"another domain":    {"domains": map[string]any{"domains": []string{"tok-c-example.com"}}},
		"label":             {"domains": map[string]any{"label": "brand"}},
		"create tokens too": {"canCreateTokens": true},
	} {
		_, _, r := createToken(t, env, minter, "wider", scope)
		r.RequireCode(t, "FORBIDDEN")
		if name != "create tokens too" {
			require.Contains(t, r.Errors[0].Message, "wider than itself", name)
		}
	}
	child, _, r := createToken(t, env, minter, "child", map[string]any{"level": "READ", "domains": map[string]any{"domains": []string{"tok-b-example.com"}}})
	r.NoErrors(t)
	require.Equal(t, []string{"tok-b-example.com"}, domainNames(t, env, child))
	inherited, _, r := createToken(t, env, minter, "inherited", nil)
	r.NoErrors(t)
	r = env.Do(t, inherited, `{ viewer { apiToken { scope { level expiresAt canCreateTokens domains { all domains } } } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, fmt.Sprintf(`{"viewer": {"apiToken": {"scope": {"level": "MANAGE_SENDERS", "expiresAt": %q, "canCreateTokens": false, "domains": {"all": false, "domains": ["tok-a-example.com", "tok-b-example.com"]}}}}}`, month.Format(time.RFC3339)), string(r.Data))

	// Revoking cascades: an owner-level minter lets its child mint too;
	// revoking the minter ends all three.
	root, rootID, r := createToken(t, env, o.Token, "root", map[string]any{"canCreateTokens": true})
	r.NoErrors(t)
	mid, _, r := createToken(t, env, root, "mid", map[string]any{"level": "ADMIN", "canCreateTokens": true})
	r.NoErrors(t)
	leaf, _, r := createToken(t, env, mid, "leaf", map[string]any{"level": "READ"})
	r.NoErrors(t)
	r = env.Do(t, o.Token, `{ account { apiTokens { name createdBy { email token { name } } scope { level } } } }`, nil)
	r.NoErrors(t)
	var list struct {
		Account struct {
			APITokens []struct {
				Name      string
				CreatedBy struct {
					Email *string
					Token *struct{ Name string }
				}
			} `json:"apiTokens"`
		}
	}
	r.Decode(t, &list)
	creators := map[string]string{}
	for _, tok := range list.Account.APITokens {
		switch {
		case tok.CreatedBy.Token != nil:
			creators[tok.Name] = "token " + tok.CreatedBy.Token.Name
		case tok.CreatedBy.Email != nil:
			creators[tok.Name] = *tok.CreatedBy.Email
		}
	}
	require.Equal(t, "token root", creators["mid"])
	require.Equal(t, "token mid", creators["leaf"])
	require.Equal(t, "token minter", creators["child"])
	require.Equal(t, o.Email, creators["root"])
	env.Do(t, o.Token, `mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }`, map[string]any{"id": rootID}).NoErrors(t)
	for _, s := range []string{root, mid, leaf} {
		env.Do(t, s, `{ domains { totalCount } }`, nil).RequireCode(t, "UNAUTHENTICATED")
	}
	for _, s := range []string{minter, child, scoped} {
		env.Do(t, s, `{ domains { totalCount } }`, nil).NoErrors(t)
	}
	env.Do(t, o.Token, `mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }`, map[string]any{"id": minterID}).NoErrors(t)
	for _, s := range []string{minter, child, inherited} {
		env.Do(t, s, `{ domains { totalCount } }`, nil).RequireCode(t, "UNAUTHENTICATED")
	}
}

// uploadStatus posts an empty upload with the bearer and returns the
// status.
func uploadStatus(t *testing.T, env *apitest.Env, bearer string) int {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "r.xml")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("<feedback/>"))
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(env.URL, "/graphql")+"/upload", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var answer map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestTeamSenderRefreshReach: refreshing sender ranges reaches the services
// enabled on the domains the member manages the senders of, and no other.
func TestTeamSenderRefreshReach(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ~all")
	env.DNS.Set("mailgun.org", "v=spf1 ip4:198.51.100.0/24 ~all")
	o := env.NewOwner(t, "Refresh")
	addDomains(t, env, o.Token, o.AccountID, "mine-rf-example.com", "theirs-rf-example.com")
	env.Do(t, o.Token, `mutation { enableSender(domain: "mine-rf-example.com", service: "sendgrid") { name } }`, nil).NoErrors(t)
	env.Do(t, o.Token, `mutation { enableSender(domain: "theirs-rf-example.com", service: "mailgun") { name } }`, nil).NoErrors(t)
	memberID, member := newMember(t, env, o.AccountID)
	team := newTeam(t, env, o.Token, o.AccountID, "Senders", memberID)
	grant(t, env, o.Token, team, o.AccountID, "MANAGE_SENDERS", map[string]any{"domains": []string{"mine-rf-example.com"}})

	r := env.Do(t, member, `mutation { refreshSenderRanges { slug } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"refreshSenderRanges": [{"slug": "sendgrid"}]}`, string(r.Data))
	env.Do(t, member, `mutation { refreshSenderRanges(service: "mailgun") { slug } }`, nil).RequireCode(t, "NOT_FOUND")
	r = env.Do(t, o.Token, `mutation { refreshSenderRanges { slug } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"refreshSenderRanges": [{"slug": "mailgun"}, {"slug": "sendgrid"}]}`, string(r.Data))
}
