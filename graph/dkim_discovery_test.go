package graph_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
)

// sig is one DKIM signature of a report record: d=, s= and the result.
type sig struct{ d, s, result string }

// dkimRecord is a report record from one source with its signatures.
type dkimRecord struct {
	ip    string
	count int
	sigs  []sig
}

// dkimReportXML is an aggregate report for domain over the UTC day of
// begin, with the given records.
func dkimReportXML(domain, id string, begin time.Time, records ...dkimRecord) string {
	var b strings.Builder
	day := time.Date(begin.Year(), begin.Month(), begin.Day(), 0, 0, 0, 0, time.UTC)
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>receiver.example</org_name><email>dmarc@receiver.example</email><report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>%s</domain><p>none</p></policy_published>`, id, day.Unix(), day.Unix()+86399, domain)
	for _, r := range records {
		fmt.Fprintf(&b, `
  <record><row><source_ip>%s</source_ip><count>%d</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers><auth_results>`, r.ip, r.count, domain)
		for _, s := range r.sigs {
			fmt.Fprintf(&b, `<dkim><domain>%s</domain><selector>%s</selector><result>%s</result></dkim>`, s.d, s.s, s.result)
		}
		fmt.Fprintf(&b, `<spf><domain>%s</domain><result>fail</result></spf></auth_results></record>`, domain)
	}
	b.WriteString("\n</feedback>")
	return b.String()
}

type discovered struct {
	Selector        string
	Messages        int64
	PassingMessages int64
	FirstSeen       string
	LastSeen        string
	DkimDomains     []string
	Hosted          bool
	Resolution      *struct {
		Status      string
		CnameTarget *string
		Detail      string
	}
}

// TestDKIMDiscovery: the selectors seen in a domain's reports (d= the
// domain or a subdomain) without a key in Rampart are listed with their
// volume and days; the key one publishes in the domain's own DNS (a real
// zone on loopback, through RAMPART_DNS_RESOLVER) is imported in one call,
// from a TXT record or a CNAME, and refused with a clear error when missing,
// malformed, revoked, already hosted or answered by the edge; dnsSetup
// warns about the selectors a _domainkey delegation would break until they
// are imported.
func TestDKIMDiscovery(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	o := env.NewOwner(t, "Discovery")
	const d = "discover-example.com"
	env.AddVerifiedDomain(t, o, d)
	now := time.Now().UTC()
	day := func(ago int) string { return now.AddDate(0, 0, -ago).Format(time.DateOnly) }

	uploadFiles(t, env, o.Token, map[string][]byte{
		"recent.xml": []byte(dkimReportXML(d, "disc-1", now.AddDate(0, 0, -1),
			dkimRecord{"192.0.2.1", 100, []sig{{d, "s2024", "pass"}}},
			dkimRecord{"192.0.2.2", 40, []sig{{d, "S2024", "fail"}, {d, "vendor1", "pass"}}},
			dkimRecord{"192.0.2.3", 7, []sig{{"mail." + d, "sub", "pass"}}},
			dkimRecord{"192.0.2.4", 5, []sig{{"other-example.com", "foreign", "pass"}, {"x" + d, "lookalike", "pass"}}},
			dkimRecord{"192.0.2.5", 3, []sig{{d, "gone", "fail"}}},
			dkimRecord{"192.0.2.6", 2, []sig{{d, "bad", "permerror"}}},
			dkimRecord{"192.0.2.7", 1, []sig{{d, "revoked", "fail"}}},
			dkimRecord{"192.0.2.8", 1, []sig{{"mail." + d, "no_such..label", "fail"}}},
		)),
		"earlier.xml": []byte(dkimReportXML(d, "disc-2", now.AddDate(0, 0, -3),
			dkimRecord{"192.0.2.1", 10, []sig{{d, "s2024", "pass"}}})),
		"old.xml": []byte(dkimReportXML(d, "disc-3", now.AddDate(0, 0, -40),
			dkimRecord{"192.0.2.1", 9, []sig{{d, "old", "pass"}}})),
	})
	pollUntil(t, env, o.Token, `{ domain(name: "`+d+`") { reports { totalCount } } }`,
		func(r *apitest.Response) bool { return r.Raw == `{"data":{"domain":{"reports":{"totalCount":3}}}}` })

	const fields = `selector messages passingMessages firstSeen lastSeen dkimDomains hosted`
	list := func(args string) []discovered {
		t.Helper()
		r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { discoveredSelectors`+args+` { `+fields+` } } }`, nil)
		r.NoErrors(t)
		var out struct {
			Domain struct{ DiscoveredSelectors []discovered }
		}
		r.Decode(t, &out)
		return out.Domain.DiscoveredSelectors
	}
	got := list("")
	require.Equal(t, []discovered{
		{Selector: "s2024", Messages: 150, PassingMessages: 110, FirstSeen: day(3), LastSeen: day(1), DkimDomains: []string{d}},
		{Selector: "vendor1", Messages: 40, PassingMessages: 40, FirstSeen: day(1), LastSeen: day(1), DkimDomains: []string{d}},
		{Selector: "sub", Messages: 7, PassingMessages: 7, FirstSeen: day(1), LastSeen: day(1), DkimDomains: []string{"mail." + d}},
		{Selector: "gone", Messages: 3, FirstSeen: day(1), LastSeen: day(1), DkimDomains: []string{d}},
		{Selector: "bad", Messages: 2, FirstSeen: day(1), LastSeen: day(1), DkimDomains: []string{d}},
		{Selector: "no_such..label", Messages: 1, FirstSeen: day(1), LastSeen: day(1), DkimDomains: []string{"mail." + d}},
		{Selector: "revoked", Messages: 1, FirstSeen: day(1), LastSeen: day(1), DkimDomains: []string{d}},
	}, got, "unaligned d= domains (another domain, a look-alike suffix) are not the domain's")
	require.Equal(t, discovered{Selector: "old", Messages: 9, PassingMessages: 9, FirstSeen: day(40), LastSeen: day(40), DkimDomains: []string{d}},
		list("(days: 60)")[2], "a longer range reaches the older report")
	require.Len(t, list("(days: 60, first: 2)"), 2)
	env.Do(t, o.Token, `{ domain(name: "`+d+`") { discoveredSelectors(days: 0) { selector } } }`, nil).RequireCode(t, "BAD_USER_INPUT")
	env.Do(t, o.Token, `{ domain(name: "`+d+`") { discoveredSelectors(first: 201) { selector } } }`, nil).RequireCode(t, "BAD_USER_INPUT")

	// The domain's own DNS: s2024 a TXT key (1024 bits: the same warning
	// as addDkimKey), vendor1 a CNAME to the vendor's key, bad not a key,
	// revoked p= empty, gone nothing at all.
	k1024, _ := rsaKey(t, 1024)
	k2048, _ := rsaKey(t, 2048)
	s2024Record := "v=DKIM1; k=rsa; t=s; p=" + k1024
	env.DNS.Set("s2024._domainkey."+d, "some-other-verification=1", s2024Record)
	env.DNS.SetCNAME("vendor1._domainkey."+d, "vendor1.dkim.mailvendor.example")
	env.DNS.Set("vendor1.dkim.mailvendor.example", "v=DKIM1; k=rsa; p="+k2048)
	env.DNS.Set("bad._domainkey."+d, "v=spf1 -all")
	env.DNS.Set("revoked._domainkey."+d, "v=DKIM1; k=rsa; p=")

	// The resolution of each, looked up only when asked for.
	r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { discoveredSelectors { selector resolution { status cnameTarget detail } } } }`, nil)
	r.NoErrors(t)
	var res struct {
		Domain struct{ DiscoveredSelectors []discovered }
	}
	r.Decode(t, &res)
	status := map[string]string{}
	for _, s := range res.Domain.DiscoveredSelectors {
		status[s.Selector] = s.Resolution.Status
		if s.Selector == "vendor1" {
			require.Equal(t, "vendor1.dkim.mailvendor.example", *s.Resolution.CnameTarget)
		} else {
			require.Nil(t, s.Resolution.CnameTarget)
		}
	}
	require.Equal(t, map[string]string{
		"s2024": "RESOLVES", "vendor1": "RESOLVES", "sub": "MISSING", "gone": "MISSING", "bad": "INVALID", "revoked": "REVOKED",
		"no_such..label": "INVALID",
	}, status, "a selector that is no DNS name is INVALID, not an error")

	// dnsSetup, with _domainkey not delegated (not looked at yet, then
	// seen not delegated): a warning per selector seen signing as the
	// domain itself (not the subdomain's), the most messages first.
	warnings := func() []string {
		t.Helper()
		r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { dnsSetup { dkim { warnings } dmarc { warnings } published { actions } } } }`, nil)
		r.NoErrors(t)
		var out struct {
			Domain struct {
				DNSSetup struct {
					DKIM, DMARC struct{ Warnings []string }
					Published   struct{ Actions []string }
				}
			}
		}
		r.Decode(t, &out)
		require.Empty(t, out.Domain.DNSSetup.DMARC.Warnings)
		return out.Domain.DNSSetup.DKIM.Warnings
	}
	w := warnings()
	require.Len(t, w, 5)
	require.Equal(t, "Selector s2024 signed 150 message(s) as "+d+" in the last 30 days and has no key in Rampart: delegating _domainkey."+d+
		" to the edge would make s2024._domainkey."+d+" unresolvable and fail DKIM for that mail. Import its key first (importDkimKey), or add it.", w[0])
	for i, sel := range []string{"s2024", "vendor1", "gone", "bad", "revoked"} {
		require.Contains(t, w[i], "Selector "+sel+" ")
	}

	// Import: a TXT key, hosted with its tags and addDkimKey's warning.
	imp := func(sel string) *apitest.Response {
		return env.Do(t, o.Token, `mutation($d: String!, $s: String!) { importDkimKey(domain: $d, selector: $s) {
			key { selector kind keyType bits cnameTarget } warnings domain { dkimKeys { selector } } } }`, map[string]any{"d": d, "s": sel})
	}
	r = imp("S2024")
	r.NoErrors(t)
	var out struct {
		ImportDkimKey struct {
			Key struct {
				Selector, Kind string
				KeyType        *string
				Bits           *int
				CnameTarget    *string
			}
			Warnings []string
		}
	}
	r.Decode(t, &out)
	require.Equal(t, "s2024", out.ImportDkimKey.Key.Selector)
	require.Equal(t, "HOSTED", out.ImportDkimKey.Key.Kind)
	require.Equal(t, "rsa", *out.ImportDkimKey.Key.KeyType)
	require.Equal(t, 1024, *out.ImportDkimKey.Key.Bits)
	require.Len(t, out.ImportDkimKey.Warnings, 1)
	require.Contains(t, out.ImportDkimKey.Warnings[0], "1024")
	served := edgeDKIM(t, env, d)
	require.Len(t, served, 1)
	require.Contains(t, fmt.Sprint(served[0]), "t=s", "the record's tags are kept")
	require.Contains(t, fmt.Sprint(served[0]), k1024)

	// A CNAME: a CNAME key to the vendor's record.
	r = imp("vendor1")
	r.NoErrors(t)
	r.Decode(t, &out)
	require.Equal(t, "CNAME", out.ImportDkimKey.Key.Kind)
	require.Equal(t, "vendor1.dkim.mailvendor.example", *out.ImportDkimKey.Key.CnameTarget)
	require.Empty(t, out.ImportDkimKey.Warnings)

	// Refusals, each saying why.
	requireRefused := func(sel, code, msg string) {
		t.Helper()
		r := imp(sel)
		r.RequireCode(t, code)
		require.Contains(t, r.Raw, msg)
	}
	requireRefused("gone", "NOT_FOUND", "no TXT record at gone._domainkey."+d)
	requireRefused("bad", "BAD_USER_INPUT", "not DKIM key records")
	requireRefused("revoked", "BAD_USER_INPUT", "revoked")
	requireRefused("s2024", "CONFLICT", "already has a key")
	requireRefused("not a selector!", "BAD_USER_INPUT", "selector")
	env.DNS.Set("bad._domainkey."+d, "v=DKIM1; k=rsa; p=bm90IGEga2V5")
	requireRefused("bad", "BAD_USER_INPUT", "not a valid DKIM key")
	env.DNS.SetCNAME("gone._domainkey."+d, "gone.dkim.mailvendor.example")
	requireRefused("gone", "NOT_FOUND", "via CNAME gone.dkim.mailvendor.example")
	env.DNS.Delete("gone._domainkey." + d)

	// Imported selectors are no longer discovered, nor warned about; the
	// hosted ones are listed on request.
	sels := func(ds []discovered) []string {
		var out []string
		for _, x := range ds {
			out = append(out, x.Selector)
		}
		return out
	}
	require.Equal(t, []string{"sub", "gone", "bad", "no_such..label", "revoked"}, sels(list("")))
	all := list("(includeHosted: true)")
	require.Equal(t, []string{"s2024", "vendor1", "sub", "gone", "bad", "no_such..label", "revoked"}, sels(all))
	require.True(t, all[0].Hosted)
	require.False(t, all[2].Hosted)
	w = warnings()
	require.Len(t, w, 3)
	require.Contains(t, w[0], "Selector gone ")

	// Once _domainkey is seen delegated to the edge: no warning, and an
	// import is refused (the answer would be the edge's).
	env.DNS.SetNS("_domainkey."+d, "ns1.edge.rampart.test", "ns2.edge.rampart.test")
	checkDNS(t, env, o.Token, d)
	require.Empty(t, warnings())
	env.DNS.Set("revoked._domainkey."+d, "v=DKIM1; k=rsa; p="+k2048)
	requireRefused("revoked", "CONFLICT", "delegated to Rampart's edge")

	// Seen not delegated again: the remaining selectors are warned about,
	// and the delegate action (a key is hosted) says to import them first.
	env.DNS.Delete("_domainkey." + d)
	env.DNS.SetNS("_domainkey."+d, "ns.other-dns.example")
	s := checkDNS(t, env, o.Token, d)
	require.Contains(t, joined(s.Published.Actions), "First import the keys of the selectors")
	require.Len(t, warnings(), 3)
	r = imp("revoked")
	r.NoErrors(t)
	require.Len(t, warnings(), 2)

	// A CNAME into the edge zone is no key of the domain's own.
	env.DNS.SetCNAME("bad._domainkey."+d, "bad._domainkey."+d+".edge.rampart.test")
	requireRefused("bad", "CONFLICT", "Rampart's edge")

	// A stranger learns nothing, and imports nothing.
	other := env.NewOwner(t, "Stranger")
	env.Do(t, other.Token, `{ domain(name: "`+d+`") { discoveredSelectors { selector } } }`, nil).RequireCode(t, "NOT_FOUND")
	r = env.Do(t, other.Token, `mutation { importDkimKey(domain: "`+d+`", selector: "gone") { key { selector } } }`, nil)
	r.RequireCode(t, "NOT_FOUND")
	require.NotContains(t, r.Raw, "gone._domainkey")
}

// TestDKIMDiscoveryNoAnswer: without DNS checks, or when the resolver does
// not answer, the resolution is UNKNOWN and an import is refused with
// CONFLICT saying why.
func TestDKIMDiscoveryNoAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, resolver, refusal string }{
		{"off", "off", "addDkimKey"},
		{"blackhole", blackhole(t), "timed out; try again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1; c.DNSResolver = tc.resolver })
			o := env.NewOwner(t, "NoAnswer")
			const d = "noanswer-example.com"
			env.Do(t, o.Token, `mutation { addDomain(name: "`+d+`") { name } }`, nil).NoErrors(t)
			_, err := env.Services(t).Domains.VerifyAsOperator(context.Background(), d, &o.AccountID)
			require.NoError(t, err)
			uploadFiles(t, env, o.Token, map[string][]byte{"r.xml": []byte(dkimReportXML(d, "na-1", time.Now().UTC(),
				dkimRecord{"192.0.2.1", 12, []sig{{d, "k1", "pass"}}}))})
			pollUntil(t, env, o.Token, `{ domain(name: "`+d+`") { reports { totalCount } } }`,
				func(r *apitest.Response) bool { return strings.Contains(r.Raw, `"totalCount":1`) })
			r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { discoveredSelectors { selector messages resolution { status } } } }`, nil)
			r.NoErrors(t)
			require.JSONEq(t, `{"domain": {"discoveredSelectors": [{"selector": "k1", "messages": 12, "resolution": {"status": "UNKNOWN"}}]}}`, string(r.Data))
			r = env.Do(t, o.Token, `mutation { importDkimKey(domain: "`+d+`", selector: "k1") { key { selector } } }`, nil)
			r.RequireCode(t, "CONFLICT")
			require.Contains(t, r.Raw, tc.refusal)
		})
	}
}
