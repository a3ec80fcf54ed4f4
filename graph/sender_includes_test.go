package graph_test

import (
	"context"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/spfanswer"
)

// TestSenderServiceIncludes: an account's service with two SPF includes,
// resolved against the loopback vendor zone. Its ranges are the union of
// the includes'; the edge answers each include's ranges and hands a HELO
// it recognises over to both includes; the domain's lookup cost counts
// every include, resolved or not; one include failing keeps the last good
// ranges and cost and names the include; spfInclude is the deprecated
// alias of the first include.
func TestSenderServiceIncludes(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	edge := env.StartEdge(t, filepath.Join(t.TempDir(), "snap"))
	addr := edge.UDPAddr().String()
	env.DNS.Set("_spf.multi-one.example.net", "v=spf1 ip4:198.18.1.0/24 include:_v6.multi-one.example.net ~all")
	env.DNS.Set("_v6.multi-one.example.net", "v=spf1 ip6:2001:db8:1::/48 ~all")
	env.DNS.Set("spf.multi-two.example.net", "v=spf1 ip4:198.18.2.0/24 ~all")
	o := env.NewOwner(t, "Multi")
	const d, cold = "multi-includes.example.com", "cold-includes.example.com"
	env.AddVerifiedDomain(t, o, d)
	env.AddVerifiedDomain(t, o, cold)
	slug := "multi." + hex.EncodeToString(o.AccountID[:])
	vars := map[string]any{"s": slug}
	const fields = `{ slug spfIncludes spfInclude ranges spfLookups resolveError }`
	type service struct {
		Slug         string
		SpfIncludes  []string
		SpfInclude   *string
		Ranges       []string
		SpfLookups   *int
		ResolveError *string
	}
	includes := []string{"_spf.multi-one.example.net", "spf.multi-two.example.net"}

	// Created with two includes: both resolved, the ranges their union,
	// the cost each include's term and chain (1 + 1, and 1).
	r := env.Do(t, o.Token, `mutation($i: SenderServiceInput!) { createSenderService(slug: "multi", input: $i) `+fields+` }`,
		map[string]any{"i": map[string]any{"name": "Multi", "spfIncludes": includes, "heloSuffixes": []string{"out.multi.example.net"}}})
	r.NoErrors(t)
	var created struct{ CreateSenderService service }
	r.Decode(t, &created)
	first := includes[0]
	require.Equal(t, service{
		Slug: slug, SpfIncludes: includes, SpfInclude: &first,
		Ranges:     []string{"198.18.1.0/24", "198.18.2.0/24", "2001:db8:1::/48"},
		SpfLookups: ptrTo(3),
	}, created.CreateSenderService)

	// Enabled: the edge answers every include's ranges.
	r = env.Do(t, o.Token, `mutation($s: ID!) { enableSender(domain: "`+d+`", service: $s) { spfLookups spfLookupsKnown } }`, vars)
	r.NoErrors(t)
	// The current form: its include and redirect (2), the HELO step (1)
	// and the service it hands over to, both includes (3).
	require.Contains(t, r.Raw, `{"spfLookups":6,"spfLookupsKnown":true}`)
	ipName := func(ip string) string { return ip + "._ip." + d + "._spf." + apitest.EdgeZone }
	ip6Name := spfanswer.MacroIP(netip.MustParseAddr("2001:db8:1::1")) + "._ip." + d + "._spf." + apitest.EdgeZone
	waitTXT(t, addr, ipName("198.18.1.9"), dns.RcodeSuccess, "v=spf1 ip4:198.18.1.9 -all")
	waitTXT(t, addr, ipName("198.18.2.9"), dns.RcodeSuccess, "v=spf1 ip4:198.18.2.9 -all")
	waitTXT(t, addr, ip6Name, dns.RcodeSuccess, "v=spf1 ip6:2001:db8:1::1 -all")

	// The SPF record published for the domain hands a HELO of the
	// service over to both includes: the edge's answer at the HELO step,
	// and explainSpf, which says what the edge answers, agree.
	handover := "v=spf1 include:_spf.multi-one.example.net include:spf.multi-two.example.net -all"
	waitTXT(t, addr, d+"._rspf."+apitest.EdgeZone, dns.RcodeSuccess, "v=spf1 include:%{h4}._ehlo."+d+"._spf."+apitest.EdgeZone+" ~all")
	waitTXT(t, addr, "out.multi.example.net._ehlo."+d+"._spf."+apitest.EdgeZone, dns.RcodeSuccess, handover)
	r = env.Do(t, o.Token, `{ explainSpf(domain: "`+d+`", ip: "192.0.2.200", helo: "mta7.out.multi.example.net") { result kind record service { slug } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"result":"SENDER","kind":"INCLUDE","record":"`+handover+`","service":{"slug":"`+slug+`"}}`)

	// One include fails: the last good ranges and cost are kept (not even
	// the other include's new range is taken), and the error names the
	// include that failed, not the one that resolved.
	env.DNS.Delete("spf.multi-two.example.net")
	env.DNS.Set("_spf.multi-one.example.net", "v=spf1 ip4:198.18.1.0/24 ip4:198.18.9.0/24 include:_v6.multi-one.example.net ~all")
	liftRefreshLimit(t, env)
	r = env.Do(t, o.Token, `mutation($s: ID!) { refreshSenderRanges(service: $s) `+fields+` }`, vars)
	r.NoErrors(t)
	var failed struct{ RefreshSenderRanges []service }
	r.Decode(t, &failed)
	require.Len(t, failed.RefreshSenderRanges, 1)
	got := failed.RefreshSenderRanges[0]
	require.Equal(t, created.CreateSenderService.Ranges, got.Ranges)
	require.Equal(t, ptrTo(3), got.SpfLookups)
	require.NotNil(t, got.ResolveError)
	require.Contains(t, *got.ResolveError, "include spf.multi-two.example.net")
	require.NotContains(t, *got.ResolveError, "_spf.multi-one.example.net")
	waitTXT(t, addr, ipName("198.18.2.9"), dns.RcodeSuccess, "v=spf1 ip4:198.18.2.9 -all")
	_, answer := queryTXT(t, addr, ipName("198.18.9.1"))
	require.NotContains(t, answer, "ip4:", "a half-resolved service takes no new range")

	// Back: both resolve, and the union takes the new range.
	env.DNS.Set("spf.multi-two.example.net", "v=spf1 ip4:198.18.2.0/24 ~all")
	liftRefreshLimit(t, env)
	r = env.Do(t, o.Token, `mutation($s: ID!) { refreshSenderRanges(service: $s) `+fields+` }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"ranges":["198.18.1.0/24","198.18.2.0/24","198.18.9.0/24","2001:db8:1::/48"],"spfLookups":3,"resolveError":null`)
	waitTXT(t, addr, ipName("198.18.9.1"), dns.RcodeSuccess, "v=spf1 ip4:198.18.9.1 -all")

	// A service whose includes never resolved is unknown, and counts one
	// term per include, never fewer: enabling it is refused, naming them;
	// enabled regardless (as a row written before the rule), the domain's
	// cost is 2 + 1 + 3 and marked unknown.
	r = env.Do(t, o.Token, `mutation { createSenderService(slug: "cold", input: {name: "Cold", heloSuffixes: ["out.cold.example.net"],
		spfIncludes: ["_spf.cold-a.example.net", "_spf.cold-b.example.net", "_spf.cold-c.example.net"]}) `+fields+` }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"spfLookups":null`)
	coldSlug := "cold." + hex.EncodeToString(o.AccountID[:])
	r = env.Do(t, o.Token, `mutation($s: ID!) { enableSender(domain: "`+cold+`", service: $s) { name } }`, map[string]any{"s": coldSlug})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Errors[0].Message, "includes _spf.cold-a.example.net, _spf.cold-b.example.net, _spf.cold-c.example.net")
	_, err := env.Pool.Exec(ctx, `INSERT INTO domain_senders (domain_id, service) SELECT id, $2 FROM domains WHERE name = $1`, cold, coldSlug)
	require.NoError(t, err)
	r = env.Do(t, o.Token, `{ domain(name: "`+cold+`") { spfLookups spfLookupsKnown } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"spfLookups":6,"spfLookupsKnown":false}`)

	// The deprecated alias: given alone, it sets the one include; given
	// with spfIncludes, it is refused, naming it; its errors name it.
	r = env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {spfInclude: "_spf.multi-one.example.net", spfIncludes: []}) { slug } }`, vars)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "spfInclude", r.Errors[0].Extensions["field"])
	r = env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {spfInclude: "not a host"}) { slug } }`, vars)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "spfInclude", r.Errors[0].Extensions["field"])
	r = env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {spfInclude: "spf.multi-two.example.net"}) `+fields+` }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"spfIncludes":["spf.multi-two.example.net"],"spfInclude":"spf.multi-two.example.net","ranges":["198.18.2.0/24"],"spfLookups":1`)
	waitTXT(t, addr, "out.multi.example.net._ehlo."+d+"._spf."+apitest.EdgeZone, dns.RcodeSuccess, "v=spf1 include:spf.multi-two.example.net -all")
	r = env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {spfIncludes: []}) { spfIncludes spfInclude spfLookups } }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"spfIncludes":[],"spfInclude":null,"spfLookups":0}`)
}
