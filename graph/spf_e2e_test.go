package graph_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/spf"
)

// splitResolver sends names in the edge zone to the edge and everything else
// to the fixture zone standing for the rest of the DNS.
type splitResolver struct{ edge, world *spf.DNSResolver }

func (s splitResolver) pick(name string) *spf.DNSResolver {
	if dns.IsSubDomain(apitest.EdgeZone+".", dns.Fqdn(strings.ToLower(name))) {
		return s.edge
	}
	return s.world
}

func (s splitResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return s.pick(name).LookupTXT(ctx, name)
}

func (s splitResolver) LookupIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	return s.pick(name).LookupIP(ctx, network, name)
}

func (s splitResolver) LookupMX(ctx context.Context, name string) ([]string, error) {
	return s.pick(name).LookupMX(ctx, name)
}

func (s splitResolver) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	return s.world.LookupPTR(ctx, addr)
}

// TestPublishedSPFAgainstEdge evaluates the SPF record a customer publishes,
// exactly as dnsSetup gives it, with the project's RFC 7208 evaluator
// against a running dnsedge on loopback: the per-query macro includes, the
// redirect target and the vendors' own records all come from real DNS
// answers.
func TestPublishedSPFAgainstEdge(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	edge := env.StartEdge(t, "")
	world := vendorZone(t)
	o := env.NewOwner(t, "SPF e2e")
	const d = "spf-e2e-example.com"
	env.AddVerifiedDomain(t, o, d)
	_, err := env.Services(t).Senders.ResolveRanges(context.Background(), spf.NewDNSResolver(world.Addr))
	require.NoError(t, err)
	for _, m := range []string{
		`addNetblock(domain: "` + d + `", cidr: "192.0.2.0/24")`,
		`addNetblock(domain: "` + d + `", cidr: "2001:db8:10::/48")`,
		`enableSender(domain: "` + d + `", service: "google-workspace")`,
		`enableSender(domain: "` + d + `", service: "sendgrid")`,
	} {
		env.Do(t, o.Token, `mutation { `+m+` { name } }`, nil).NoErrors(t)
	}
	r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { dnsSetup { spf { value } } } }`, nil)
	r.NoErrors(t)
	var setup struct {
		Domain struct {
			DnsSetup struct{ Spf struct{ Value string } }
		}
	}
	r.Decode(t, &setup)
	world.Set(d, setup.Domain.DnsSetup.Spf.Value)
	world.Set("spf.pinned-vendor.example", "v=spf1 ip4:203.0.113.0/24 -all")

	checker := &spf.Checker{Resolver: splitResolver{edge: spf.NewDNSResolver(edge.UDPAddr().String()), world: spf.NewDNSResolver(world.Addr)}}
	long := strings.Repeat("h", 63) + "." + strings.Repeat("e", 63) + "." + strings.Repeat("l", 63) + ".example"
	cases := []struct {
		ip, helo string
		want     spf.Result
	}{
		{"192.0.2.10", "mta1.mailer.example", spf.Pass},             // netblock, IPv4
		{"2001:db8:10::25", "mta1.mailer.example", spf.Pass},        // netblock, IPv6
		{"64.233.170.27", "mail-yw1-f170.google.com", spf.Pass},     // enabled sender's range
		{"2001:4860:4000::1", "mail-ua1-x42a.google.com", spf.Pass}, // enabled sender's range, IPv6
		{"149.72.1.1", "o1.ptr.sendgrid.net", spf.Pass},             // sendgrid range
		{"198.51.100.9", "o1.ptr.sendgrid.net", spf.SoftFail},       // HELO only: sendgrid's own record decides (no match)
		{"198.51.100.9", "mx.stranger.example", spf.SoftFail},       // nobody
		{"2001:db8:99::1", "mx.stranger.example", spf.SoftFail},     // nobody, IPv6
		// Whatever the HELO, the domain's own addresses pass: the first
		// include holds no HELO.
		{"64.233.170.27", long, spf.Pass},
		{"192.0.2.10", long, spf.Pass},
		{"192.0.2.10", "", spf.Pass},
		{"192.0.2.10", "mta1.mailer.example.", spf.Pass},
		{"192.0.2.10", "mta1..mailer.example", spf.Pass},
		{"2001:db8:10::25", strings.Repeat("x", 64) + ".mailer.example", spf.Pass},
		{"149.72.1.1", "[192.0.2.10]", spf.Pass},
		// Others reach the HELO step, which names the HELO's rightmost
		// labels: a HELO that still makes no name there is a permerror
		// (this evaluator, as pyspf; see docs/interop.md), a long one or
		// one with an empty label further left matches nothing.
		{"198.51.100.9", "mta1.mailer.example.", spf.PermError},
		{"198.51.100.9", "mta1..mailer.example", spf.SoftFail},
		{"198.51.100.9", long, spf.SoftFail},
		{"203.0.113.5", "mx.pinned-vendor.example", spf.SoftFail}, // not pinned yet
	}
	run := func() {
		t.Helper()
		for _, tc := range cases {
			out := checker.CheckHost(context.Background(), netip.MustParseAddr(tc.ip), d, "someone@"+d, tc.helo)
			require.Equal(t, tc.want.String(), out.Result.String(), "%s %s: %v", tc.ip, tc.helo, out.Err)
		}
	}
	waitFor := func(ip, helo, want string) {
		t.Helper()
		name, _ := senderQuery(ip, helo, d)
		waitTXT(t, edge.UDPAddr().String(), name, dns.RcodeSuccess, want)
	}
	// The last change made (enabling sendgrid) is visible: so are the others.
	waitFor("149.72.1.1", "o1.ptr.sendgrid.net", "v=spf1 ip4:149.72.1.1 -all")
	run()

	// The edge answers what explainSpf says, for every case.
	for _, tc := range cases {
		r := env.Do(t, o.Token, `query($ip: String!, $h: String) { explainSpf(domain: "`+d+`", ip: $ip, helo: $h) { query record } }`, map[string]any{"ip": tc.ip, "h": tc.helo})
		r.NoErrors(t)
		var e struct {
			ExplainSpf struct{ Query, Record string }
		}
		r.Decode(t, &e)
		_, got := queryTXT(t, edge.UDPAddr().String(), e.ExplainSpf.Query)
		require.Equal(t, e.ExplainSpf.Record, got, "%s %s", tc.ip, tc.helo)
	}

	// A pinned include reaches receivers through the redirect target (and
	// the legacy form's _nspf).
	r = env.Do(t, o.Token, `mutation($x: Time!) { pinSpfInclude(domain: "`+d+`", include: "spf.pinned-vendor.example", expiresAt: $x) { name } }`,
		map[string]any{"x": farExpiry()})
	r.NoErrors(t)
	waitTXT(t, edge.UDPAddr().String(), d+"._nspf."+apitest.EdgeZone, dns.RcodeSuccess,
		"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8:10::/48 include:spf.pinned-vendor.example -all")
	waitTXT(t, edge.UDPAddr().String(), d+"._rspf."+apitest.EdgeZone, dns.RcodeSuccess,
		"v=spf1 include:spf.pinned-vendor.example include:%{h2}._ehlo."+d+"._spf."+apitest.EdgeZone+" ~all")
	cases[len(cases)-1].want = spf.Pass
	run()

	// Blocked, every address fails: the redirect target decides.
	env.Do(t, o.Token, `mutation { setDomainMode(name: "`+d+`", mode: BLOCKED) { name } }`, nil).NoErrors(t)
	waitTXT(t, edge.UDPAddr().String(), d+"._rspf."+apitest.EdgeZone, dns.RcodeSuccess, "v=spf1 -all")
	for _, tc := range cases {
		out := checker.CheckHost(context.Background(), netip.MustParseAddr(tc.ip), d, "someone@"+d, tc.helo)
		require.Equal(t, spf.Fail.String(), out.Result.String(), "blocked: %s %s: %v", tc.ip, tc.helo, out.Err)
	}
}

func senderQuery(ip, helo, domain string) (string, bool) {
	return senderQueryName(netip.MustParseAddr(ip), helo, domain)
}
