package graph_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/catalog"
)

const customFields = `{ slug name category custom accountId spfInclude spfLookups ranges staticRanges dkimDomains dkimSelectors heloSuffixes setupUrl }`

type customService struct {
	Slug, Name, Category, SpfInclude, SetupUrl       string
	Custom                                           bool
	AccountId                                        *string
	SpfLookups                                       *int
	Ranges, StaticRanges, DkimDomains, DkimSelectors []string
	HeloSuffixes                                     []string
}

// TestAccountSenderServices: an account adds, edits and removes its own
// sending service through GraphQL. Bad input is refused naming its field;
// another account neither sees, enables, edits nor removes it, a member
// without permission cannot change it; its include is resolved at
// creation; once a domain enables it the edge answers its ranges, and an
// edit reaches the edge; a service enabled on a domain is not removed; a
// catalog sync leaves it alone.
func TestAccountSenderServices(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	edge := env.StartEdge(t, filepath.Join(t.TempDir(), "snap"))
	addr := edge.UDPAddr().String()
	env.DNS.Set("_spf.acme-relay.example.net", "v=spf1 ip4:198.18.0.0/24 include:_v6.acme-relay.example.net ~all")
	env.DNS.Set("_v6.acme-relay.example.net", "v=spf1 ip6:2001:db8:ace::/48 ~all")
	o := env.NewOwner(t, "Acme")
	other := env.NewOwner(t, "Other")
	const d, otherDomain = "custom-senders.example.com", "other-senders.example.com"
	env.AddVerifiedDomain(t, o, d)
	env.AddVerifiedDomain(t, other, otherDomain)
	hexID := hex.EncodeToString(o.AccountID[:])
	slug := "acme-relay." + hexID

	create := func(token, label string, input map[string]any) *apitest.Response {
		return env.Do(t, token, `mutation($s: String!, $i: SenderServiceInput!) { createSenderService(slug: $s, input: $i) `+customFields+` }`,
			map[string]any{"s": label, "i": input})
	}

	// Bad input: each refusal names its field.
	for _, tc := range []struct {
		label string
		input map[string]any
		field string
	}{
		{"Bad Slug!", map[string]any{"name": "x", "ranges": []string{"192.0.2.0/24"}}, "slug"},
		{strings.Repeat("a", 41), map[string]any{"name": "x", "ranges": []string{"192.0.2.0/24"}}, "slug"},
		{"ok", map[string]any{"name": " ", "ranges": []string{"192.0.2.0/24"}}, "name"},
		{"ok", map[string]any{"name": strings.Repeat("n", 101), "ranges": []string{"192.0.2.0/24"}}, "name"},
		{"ok", map[string]any{"name": "x", "category": "Not a category", "ranges": []string{"192.0.2.0/24"}}, "category"},
		{"ok", map[string]any{"name": "x", "spfInclude": "not a host"}, "spfInclude"},
		{"ok", map[string]any{"name": "x", "spfInclude": "%{i}.spf.example.net"}, "spfInclude"},
		{"ok", map[string]any{"name": "x", "ranges": []string{"192.0.2.1/24"}}, "ranges"},
		{"ok", map[string]any{"name": "x", "ranges": []string{"10.0.0.0/7"}}, "ranges"},
		{"ok", map[string]any{"name": "x", "ranges": []string{"2001::/15"}}, "ranges"},
		{"ok", map[string]any{"name": "x", "ranges": []string{"nonsense"}}, "ranges"},
		{"ok", map[string]any{"name": "x", "ranges": make201Ranges()}, "ranges"},
		{"ok", map[string]any{"name": "x", "dkimDomains": []string{"co.uk"}}, "dkimDomains"},
		{"ok", map[string]any{"name": "x", "dkimDomains": []string{"bad_-.example..com"}}, "dkimDomains"},
		{"ok", map[string]any{"name": "x", "ranges": []string{"192.0.2.0/24"}, "dkimSelectors": []string{"s1._domainkey"}}, "dkimSelectors"},
		{"ok", map[string]any{"name": "x", "ranges": []string{"192.0.2.0/24"}, "dkimSelectors": []string{"-bad"}}, "dkimSelectors"},
		{"ok", map[string]any{"name": "x", "heloSuffixes": []string{".com"}}, "heloSuffixes"},
		{"ok", map[string]any{"name": "x", "heloSuffixes": []string{".github.io"}}, "heloSuffixes"},
		{"ok", map[string]any{"name": "x", "ranges": []string{"192.0.2.0/24"}, "setupUrl": "ftp://example.net/"}, "setupUrl"},
		{"ok", map[string]any{"name": "x", "dkimSelectors": []string{"s1"}}, "spfIncludes"}, // nothing to recognise it by
		{"ok", map[string]any{"name": "x", "spfIncludes": []string{"_spf.ok.example.net", "not a host"}}, "spfIncludes"},
		{"ok", map[string]any{"name": "x", "spfIncludes": []string{"_spf.ok.example.net"}, "spfInclude": "_spf.ok.example.net"}, "spfInclude"}, // both
	} {
		r := create(o.Token, tc.label, tc.input)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Equal(t, tc.field, r.Errors[0].Extensions["field"], "%v: %s", tc.input, r.Raw)
	}

	// Created: normalised, marked as the account's own, its include
	// resolved at once.
	r := create(o.Token, "Acme-Relay", map[string]any{
		"name": "  Acme relay ", "category": "Transactional", "spfInclude": "include:_spf.acme-relay.example.net.",
		"ranges":      []string{"203.0.113.0/28", "203.0.113.3/28", "192.0.2.77"},
		"dkimDomains": []string{"Acme-Mail.example.net."}, "dkimSelectors": []string{"acme1", "acme1"},
		"heloSuffixes": []string{"out.acme-relay.example.net"}, "setupUrl": "https://acme-relay.example.net/setup",
	})
	r.RequireCode(t, "BAD_USER_INPUT") // 203.0.113.3/28 has host bits
	require.Contains(t, r.Raw, "203.0.113.0/28")
	r = create(o.Token, "Acme-Relay", map[string]any{
		"name": "  Acme relay ", "category": "Transactional", "spfInclude": "include:_spf.acme-relay.example.net.",
		"ranges":      []string{"203.0.113.0/28", "192.0.2.77", "203.0.113.0/28"},
		"dkimDomains": []string{"Acme-Mail.example.net."}, "dkimSelectors": []string{"acme1", "acme1"},
		"heloSuffixes": []string{"out.acme-relay.example.net"}, "setupUrl": "https://acme-relay.example.net/setup",
	})
	r.NoErrors(t)
	var created struct{ CreateSenderService customService }
	r.Decode(t, &created)
	accountID := o.AccountID.String()
	require.Equal(t, customService{
		Slug: slug, Name: "Acme relay", Category: "transactional", SpfInclude: "_spf.acme-relay.example.net",
		SetupUrl: "https://acme-relay.example.net/setup", Custom: true, AccountId: &accountID, SpfLookups: ptrTo(2),
		Ranges:       []string{"192.0.2.77/32", "203.0.113.0/28", "198.18.0.0/24", "2001:db8:ace::/48"},
		StaticRanges: []string{"192.0.2.77/32", "203.0.113.0/28"}, DkimDomains: []string{"acme-mail.example.net"},
		DkimSelectors: []string{"acme1"}, HeloSuffixes: []string{".out.acme-relay.example.net"},
	}, created.CreateSenderService)
	create(o.Token, "acme-relay", map[string]any{"name": "again", "ranges": []string{"192.0.2.0/24"}}).RequireCode(t, "CONFLICT")

	// Listed for the account, marked; not for the other account.
	r = env.Do(t, o.Token, `{ senderServices { slug custom } account { senderServices { slug custom } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `{"slug":"`+slug+`","custom":true}`)
	require.Equal(t, 2, strings.Count(r.Raw, slug))
	require.Contains(t, r.Raw, `{"slug":"sendgrid","custom":false}`)
	r = env.Do(t, other.Token, `{ senderServices { slug } account { senderServices { slug } } }`, nil)
	r.NoErrors(t)
	require.NotContains(t, r.Raw, "acme-relay")
	require.Contains(t, r.Raw, `"sendgrid"`)

	// Another account: a stranger's service is not found, whatever it does.
	vars := map[string]any{"s": slug, "a": accountID}
	env.Do(t, other.Token, `query($a: ID) { senderServices(accountId: $a) { slug } }`, vars).RequireCode(t, "NOT_FOUND")
	env.Do(t, other.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {name: "mine"}) { slug } }`, vars).RequireCode(t, "NOT_FOUND")
	env.Do(t, other.Token, `mutation($s: ID!) { deleteSenderService(service: $s) { slug } }`, vars).RequireCode(t, "NOT_FOUND")
	env.Do(t, other.Token, `mutation($s: ID!) { refreshSenderRanges(service: $s) { slug } }`, vars).RequireCode(t, "NOT_FOUND")
	env.Do(t, other.Token, `mutation($a: ID) { createSenderService(accountId: $a, slug: "x", input: {name: "x", ranges: ["192.0.2.0/24"]}) { slug } }`, vars).RequireCode(t, "NOT_FOUND")
	r = env.Do(t, other.Token, `mutation($s: ID!) { enableSender(domain: "`+otherDomain+`", service: $s) { name } }`, vars)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.NotContains(t, r.Raw, "Acme relay")
	// Nor can a DKIM key be tied to it.
	r = env.Do(t, other.Token, `mutation($s: ID) { addDkimKey(domain: "`+otherDomain+`", selector: "acme1", cnameTarget: "acme1.dkim.acme-relay.example.net", service: $s) { key { selector } } }`,
		map[string]any{"s": slug})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "service", r.Errors[0].Extensions["field"])
	// A member without permission sees the account but may not change it.
	_, member := newMember(t, env, o.AccountID)
	env.Do(t, member, `mutation($s: ID!) { updateSenderService(service: $s, input: {name: "mine"}) { slug } }`, vars).RequireCode(t, "FORBIDDEN")
	env.Do(t, member, `mutation($s: ID!) { deleteSenderService(service: $s) { slug } }`, vars).RequireCode(t, "FORBIDDEN")
	env.Do(t, member, `mutation($a: ID) { createSenderService(accountId: $a, slug: "x", input: {name: "x", ranges: ["192.0.2.0/24"]}) { slug } }`, vars).RequireCode(t, "FORBIDDEN")
	// A catalog service cannot be changed.
	r = env.Do(t, o.Token, `mutation { updateSenderService(service: "sendgrid", input: {name: "mine"}) { slug } }`, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "service", r.Errors[0].Extensions["field"])

	// Enabled on the account's domain, the edge answers its ranges: static
	// and resolved.
	r = env.Do(t, o.Token, `mutation($s: ID!) { enableSender(domain: "`+d+`", service: $s) { spfLookupsKnown senders { slug } } }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"spfLookupsKnown":true`)
	ipName := func(ip string) string { return ip + "._ip." + d + "._spf." + apitest.EdgeZone }
	waitTXT(t, addr, ipName("198.18.0.9"), dns.RcodeSuccess, "v=spf1 ip4:198.18.0.9 -all")
	waitTXT(t, addr, ipName("203.0.113.5"), dns.RcodeSuccess, "v=spf1 ip4:203.0.113.5 -all")
	_, noMatch := queryTXT(t, addr, ipName("203.0.113.70"))
	require.NotContains(t, noMatch, "ip4:")
	// Not on the other account's domain.
	_, otherAnswer := queryTXT(t, addr, "198.18.0.9._ip."+otherDomain+"._spf."+apitest.EdgeZone)
	require.NotContains(t, otherAnswer, "ip4:")

	// On demand, the owner refreshes it (once a minute): a range the
	// vendor adds reaches the edge.
	env.Do(t, o.Token, `mutation($s: ID!) { refreshSenderRanges(service: $s) { slug } }`, vars).RequireCode(t, "RATE_LIMITED")
	env.DNS.Set("_spf.acme-relay.example.net", "v=spf1 ip4:198.18.0.0/24 ip4:198.18.9.0/24 include:_v6.acme-relay.example.net ~all")
	liftRefreshLimit(t, env)
	r = env.Do(t, o.Token, `mutation($s: ID!) { refreshSenderRanges(service: $s) { slug ranges } }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"198.18.9.0/24"`)
	waitTXT(t, addr, ipName("198.18.9.1"), dns.RcodeSuccess, "v=spf1 ip4:198.18.9.1 -all")
	env.DNS.Set("_spf.acme-relay.example.net", "v=spf1 ip4:198.18.0.0/24 include:_v6.acme-relay.example.net ~all")
	liftRefreshLimit(t, env)
	env.Do(t, o.Token, `mutation($s: ID!) { refreshSenderRanges(service: $s) { slug } }`, vars).NoErrors(t)
	created.CreateSenderService.Ranges = []string{"192.0.2.77/32", "203.0.113.0/28", "198.18.0.0/24", "2001:db8:ace::/48"}

	// An include that does not resolve: its cost is unknown (null), and
	// enabling the service is refused while it is.
	r = create(o.Token, "later", map[string]any{"name": "Later", "spfInclude": "_spf.later.example.net"})
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"spfLookups":null`)
	r = env.Do(t, o.Token, `mutation($s: ID!) { enableSender(domain: "`+d+`", service: $s) { name } }`, map[string]any{"s": "later." + hexID})
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Raw, "cannot know the DNS lookup cost")
	env.Do(t, o.Token, `mutation($s: ID!) { deleteSenderService(service: $s) { slug } }`, map[string]any{"s": "later." + hexID}).NoErrors(t)

	// A catalog sync leaves it alone.
	cat, err := catalog.Load()
	require.NoError(t, err)
	require.NoError(t, env.Services(t).Senders.SyncCatalog(ctx, cat))
	// Not even a catalog entry of the same slug could take its place: the
	// database refuses a catalog slug of that form.
	shadow := catalog.Service{Slug: slug, Name: "Shadow", Category: "transactional", SPFIncludes: []string{"_spf.shadow.example.net"},
		SourceURL: "https://shadow.example.net/"}
	require.Error(t, env.Services(t).Senders.SyncCatalog(ctx, append(cat, shadow)))
	r = env.Do(t, o.Token, `{ account { senderServices `+customFields+` } }`, nil)
	r.NoErrors(t)
	var listed struct {
		Account struct{ SenderServices []customService }
	}
	r.Decode(t, &listed)
	var found bool
	for _, s := range listed.Account.SenderServices {
		if s.Slug == slug {
			found = true
			require.Equal(t, created.CreateSenderService, s)
		}
	}
	require.True(t, found)

	// Edited: a range moves, the edge follows; the lists left out stay.
	r = env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {ranges: ["203.0.113.64/28"], name: "Acme relay EU"}) `+customFields+` }`, vars)
	r.NoErrors(t)
	var updated struct{ UpdateSenderService customService }
	r.Decode(t, &updated)
	require.Equal(t, "Acme relay EU", updated.UpdateSenderService.Name)
	require.Equal(t, []string{"203.0.113.64/28"}, updated.UpdateSenderService.StaticRanges)
	require.Equal(t, []string{"acme-mail.example.net"}, updated.UpdateSenderService.DkimDomains)
	require.Equal(t, ptrTo(2), updated.UpdateSenderService.SpfLookups)
	waitTXT(t, addr, ipName("203.0.113.70"), dns.RcodeSuccess, "v=spf1 ip4:203.0.113.70 -all")
	require.Eventually(t, func() bool {
		_, got := queryTXT(t, addr, ipName("203.0.113.5"))
		return got == noMatch
	}, 2*time.Second, 5*time.Millisecond, "the dropped range no longer passes")
	// Bad input in an edit names its field too.
	r = env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {heloSuffixes: ["co.uk"]}) { slug } }`, vars)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "heloSuffixes", r.Errors[0].Extensions["field"])
	// An include that cannot be resolved would make the enabling domain's
	// cost unknown: refused, and nothing changed.
	r = env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {spfInclude: "_spf.nowhere.example.net"}) { slug } }`, vars)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Contains(t, r.Raw, d)
	var includes []string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT spf_includes FROM sender_services WHERE slug = $1`, slug).Scan(&includes))
	require.Equal(t, []string{"_spf.acme-relay.example.net"}, includes)

	// Removing it while a domain enables it is refused, naming the domain.
	r = env.Do(t, o.Token, `mutation($s: ID!) { deleteSenderService(service: $s) { slug } }`, vars)
	r.RequireCode(t, "CONFLICT")
	require.Contains(t, r.Errors[0].Message, d)
	require.Equal(t, []any{d}, r.Errors[0].Extensions["domains"])
	env.Do(t, o.Token, `mutation($s: ID!) { disableSender(domain: "`+d+`", service: $s) { name } }`, vars).NoErrors(t)
	r = env.Do(t, o.Token, `mutation($s: ID!) { deleteSenderService(service: $s) { slug name } }`, vars)
	r.NoErrors(t)
	require.Contains(t, r.Raw, "Acme relay EU")
	var deleted bool
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT deleted FROM edge_service WHERE name = $1`, slug).Scan(&deleted))
	require.True(t, deleted, "the edge forgets it")
	r = env.Do(t, o.Token, `{ senderServices { slug } }`, nil)
	r.NoErrors(t)
	require.NotContains(t, r.Raw, "acme-relay")
	env.Do(t, o.Token, `mutation($s: ID!) { deleteSenderService(service: $s) { slug } }`, vars).RequireCode(t, "NOT_FOUND")

	// At most 100 services per account.
	many := env.NewOwner(t, "Many")
	for i := range 100 {
		create(many.Token, fmt.Sprintf("relay-%d", i), map[string]any{"name": "relay", "ranges": []string{fmt.Sprintf("198.51.100.%d/32", i)}}).NoErrors(t)
	}
	r = create(many.Token, "relay-100", map[string]any{"name": "relay", "ranges": []string{"198.51.100.100/32"}})
	r.RequireCode(t, "CONFLICT")
	require.Contains(t, r.Errors[0].Message, "100")

	// Deleting an account deletes its services, enabled or not.
	gone := env.NewOwner(t, "Gone")
	env.AddVerifiedDomain(t, gone, "gone-senders.example.com")
	r = create(gone.Token, "relay", map[string]any{"name": "relay", "ranges": []string{"198.51.100.0/24"}})
	r.NoErrors(t)
	goneSlug := "relay." + hex.EncodeToString(gone.AccountID[:])
	env.Do(t, gone.Token, `mutation($s: ID!) { enableSender(domain: "gone-senders.example.com", service: $s) { name } }`, map[string]any{"s": goneSlug}).NoErrors(t)
	_, err = env.Pool.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, gone.AccountID)
	require.NoError(t, err)
	var left int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM sender_services WHERE slug = $1`, goneSlug).Scan(&left))
	require.Zero(t, left)
	// ...and its edge row is a tombstone: the edges drop it.
	var tombstone bool
	var ranges []string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT deleted, ranges::text[] FROM edge_service WHERE name = $1`, goneSlug).Scan(&tombstone, &ranges))
	require.True(t, tombstone, "a deleted account's service leaves the edge")
	require.Empty(t, ranges)
}

func make201Ranges() []string {
	out := make([]string, 201)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

// customClassifyXML is a report of three sources: one in the account
// service's range, one signing with its DKIM d= domain (not aligned), one
// that is neither.
func customClassifyXML(domain, id string) string {
	rec := func(ip, auth string) string {
		return `
  <record><row><source_ip>` + ip + `</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>` + domain + `</header_from></identifiers>
    <auth_results>` + auth + `</auth_results></record>`
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>receiver.example</org_name><email>dmarc@receiver.example</email><report_id>` + id + `</report_id>
    <date_range><begin>1764201600</begin><end>1764287999</end></date_range></report_metadata>
  <policy_published><domain>` + domain + `</domain><p>none</p></policy_published>` +
		rec("198.18.7.7", `<spf><domain>bounce.acme-relay.example.net</domain><result>pass</result></spf>`) +
		rec("198.51.100.44", `<dkim><domain>eu.acme-mail.example.net</domain><selector>acme1</selector><result>pass</result></dkim>`) +
		rec("203.0.113.99", `<spf><domain>spoof.example</domain><result>fail</result></spf>`) + `
</feedback>`
}

// TestClassifyByAccountService: an account's own service classifies the
// sources of that account's domains, by its range and by its DKIM d=
// domain, and of no other account's; an edit and a removal reclassify the
// account's history (and queue no other account's domains).
func TestClassifyByAccountService(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	ctx := context.Background()
	o := env.NewOwner(t, "Relay owner")
	other := env.NewOwner(t, "Relay stranger")
	const d, otherDomain = "relay-classify.example.com", "relay-stranger.example.com"
	env.AddVerifiedDomain(t, o, d)
	env.AddVerifiedDomain(t, other, otherDomain)
	uploadFiles(t, env, o.Token, map[string][]byte{"a.xml": []byte(customClassifyXML(d, "relay-1"))})
	uploadFiles(t, env, other.Token, map[string][]byte{"b.xml": []byte(customClassifyXML(otherDomain, "relay-2"))})
	for _, c := range []struct{ token, domain string }{{o.Token, d}, {other.Token, otherDomain}} {
		pollUntil(t, env, c.token, `{ domain(name: "`+c.domain+`") { reports { totalCount } } }`,
			func(r *apitest.Response) bool { return r.Raw == `{"data":{"domain":{"reports":{"totalCount":1}}}}` })
	}
	// Every source's reverse name is known (none): no day waits for them.
	_, err := env.Pool.Exec(ctx, `INSERT INTO ip_enrichment (ip, ptr, ptr_confirmed, looked_up_at, expires_at, last_seen)
		SELECT ip::inet, NULL, false, now(), now() + interval '1 day', current_date
		FROM unnest(ARRAY['198.18.7.7', '198.51.100.44', '203.0.113.99']) AS ip
		ON CONFLICT (ip) DO UPDATE SET ptr = NULL, ptr_confirmed = false, looked_up_at = now()`)
	require.NoError(t, err)

	classes := func(domain string) map[string][2]string {
		t.Helper()
		_, err := env.Pool.Exec(ctx, `UPDATE classify_days SET not_before = now()`)
		require.NoError(t, err)
		run, err := env.Services(t).Sources.Run(ctx, time.Time{})
		require.NoError(t, err)
		require.True(t, run.Done)
		rows, err := env.Pool.Query(ctx, `SELECT host(c.source_ip), c.class, c.service FROM source_classes c
			JOIN domains d ON d.id = c.domain_id WHERE d.name = $1`, domain)
		require.NoError(t, err)
		out := map[string][2]string{}
		for rows.Next() {
			var ip, class, service string
			require.NoError(t, rows.Scan(&ip, &class, &service))
			out[ip] = [2]string{class, service}
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := map[string][2]string{
		"198.18.7.7":    {"unidentified", ""},
		"198.51.100.44": {"forwarded", ""},
		"203.0.113.99":  {"unidentified", ""},
	}
	require.Equal(t, before, classes(d))
	require.Equal(t, before, classes(otherDomain))

	// queued: the domain was queued for classification since a change
	// made at since (or, the minutely job having run meanwhile, already
	// classified again).
	var since time.Time
	mark := func() {
		t.Helper()
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT now()`).Scan(&since))
	}
	queued := func(domain string) bool {
		t.Helper()
		var q bool
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM classify_domains c JOIN domains d ON d.id = c.domain_id
				WHERE d.name = $1 AND c.queued_at >= $2)
			OR EXISTS (SELECT 1 FROM classify_days c JOIN domains d ON d.id = c.domain_id WHERE d.name = $1 AND c.queued_at >= $2)
			OR EXISTS (SELECT 1 FROM source_classes c JOIN domains d ON d.id = c.domain_id WHERE d.name = $1 AND c.classified_at >= $2)`,
			domain, since).Scan(&q))
		return q
	}
	mark()
	r := env.Do(t, o.Token, `mutation { createSenderService(slug: "relay", input: {name: "Relay", ranges: ["198.18.0.0/16"], dkimDomains: ["acme-mail.example.net"]}) { slug } }`, nil)
	r.NoErrors(t)
	var c struct{ CreateSenderService struct{ Slug string } }
	r.Decode(t, &c)
	slug := c.CreateSenderService.Slug
	require.True(t, queued(d), "creating it queues the account's domains")
	require.False(t, queued(otherDomain), "and no other account's")
	require.Equal(t, map[string][2]string{
		"198.18.7.7":    {"service", slug},
		"198.51.100.44": {"service", slug},
		"203.0.113.99":  {"unidentified", ""},
	}, classes(d))
	// The other account's domain classified again (its netblocks changed):
	// another account's service never classifies it.
	env.Do(t, other.Token, `mutation { addNetblock(domain: "`+otherDomain+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
	require.True(t, queued(otherDomain))
	require.Equal(t, before, classes(otherDomain), "another account's service never classifies a domain")
	var evidence string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT evidence FROM source_classes WHERE source_ip = '198.51.100.44' AND service = $1`, slug).Scan(&evidence))
	require.Contains(t, evidence, "d=eu.acme-mail.example.net")

	// An edit: the range moves; the history is classified again.
	vars := map[string]any{"s": slug}
	mark()
	env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {ranges: ["203.0.113.96/28"]}) { slug } }`, vars).NoErrors(t)
	require.True(t, queued(d))
	require.False(t, queued(otherDomain))
	require.Equal(t, map[string][2]string{
		"198.18.7.7":    {"unidentified", ""},
		"198.51.100.44": {"service", slug},
		"203.0.113.99":  {"service", slug},
	}, classes(d))
	// A name alone changes no class: nothing is queued.
	mark()
	env.Do(t, o.Token, `mutation($s: ID!) { updateSenderService(service: $s, input: {name: "Relay EU"}) { slug } }`, vars).NoErrors(t)
	require.False(t, queued(d))

	// Removed: classified again without it.
	mark()
	env.Do(t, o.Token, `mutation($s: ID!) { deleteSenderService(service: $s) { slug } }`, vars).NoErrors(t)
	require.True(t, queued(d))
	require.False(t, queued(otherDomain))
	require.Equal(t, before, classes(d))
}
