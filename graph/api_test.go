package graph_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
)

const domainFields = `name unicodeName mode dmarcRecord
	dmarcPolicy { p sp np pct adkim aspf rua ruf fo testing }
	dnsSetup { dmarc { nameServers { name type value ttl } cnameAlternative { name type value } served { name type value } }
		spf { name type value } dkim { nameServers { name value } cnameAlternative { value } served { name type value } }
		bimi { nameServers { name value } served { name value } } bimiWithheld }`

// queryTXT asks the edge over UDP and returns the rcode and TXT strings.
func queryTXT(t *testing.T, addr, name string) (int, string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	r, err := dns.Exchange(m, addr)
	require.NoError(t, err)
	var txt []string
	for _, rr := range r.Answer {
		if tx, ok := rr.(*dns.TXT); ok {
			txt = append(txt, strings.Join(tx.Txt, ""))
		}
	}
	return r.Rcode, strings.Join(txt, "|")
}

// waitTXT polls the edge until the answer matches, for at most a second.
func waitTXT(t *testing.T, addr, name string, rcode int, want string) time.Duration {
	t.Helper()
	start := time.Now()
	var gotCode int
	var got string
	for time.Since(start) < time.Second {
		if gotCode, got = queryTXT(t, addr, name); gotCode == rcode && got == want {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: after 1s the edge answers %s %q, want %s %q", name, dns.RcodeToString[gotCode], got, dns.RcodeToString[rcode], want)
	return 0
}

// TestMutationToDNSAnswer is the foundation slice end to end: log in, add a
// domain, set its policy over GraphQL, and see dnsedge answer within a second.
func TestMutationToDNSAnswer(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	edge := env.StartEdge(t, filepath.Join(t.TempDir(), "snap"))
	addr := edge.UDPAddr().String()
	o := env.NewOwner(t, "Acme")

	// The owner publishes the account's proof first, so the claim is
	// verified as it is added.
	env.Prove(t, o.Token, "", "Bücher-Acme.COM.")
	r := env.Do(t, o.Token, `mutation { addDomain(name: "Bücher-Acme.COM.") { verified reportAddress `+domainFields+` } }`, nil)
	r.NoErrors(t)
	var add struct{ AddDomain map[string]any }
	r.Decode(t, &add)
	require.Equal(t, "xn--bcher-acme-9db.com", add.AddDomain["name"])
	require.Equal(t, "bücher-acme.com", add.AddDomain["unicodeName"])
	require.Equal(t, true, add.AddDomain["verified"])
	// Rampart's own report address comes first in rua.
	own := "mailto:" + add.AddDomain["reportAddress"].(string)
	require.Regexp(t, `^mailto:[0-9a-f]{16}@`+apitest.ReportsDomain+`$`, own)
	require.Equal(t, "v=DMARC1; p=none; rua="+own, add.AddDomain["dmarcRecord"])
	took := waitTXT(t, addr, "_dmarc.xn--bcher-acme-9db.com", dns.RcodeSuccess, "v=DMARC1; p=none; rua="+own)
	t.Logf("addDomain visible on the edge after %v", took)

	r = env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "bücher-acme.com", policy: {
		p: REJECT, sp: QUARANTINE, np: REJECT, pct: 50, adkim: STRICT, rua: ["dmarc@bücher-acme.com", "mailto:agg@example.net!10m"], fo: "1:d", testing: true
	}, force: true) { dmarcRecord dmarcPolicy { p sp pct adkim aspf rua } } }`, nil)
	r.NoErrors(t)
	want := "v=DMARC1; p=reject; sp=quarantine; np=reject; pct=50; adkim=s; rua=" + own + ",mailto:dmarc@xn--bcher-acme-9db.com,mailto:agg@example.net!10m; fo=1:d; t=y"
	require.Contains(t, r.Raw, `"dmarcRecord":"`+want+`"`)
	took = waitTXT(t, addr, "_dmarc.xn--bcher-acme-9db.com", dns.RcodeSuccess, want)
	t.Logf("updateDmarcPolicy visible on the edge after %v", took)
	// The CNAME target in the edge zone carries the same record.
	waitTXT(t, addr, "xn--bcher-acme-9db.com._dmarc."+apitest.EdgeZone, dns.RcodeSuccess, want)

	// Clearing optional tags with null.
	r = env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "xn--bcher-acme-9db.com", policy: {sp: null, np: null, fo: null, testing: null, pct: 100, adkim: RELAXED, rua: []}, force: true) { dmarcRecord } }`, nil)
	r.NoErrors(t)
	waitTXT(t, addr, "_dmarc.xn--bcher-acme-9db.com", dns.RcodeSuccess, "v=DMARC1; p=reject; rua="+own)

	// Blocking locks the domain down; the stored policy returns on unblock.
	r = env.Do(t, o.Token, `mutation { setDomainMode(name: "xn--bcher-acme-9db.com", mode: BLOCKED) { mode dmarcPolicy { p sp np adkim aspf } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"mode":"BLOCKED","dmarcPolicy":{"p":"REJECT","sp":"REJECT","np":"REJECT","adkim":"STRICT","aspf":"STRICT"}`)
	waitTXT(t, addr, "_dmarc.xn--bcher-acme-9db.com", dns.RcodeSuccess, "v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s; rua="+own)
	r = env.Do(t, o.Token, `mutation { updateDmarcPolicy(name: "xn--bcher-acme-9db.com", policy: {p: NONE}) { name } }`, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "blocked")
	r = env.Do(t, o.Token, `mutation { setDomainMode(name: "xn--bcher-acme-9db.com", mode: SENDING) { dmarcRecord } }`, nil)
	r.NoErrors(t)
	waitTXT(t, addr, "_dmarc.xn--bcher-acme-9db.com", dns.RcodeSuccess, "v=DMARC1; p=reject; rua="+own)

	// Removing the domain withdraws its records: during the grace period
	// its zones answer with no record (no policy, no key) rather than an
	// error, and the SPF names authorise nothing; then the job takes it off
	// the edge, and its zone is gone: REFUSED.
	r = env.Do(t, o.Token, `mutation { removeDomain(name: "xn--bcher-acme-9db.com") { name } }`, nil)
	r.NoErrors(t)
	waitTXT(t, addr, "xn--bcher-acme-9db.com._rspf."+apitest.EdgeZone, dns.RcodeSuccess, "v=spf1 ?all")
	waitTXT(t, addr, "_dmarc.xn--bcher-acme-9db.com", dns.RcodeSuccess, "")
	_, err := env.Pool.Exec(context.Background(), `UPDATE edge_domain SET removed_at = now() - interval '31 days' WHERE name = 'xn--bcher-acme-9db.com'`)
	require.NoError(t, err)
	run, err := env.Services(t).Domains.MaintainEdge(context.Background(), time.Time{})
	require.NoError(t, err)
	require.Equal(t, 1, run.Expired)
	waitTXT(t, addr, "_dmarc.xn--bcher-acme-9db.com", dns.RcodeRefused, "")
}

func TestDNSSetupAndDefaults(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Setup")
	r := env.Do(t, o.Token, `mutation { addDomain(name: "setup-example.org") { `+domainFields+` } }`, nil)
	r.NoErrors(t)
	rec := "v=DMARC1; p=none; rua=mailto:" + reportAddress(t, env, o.Token, "setup-example.org")
	require.JSONEq(t, `{"addDomain": {
		"name": "setup-example.org", "unicodeName": "setup-example.org", "mode": "SENDING", "dmarcRecord": "`+rec+`",
		"dmarcPolicy": {"p": "NONE", "sp": null, "np": null, "pct": 100, "adkim": "RELAXED", "aspf": "RELAXED", "rua": [], "ruf": [], "fo": null, "testing": null},
		"dnsSetup": {"dmarc": {
			"nameServers": [
				{"name": "_dmarc.setup-example.org.", "type": "NS", "value": "ns1.edge.rampart.test.", "ttl": 3600},
				{"name": "_dmarc.setup-example.org.", "type": "NS", "value": "ns2.edge.rampart.test.", "ttl": 3600}],
			"cnameAlternative": {"name": "_dmarc.setup-example.org.", "type": "CNAME", "value": "setup-example.org._dmarc.edge.rampart.test."},
			"served": [{"name": "_dmarc.setup-example.org.", "type": "TXT", "value": "`+rec+`"}]},
			"spf": {"name": "setup-example.org.", "type": "TXT", "value": "v=spf1 include:%{i}._ip.setup-example.org._spf.edge.rampart.test redirect=setup-example.org._rspf.edge.rampart.test"},
			"dkim": {"nameServers": [{"name": "_domainkey.setup-example.org.", "value": "ns1.edge.rampart.test."}, {"name": "_domainkey.setup-example.org.", "value": "ns2.edge.rampart.test."}],
				"cnameAlternative": null, "served": []},
			"bimi": {"nameServers": [{"name": "_bimi.setup-example.org.", "value": "ns1.edge.rampart.test."}, {"name": "_bimi.setup-example.org.", "value": "ns2.edge.rampart.test."}], "served": []},
			"bimiWithheld": "no BIMI logo is set"}}}`, string(r.Data))

	// No proof is published: the claim is unverified, the set-up shows the
	// proof to publish (the account's, as domainProof gives it), and the
	// check made when adding says what it found.
	r = env.Do(t, o.Token, `{ domain(name: "setup-example.org") { verified dnsSetup { verification { name type value ttl } }
		ownership { verified verifiedAt method proof { value } expiresAt displacedAt lastCheckedAt lastCheckResult } }
		account { domainProof(name: "SETUP-example.org") { name type value ttl } } }`, nil)
	r.NoErrors(t)
	var got struct {
		Domain struct {
			Verified bool
			DNSSetup struct {
				Verification struct {
					Name, Type, Value string
					TTL               int
				}
			}
			Ownership struct {
				Verified                 bool
				VerifiedAt, Method       *string
				Proof                    struct{ Value string }
				ExpiresAt, LastCheckedAt time.Time
				DisplacedAt              *string
				LastCheckResult          string
			}
		}
		Account struct {
			DomainProof struct {
				Name, Type, Value string
				TTL               int
			}
		}
	}
	r.Decode(t, &got)
	require.False(t, got.Domain.Verified)
	require.Equal(t, "_rampart.setup-example.org.", got.Domain.DNSSetup.Verification.Name)
	require.Equal(t, "TXT", got.Domain.DNSSetup.Verification.Type)
	require.Regexp(t, `^rampart-verify=[0-9a-z]{16,64}$`, got.Domain.DNSSetup.Verification.Value)
	require.Equal(t, got.Account.DomainProof, got.Domain.DNSSetup.Verification)
	require.Equal(t, got.Domain.DNSSetup.Verification.Value, got.Domain.Ownership.Proof.Value)
	own := got.Domain.Ownership
	require.False(t, own.Verified)
	require.Nil(t, own.VerifiedAt)
	require.Nil(t, own.Method)
	require.Nil(t, own.DisplacedAt)
	require.WithinDuration(t, time.Now().Add(7*24*time.Hour), own.ExpiresAt, time.Minute)
	require.WithinDuration(t, time.Now(), own.LastCheckedAt, time.Minute)
	require.Equal(t, "no TXT record at _rampart.setup-example.org (the name does not exist)", own.LastCheckResult)
}

func TestInputErrors(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	a := env.NewOwner(t, "A")
	b := env.NewOwner(t, "B")
	env.Do(t, a.Token, `mutation { addDomain(name: "taken-example.com") { name } }`, nil).NoErrors(t)
	// A name the account claims already returns that claim (issue 11:
	// automation re-runs addDomain), and adds nothing.
	r := env.Do(t, a.Token, `mutation { addDomain(name: "TAKEN-example.com") { name verified } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"addDomain": {"name": "taken-example.com", "verified": false}}`, string(r.Data))
	var claims int
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM domains WHERE name = 'taken-example.com'`).Scan(&claims))
	require.Equal(t, 1, claims)

	for _, tc := range []struct{ query, code, msg string }{
		{`mutation { addDomain(name: "co.uk") { name } }`, "BAD_USER_INPUT", "public suffix"},
		{`mutation { addDomain(name: "localhost") { name } }`, "BAD_USER_INPUT", "single label"},
		{`mutation { addDomain(name: "bad_name.com") { name } }`, "BAD_USER_INPUT", "not a valid domain name"},
		{`mutation { addDomain(name: "x.unknown-tld-zz") { name } }`, "BAD_USER_INPUT", "top-level"},
	} {
		r := env.Do(t, b.Token, tc.query, nil)
		r.RequireCode(t, tc.code)
		require.Contains(t, r.Errors[0].Message, tc.msg)
	}
	// Another account's claim does not lock the name: B's claim is made,
	// unverified, and A's stays.
	r = env.Do(t, b.Token, `mutation { addDomain(name: "TAKEN-example.com") { name verified } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"addDomain": {"name": "taken-example.com", "verified": false}}`, string(r.Data))
	env.Do(t, a.Token, `{ domain(name: "taken-example.com") { name } }`, nil).NoErrors(t)
	env.Do(t, b.Token, `mutation { addDomain(name: "b-example.com") { name } }`, nil).NoErrors(t)
	for _, tc := range []struct{ input, field, msg string }{
		{`{pct: 101}`, "pct", "between 0 and 100"},
		{`{pct: -1}`, "pct", "between 0 and 100"},
		{`{rua: ["not an address"]}`, "rua", "plausible mail address"},
		{`{rua: ["https://example.com/reports"]}`, "rua", "mailto"},
		{`{rua: ["a@x.com","b@x.com","c@x.com","d@x.com","e@x.com","f@x.com"]}`, "rua", "at most 5"},
		{`{fo: "2"}`, "fo", "fo"},
	} {
		r := env.Do(t, b.Token, `mutation { updateDmarcPolicy(name: "b-example.com", policy: `+tc.input+`) { dmarcRecord } }`, nil)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Equal(t, tc.field, r.Errors[0].Extensions["field"], r.Raw)
		require.Contains(t, r.Errors[0].Message, tc.msg)
	}
	// An unknown enum value is a validation error, not INTERNAL.
	r = env.Do(t, b.Token, `mutation { updateDmarcPolicy(name: "b-example.com", policy: {p: DISCARD}) { dmarcRecord } }`, nil)
	require.NotEmpty(t, r.Errors)
	require.NotEqual(t, "INTERNAL", r.Code())
	// Nothing in the answers mentions SQL.
	require.NotContains(t, strings.ToLower(r.Raw), "sqlstate")
}

func TestPagination(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Pages")
	for i := range 7 {
		env.Do(t, o.Token, fmt.Sprintf(`mutation { addDomain(name: "page%d-example.com") { name } }`, i), nil).NoErrors(t)
	}
	env.Do(t, o.Token, `mutation { addDomain(name: "other-example.com") { name } }`, nil).NoErrors(t)
	env.Do(t, o.Token, `mutation { setDomainMode(name: "page3-example.com", mode: BLOCKED) { name } }`, nil).NoErrors(t)

	var names []string
	after := ""
	for range 10 {
		r := env.Do(t, o.Token, `query($after: String) { domains(first: 3, after: $after, filter: {namePrefix: "page"}) {
			totalCount edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }`, map[string]any{"after": after})
		r.NoErrors(t)
		var d struct {
			Domains struct {
				TotalCount int
				Edges      []struct{ Node struct{ Name string } }
				PageInfo   struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		r.Decode(t, &d)
		require.Equal(t, 7, d.Domains.TotalCount)
		for _, e := range d.Domains.Edges {
			names = append(names, e.Node.Name)
		}
		if !d.Domains.PageInfo.HasNextPage {
			break
		}
		after = d.Domains.PageInfo.EndCursor
	}
	require.Equal(t, []string{"page0-example.com", "page1-example.com", "page2-example.com", "page3-example.com",
		"page4-example.com", "page5-example.com", "page6-example.com"}, names)

	r := env.Do(t, o.Token, `{ domains(filter: {mode: BLOCKED}) { totalCount nodes { name } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domains": {"totalCount": 1, "nodes": [{"name": "page3-example.com"}]}}`, string(r.Data))
	env.Do(t, o.Token, `{ domains(first: 101) { totalCount } }`, nil).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, o.Token, `{ domains(after: "garbage!") { totalCount } }`, nil).RequireCode(t, "BAD_USER_INPUT")
}

// TestQueryLimits checks that abusive operations are refused before any SQL
// runs: not even the bearer token is checked.
func TestQueryLimits(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Limits")

	deep := "{ viewer { accounts { domains { nodes { account { domains { nodes { account { domains { nodes { account { name } } } } } } } } } } } }"
	var aliases strings.Builder
	aliases.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&aliases, " a%d: viewer { user { email } }", i)
	}
	aliases.WriteString(" }")
	costly := "{ domains(first: 100) { nodes { account { domains(first: 100) { nodes { name dmarcRecord } } } } } }"

	for name, q := range map[string]string{"depth": deep, "aliases": aliases.String(), "complexity": costly} {
		before := env.Queries.Load()
		r := env.Do(t, o.Token, q, nil)
		require.NotEmpty(t, r.Errors, "%s: %s", name, r.Raw)
		require.Contains(t, []string{"", "null"}, string(r.Data), name)
		require.Regexp(t, "limit|complexity", r.Errors[0].Message, name)
		require.Equal(t, before, env.Queries.Load(), "%s: SQL ran for a refused operation", name)
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Intro")
	q := `{ __schema { queryType { name } } }`
	r := env.Do(t, "", q, nil)
	require.NotEmpty(t, r.Errors, r.Raw)
	require.Contains(t, r.Errors[0].Message, "introspection")
	r = env.Do(t, o.Token, q, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"__schema": {"queryType": {"name": "Query"}}}`, string(r.Data))
}

func TestGraphiQLOnlyInDev(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, err := getStatus(ctx, strings.TrimSuffix(env.URL, "/graphql")+"/")
	require.NoError(t, err)
	require.Equal(t, 404, code)
}

// reportAddress returns a domain's own report address.
func reportAddress(t *testing.T, env *apitest.Env, token, name string) string {
	t.Helper()
	r := env.Do(t, token, `query($n: String!) { domain(name: $n) { reportAddress } }`, map[string]any{"n": name})
	r.NoErrors(t)
	var d struct {
		Domain struct{ ReportAddress string }
	}
	r.Decode(t, &d)
	require.NotEmpty(t, d.Domain.ReportAddress)
	return d.Domain.ReportAddress
}
