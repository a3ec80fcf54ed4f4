package graph_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/auth"
)

// notAccountScoped are root fields that reach no account's objects by
// argument: they act on the caller or on a credential the caller holds.
var notAccountScoped = map[string]bool{"viewer": true, "login": true, "refreshToken": true, "logout": true, "senderServices": true,
	// People (graph/people_test.go): the caller's own user and sessions, or
	// a token mailed to an address.
	"signUp": true, "acceptInvitation": true, "changePassword": true, "requestPasswordReset": true, "resetPassword": true,
	"revokeSession": true, "signOutEverywhere": true}

// operatorOnly are root fields only the instance operator may use: they
// cross tenants. A tenant's owner, signed in or through an API token, is
// FORBIDDEN and sees no data.
var operatorOnly = map[string]string{
	"unmatchedReports": `{ unmatchedReports { blobId source filename reason detail message { from subject messageId } } }`,
}

// TestTenantIsolation: an owner of account A (signed in, or through an API
// token of A) gets NOT_FOUND for everything of account B, through every root
// field of the schema, and B's data is unchanged afterwards.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	a := env.NewOwner(t, "A")
	b := env.NewOwner(t, "B")
	env.AddVerifiedDomain(t, b, "b-secret-example.com")
	env.Do(t, b.Token, `mutation { addNetblock(domain: "b-secret-example.com", cidr: "198.51.100.0/24", label: "b-office") { name } }`, nil).NoErrors(t)
	expires := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	env.Do(t, b.Token, `mutation($x: Time!) { pinSpfInclude(domain: "b-secret-example.com", include: "pinned.example.net", expiresAt: $x) { name } }`, map[string]any{"x": expires}).NoErrors(t)
	env.Do(t, b.Token, `mutation { addDkimKey(domain: "b-secret-example.com", selector: "b1", cnameTarget: "b1.dkim.example.net") { warnings } }`, nil).NoErrors(t)
	r := env.Do(t, b.Token, `mutation { createApiToken(name: "b-token") { token { id } } }`, nil)
	r.NoErrors(t)
	var bt struct {
		CreateApiToken struct{ Token struct{ ID string } }
	}
	r.Decode(t, &bt)
	r = env.Do(t, a.Token, `mutation { createApiToken(name: "a-token") { secret } }`, nil)
	r.NoErrors(t)
	var at struct{ CreateApiToken struct{ Secret string } }
	r.Decode(t, &at)
	bTeam, bGrant := teamWithGrant(t, env, b.Token, "b-team")
	aTeam, _ := teamWithGrant(t, env, a.Token, "a-team")

	r = env.Do(t, b.Token, `mutation { createSenderService(slug: "b-relay", input: {name: "B relay", ranges: ["198.51.100.0/24"]}) { slug } }`, nil)
	r.NoErrors(t)
	var bs struct{ CreateSenderService struct{ Slug string } }
	r.Decode(t, &bs)

	r = env.Do(t, b.Token, `mutation { createCustomerAccount(name: "B customer") { account { id } } }`, nil)
	r.NoErrors(t)
	var bc struct {
		CreateCustomerAccount struct{ Account struct{ ID string } }
	}
	r.Decode(t, &bc)

	vars := map[string]any{"bc": bc.CreateCustomerAccount.Account.ID, "b": b.AccountID.String(), "a": a.AccountID.String(), "tok": bt.CreateApiToken.Token.ID, "x": expires, "bsvc": bs.CreateSenderService.Slug, "bu": b.UserID.String(),
		"team": bTeam, "grant": bGrant, "ateam": aTeam, "buser": b.UserID.String()}
	probes := map[string][]string{
		"account": {`query($b: ID) { account(id: $b) { name } }`, `query($b: ID) { account(id: $b) { members { user { email } } apiTokens { name } domains { nodes { name } } } }`,
			`query($b: ID) { account(id: $b) { invitations { email } } }`,
			`query($b: ID) { account(id: $b) { domainProof(name: "b-secret-example.com") { value } } }`,
			`query($b: ID) { account(id: $b) { customers(all: true) { nodes { name } } } }`,
			`query($b: ID) { account(id: $b) { customerOverview { nodes { domains account { name } } } } }`,
			`query($bc: ID) { account(id: $bc) { name suspendedAt } }`},
		"domains": {`query($b: ID) { domains(accountId: $b) { nodes { name } } }`},
		"domain": {`{ domain(name: "b-secret-example.com") { name } }`, `{ domain(name: "B-SECRET-example.com.") { dmarcRecord dnsSetup { dmarc { served { value } } } } }`,
			`{ domain(name: "does-not-exist-example.com") { name } }`, `{ domain(name: "b-secret-example.com") { readiness { verdict reasons { message } } } }`},
		"createApiToken":    {`mutation($b: ID) { createApiToken(accountId: $b, name: "x") { secret } }`},
		"revokeApiToken":    {`mutation($b: ID, $tok: ID!) { revokeApiToken(accountId: $b, id: $tok) { name } }`, `mutation($a: ID, $tok: ID!) { revokeApiToken(accountId: $a, id: $tok) { name } }`},
		"addDomain":         {`mutation($b: ID) { addDomain(accountId: $b, name: "new-in-b-example.com") { name } }`},
		"removeDomain":      {`mutation { removeDomain(name: "b-secret-example.com") { name } }`},
		"verifyDomain":      {`mutation { verifyDomain(name: "b-secret-example.com") { name } }`},
		"checkDnsSetup":     {`mutation { checkDnsSetup(domain: "b-secret-example.com") { spf { value } published { spf } } }`},
		"setDomainMode":     {`mutation { setDomainMode(name: "b-secret-example.com", mode: BLOCKED) { name } }`},
		"updateDmarcPolicy": {`mutation { updateDmarcPolicy(name: "b-secret-example.com", policy: {p: REJECT}) { name } }`, `mutation { updateDmarcPolicy(name: "b-secret-example.com", policy: {p: REJECT}, force: true) { name } }`},
		"applyDomainConfig": {`mutation($b: ID) { applyDomainConfig(accountId: $b, config: {name: "b-secret-example.com", senders: []}, dryRun: true) { applied } }`,
			`mutation($b: ID) { applyDomainConfig(accountId: $b, config: {name: "new-in-b-example.com", mode: BLOCKED}) { applied } }`,
			`mutation($b: ID) { applyDomainConfig(accountId: $b, config: {name: "b-secret-example.com", policy: {p: REJECT}, dkimKeys: []}, force: true) { applied } }`},
		"setReadinessThreshold": {`mutation { setReadinessThreshold(domain: "b-secret-example.com", threshold: 50) { name } }`},
		"setSenderThreshold":    {`mutation { setSenderThreshold(domain: "b-secret-example.com", service: "sendgrid", threshold: 50) { name } }`},
		"addNetblock":           {`mutation { addNetblock(domain: "b-secret-example.com", cidr: "192.0.2.0/24") { name } }`},
		"removeNetblock":        {`mutation { removeNetblock(domain: "b-secret-example.com", cidr: "198.51.100.0/24") { name } }`},
		"enableSender":          {`mutation { enableSender(domain: "b-secret-example.com", service: "google-workspace") { name } }`},
		"disableSender":         {`mutation { disableSender(domain: "b-secret-example.com", service: "sendgrid") { name } }`},
		"pinSpfInclude":         {`mutation($x: Time!) { pinSpfInclude(domain: "b-secret-example.com", include: "x.example.net", expiresAt: $x) { name } }`},
		"unpinSpfInclude":       {`mutation { unpinSpfInclude(domain: "b-secret-example.com", include: "pinned.example.net") { name } }`},
		"refreshSenderRanges":   {`mutation { refreshSenderRanges(service: "sendgrid") { slug } }`},
		"explainSpf":            {`{ explainSpf(domain: "b-secret-example.com", ip: "198.51.100.7", helo: "mx.example.net") { record } }`},
		"addDkimKey":            {`mutation { addDkimKey(domain: "b-secret-example.com", selector: "evil", cnameTarget: "evil.example.net") { warnings } }`},
		"revokeDkimKey":         {`mutation { revokeDkimKey(domain: "b-secret-example.com", selector: "b1") { selector } }`},
		"removeDkimKey":         {`mutation { removeDkimKey(domain: "b-secret-example.com", selector: "b1") { name } }`},
		"importDkimKey":         {`mutation { importDkimKey(domain: "b-secret-example.com", selector: "b2") { warnings } }`},
		"setBimi":               {`mutation { setBimi(domain: "b-secret-example.com", logoUrl: "https://evil.example/logo.svg") { name } }`},
		"uploadReports":         {`mutation($b: ID) { uploadReports(accountId: $b, files: []) { filename } }`},
		"createSenderService":   {`mutation($b: ID) { createSenderService(accountId: $b, slug: "evil", input: {name: "x", ranges: ["192.0.2.0/24"]}) { slug } }`},
		"updateSenderService":   {`mutation($bsvc: ID!) { updateSenderService(service: $bsvc, input: {name: "evil"}) { slug } }`},
		"deleteSenderService":   {`mutation($bsvc: ID!) { deleteSenderService(service: $bsvc) { slug } }`},
		"inviteMember":          {`mutation($b: ID) { inviteMember(accountId: $b, email: "evil@attacker.test", role: OWNER) { id } }`},
		"resendInvitation":      {`mutation($b: ID, $tok: ID!) { resendInvitation(accountId: $b, id: $tok) { id } }`},
		"revokeInvitation":      {`mutation($b: ID, $tok: ID!) { revokeInvitation(accountId: $b, id: $tok) { id } }`},
		"removeMember":          {`mutation($b: ID, $bu: ID!) { removeMember(accountId: $b, userId: $bu) }`},
		"changeMemberRole":      {`mutation($b: ID, $bu: ID!) { changeMemberRole(accountId: $b, userId: $bu, role: MEMBER) { role } }`},
		"transferOwnership":     {`mutation($b: ID, $bu: ID!) { transferOwnership(accountId: $b, userId: $bu) { name } }`},
		"createTeam":            {`mutation($b: ID) { createTeam(accountId: $b, name: "x") { id } }`},
		"renameTeam":            {`mutation($team: ID!) { renameTeam(id: $team, name: "x") { id } }`},
		"deleteTeam":            {`mutation($team: ID!) { deleteTeam(id: $team) { id } }`},
		"addTeamMember":         {`mutation($team: ID!, $buser: ID!) { addTeamMember(teamId: $team, userId: $buser) { id } }`},
		"removeTeamMember":      {`mutation($team: ID!, $buser: ID!) { removeTeamMember(teamId: $team, userId: $buser) { id } }`},
		"grantTeam": {`mutation($team: ID!) { grantTeam(teamId: $team, level: ADMIN) { id } }`,
			`mutation($ateam: ID!, $b: ID) { grantTeam(teamId: $ateam, accountId: $b, level: ADMIN) { id } }`},
		"revokeTeamGrant": {`mutation($team: ID!, $grant: ID!) { revokeTeamGrant(teamId: $team, id: $grant) { id } }`},
		"setDomainLabels": {`mutation { setDomainLabels(name: "b-secret-example.com", labels: ["x"]) { name } }`},
		"createCustomerAccount": {`mutation($b: ID) { createCustomerAccount(parentId: $b, name: "x") { account { id } } }`,
			`mutation($bc: ID) { createCustomerAccount(parentId: $bc, name: "x") { account { id } } }`},
		"suspendCustomerAccount": {`mutation($bc: ID!) { suspendCustomerAccount(id: $bc) { name } }`, `mutation($b: ID!) { suspendCustomerAccount(id: $b) { name } }`},
		"resumeCustomerAccount":  {`mutation($bc: ID!) { resumeCustomerAccount(id: $bc) { name } }`},
		"removeCustomerAccount":  {`mutation($bc: ID!) { removeCustomerAccount(id: $bc) { name } }`},
	}

	// Every root field is either probed or known not to take another
	// account's object: a new field fails this test until it is added.
	r = env.Do(t, a.Token, `{ __schema { queryType { fields { name } } mutationType { fields { name } } } }`, nil)
	r.NoErrors(t)
	var schema struct {
		Schema struct {
			QueryType, MutationType struct{ Fields []struct{ Name string } }
		} `json:"__schema"`
	}
	r.Decode(t, &schema)
	var missing []string
	for _, f := range append(schema.Schema.QueryType.Fields, schema.Schema.MutationType.Fields...) {
		if _, ok := probes[f.Name]; !ok && !notAccountScoped[f.Name] && operatorOnly[f.Name] == "" {
			missing = append(missing, f.Name)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "root fields without an isolation probe")

	for who, token := range map[string]string{"user": a.Token, "api token": at.CreateApiToken.Secret} {
		for field, queries := range probes {
			for _, q := range queries {
				r := env.Do(t, token, q, vars)
				r.RequireCode(t, "NOT_FOUND")
				// The answer is the one a name that exists nowhere gets: no data,
				// and a message that only repeats the caller's own input.
				// Mutation fields are nullable (so that a batch reports each
				// result): their refusal is data with the field null.
				if strings.HasPrefix(strings.TrimSpace(q), "mutation") {
					require.JSONEq(t, `{"`+field+`": null}`, string(r.Data), "%s %s leaks", who, field)
				} else {
					require.Equal(t, "null", string(r.Data), "%s %s leaks", who, field)
				}
				require.Regexp(t, `^(domain "[^"]*"|account|API token|) ?not found$`, r.Errors[0].Message)
			}
		}
		for field, q := range operatorOnly {
			r := env.Do(t, token, q, vars)
			r.RequireCode(t, "FORBIDDEN")
			requireNoData(t, r, "%s %s leaks", who, field)
		}
		// Listings and the viewer never show B.
		r := env.Do(t, token, `{ domains { nodes { name } } viewer { accounts { name domains { nodes { name } } } } }`, nil)
		r.NoErrors(t)
		require.NotContains(t, r.Raw, "b-secret")
		require.NotContains(t, r.Raw, `"name":"B"`)
	}

	// B's domain and token are untouched.
	r = env.Do(t, b.Token, `query($b: ID) { domain(name: "b-secret-example.com") { verified mode dmarcRecord netblocks { cidr } dkimKeys { selector revokedAt } bimi { logoUrl } } account(id: $b) { apiTokens { name revokedAt } } }`, vars)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"verified": true, "mode": "SENDING", "dmarcRecord": "v=DMARC1; p=none; rua=mailto:`+reportAddress(t, env, b.Token, "b-secret-example.com")+`", "netblocks": [{"cidr": "198.51.100.0/24"}],
		"dkimKeys": [{"selector": "b1", "revokedAt": null}], "bimi": null},
		"account": {"apiTokens": [{"name": "b-token", "revokedAt": null}]}}`, string(r.Data))
	r = env.Do(t, b.Token, `query($b: ID) { domain(name: "b-secret-example.com") { labels } account(id: $b) { teams { name members { email } grants { level domains { all } } } } }`, vars)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"labels": []}, "account": {"teams": [{"name": "b-team", "members": [], "grants": [{"level": "READ", "domains": {"all": true}}]}]}}`, string(r.Data))
	r = env.Do(t, b.Token, `{ domain(name: "new-in-b-example.com") { name } }`, nil)
	r.RequireCode(t, "NOT_FOUND")
	r = env.Do(t, b.Token, `query($b: ID) { account(id: $b) { senderServices { name custom } } }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"name":"B relay","custom":true}`)
	require.NotContains(t, r.Raw, "evil")
	// B's people are untouched: its owner is still its owner, and nobody
	// was invited.
	r = env.Do(t, b.Token, `query($b: ID) { account(id: $b) { members { role user { email } } invitations { email } } }`, vars)
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"members": [{"role": "OWNER", "user": {"email": "`+b.Email+`"}}], "invitations": []}}`, string(r.Data))
	// B's customer is still there, active, with no customer of its own.
	r = env.Do(t, b.Token, `query($bc: ID) { account(id: $bc) { name suspendedAt customers { totalCount } } }`, vars)
	r.NoErrors(t)
	require.JSONEq(t, `{"account": {"name": "B customer", "suspendedAt": null, "customers": {"totalCount": 0}}}`, string(r.Data))
}

// TestMSPAndMembers: a parent account's owners act in its customer accounts,
// customers do not see the parent, and members hold no permission yet.
func TestMSPAndMembers(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	msp := env.NewOwner(t, "MSP")
	cust := env.NewOwnerUnder(t, "Customer", &msp.AccountID)
	other := env.NewOwner(t, "Other")
	vars := map[string]any{"c": cust.AccountID.String(), "m": msp.AccountID.String()}

	env.Do(t, msp.Token, `mutation($c: ID) { addDomain(accountId: $c, name: "customer-example.com") { name } }`, vars).NoErrors(t)
	env.Do(t, msp.Token, `mutation { updateDmarcPolicy(name: "customer-example.com", policy: {p: QUARANTINE}, force: true) { name } }`, nil).NoErrors(t)
	r := env.Do(t, cust.Token, `{ domain(name: "customer-example.com") { dmarcRecord account { name parent { name } } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"dmarcRecord": "v=DMARC1; p=quarantine; rua=mailto:`+reportAddress(t, env, cust.Token, "customer-example.com")+`", "account": {"name": "Customer", "parent": null}}}`, string(r.Data))
	env.Do(t, cust.Token, `query($m: ID) { account(id: $m) { name } }`, vars).RequireCode(t, "NOT_FOUND")
	env.Do(t, other.Token, `{ domain(name: "customer-example.com") { name } }`, nil).RequireCode(t, "NOT_FOUND")

	r = env.Do(t, msp.Token, `query($c: ID) { viewer { accounts { name } } account(id: $c) { parent { name } members { role user { email } } } }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"name":"Customer"}`)
	require.Contains(t, r.Raw, `"parent":{"name":"MSP"}`)
	require.Contains(t, r.Raw, `"role":"OWNER"`)
	// With two accounts, the MSP owner must say which one.
	env.Do(t, msp.Token, `mutation { addDomain(name: "ambiguous-example.com") { name } }`, nil).RequireCode(t, "BAD_USER_INPUT")

	// A member of the customer account sees the account but may do nothing.
	ctx := context.Background()
	hash, err := auth.HashPassword("member password 123")
	require.NoError(t, err)
	var memberID string
	require.NoError(t, env.Pool.QueryRow(ctx, `INSERT INTO users (email, password_hash) VALUES ('member@owner.test', $1) RETURNING id`, hash).Scan(&memberID))
	_, err = env.Pool.Exec(ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'member')`, cust.AccountID, memberID)
	require.NoError(t, err)
	r = env.Do(t, "", `mutation { login(email: "member@owner.test", password: "member password 123") { accessToken } }`, nil)
	r.NoErrors(t)
	var l struct{ Login struct{ AccessToken string } }
	r.Decode(t, &l)
	member := l.Login.AccessToken
	r = env.Do(t, member, `{ viewer { accounts { name } } domains { totalCount } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"viewer": {"accounts": [{"name": "Customer"}]}, "domains": {"totalCount": 0}}`, string(r.Data))
	env.Do(t, member, `{ domain(name: "customer-example.com") { name } }`, nil).RequireCode(t, "FORBIDDEN")
	env.Do(t, member, `mutation { addDomain(name: "member-example.com") { name } }`, nil).RequireCode(t, "FORBIDDEN")
	r = env.Do(t, member, `mutation { setDomainMode(name: "customer-example.com", mode: BLOCKED) { name } }`, nil)
	r.RequireCode(t, "FORBIDDEN")
	require.True(t, strings.Contains(r.Errors[0].Message, "manage domains"), r.Raw)
}

// teamWithGrant makes a team in the caller's account with a read grant on
// every domain, and returns the ids of both.
func teamWithGrant(t *testing.T, env *apitest.Env, token, name string) (team, grant string) {
	t.Helper()
	r := env.Do(t, token, `mutation($n: String!) { createTeam(name: $n) { id } }`, map[string]any{"n": name})
	r.NoErrors(t)
	var c struct{ CreateTeam struct{ ID string } }
	r.Decode(t, &c)
	r = env.Do(t, token, `mutation($t: ID!) { grantTeam(teamId: $t, level: READ) { id } }`, map[string]any{"t": c.CreateTeam.ID})
	r.NoErrors(t)
	var g struct{ GrantTeam struct{ ID string } }
	r.Decode(t, &g)
	return c.CreateTeam.ID, g.GrantTeam.ID
}
