package graph_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
)

// The IDOR matrix (issue 11): every Query and Mutation root field, found by
// introspection, against every kind of principal, with the outcome the
// access model (docs/architecture.md, "Tenancy") gives each cell. A refused
// mutation must leave the database as it was.

// need is what a root field's representative operation asks of its caller.
type need int

const (
	notScoped     need = iota // acts on the caller or a credential it holds
	operatorField             // the instance operator only: every tenant is FORBIDDEN
	onDomain                  // a level on the labelled target domain
	accountWide               // a level on every domain of the account
	listing                   // a listing filtered to what the caller reaches
	anyStanding               // any standing in the account
	senderRefresh             // manage senders on a domain where the service is enabled, found by reach
	inCustomer                // manage users in a customer account of the target, and in its parent
	manageUsers               // manage users: owners and OWNER-level tokens
)

// Levels as in internal/access: each holds the ones before it.
const (
	lvRead = iota + 1
	lvSenders
	lvPolicy
	lvAdmin
)

// matrixField is one root field: its representative operation, whose text
// names the target domain as DOM and other targets by variable ($acct, $tok,
// $team, $grant, $inv, $member, $svc, $cust, $x), and what it needs.
type matrixField struct {
	op     string
	need   need
	level  int    // for onDomain and accountWide
	reason string // for notScoped
	// ownOwnerOnly: only an owner of the account itself (not an MSP's
	// owner, not a token) may, as for transferOwnership.
	ownOwnerOnly bool
	// allowedCodes are errors that come only after the caller was allowed
	// (refreshSenderRanges looks a service up at most once a minute, and
	// adding the world's domains has just done so): they count as OK.
	allowedCodes []string
	// knownIssue marks a cell whose real outcome differs from the access
	// model's, keyed by principal: the test logs it instead of failing.
	knownIssue map[string]string
}

var idorFields = map[string]matrixField{
	// Queries.
	"viewer":           {need: notScoped, reason: "the caller's own user, accounts and grants"},
	"senderServices":   {need: notScoped, reason: "the public catalog of sender services"},
	"unmatchedReports": {need: operatorField, op: `{ unmatchedReports { blobId } }`},
	"account":          {need: anyStanding, op: `query($acct: ID) { account(id: $acct) { name } }`},
	"domains":          {need: listing, op: `query($acct: ID) { domains(accountId: $acct) { nodes { name } } }`},
	"domain":           {need: onDomain, level: lvRead, op: `{ domain(name: "DOM") { name dmarcRecord } }`},
	"explainSpf":       {need: onDomain, level: lvRead, op: `{ explainSpf(domain: "DOM", ip: "198.51.100.7", helo: "mx.example.net") { record } }`},

	// Mutations on the caller's own credentials.
	"login":                {need: notScoped, reason: "a credential check, no account by argument"},
	"refreshToken":         {need: notScoped, reason: "the caller's own refresh token"},
	"logout":               {need: notScoped, reason: "the caller's own session"},
	"signUp":               {need: notScoped, reason: "makes a new account, an operator setting"},
	"acceptInvitation":     {need: notScoped, reason: "a mailed single-use token"},
	"changePassword":       {need: notScoped, reason: "the caller's own password"},
	"requestPasswordReset": {need: notScoped, reason: "an e-mail address, answers the same for all"},
	"resetPassword":        {need: notScoped, reason: "a mailed single-use token"},
	"revokeSession":        {need: notScoped, reason: "the caller's own sessions"},
	"signOutEverywhere":    {need: notScoped, reason: "the caller's own sessions"},

	// Domains.
	"addDomain":             {need: accountWide, level: lvAdmin, op: `mutation($acct: ID) { addDomain(accountId: $acct, name: "PFX-new-example.com") { name } }`},
	"removeDomain":          {need: onDomain, level: lvAdmin, op: `mutation { removeDomain(name: "DOM") { name } }`},
	"verifyDomain":          {need: onDomain, level: lvAdmin, op: `mutation { verifyDomain(name: "DOM") { name } }`},
	"checkDnsSetup":         {need: onDomain, level: lvRead, op: `mutation { checkDnsSetup(domain: "DOM") { spf { value } } }`},
	"setDomainMode":         {need: onDomain, level: lvAdmin, op: `mutation { setDomainMode(name: "DOM", mode: BLOCKED) { name } }`},
	"updateDmarcPolicy":     {need: onDomain, level: lvPolicy, op: `mutation { updateDmarcPolicy(name: "DOM", policy: {p: REJECT}, force: true) { name } }`},
	"applyDomainConfig":     {need: onDomain, level: lvPolicy, op: `mutation($acct: ID) { applyDomainConfig(accountId: $acct, config: {name: "DOM", policy: {p: REJECT}}, force: true) { applied } }`},
	"setReadinessThreshold": {need: onDomain, level: lvPolicy, op: `mutation { setReadinessThreshold(domain: "DOM", threshold: 50) { name } }`},
	"setSenderThreshold":    {need: onDomain, level: lvPolicy, op: `mutation { setSenderThreshold(domain: "DOM", service: "sendgrid", threshold: 50) { name } }`},
	"setDomainLabels":       {need: manageUsers, op: `mutation { setDomainLabels(name: "DOM", labels: ["other"]) { name } }`},
	"setBimi":               {need: onDomain, level: lvPolicy, op: `mutation { setBimi(domain: "DOM", logoUrl: "https://idor.example/logo.svg") { name } }`},

	// Senders, SPF and DKIM.
	"addNetblock":         {need: onDomain, level: lvSenders, op: `mutation { addNetblock(domain: "DOM", cidr: "192.0.2.0/24") { name } }`},
	"removeNetblock":      {need: onDomain, level: lvSenders, op: `mutation { removeNetblock(domain: "DOM", cidr: "198.51.100.0/24") { name } }`},
	"enableSender":        {need: onDomain, level: lvSenders, op: `mutation { enableSender(domain: "DOM", service: "mailgun") { name } }`},
	"disableSender":       {need: onDomain, level: lvSenders, op: `mutation { disableSender(domain: "DOM", service: "sendgrid") { name } }`},
	"pinSpfInclude":       {need: onDomain, level: lvSenders, op: `mutation($x: Time!) { pinSpfInclude(domain: "DOM", include: "x.example.net", expiresAt: $x) { name } }`},
	"unpinSpfInclude":     {need: onDomain, level: lvSenders, op: `mutation { unpinSpfInclude(domain: "DOM", include: "pinned.example.net") { name } }`},
	"refreshSenderRanges": {need: senderRefresh, allowedCodes: []string{"RATE_LIMITED"}, op: `mutation { refreshSenderRanges(service: "sendgrid") { slug } }`},
	"addDkimKey":          {need: onDomain, level: lvSenders, op: `mutation { addDkimKey(domain: "DOM", selector: "idor", cnameTarget: "idor.dkim.example.net") { warnings } }`},
	"revokeDkimKey":       {need: onDomain, level: lvSenders, op: `mutation { revokeDkimKey(domain: "DOM", selector: "s1") { selector } }`},
	"removeDkimKey":       {need: onDomain, level: lvSenders, op: `mutation { removeDkimKey(domain: "DOM", selector: "s1") { name } }`},
	"importDkimKey":       {need: onDomain, level: lvSenders, op: `mutation { importDkimKey(domain: "DOM", selector: "s2") { warnings } }`},
	"createSenderService": {need: accountWide, level: lvSenders, op: `mutation($acct: ID) { createSenderService(accountId: $acct, slug: "PFX", input: {name: "x", ranges: ["192.0.2.0/24"]}) { slug } }`},
	"updateSenderService": {need: accountWide, level: lvSenders, op: `mutation($svc: ID!) { updateSenderService(service: $svc, input: {name: "renamed"}) { slug } }`},
	"deleteSenderService": {need: accountWide, level: lvSenders, op: `mutation($svc: ID!) { deleteSenderService(service: $svc) { slug } }`},
	"uploadReports":       {need: accountWide, level: lvAdmin, op: `mutation($acct: ID) { uploadReports(accountId: $acct, files: []) { filename } }`},

	// People, teams, tokens and customers: manage users.
	"createApiToken":         {need: manageUsers, op: `mutation($acct: ID) { createApiToken(accountId: $acct, name: "PFX") { secret } }`},
	"revokeApiToken":         {need: manageUsers, op: `mutation($acct: ID, $tok: ID!) { revokeApiToken(accountId: $acct, id: $tok) { name } }`},
	"inviteMember":           {need: manageUsers, op: `mutation($acct: ID) { inviteMember(accountId: $acct, email: "PFX@attacker.test", role: OWNER) { id } }`},
	"resendInvitation":       {need: manageUsers, op: `mutation($acct: ID, $inv: ID!) { resendInvitation(accountId: $acct, id: $inv) { id } }`},
	"revokeInvitation":       {need: manageUsers, op: `mutation($acct: ID, $inv: ID!) { revokeInvitation(accountId: $acct, id: $inv) { id } }`},
	"removeMember":           {need: manageUsers, op: `mutation($acct: ID, $member: ID!) { removeMember(accountId: $acct, userId: $member) }`},
	"changeMemberRole":       {need: manageUsers, op: `mutation($acct: ID, $member: ID!) { changeMemberRole(accountId: $acct, userId: $member, role: OWNER) { role } }`},
	"transferOwnership":      {need: manageUsers, ownOwnerOnly: true, op: `mutation($acct: ID, $member: ID!) { transferOwnership(accountId: $acct, userId: $member) { name } }`},
	"createTeam":             {need: manageUsers, op: `mutation($acct: ID) { createTeam(accountId: $acct, name: "PFX") { id } }`},
	"renameTeam":             {need: manageUsers, op: `mutation($team: ID!) { renameTeam(id: $team, name: "PFX") { id } }`},
	"deleteTeam":             {need: manageUsers, op: `mutation($team: ID!) { deleteTeam(id: $team) { id } }`},
	"addTeamMember":          {need: manageUsers, op: `mutation($team: ID!, $member: ID!) { addTeamMember(teamId: $team, userId: $member) { id } }`},
	"removeTeamMember":       {need: manageUsers, op: `mutation($team: ID!, $member: ID!) { removeTeamMember(teamId: $team, userId: $member) { id } }`},
	"grantTeam":              {need: manageUsers, op: `mutation($team: ID!) { grantTeam(teamId: $team, level: ADMIN) { id } }`},
	"revokeTeamGrant":        {need: manageUsers, op: `mutation($team: ID!, $grant: ID!) { revokeTeamGrant(teamId: $team, id: $grant) { id } }`},
	"createCustomerAccount":  {need: manageUsers, op: `mutation($acct: ID) { createCustomerAccount(parentId: $acct, name: "PFX") { account { id } } }`},
	"suspendCustomerAccount": {need: inCustomer, op: `mutation($cust: ID!) { suspendCustomerAccount(id: $cust) { name } }`},
	"resumeCustomerAccount":  {need: inCustomer, op: `mutation($cust: ID!) { resumeCustomerAccount(id: $cust) { name } }`},
	"removeCustomerAccount":  {need: inCustomer, op: `mutation($cust: ID!) { removeCustomerAccount(id: $cust) { name } }`},
}

// principal is one kind of caller, with what the access model gives it in
// the world it acts on.
type principal struct {
	name      string
	token     string
	world     *idorWorld
	owner     bool // an owner of the account, or of one above it, or an OWNER token
	above     bool // owner through an account above
	anonymous bool // no credentials at all
	standing  bool // stands in the account at all
	level     int  // held on the labelled domain (0: none)
	all       bool // the level holds on every domain
	readOnly  bool // a read-only token: every mutation refused
	// mint, for a token scoped to named domains, makes one like it scoped
	// to the domain given (a cell on fresh objects needs it).
	mint func(domain string) string
}

// expect is the access model's outcome of a cell.
func (p principal) expect(f matrixField, mutation bool) string {
	switch {
	case p.anonymous:
		return "UNAUTHENTICATED"
	case f.need == operatorField:
		return "FORBIDDEN"
	case !p.standing:
		return "NOT_FOUND"
	case f.ownOwnerOnly && p.above:
		return "FORBIDDEN"
	case p.owner:
		return "OK"
	case mutation && p.readOnly:
		return "FORBIDDEN"
	case f.need == anyStanding:
		return "OK"
	case f.need == senderRefresh:
		// The services refreshed are those enabled on the domains where
		// the caller manages senders; any other is not found.
		if p.level >= lvSenders {
			return "OK"
		}
		return "NOT_FOUND"
	case f.need == inCustomer:
		// A grant or a scoped token applies in its account only, so the
		// customer account is one the caller has no standing in.
		return "NOT_FOUND"
	case p.level == 0:
		// A member without any grant knows only that the account exists.
		return "FORBIDDEN"
	}
	switch f.need {
	case listing:
		return "OK"
	case onDomain:
		if p.level >= f.level {
			return "OK"
		}
		return "FORBIDDEN"
	case accountWide:
		if p.all && p.level >= f.level {
			return "OK"
		}
		return "FORBIDDEN"
	}
	return "FORBIDDEN" // manageUsers
}

// idorWorld is one account the principals act on, with one object of each
// kind a root field can name.
type idorWorld struct {
	account    uuid.UUID
	prefix     string // makes the names the world's operations create unique
	domain     string // the labelled domain
	built      bool   // the domain exists
	vars       map[string]any
	ownerToken string // of an owner of the account or of one above it
}

func (w *idorWorld) op(q string) string {
	return strings.NewReplacer("DOM", w.domain, "PFX", w.prefix).Replace(q)
}

// buildWorld fills an account, as the bearer of token (an owner of it or of
// an account above it), with the objects the operation q names (every kind
// when q is ""): a verified domain labelled idor with a netblock, an SPF pin
// and a DKIM key; an API token; a team with a grant; an invitation; a
// custom sender service; a customer account; a member (who is none of the
// principals, so that a member removing themselves, which is leaving, is
// not what a cell tries).
func buildWorld(t *testing.T, env *apitest.Env, token string, account uuid.UUID, prefix, q string) *idorWorld {
	t.Helper()
	uses := func(s string) bool { return q == "" || strings.Contains(q, s) }
	w := &idorWorld{account: account, prefix: prefix, domain: prefix + "-labelled-example.com", ownerToken: token}
	a := account.String()
	x := farExpiry()
	w.vars = map[string]any{"acct": a, "x": x}
	if uses("DOM") {
		w.built = true
		env.AddVerifiedDomainIn(t, token, a, w.domain)
		env.Do(t, token, `mutation($d: String!, $x: Time!) { setDomainLabels(name: $d, labels: ["idor"]) { name } addNetblock(domain: $d, cidr: "198.51.100.0/24") { name }
			pinSpfInclude(domain: $d, include: "pinned.example.net", expiresAt: $x) { name } addDkimKey(domain: $d, selector: "s1", cnameTarget: "s1.dkim.example.net") { warnings }
			enableSender(domain: $d, service: "sendgrid") { name } }`,
			map[string]any{"d": w.domain, "x": x}).NoErrors(t)
		// A key to import.
		env.DNS.Set("s2._domainkey."+w.domain, "v=DKIM1; k=rsa; p="+idorKey)
	}
	if uses("$tok") {
		_, tok, r := createTokenIn(t, env, token, &account, prefix+" victim token", nil)
		r.NoErrors(t)
		w.vars["tok"] = tok
	}
	if uses("$team") {
		team := newTeam(t, env, token, account, prefix+" victim team")
		w.vars["team"] = team
		w.vars["grant"] = grant(t, env, token, team, account, "READ", nil)
	}
	if uses("$inv") {
		r := env.Do(t, token, `mutation($a: ID, $e: String!) { inviteMember(accountId: $a, email: $e, role: MEMBER) { id } }`, map[string]any{"a": a, "e": prefix + "-invitee@idor.test"})
		r.NoErrors(t)
		var inv struct{ InviteMember struct{ ID string } }
		r.Decode(t, &inv)
		w.vars["inv"] = inv.InviteMember.ID
	}
	if uses("$svc") {
		r := env.Do(t, token, `mutation($a: ID, $s: String!) { createSenderService(accountId: $a, slug: $s, input: {name: "Relay", ranges: ["198.51.100.0/24"]}) { slug } }`, map[string]any{"a": a, "s": prefix + "-relay"})
		r.NoErrors(t)
		var svc struct{ CreateSenderService struct{ Slug string } }
		r.Decode(t, &svc)
		w.vars["svc"] = svc.CreateSenderService.Slug
	}
	if uses("$cust") {
		w.vars["cust"] = createCustomer(t, env, token, a, prefix+" sub-customer")
	}
	if uses("$member") {
		var member string
		require.NoError(t, env.Pool.QueryRow(context.Background(), `INSERT INTO users (email, password_hash) VALUES ($1, 'no login') RETURNING id`, prefix+"-member@idor.test").Scan(&member))
		_, err := env.Pool.Exec(context.Background(), `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'member')`, account, member)
		require.NoError(t, err)
		w.vars["member"] = member
		if uses("removeTeamMember") && uses("$team") {
			env.Do(t, token, `mutation($t: ID!, $u: ID!) { addTeamMember(teamId: $t, userId: $u) { id } }`, map[string]any{"t": w.vars["team"], "u": member}).NoErrors(t)
		}
	}
	return w
}

// idorKey is the public key of the DKIM record importDkimKey finds.
var idorKey string

// idorTables are the tables a root field may change; their checksum is taken
// before and after every cell expected to be refused. Columns that reading
// touches (a token's last use) are left out.
var idorTables = []string{"accounts", "account_members", "invitations", "api_tokens", "teams", "team_members", "team_grants",
	"domains", "domain_netblocks", "domain_senders", "dkim_keys", "spf_pins", "sender_services", "edge_domain", "edge_service"}

func dbChecksum(t *testing.T, env *apitest.Env) string {
	t.Helper()
	var parts []string
	for _, tbl := range idorTables {
		var sum string
		require.NoError(t, env.Pool.QueryRow(context.Background(),
			fmt.Sprintf(`SELECT count(*) || ':' || coalesce(md5(string_agg((to_jsonb(t) - 'last_used_at')::text, ',' ORDER BY (to_jsonb(t) - 'last_used_at')::text)), '') FROM %s t`, tbl)).Scan(&sum))
		parts = append(parts, tbl+"="+sum)
	}
	return strings.Join(parts, " ")
}

// outcome is a cell's real outcome: OK or the error code.
func outcome(r *apitest.Response) string {
	if len(r.Errors) == 0 {
		return "OK"
	}
	return r.Code()
}

// TestIDORMatrix runs every cell of the matrix over HTTP, and checks that
// no refused mutation changed the database.
func TestIDORMatrix(t *testing.T) {
	t.Parallel()
	env, _, _ := peopleEnv(t, nil) // a mail relay, so that invitations exist
	env.DNS.Set("sendgrid.net", "v=spf1 ip4:167.89.0.0/17 ~all")
	env.DNS.Set("mailgun.org", "v=spf1 ip4:198.51.100.0/24 ~all")
	idorKey, _ = rsaKey(t, 1024)

	target := env.NewOwner(t, "Target")
	tw := buildWorld(t, env, target.Token, target.AccountID, "idor-target", "")
	msp := env.NewOwner(t, "MSP")
	cust := env.NewOwnerUnder(t, "Customer", &msp.AccountID)
	grand := env.NewOwnerUnder(t, "Grand customer", &cust.AccountID)
	cw := buildWorld(t, env, msp.Token, cust.AccountID, "idor-cust", "")
	gw := buildWorld(t, env, msp.Token, grand.AccountID, "idor-grand", "")
	stranger := env.NewOwner(t, "Stranger")
	// A second domain of the target, outside the label: what the team
	// members and the domain token do not reach.
	env.AddVerifiedDomainIn(t, target.Token, target.AccountID.String(), "idor-target-plain-example.com")

	// The target's members: one without teams (also the user the member
	// mutations name), and one per team level on the labelled domain.
	_, noTeam := newMember(t, env, target.AccountID)
	principals := []principal{
		{name: "owner", token: target.Token, world: tw, owner: true, standing: true},
		{name: "member, no teams", token: noTeam, world: tw, standing: true},
	}
	for i, lv := range []string{"READ", "MANAGE_SENDERS", "MANAGE_POLICY", "ADMIN"} {
		uid, tok := newMember(t, env, target.AccountID)
		team := newTeam(t, env, target.Token, target.AccountID, "level "+lv, uid)
		grant(t, env, target.Token, team, target.AccountID, lv, map[string]any{"label": "idor"})
		principals = append(principals, principal{name: "team " + lv, token: tok, world: tw, standing: true, level: i + 1})
	}
	ro, _, r := createTokenIn(t, env, target.Token, &target.AccountID, "read-only", map[string]any{"readOnly": true})
	r.NoErrors(t)
	mintDomainToken := func(domain string) string {
		dt, _, r := createTokenIn(t, env, target.Token, &target.AccountID, "domain "+domain, map[string]any{"level": "MANAGE_POLICY", "domains": map[string]any{"domains": []string{domain}}})
		r.NoErrors(t)
		return dt
	}
	dt := mintDomainToken(tw.domain)
	principals = append(principals,
		principal{name: "read-only token", token: ro, world: tw, standing: true, level: lvRead, all: true, readOnly: true},
		principal{name: "domain token", token: dt, world: tw, standing: true, level: lvPolicy, mint: mintDomainToken},
		principal{name: "MSP on customer", token: msp.Token, world: cw, owner: true, above: true, standing: true},
		principal{name: "MSP on customer's customer", token: msp.Token, world: gw, owner: true, above: true, standing: true},
		principal{name: "stranger", token: stranger.Token, world: tw},
		principal{name: "anonymous", world: tw, anonymous: true},
	)

	// Every root field has an entry: a new field fails here until it has one.
	r = env.Do(t, target.Token, `{ __schema { queryType { fields { name } } mutationType { fields { name } } } }`, nil)
	r.NoErrors(t)
	var schema struct {
		Schema struct {
			QueryType, MutationType struct{ Fields []struct{ Name string } }
		} `json:"__schema"`
	}
	r.Decode(t, &schema)
	isMutation := map[string]bool{}
	var fields, missing []string
	for _, f := range schema.Schema.QueryType.Fields {
		fields = append(fields, f.Name)
	}
	for _, f := range schema.Schema.MutationType.Fields {
		fields = append(fields, f.Name)
		isMutation[f.Name] = true
	}
	for _, f := range fields {
		e, ok := idorFields[f]
		switch {
		case !ok:
			missing = append(missing, f)
		case e.need == notScoped:
			require.NotEmpty(t, e.reason, "%s: n/a needs its reason", f)
		default:
			require.NotEmpty(t, e.op, "%s has no operation", f)
			require.True(t, strings.HasPrefix(e.op, "mutation") == isMutation[f], "%s: the operation is of the wrong kind", f)
		}
	}
	require.Empty(t, missing, "root fields without an IDOR matrix entry")
	var stale []string
	for f := range idorFields {
		if !slices.Contains(fields, f) {
			stale = append(stale, f)
		}
	}
	sort.Strings(stale)
	require.Empty(t, stale, "IDOR matrix entries of fields the schema no longer has")
	sort.Strings(fields)

	type cell struct{ want, got, note string }
	results := map[string]map[string]cell{} // field -> principal -> cell
	// Cells run one at a time, and every refused mutation is followed by a
	// checksum of the tables.
	before := dbChecksum(t, env)
	for _, f := range fields {
		e := idorFields[f]
		results[f] = map[string]cell{}
		if e.need == notScoped {
			continue
		}
		for _, p := range principals {
			want := p.expect(e, isMutation[f])
			if isMutation[f] && want == "OK" {
				continue // below, on fresh objects
			}
			r := env.Do(t, p.token, p.world.op(e.op), p.world.vars)
			got := outcome(r)
			if got != "OK" {
				// A refusal shows nothing: the data is null, or the
				// (nullable) mutation field is.
				requireNoData(t, r, "%s as %s", f, p.name)
			}
			if isMutation[f] && want != "OK" {
				// Nothing changed.
				after := dbChecksum(t, env)
				require.Equal(t, before, after, "%s as %s (answered %s) changed the database: %s", f, p.name, got, r.Raw)
			}
			c := cell{want: want, got: got, note: e.knownIssue[p.name]}
			results[f][p.name] = c
			if got != want {
				if c.note != "" {
					t.Logf("known issue: %s as %s: want %s, got %s: %s", f, p.name, want, got, c.note)
					continue
				}
				t.Errorf("%s as %s: want %s, got %s: %s", f, p.name, want, got, r.Raw)
			}
		}
	}

	// Mutations expected to succeed run last, one at a time, each on fresh
	// objects made for it in the principal's world (so no cell depends on
	// another); transferOwnership goes last of all, since the target's
	// owner is no longer one afterwards.
	okFields := append([]string(nil), fields...)
	sort.SliceStable(okFields, func(i, j int) bool { return okFields[j] == "transferOwnership" && okFields[i] != okFields[j] })
	n := 0
	for _, f := range okFields {
		e := idorFields[f]
		if !isMutation[f] || e.need == notScoped {
			continue
		}
		for _, p := range principals {
			if p.expect(e, true) != "OK" {
				continue
			}
			n++
			w := buildWorld(t, env, p.world.ownerToken, p.world.account, fmt.Sprintf("idor-ok%d", n), e.op)
			token := p.token
			if p.mint != nil && w.built {
				token = p.mint(w.domain)
			}
			r := env.Do(t, token, w.op(e.op), w.vars)
			got := outcome(r)
			if slices.Contains(e.allowedCodes, got) {
				got = "OK"
			}
			c := cell{want: "OK", got: got, note: e.knownIssue[p.name]}
			results[f][p.name] = c
			if got != "OK" {
				if c.note != "" {
					t.Logf("known issue: %s as %s: want OK, got %s: %s", f, p.name, got, c.note)
					continue
				}
				t.Errorf("%s as %s: want OK, got %s: %s", f, p.name, got, r.Raw)
			}
		}
	}

	// The summary: one line per field, one cell per principal.
	abbrev := map[string]string{"OK": "ok", "FORBIDDEN": "F", "NOT_FOUND": "NF", "UNAUTHENTICATED": "U"}
	var b strings.Builder
	fmt.Fprintf(&b, "IDOR matrix (ok, F forbidden, NF not found, ! differs from the access model):\n%-24s", "")
	for i := range principals {
		fmt.Fprintf(&b, " %4d", i+1)
	}
	b.WriteString("\n")
	for _, f := range fields {
		e := idorFields[f]
		fmt.Fprintf(&b, "%-24s", f)
		if e.need == notScoped {
			fmt.Fprintf(&b, " n/a: %s\n", e.reason)
			continue
		}
		for _, p := range principals {
			c := results[f][p.name]
			s := c.got
			if a, ok := abbrev[s]; ok {
				s = a
			}
			if c.got != c.want {
				s += "!"
			}
			fmt.Fprintf(&b, " %4s", s)
		}
		b.WriteString("\n")
	}
	for i, p := range principals {
		fmt.Fprintf(&b, "%d: %s\n", i+1, p.name)
	}
	t.Log(b.String())
}
