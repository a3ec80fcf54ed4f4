package graph_test

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/auth"
)

const (
	createCustomerQ = `mutation($p: ID, $n: String!, $e: String) { createCustomerAccount(parentId: $p, name: $n, ownerEmail: $e) {
		account { id name parent { name } suspendedAt } invitation { email role } } }`
	customersQ = `query($a: ID, $first: Int, $after: String, $all: Boolean, $f: CustomerFilter) { account(id: $a) {
		customers(first: $first, after: $after, all: $all, filter: $f) { totalCount pageInfo { hasNextPage endCursor } nodes { name } } } }`
)

type customerPage struct {
	Account struct {
		Customers struct {
			TotalCount int
			PageInfo   struct {
				HasNextPage bool
				EndCursor   string
			}
			Nodes []struct{ Name string }
		}
	}
}

func (p customerPage) names() []string {
	out := []string{}
	for _, n := range p.Account.Customers.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func createCustomer(t *testing.T, env *apitest.Env, token, parent, name string) string {
	t.Helper()
	r := env.Do(t, token, createCustomerQ, map[string]any{"p": parent, "n": name})
	r.NoErrors(t)
	var d struct {
		CreateCustomerAccount struct{ Account struct{ ID string } }
	}
	r.Decode(t, &d)
	return d.CreateCustomerAccount.Account.ID
}

func customers(t *testing.T, env *apitest.Env, token string, vars map[string]any) customerPage {
	t.Helper()
	r := env.Do(t, token, customersQ, vars)
	r.NoErrors(t)
	var p customerPage
	r.Decode(t, &p)
	return p
}

// TestCustomerAccounts: an MSP creates customer accounts down to the depth
// the operator allows (and not beyond), invites a customer's first owner,
// lists its customers page by page; the customer's owner sees neither the
// MSP nor its siblings, and cannot suspend or remove their own account.
func TestCustomerAccounts(t *testing.T) {
	t.Parallel()
	env, box, _ := peopleEnv(t, nil)
	ctx := context.Background()
	msp := env.NewOwner(t, "MSP")
	m := msp.AccountID.String()

	r := env.Do(t, msp.Token, createCustomerQ, map[string]any{"p": m, "n": "Cust One", "e": "Boss@Cust-One.test"})
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"parent":{"name":"MSP"},"suspendedAt":null},"invitation":{"email":"boss@cust-one.test","role":"OWNER"}`)
	var made struct {
		CreateCustomerAccount struct{ Account struct{ ID string } }
	}
	r.Decode(t, &made)
	c1 := made.CreateCustomerAccount.Account.ID
	tok := mailedToken(t, box, "boss@cust-one.test", invitationToken)
	r = env.Do(t, "", acceptQ, map[string]any{"t": tok, "n": "Boss", "p": newPass})
	r.NoErrors(t)
	var acc accepted
	r.Decode(t, &acc)
	require.Equal(t, "OWNER", acc.AcceptInvitation.Role)
	boss := acc.AcceptInvitation.Session.AccessToken

	// The README walk-through: the MSP claims the customer's domain, makes a
	// read-only team in the customer and invites a member into it, and
	// gives a dashboard a read-only token of the customer.
	env.AddVerifiedDomainIn(t, msp.Token, c1, "cust-one-example.com")
	r = env.Do(t, msp.Token, `mutation($c: ID) { createTeam(accountId: $c, name: "Auditors") { id } inviteMember(accountId: $c, email: "carol@cust-one.test", role: MEMBER) { id } }`, map[string]any{"c": c1})
	r.NoErrors(t)
	var team struct{ CreateTeam struct{ ID string } }
	r.Decode(t, &team)
	r = env.Do(t, "", acceptQ, map[string]any{"t": mailedToken(t, box, "carol@cust-one.test", invitationToken), "n": "Carol", "p": newPass})
	r.NoErrors(t)
	r.Decode(t, &acc)
	carol := acc.AcceptInvitation.Session.AccessToken
	r = env.Do(t, carol, `{ viewer { user { id } } }`, nil)
	r.NoErrors(t)
	var cv struct {
		Viewer struct{ User struct{ ID string } }
	}
	r.Decode(t, &cv)
	env.Do(t, msp.Token, `mutation($t: ID!, $u: ID!) { grantTeam(teamId: $t, level: READ) { id } addTeamMember(teamId: $t, userId: $u) { name } }`,
		map[string]any{"t": team.CreateTeam.ID, "u": cv.Viewer.User.ID}).NoErrors(t)
	env.Do(t, carol, `{ domain(name: "cust-one-example.com") { dmarcRecord } }`, nil).NoErrors(t)
	env.Do(t, carol, `mutation { updateDmarcPolicy(name: "cust-one-example.com", policy: {p: REJECT}, force: true) { name } }`, nil).RequireCode(t, "FORBIDDEN")
	env.Do(t, carol, customersQ, map[string]any{"a": m}).RequireCode(t, "NOT_FOUND")
	r = env.Do(t, msp.Token, `mutation($c: ID) { createApiToken(accountId: $c, name: "dashboard", scope: {readOnly: true}) { secret } }`, map[string]any{"c": c1})
	r.NoErrors(t)
	var dash struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &dash)
	r = env.Do(t, dash.CreateApiToken.Secret, `{ domains { nodes { name } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domains": {"nodes": [{"name": "cust-one-example.com"}]}}`, string(r.Data))
	r = env.Do(t, dash.CreateApiToken.Secret, `mutation { addDomain(name: "cust-one-example.com") { name } }`, nil)
	r.RequireCode(t, "FORBIDDEN")
	require.Contains(t, r.Errors[0].Message, "read-only")

	// The customer's owner nests a customer of theirs; the MSP one below
	// that: three levels, the default -msp-depth. A fourth is refused and
	// nothing is created.
	c2 := createCustomer(t, env, boss, c1, "Cust Two")
	c3 := createCustomer(t, env, msp.Token, c2, "Cust Three")
	r = env.Do(t, msp.Token, createCustomerQ, map[string]any{"p": c3, "n": "Too Deep"})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "at most 3 levels")
	var n int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE name = 'Too Deep'`).Scan(&n))
	require.Zero(t, n)
	s1 := createCustomer(t, env, msp.Token, m, "Sibling")
	// Without a mail relay answer nothing is left: a bad address creates
	// nothing either.
	env.Do(t, msp.Token, createCustomerQ, map[string]any{"p": m, "n": "Bad", "e": "not an address"}).RequireCode(t, "BAD_USER_INPUT")
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE name = 'Bad'`).Scan(&n))
	require.Zero(t, n)

	// The MSP lists its direct customers, or every account below, by name,
	// page by page, and filters.
	p := customers(t, env, msp.Token, map[string]any{"a": m})
	require.Equal(t, []string{"Cust One", "Sibling"}, p.names())
	require.Equal(t, 2, p.Account.Customers.TotalCount)
	p = customers(t, env, msp.Token, map[string]any{"a": m, "all": true, "first": 3})
	require.Equal(t, []string{"Cust One", "Cust Three", "Cust Two"}, p.names())
	require.Equal(t, 4, p.Account.Customers.TotalCount)
	require.True(t, p.Account.Customers.PageInfo.HasNextPage)
	p = customers(t, env, msp.Token, map[string]any{"a": m, "all": true, "first": 3, "after": p.Account.Customers.PageInfo.EndCursor})
	require.Equal(t, []string{"Sibling"}, p.names())
	require.False(t, p.Account.Customers.PageInfo.HasNextPage)
	p = customers(t, env, msp.Token, map[string]any{"a": m, "all": true, "f": map[string]any{"namePrefix": "cust t"}})
	require.Equal(t, []string{"Cust Three", "Cust Two"}, p.names())
	env.Do(t, msp.Token, customersQ, map[string]any{"a": m, "after": "bm90IGEgY3Vyc29y"}).RequireCode(t, "BAD_USER_INPUT")

	// The customer's owner sees their own customers, not the MSP nor the
	// sibling; and only the accounts above may suspend or remove theirs.
	p = customers(t, env, boss, map[string]any{"a": c1, "all": true})
	require.Equal(t, []string{"Cust Three", "Cust Two"}, p.names())
	env.Do(t, boss, customersQ, map[string]any{"a": m}).RequireCode(t, "NOT_FOUND")
	env.Do(t, boss, `query($a: ID) { account(id: $a) { name } }`, map[string]any{"a": s1}).RequireCode(t, "NOT_FOUND")
	env.Do(t, boss, `mutation($a: ID!) { suspendCustomerAccount(id: $a) { name } }`, map[string]any{"a": s1}).RequireCode(t, "NOT_FOUND")
	for _, q := range []string{`mutation($a: ID!) { suspendCustomerAccount(id: $a) { name } }`, `mutation($a: ID!) { removeCustomerAccount(id: $a) { name } }`} {
		r = env.Do(t, boss, q, map[string]any{"a": c1})
		r.RequireCode(t, "FORBIDDEN")
		require.Contains(t, r.Errors[0].Message, "only the owners of an account above")
	}
	// The MSP's own account is no customer.
	env.Do(t, msp.Token, `mutation($a: ID!) { suspendCustomerAccount(id: $a) { name } }`, map[string]any{"a": m}).RequireCode(t, "BAD_USER_INPUT")
	// ... but the customer's owner suspends their own customer.
	r = env.Do(t, boss, `mutation($a: ID!) { suspendCustomerAccount(id: $a) { name suspendedAt } }`, map[string]any{"a": c2})
	r.NoErrors(t)
	require.NotContains(t, r.Raw, `"suspendedAt":null`)
	p = customers(t, env, msp.Token, map[string]any{"a": m, "all": true, "f": map[string]any{"suspended": true}})
	require.Equal(t, []string{"Cust Two"}, p.names())
	env.Do(t, boss, `mutation($a: ID!) { resumeCustomerAccount(id: $a) { name } }`, map[string]any{"a": c2}).NoErrors(t)

	// Removal: refused while the account has customers or domains; an empty
	// one goes with its teams, tokens and members.
	r = env.Do(t, msp.Token, `mutation($a: ID!) { removeCustomerAccount(id: $a) { name } }`, map[string]any{"a": c2})
	r.RequireCode(t, "CONFLICT")
	require.Contains(t, r.Errors[0].Message, "0 domain(s) and 1 customer account(s)")
	env.AddVerifiedDomainIn(t, msp.Token, c3, "in-three-example.com")
	r = env.Do(t, msp.Token, `mutation($a: ID!) { removeCustomerAccount(id: $a) { name } }`, map[string]any{"a": c3})
	r.RequireCode(t, "CONFLICT")
	require.Contains(t, r.Errors[0].Message, "1 domain(s) and 0 customer account(s)")
	env.Do(t, msp.Token, `{ domain(name: "in-three-example.com") { name } }`, nil).NoErrors(t)

	env.Do(t, msp.Token, `mutation($a: ID) { createTeam(accountId: $a, name: "ops") { id } }`, map[string]any{"a": s1}).NoErrors(t)
	r = env.Do(t, msp.Token, `mutation($a: ID) { createApiToken(accountId: $a, name: "s1 token") { secret } }`, map[string]any{"a": s1})
	r.NoErrors(t)
	var st struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &st)
	env.Do(t, st.CreateApiToken.Secret, `{ account { name } }`, nil).NoErrors(t)
	r = env.Do(t, msp.Token, `mutation($a: ID!) { removeCustomerAccount(id: $a) { name } }`, map[string]any{"a": s1})
	r.NoErrors(t)
	require.JSONEq(t, `{"removeCustomerAccount": {"name": "Sibling"}}`, string(r.Data))
	var left int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM accounts WHERE id = $1) + (SELECT count(*) FROM teams WHERE account_id = $1)
		+ (SELECT count(*) FROM api_tokens WHERE account_id = $1) + (SELECT count(*) FROM account_members WHERE account_id = $1)`, s1).Scan(&left))
	require.Zero(t, left)
	env.Do(t, st.CreateApiToken.Secret, `{ account { name } }`, nil).RequireCode(t, "UNAUTHENTICATED")
	p = customers(t, env, msp.Token, map[string]any{"a": m})
	require.Equal(t, []string{"Cust One"}, p.names())
}

// TestSuspendedCustomer: a suspended customer's own owner and tokens are
// refused everything in it (and below it), the MSP keeps full access, and
// the DNS edge keeps answering the customer's DMARC record; resuming gives
// the customer its access back.
func TestSuspendedCustomer(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	edge := env.StartEdge(t, filepath.Join(t.TempDir(), "snap"))
	addr := edge.UDPAddr().String()
	msp := env.NewOwner(t, "MSP")
	cust := env.NewOwnerUnder(t, "Customer", &msp.AccountID)
	c := cust.AccountID.String()
	below := createCustomer(t, env, cust.Token, c, "Below")
	env.AddVerifiedDomain(t, cust, "suspended-example.com")
	r := env.Do(t, cust.Token, `mutation($c: ID) { createApiToken(accountId: $c, name: "ci") { secret } }`, map[string]any{"c": c})
	r.NoErrors(t)
	var ct struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &ct)
	ciToken := ct.CreateApiToken.Secret
	record := "v=DMARC1; p=none; rua=mailto:" + reportAddress(t, env, cust.Token, "suspended-example.com")
	waitTXT(t, addr, "_dmarc.suspended-example.com", dns.RcodeSuccess, record)

	// An MSP member whose team reads the customer.
	hash, err := auth.HashPassword("member password 123")
	require.NoError(t, err)
	var staffID string
	require.NoError(t, env.Pool.QueryRow(context.Background(), `INSERT INTO users (email, password_hash) VALUES ('staff@msp.test', $1) RETURNING id`, hash).Scan(&staffID))
	_, err = env.Pool.Exec(context.Background(), `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'member')`, msp.AccountID, staffID)
	require.NoError(t, err)
	r = env.Do(t, msp.Token, `mutation($m: ID) { createTeam(accountId: $m, name: "Support") { id } }`, map[string]any{"m": msp.AccountID.String()})
	r.NoErrors(t)
	var team struct{ CreateTeam struct{ ID string } }
	r.Decode(t, &team)
	env.Do(t, msp.Token, `mutation($t: ID!, $c: ID, $u: ID!) { grantTeam(teamId: $t, accountId: $c, level: READ) { id } addTeamMember(teamId: $t, userId: $u) { name } }`,
		map[string]any{"t": team.CreateTeam.ID, "c": c, "u": staffID}).NoErrors(t)
	staff, _ := login(t, env, "staff@msp.test", "member password 123")

	r = env.Do(t, msp.Token, `mutation($a: ID!) { suspendCustomerAccount(id: $a) { name suspendedAt } }`, map[string]any{"a": c})
	r.NoErrors(t)
	require.NotContains(t, r.Raw, `"suspendedAt":null`)

	vars := map[string]any{"c": c, "below": below}
	for who, token := range map[string]string{"owner": cust.Token, "token": ciToken} {
		for _, q := range []string{
			`{ domain(name: "suspended-example.com") { name } }`,
			`query($c: ID) { account(id: $c) { name } }`,
			`query($c: ID) { domains(accountId: $c) { totalCount } }`,
			`query($below: ID) { account(id: $below) { name } }`,
			`mutation { updateDmarcPolicy(name: "suspended-example.com", policy: {p: REJECT}, force: true) { name } }`,
			`mutation($c: ID) { addDomain(accountId: $c, name: "more-example.com") { name } }`,
			`mutation($c: ID) { createApiToken(accountId: $c, name: "x") { secret } }`,
		} {
			r := env.Do(t, token, q, vars)
			r.RequireCode(t, "FORBIDDEN")
			require.Contains(t, r.Errors[0].Message, "this account is suspended", "%s: %s", who, q)
			requireNoData(t, r, "%s: %s", who, q)
		}
	}
	// The customer's own listings leave it out.
	r = env.Do(t, cust.Token, `{ viewer { accounts { name } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"accounts": []}}`, string(r.Data))

	// The MSP keeps full access, and the edge serves the domain unchanged,
	// then with the MSP's change.
	waitTXT(t, addr, "_dmarc.suspended-example.com", dns.RcodeSuccess, record)
	r = env.Do(t, msp.Token, `query($c: ID) { account(id: $c) { name suspendedAt domains { totalCount } } }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"domains":{"totalCount":1}`)
	env.Do(t, msp.Token, `query($below: ID) { account(id: $below) { name } }`, vars).NoErrors(t)
	r = env.Do(t, staff, `{ domain(name: "suspended-example.com") { name } }`, nil)
	r.NoErrors(t)
	env.Do(t, staff, `mutation { updateDmarcPolicy(name: "suspended-example.com", policy: {p: REJECT}, force: true) { name } }`, nil).RequireCode(t, "FORBIDDEN")
	env.Do(t, msp.Token, `mutation { updateDmarcPolicy(name: "suspended-example.com", policy: {p: QUARANTINE}, force: true) { name } }`, nil).NoErrors(t)
	waitTXT(t, addr, "_dmarc.suspended-example.com", dns.RcodeSuccess, "v=DMARC1; p=quarantine; rua=mailto:"+reportAddress(t, env, msp.Token, "suspended-example.com"))

	env.Do(t, msp.Token, `mutation($c: ID!) { resumeCustomerAccount(id: $c) { name } }`, vars).NoErrors(t)
	r = env.Do(t, cust.Token, `{ domain(name: "suspended-example.com") { dmarcPolicy { p } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"dmarcPolicy": {"p": "QUARANTINE"}}}`, string(r.Data))
	env.Do(t, ciToken, `query($below: ID) { account(id: $below) { name } }`, vars).NoErrors(t)
	env.Do(t, cust.Token, `query($below: ID) { account(id: $below) { name } }`, vars).NoErrors(t)
}

// TestCustomerOverview: the dashboard figures of each customer, checked
// against what was set up, in a fixed number of queries per page, and
// addDomain of a name the account holds returns it.
func TestCustomerOverview(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	msp := env.NewOwner(t, "MSP")
	m := msp.AccountID.String()
	a := createCustomer(t, env, msp.Token, m, "Alpha")
	b := createCustomer(t, env, msp.Token, m, "Beta")
	createCustomer(t, env, msp.Token, m, "Gamma")
	createCustomer(t, env, msp.Token, b, "Beta child")

	env.AddVerifiedDomainIn(t, msp.Token, a, "alpha-one-example.com")
	env.AddVerifiedDomainIn(t, msp.Token, a, "alpha-two-example.com")
	env.Do(t, msp.Token, `mutation { updateDmarcPolicy(name: "alpha-one-example.com", policy: {p: REJECT}, force: true) { name } }`, nil).NoErrors(t)
	env.Do(t, msp.Token, `mutation { setDomainMode(name: "alpha-two-example.com", mode: BLOCKED) { name } }`, nil).NoErrors(t)
	env.Do(t, msp.Token, `mutation($a: ID) { addDomain(accountId: $a, name: "beta-unproven-example.com") { verified } }`, map[string]any{"a": b}).NoErrors(t)
	env.AddVerifiedDomainIn(t, msp.Token, b, "beta-example.com")
	env.Do(t, msp.Token, `mutation { updateDmarcPolicy(name: "beta-example.com", policy: {p: QUARANTINE}, force: true) { name } }`, nil).NoErrors(t)
	h := sha256.Sum256([]byte("refused upload"))
	_, err := env.Pool.Exec(ctx, `INSERT INTO report_blobs (sha256, raw, size, source, account_id, status, refusal_reason, refusal_detail)
		VALUES ($1, 'x', 1, 'upload', $2, 'refused', 'not_a_report', 'not a report')`, h[:], b)
	require.NoError(t, err)
	var domainID string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT id FROM domains WHERE name = 'alpha-one-example.com'`).Scan(&domainID))
	_, err = env.Pool.Exec(ctx, `INSERT INTO reports (domain_id, org_name, reporter, report_id, policy_domain, begin_at, end_at, day, received_at)
		VALUES ($1, 'google.com', 'google.com', 'r1', 'alpha-one-example.com', '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', '2026-11-01', '2026-11-02T06:00:00Z')`, domainID)
	require.NoError(t, err)

	const q = `query($m: ID, $first: Int, $all: Boolean) { account(id: $m) { customerOverview(first: $first, all: $all) { totalCount nodes {
		account { name } domains blocked policyNone policyQuarantine policyReject verified unverified lastReportAt ingestProblems failingServices notReady } } } }`
	r := env.Do(t, msp.Token, q, map[string]any{"m": m, "first": 50})
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"customerOverview": {"totalCount": 3, "nodes": [
		{"account": {"name": "Alpha"}, "domains": 2, "blocked": 1, "policyNone": 0, "policyQuarantine": 0, "policyReject": 1, "verified": 2, "unverified": 0,
		 "lastReportAt": "2026-11-02T06:00:00Z", "ingestProblems": 0, "failingServices": 0, "notReady": 1},
		{"account": {"name": "Beta"}, "domains": 2, "blocked": 0, "policyNone": 1, "policyQuarantine": 1, "policyReject": 0, "verified": 1, "unverified": 1,
		 "lastReportAt": null, "ingestProblems": 1, "failingServices": 0, "notReady": 2},
		{"account": {"name": "Gamma"}, "domains": 0, "blocked": 0, "policyNone": 0, "policyQuarantine": 0, "policyReject": 0, "verified": 0, "unverified": 0,
		 "lastReportAt": null, "ingestProblems": 0, "failingServices": 0, "notReady": 0}]}}}`, string(r.Data))

	// The page's figures are one query, whatever the page's size.
	before := env.Queries.Load()
	env.Do(t, msp.Token, q, map[string]any{"m": m, "first": 1}).NoErrors(t)
	one := env.Queries.Load() - before
	before = env.Queries.Load()
	env.Do(t, msp.Token, q, map[string]any{"m": m, "first": 50, "all": true}).NoErrors(t)
	all := env.Queries.Load() - before
	require.Equal(t, one, all, "a page of 4 customers asks what a page of 1 does")

	// addDomain of a name the account holds returns it, for a person and an
	// automation alike; nothing is added.
	r = env.Do(t, msp.Token, `mutation($a: ID) { createApiToken(accountId: $a, name: "terraform") { secret } }`, map[string]any{"a": b})
	r.NoErrors(t)
	var tt struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &tt)
	for _, token := range []string{msp.Token, tt.CreateApiToken.Secret} {
		for _, name := range []string{"beta-example.com", "beta-unproven-example.com"} {
			r = env.Do(t, token, `mutation($a: ID, $n: String!) { addDomain(accountId: $a, name: $n) { name verified dmarcPolicy { p } } }`, map[string]any{"a": b, "n": name})
			r.NoErrors(t)
			require.Contains(t, r.Raw, `"name":"`+name+`"`)
		}
		require.Contains(t, r.Raw, `"verified":false`)
	}
	r = env.Do(t, tt.CreateApiToken.Secret, `mutation { addDomain(name: "BETA-example.com.") { name verified dmarcPolicy { p } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"addDomain": {"name": "beta-example.com", "verified": true, "dmarcPolicy": {"p": "QUARANTINE"}}}`, string(r.Data))
	var domains int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM domains WHERE account_id = $1`, b).Scan(&domains))
	require.Equal(t, 2, domains)
}

// TestCustomerAccountByToken: an MSP's automation creates a customer with
// an OWNER-level API token, which then acts in the new customer as the
// MSP's owners do; a read-only token of the MSP creates nothing.
func TestCustomerAccountByToken(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	msp := env.NewOwner(t, "Token MSP")
	m := msp.AccountID.String()
	token := func(scope string) string {
		r := env.Do(t, msp.Token, `mutation($a: ID) { createApiToken(accountId: $a, name: "automation"`+scope+`) { secret } }`, map[string]any{"a": m})
		r.NoErrors(t)
		var tt struct{ CreateApiToken struct{ Secret string } }
		r.Decode(t, &tt)
		return tt.CreateApiToken.Secret
	}
	owner, readOnly := token(""), token(`, scope: {readOnly: true}`)

	c := createCustomer(t, env, owner, m, "Made By Automation")
	r := env.Do(t, owner, `mutation($c: ID) { addDomain(accountId: $c, name: "automated-customer-example.com") { name } }`, map[string]any{"c": c})
	r.NoErrors(t)
	p := customers(t, env, msp.Token, map[string]any{"a": m})
	require.Equal(t, []string{"Made By Automation"}, p.names())

	var before int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE parent_id = $1`, msp.AccountID).Scan(&before))
	r = env.Do(t, readOnly, createCustomerQ, map[string]any{"p": m, "n": "Not Made"})
	r.RequireCode(t, "FORBIDDEN")
	requireNoData(t, r, "a read-only token creates no customer")
	var after int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE parent_id = $1`, msp.AccountID).Scan(&after))
	require.Equal(t, before, after)
}
