package graph_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/spf"
)

// vendorZone is the outside world of the catalog's vendors, as the
// resolution job sees it: Google's include costs 1 + 3 terms, SendGrid's 1.
func vendorZone(t *testing.T) *apitest.Zone {
	return apitest.ServeZone(t, map[string][]string{
		"_spf.google.com":        {"v=spf1 include:_netblocks.google.com include:_netblocks2.google.com include:_netblocks3.google.com ~all"},
		"_netblocks.google.com":  {"v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ~all"},
		"_netblocks2.google.com": {"v=spf1 ip6:2001:4860:4000::/36 ~all"},
		"_netblocks3.google.com": {"v=spf1 ip4:172.217.0.0/19 ~all"},
		"sendgrid.net":           {"v=spf1 ip4:167.89.0.0/17 ip4:149.72.0.0/16 ~all"},
		// Everything else fails to resolve: NXDOMAIN.
	})
}

func TestSendersAndExplain(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Senders")
	env.AddVerifiedDomain(t, o, "senders-example.com")

	// The catalog is synced at start.
	r := env.Do(t, o.Token, `{ senderServices { slug spfInclude heloSuffixes sourceUrl } }`, nil)
	r.NoErrors(t)
	var cat struct {
		SenderServices []struct{ Slug, SpfInclude, SourceUrl string }
	}
	r.Decode(t, &cat)
	require.GreaterOrEqual(t, len(cat.SenderServices), 12)
	for _, s := range cat.SenderServices {
		require.NotEmpty(t, s.SourceUrl, s.Slug)
	}

	// Resolve the vendors' includes against the loopback vendor zone.
	z := vendorZone(t)
	failed, err := env.Services(t).Senders.ResolveRanges(context.Background(), spf.NewDNSResolver(z.Addr))
	require.NoError(t, err)
	require.Equal(t, len(cat.SenderServices)-2, failed, "all but google and sendgrid fail to resolve here")
	r = env.Do(t, o.Token, `{ senderServices { slug ranges spfLookups resolveError } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"slug":"google-workspace","ranges":["35.190.247.0/24","64.233.160.0/19","172.217.0.0/19","2001:4860:4000::/36"],"spfLookups":4,"resolveError":null}`)
	require.Contains(t, r.Raw, `{"slug":"sendgrid","ranges":["149.72.0.0/16","167.89.0.0/17"],"spfLookups":1,"resolveError":null}`)

	const d = `"senders-example.com"`
	for _, m := range []string{
		`addNetblock(domain: ` + d + `, cidr: "192.0.2.0/24", label: "office")`,
		`addNetblock(domain: ` + d + `, cidr: "2001:db8:10::/48", label: "v6 office")`,
		`addNetblock(domain: ` + d + `, cidr: "203.0.113.9")`,
		`enableSender(domain: ` + d + `, service: "google-workspace")`,
		`enableSender(domain: ` + d + `, service: "sendgrid")`,
	} {
		env.Do(t, o.Token, `mutation { `+m+` { name } }`, nil).NoErrors(t)
	}
	r = env.Do(t, o.Token, `{ domain(name: `+d+`) { netblocks { cidr label } senders { slug } spfLookups dnsSetup { spf { value } } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {
		"netblocks": [{"cidr": "192.0.2.0/24", "label": "office"}, {"cidr": "203.0.113.9/32", "label": ""}, {"cidr": "2001:db8:10::/48", "label": "v6 office"}],
		"senders": [{"slug": "google-workspace"}, {"slug": "sendgrid"}],
		"spfLookups": 7,
		"dnsSetup": {"spf": {"value": "v=spf1 include:%{i}._ip.senders-example.com._spf.edge.rampart.test redirect=senders-example.com._rspf.edge.rampart.test"}}}}`, string(r.Data))

	explain := func(ip, helo string) map[string]any {
		t.Helper()
		r := env.Do(t, o.Token, `query($ip: String!, $helo: String) { explainSpf(domain: `+d+`, ip: $ip, helo: $helo) {
			result steps { query kind record } query truncated record kind reason netblock { cidr } service { slug } } }`, map[string]any{"ip": ip, "helo": helo})
		r.NoErrors(t)
		var out struct{ ExplainSpf map[string]any }
		r.Decode(t, &out)
		return out.ExplainSpf
	}
	steps := func(e map[string]any) int { return len(e["steps"].([]any)) }
	// The domain's addresses pass at the first include, whatever the HELO.
	e := explain("192.0.2.10", "mta1.mailer.example")
	require.Equal(t, "PASS", e["result"])
	require.Equal(t, "192.0.2.10._ip.senders-example.com._spf.edge.rampart.test", e["query"])
	require.Equal(t, "v=spf1 ip4:192.0.2.10 -all", e["record"])
	require.Equal(t, "IP", e["kind"])
	require.Equal(t, 1, steps(e))
	require.Equal(t, map[string]any{"cidr": "192.0.2.0/24"}, e["netblock"])
	e = explain("2001:db8:10::25", "mx.example")
	require.Equal(t, "v=spf1 ip6:2001:db8:10::25 -all", e["record"])
	require.Equal(t, "2.0.0.1.0.d.b.8.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.5._ip.senders-example.com._spf.edge.rampart.test", e["query"])
	e = explain("64.233.170.27", "mail-yw1-f170.google.com")
	require.Equal(t, "v=spf1 ip4:64.233.170.27 -all", e["record"])
	require.Equal(t, map[string]any{"slug": "google-workspace"}, e["service"])
	// Others follow the redirect to the HELO step.
	e = explain("198.51.100.77", "o1.ptr1234.sendgrid.net")
	require.Equal(t, "SENDER", e["result"])
	require.Equal(t, "v=spf1 include:sendgrid.net -all", e["record"])
	require.Equal(t, "INCLUDE", e["kind"])
	require.Equal(t, "sendgrid.net._ehlo.senders-example.com._spf.edge.rampart.test", e["query"])
	require.Equal(t, 3, steps(e))
	redirect := e["steps"].([]any)[1].(map[string]any)
	require.Equal(t, "REDIRECT", redirect["kind"])
	require.Equal(t, "senders-example.com._rspf.edge.rampart.test", redirect["query"])
	require.Equal(t, "v=spf1 include:%{h2}._ehlo.senders-example.com._spf.edge.rampart.test ~all", redirect["record"])
	e = explain("198.51.100.77", "evilsendgrid.net")
	require.Equal(t, "SOFTFAIL", e["result"])
	require.Equal(t, "v=spf1 ~all", e["record"])
	require.Equal(t, "NO_MATCH", e["kind"])
	// A HELO equal to a suffix (the catalog's ".sendgrid.net") is the
	// sender's, as at the edge.
	e = explain("198.51.100.77", "sendgrid.net")
	require.Equal(t, "v=spf1 include:sendgrid.net -all", e["record"])
	require.Equal(t, "INCLUDE", e["kind"])
	// HELOs no receiver can put into a query cost the domain's own
	// addresses nothing: they pass before the HELO is used. Others get a
	// permerror at the HELO step, not a predicted pass.
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".example"
	for _, helo := range []string{"", "mta1.mailer.example.", "mta1..mailer.example", strings.Repeat("x", 64) + ".mailer.example", "[192.0.2.10]", long} {
		e = explain("192.0.2.10", helo)
		require.Equal(t, "PASS", e["result"], "%q", helo)
		require.Equal(t, "IP", e["kind"], "%q", helo)
	}
	// The HELO step names only the HELO's rightmost labels (%{h2} here):
	// an empty HELO or one ending in a dot still makes no name.
	for _, helo := range []string{"", "mta1.mailer.example."} {
		e = explain("198.51.100.77", helo)
		require.Equal(t, "PERMERROR", e["result"], "%q", helo)
		require.Equal(t, "NO_QUERY", e["kind"], "%q", helo)
		require.Equal(t, "", e["record"], "%q", helo)
		require.Equal(t, "", e["query"], "%q", helo)
	}
	for _, helo := range []string{"mta1..mailer.example", strings.Repeat("x", 64) + ".mailer.example", long} {
		e = explain("198.51.100.77", helo)
		require.Equal(t, "SOFTFAIL", e["result"], "%q", helo)
		require.Equal(t, false, e["truncated"], "%q", helo)
		require.Equal(t, "v=spf1 ~all", e["record"], "%q", helo)
	}

	// Input errors.
	for _, tc := range []struct{ m, field string }{
		{`addNetblock(domain: ` + d + `, cidr: "192.0.2.1/24")`, "cidr"},
		{`addNetblock(domain: ` + d + `, cidr: "0.0.0.0/0")`, "cidr"},
		{`addNetblock(domain: ` + d + `, cidr: "not-an-ip")`, "cidr"},
		{`enableSender(domain: ` + d + `, service: "no-such-service")`, "service"},
		{`pinSpfInclude(domain: ` + d + `, include: "%{d}.evil.example", expiresAt: "2030-01-01T00:00:00Z")`, "include"},
	} {
		r := env.Do(t, o.Token, `mutation { `+tc.m+` { name } }`, nil)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Equal(t, tc.field, r.Errors[0].Extensions["field"], r.Raw)
	}
	env.Do(t, o.Token, `mutation { removeNetblock(domain: `+d+`, cidr: "198.51.100.0/24") { name } }`, nil).RequireCode(t, "NOT_FOUND")

	// Pinned includes go into _nspf; the 10-lookup limit refuses a change
	// that would exceed it, and nothing of the refused change is kept.
	expires := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	pin := func(include string) *apitest.Response {
		return env.Do(t, o.Token, `mutation($i: String!, $x: Time!) { pinSpfInclude(domain: `+d+`, include: $i, expiresAt: $x) { spfLookups spfPins { include lookups } } }`,
			map[string]any{"i": include, "x": expires})
	}
	pin("spf.vendor-one.example").NoErrors(t) // 2 + 1 + 4 (google, via the HELO step) + 1 = 8
	r = pin("_spf.google.com")                // a catalog include counts its measured cost: 8 + 4 = 12
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "12 DNS lookups")
	pin("sendgrid.net").NoErrors(t)           // 9
	pin("spf.vendor-two.example").NoErrors(t) // 10
	r = pin("spf.vendor-three.example")
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "11 DNS lookups")
	r = env.Do(t, o.Token, `{ domain(name: `+d+`) { spfLookups spfPins { include lookups } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"spfLookups":10`)
	require.NotContains(t, r.Raw, "vendor-three", "a refused change leaves nothing behind")
	env.Do(t, o.Token, `mutation { unpinSpfInclude(domain: `+d+`, include: "sendgrid.net") { spfLookups } }`, nil).NoErrors(t)

	var rspf string
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT rspf FROM edge_domain WHERE name = 'senders-example.com'`).Scan(&rspf))
	require.Equal(t, "v=spf1 include:spf.vendor-one.example include:spf.vendor-two.example include:%{h2}._ehlo.senders-example.com._spf.edge.rampart.test ~all", rspf)
	var nspf string
	require.NoError(t, env.Pool.QueryRow(context.Background(), `SELECT nspf FROM edge_domain WHERE name = 'senders-example.com'`).Scan(&nspf))
	require.Equal(t, "v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.9 ip6:2001:db8:10::/48 include:spf.vendor-one.example include:spf.vendor-two.example -all", nspf)

	// Blocking: every address fails, and the set-up says to publish -all.
	env.Do(t, o.Token, `mutation { setDomainMode(name: `+d+`, mode: BLOCKED) { name } }`, nil).NoErrors(t)
	e = explain("192.0.2.10", "mta1.mailer.example")
	require.Equal(t, "FAIL", e["result"])
	require.Equal(t, "BLOCKED", e["kind"])
	require.Equal(t, "v=spf1 -all", e["record"])
	require.Equal(t, "senders-example.com._rspf.edge.rampart.test", e["query"])
	r = env.Do(t, o.Token, `{ domain(name: `+d+`) { dnsSetup { spf { value } } } }`, nil)
	require.Contains(t, r.Raw, `"value":"v=spf1 -all"`)
}

// TestPinsExpire: an expired pin leaves the _nspf record when the periodic
// job runs.
func TestPinsExpire(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Pins")
	env.AddVerifiedDomain(t, o, "pins-example.com")
	r := env.Do(t, o.Token, `mutation($x: Time!) { pinSpfInclude(domain: "pins-example.com", include: "spf.checker.example", expiresAt: $x) { spfPins { include } } }`,
		map[string]any{"x": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	r.NoErrors(t)
	ctx := context.Background()
	_, err := env.Pool.Exec(ctx, `UPDATE spf_pins SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	n, err := env.Services(t).Senders.ExpirePins(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var nspf string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT nspf FROM edge_domain WHERE name = 'pins-example.com'`).Scan(&nspf))
	require.Equal(t, "v=spf1 -all", nspf)
}

// TestSenderJobsInSteps: runs out of time (a stop in the past) still make
// progress, one service or one domain each, and chained as the jobs chain
// them (a continuation after the last slug, a snooze) they do all the work
// an unbounded run does.
func TestSenderJobsInSteps(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	senders := env.Services(t).Senders
	past := time.Now().Add(-time.Hour)

	z := vendorZone(t)
	var withInclude int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM sender_services WHERE cardinality(spf_includes) > 0`).Scan(&withInclude))
	require.Greater(t, withInclude, 2)
	after, runs, failed := "", 0, 0
	for range withInclude + 1 {
		f, next, err := senders.ResolveRangesFrom(ctx, spf.NewDNSResolver(z.Addr), after, past)
		require.NoError(t, err)
		runs++
		failed += f
		if next == "" {
			break
		}
		require.Greater(t, next, after, "each run moves on")
		after = next
	}
	require.Equal(t, withInclude, runs, "one service per run; the run of the last says it is done")
	require.Equal(t, withInclude-2, failed, "all but google and sendgrid fail to resolve here")
	var unresolved int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM sender_services WHERE cardinality(spf_includes) > 0 AND resolved_at IS NULL AND resolve_error = ''`).Scan(&unresolved))
	require.Zero(t, unresolved)

	o := env.NewOwner(t, "Steps")
	for _, d := range []string{"steps-a.example.com", "steps-b.example.com"} {
		env.AddVerifiedDomain(t, o, d)
		env.Do(t, o.Token, `mutation($d: String!, $x: Time!) { pinSpfInclude(domain: $d, include: "spf.checker.example", expiresAt: $x) { spfPins { include } } }`,
			map[string]any{"d": d, "x": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}).NoErrors(t)
	}
	_, err := env.Pool.Exec(ctx, `UPDATE spf_pins SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	n, done, err := senders.ExpirePinsUntil(ctx, past)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.False(t, done)
	n, done, err = senders.ExpirePinsUntil(ctx, past)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.True(t, done)
	var pins int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM spf_pins`).Scan(&pins))
	require.Zero(t, pins)
}
