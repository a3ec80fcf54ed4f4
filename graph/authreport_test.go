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
	"github.com/rampartmail/rampart/internal/spf"
)

// arRecord is one record of a report in the authentication report's test.
type arRecord struct {
	ip          string
	count       int64
	disposition string
	// spfEval and dkimEval are policy_evaluated's (aligned) outcomes.
	spfEval, dkimEval string
	spfDomain         string
	spfResult         string
	// dkim lists the auth_results signatures as d, s, result.
	dkim       [][3]string
	headerFrom string // "" for the domain
}

// arReport is a report of one reporter for one UTC day.
func arReport(domain, reporter, id string, day time.Time, recs ...arRecord) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>%s</org_name><email>dmarc@%s</email><report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>%s</domain><p>none</p></policy_published>`, reporter, reporter, id, day.Unix(), day.Unix()+86399, domain)
	for _, r := range recs {
		hf := r.headerFrom
		if hf == "" {
			hf = domain
		}
		fmt.Fprintf(&b, `
  <record><row><source_ip>%s</source_ip><count>%d</count>
    <policy_evaluated><disposition>%s</disposition><dkim>%s</dkim><spf>%s</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results>`, r.ip, r.count, r.disposition, r.dkimEval, r.spfEval, hf)
		for _, s := range r.dkim {
			fmt.Fprintf(&b, `<dkim><domain>%s</domain><selector>%s</selector><result>%s</result></dkim>`, s[0], s[1], s[2])
		}
		fmt.Fprintf(&b, `<spf><domain>%s</domain><result>%s</result></spf></auth_results></record>`, r.spfDomain, r.spfResult)
	}
	b.WriteString("\n</feedback>")
	return []byte(b.String())
}

// arStats is AuthStats as the API answers it.
type arStats struct {
	Messages, DmarcPass, SpfPass, SpfAligned, DkimPass, DkimAligned           int64
	DmarcPassRate, SpfPassRate, SpfAlignedRate, DkimPassRate, DkimAlignedRate float64
	Dispositions                                                              struct{ None, Quarantine, Reject int64 }
	Reporters                                                                 []string
}

// st is the expected stats: the counts, the rates they make, the
// dispositions and the reporters.
func st(messages, dmarc, spfPass, spfAligned, dkimPass, dkimAligned, none, quarantine, reject int64, reporters ...string) arStats {
	rate := func(n int64) float64 {
		if messages == 0 {
			return 0
		}
		return float64(n) / float64(messages)
	}
	s := arStats{Messages: messages, DmarcPass: dmarc, SpfPass: spfPass, SpfAligned: spfAligned, DkimPass: dkimPass, DkimAligned: dkimAligned,
		DmarcPassRate: rate(dmarc), SpfPassRate: rate(spfPass), SpfAlignedRate: rate(spfAligned), DkimPassRate: rate(dkimPass),
		DkimAlignedRate: rate(dkimAligned), Reporters: reporters}
	s.Dispositions.None, s.Dispositions.Quarantine, s.Dispositions.Reject = none, quarantine, reject
	if s.Reporters == nil {
		s.Reporters = []string{}
	}
	return s
}

const arStatsFields = `messages dmarcPass spfPass spfAligned dkimPass dkimAligned dmarcPassRate spfPassRate spfAlignedRate
	dkimPassRate dkimAlignedRate dispositions { none quarantine reject } reporters`

type arSender struct {
	Category        string
	Service         *string
	Name            string
	ServiceCategory string
	Sources         int64
	Stats           arStats
}

type arSource struct {
	IP           string
	Ptr          *string
	PtrConfirmed bool
	Asn          *int64
	AsOrg        *string
	Country      *string
	Stats        arStats
}

type arReportAnswer struct {
	From, To    string
	DomainCount int
	Totals      arStats
	Categories  []struct {
		Category string
		Stats    arStats
	}
	Senders struct {
		TotalCount int64
		PageInfo   struct {
			HasNextPage, HasPreviousPage bool
			EndCursor                    *string
		}
		Edges []struct{ Cursor string }
		Nodes []arSender
	}
	Daily []struct {
		Day   string
		Stats arStats
	}
	Unidentified []arSource
}

func strp(s string) *string { return &s }

// TestAuthReport: reports of two reporters over three days, from a
// netblock, Google Workspace's resolved range, SendGrid's DKIM d=, a
// forwarder and unidentified sources, are classified and read back as the
// authentication report: every number of the domain's report, of its
// MSP account's (with a customer's domain past 2^31 messages), and of the
// customer's; ranges, pages, filters, the drill-down, input errors and a
// stranger.
func TestAuthReport(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.Workers = 1 })
	ctx := context.Background()
	world := vendorZone(t)
	_, err := env.Services(t).Senders.ResolveRanges(ctx, spf.NewDNSResolver(world.Addr))
	require.NoError(t, err)

	msp := env.NewOwner(t, "Report MSP")
	const d, cd = "authreport-example.com", "authreport-customer.com"
	env.AddVerifiedDomain(t, msp, d)
	env.Do(t, msp.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
	// What is known of one unidentified address, before its reports
	// arrive (the enrichment does not look up a fresh row).
	_, err = env.Pool.Exec(ctx, `INSERT INTO ip_enrichment (ip, outcome, ptr, ptr_confirmed, asn, as_org, country, looked_up_at, expires_at, last_seen)
		VALUES ('203.0.113.9', 'found', 'host9.spoof.example', true, 64500, 'Spoof Networks', 'NL', now(), now() + interval '1 day', current_date)`)
	require.NoError(t, err)

	today := time.Now().UTC().Truncate(24 * time.Hour)
	d1, d2, d3 := today.AddDate(0, 0, -3), today.AddDate(0, 0, -2), today.AddDate(0, 0, -1)
	const g, rx = "google.com", "receiver.example"
	own := [][3]string{{d, "mykey", "pass"}}
	internal := func(n int64) arRecord {
		return arRecord{ip: "192.0.2.10", count: n, disposition: "none", spfEval: "pass", dkimEval: "pass", spfDomain: d, spfResult: "pass", dkim: own}
	}
	google := func(n int64) arRecord {
		return arRecord{ip: "64.233.160.5", count: n, disposition: "none", spfEval: "fail", dkimEval: "pass", spfDomain: d, spfResult: "softfail",
			dkim: [][3]string{{d, "google", "pass"}}}
	}
	spoof := func(n int64, disposition, headerFrom string) arRecord {
		return arRecord{ip: "203.0.113.9", count: n, disposition: disposition, spfEval: "fail", dkimEval: "fail", spfDomain: "spoof.example",
			spfResult: "fail", headerFrom: headerFrom}
	}
	forwarded := func(n int64, sigs ...[3]string) arRecord {
		return arRecord{ip: "198.51.100.5", count: n, disposition: "none", spfEval: "fail", dkimEval: "fail", spfDomain: "lists.example.org",
			spfResult: "pass", dkim: append(sigs, [3]string{"lists.example.org", "s1", "pass"})}
	}
	sendgrid := [][3]string{{"sendgrid.net", "s1", "pass"}}
	uploadFiles(t, env, msp.Token, map[string][]byte{
		"d1-google.xml": arReport(d, g, "ar-1", d1, internal(100), google(50),
			arRecord{ip: "198.18.0.7", count: 40, disposition: "none", spfEval: "fail", dkimEval: "fail", spfDomain: "bounces.sendgrid.net", spfResult: "pass", dkim: sendgrid},
			spoof(8, "quarantine", "")),
		"d1-receiver.xml": arReport(d, rx, "ar-2", d1, internal(20), forwarded(6, [3]string{d, "mykey", "fail"})),
		"d2-google.xml": arReport(d, g, "ar-3", d2, internal(90), google(60), spoof(4, "quarantine", ""),
			arRecord{ip: "203.0.113.10", count: 3, disposition: "quarantine", spfEval: "fail", dkimEval: "fail", spfDomain: "other.example", spfResult: "none"}),
		"d3-receiver.xml": arReport(d, rx, "ar-4", d3,
			arRecord{ip: "198.18.0.7", count: 10, disposition: "none", spfEval: "pass", dkimEval: "fail", spfDomain: d, spfResult: "pass", dkim: sendgrid},
			spoof(2, "none", "mail."+d), forwarded(4)),
	})
	// The MSP's customer (created once the MSP's upload, which names no
	// account, is done).
	cust := env.NewOwnerUnder(t, "Report Customer", &msp.AccountID)
	env.AddVerifiedDomain(t, cust, cd)
	uploadFiles(t, env, cust.Token, map[string][]byte{
		"big.xml": arReport(cd, g, "ar-big", d2,
			arRecord{ip: "64.233.160.9", count: 3_000_000_000, disposition: "none", spfEval: "fail", dkimEval: "pass", spfDomain: cd, spfResult: "softfail",
				dkim: [][3]string{{cd, "google", "pass"}}},
			arRecord{ip: "203.0.113.50", count: 5, disposition: "quarantine", spfEval: "fail", dkimEval: "fail", spfDomain: "spoof.example", spfResult: "fail"}),
	})
	pollUntil(t, env, msp.Token, `{ domain(name: "`+d+`") { reports { totalCount } } }`,
		func(r *apitest.Response) bool { return r.Raw == `{"data":{"domain":{"reports":{"totalCount":4}}}}` })
	pollUntil(t, env, cust.Token, `{ domain(name: "`+cd+`") { reports { totalCount } } }`,
		func(r *apitest.Response) bool { return r.Raw == `{"data":{"domain":{"reports":{"totalCount":1}}}}` })
	classifyNow(t, env)

	from, to := d1.Format(time.DateOnly), d3.Format(time.DateOnly)
	report := `authReport(from: $from, to: $to) {
		from to domainCount
		totals { ` + arStatsFields + ` }
		categories { category stats { ` + arStatsFields + ` } }
		senders(first: 10) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor }
			nodes { category service name serviceCategory sources stats { ` + arStatsFields + ` } } }
		daily { day stats { ` + arStatsFields + ` } }
		unidentified { ip ptr ptrConfirmed asn asOrg country stats { ` + arStatsFields + ` } }
	}`
	vars := map[string]any{"from": from, "to": to}
	r := env.Do(t, msp.Token, `query($from: Date, $to: Date) { domain(name: "`+d+`") { `+report+` } }`, vars)
	r.NoErrors(t)
	var dr struct {
		Domain struct{ AuthReport arReportAnswer }
	}
	r.Decode(t, &dr)
	got := dr.Domain.AuthReport

	both := []string{g, rx}
	require.Equal(t, from, got.From)
	require.Equal(t, to, got.To)
	require.Equal(t, 1, got.DomainCount)
	require.Equal(t, st(397, 330, 270, 220, 380, 320, 382, 15, 0, both...), got.Totals)
	require.Len(t, got.Categories, 4)
	for i, want := range []struct {
		c string
		s arStats
	}{
		{"INTERNAL", st(210, 210, 210, 210, 210, 210, 210, 0, 0, both...)},
		{"SERVICE", st(160, 120, 50, 10, 160, 110, 160, 0, 0, both...)},
		{"FORWARDED", st(10, 0, 10, 0, 10, 0, 10, 0, 0, rx)},
		{"UNIDENTIFIED", st(17, 0, 0, 0, 0, 0, 2, 15, 0, both...)},
	} {
		require.Equal(t, want.c, got.Categories[i].Category)
		require.Equal(t, want.s, got.Categories[i].Stats, want.c)
	}
	require.Equal(t, []arSender{
		{Category: "INTERNAL", Name: "Internal", Sources: 1, Stats: st(210, 210, 210, 210, 210, 210, 210, 0, 0, both...)},
		{Category: "SERVICE", Service: strp("google-workspace"), Name: "Google Workspace", ServiceCategory: "workspace", Sources: 1,
			Stats: st(110, 110, 0, 0, 110, 110, 110, 0, 0, g)},
		{Category: "SERVICE", Service: strp("sendgrid"), Name: "Twilio SendGrid", ServiceCategory: "transactional", Sources: 1,
			Stats: st(50, 10, 50, 10, 50, 0, 50, 0, 0, both...)},
		{Category: "UNIDENTIFIED", Name: "Unidentified", Sources: 2, Stats: st(17, 0, 0, 0, 0, 0, 2, 15, 0, both...)},
		{Category: "FORWARDED", Name: "Forwarded", Sources: 1, Stats: st(10, 0, 10, 0, 10, 0, 10, 0, 0, rx)},
	}, got.Senders.Nodes)
	require.EqualValues(t, 5, got.Senders.TotalCount)
	require.False(t, got.Senders.PageInfo.HasNextPage)
	require.False(t, got.Senders.PageInfo.HasPreviousPage)
	require.Len(t, got.Daily, 3)
	for i, want := range []arStats{
		st(224, 170, 166, 120, 216, 170, 216, 8, 0, both...),
		st(157, 150, 90, 90, 150, 150, 150, 7, 0, g),
		st(16, 10, 14, 10, 14, 0, 16, 0, 0, rx),
	} {
		require.Equal(t, []string{from, d2.Format(time.DateOnly), to}[i], got.Daily[i].Day)
		require.Equal(t, want, got.Daily[i].Stats, "day %d", i)
	}
	require.Equal(t, []arSource{
		{IP: "203.0.113.9", Ptr: strp("host9.spoof.example"), PtrConfirmed: true, Asn: func() *int64 { n := int64(64500); return &n }(),
			AsOrg: strp("Spoof Networks"), Country: strp("NL"), Stats: st(14, 0, 0, 0, 0, 0, 2, 12, 0, both...)},
		{IP: "203.0.113.10", Stats: st(3, 0, 0, 0, 0, 0, 0, 3, 0, g)},
	}, got.Unidentified)

	// Pages, filters and orders of senders.
	page := func(args string) (names []string, total int64, next bool, end string) {
		t.Helper()
		r := env.Do(t, msp.Token, `query($from: Date, $to: Date) { domain(name: "`+d+`") { authReport(from: $from, to: $to) {
			senders(`+args+`) { totalCount pageInfo { hasNextPage endCursor } nodes { name } } } } }`, vars)
		r.NoErrors(t)
		var p struct {
			Domain struct {
				AuthReport struct {
					Senders struct {
						TotalCount int64
						PageInfo   struct {
							HasNextPage bool
							EndCursor   *string
						}
						Nodes []struct{ Name string }
					}
				}
			}
		}
		r.Decode(t, &p)
		s := p.Domain.AuthReport.Senders
		for _, n := range s.Nodes {
			names = append(names, n.Name)
		}
		if s.PageInfo.EndCursor != nil {
			end = *s.PageInfo.EndCursor
		}
		return names, s.TotalCount, s.PageInfo.HasNextPage, end
	}
	names, total, next, end := page(`first: 2`)
	require.Equal(t, []string{"Internal", "Google Workspace"}, names)
	require.True(t, next)
	require.EqualValues(t, 5, total)
	names, _, next, _ = page(`first: 2, after: "` + end + `"`)
	require.Equal(t, []string{"Twilio SendGrid", "Unidentified"}, names)
	require.True(t, next)
	names, total, _, _ = page(`category: SERVICE`)
	require.Equal(t, []string{"Google Workspace", "Twilio SendGrid"}, names)
	require.EqualValues(t, 2, total)
	names, _, _, _ = page(`sort: DMARC_PASS_RATE_ASC`)
	require.Equal(t, []string{"Forwarded", "Unidentified", "Twilio SendGrid", "Google Workspace", "Internal"}, names)
	names, _, _, _ = page(`sort: DMARC_PASS_RATE_DESC`)
	require.Equal(t, []string{"Google Workspace", "Internal", "Twilio SendGrid", "Forwarded", "Unidentified"}, names)
	names, _, _, _ = page(`sort: NAME_ASC`)
	require.Equal(t, []string{"Forwarded", "Google Workspace", "Internal", "Twilio SendGrid", "Unidentified"}, names)

	// The daily series of one category, and the preset ranges.
	r = env.Do(t, msp.Token, `query($from: Date, $to: Date) { domain(name: "`+d+`") { authReport(from: $from, to: $to) {
		daily(category: UNIDENTIFIED) { day stats { messages } } } } }`, vars)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"authReport": {"daily": [
		{"day": "`+from+`", "stats": {"messages": 8}}, {"day": "`+d2.Format(time.DateOnly)+`", "stats": {"messages": 7}},
		{"day": "`+to+`", "stats": {"messages": 2}}]}}}`, string(r.Data))
	r = env.Do(t, msp.Token, `{ domain(name: "`+d+`") { week: authReport(range: LAST_7_DAYS) { from to totals { messages } daily { day } }
		month: authReport { from to totals { messages } } } }`, nil)
	r.NoErrors(t)
	var ranges struct {
		Domain struct {
			Week struct {
				From, To string
				Totals   struct{ Messages int64 }
				Daily    []struct{ Day string }
			}
			Month struct {
				From, To string
				Totals   struct{ Messages int64 }
			}
		}
	}
	r.Decode(t, &ranges)
	require.Equal(t, today.AddDate(0, 0, -6).Format(time.DateOnly), ranges.Domain.Week.From)
	require.Equal(t, today.Format(time.DateOnly), ranges.Domain.Week.To)
	require.Len(t, ranges.Domain.Week.Daily, 7)
	require.EqualValues(t, 397, ranges.Domain.Week.Totals.Messages)
	require.Equal(t, today.AddDate(0, 0, -29).Format(time.DateOnly), ranges.Domain.Month.From)
	require.EqualValues(t, 397, ranges.Domain.Month.Totals.Messages)

	// The drill-down: an unidentified source with two From domains and
	// what is known of its address; a forwarder's DKIM signatures.
	r = env.Do(t, msp.Token, `query($from: Date, $to: Date) { domain(name: "`+d+`") { authReport(from: $from, to: $to) {
		spoof: source(ip: "203.0.113.9") { ip category service evidence ptr ptrConfirmed asn asOrg country
			stats { messages dmarcPass dispositions { none quarantine } reporters } headerFrom { headerFrom messages dmarcPass } dkim { domain } }
		fwd: source(ip: "198.51.100.5") { ip category service evidence stats { messages spfPass dkimPass dkimAligned reporters }
			headerFrom { headerFrom messages dmarcPass } dkim { domain selector result messages } }
		none: source(ip: "2001:db8::1") { ip } } } }`, vars)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"authReport": {
		"spoof": {"ip": "203.0.113.9", "category": "UNIDENTIFIED", "service": null,
			"evidence": "in no netblock or known range, with no known DKIM domain or host name",
			"ptr": "host9.spoof.example", "ptrConfirmed": true, "asn": 64500, "asOrg": "Spoof Networks", "country": "NL",
			"stats": {"messages": 14, "dmarcPass": 0, "dispositions": {"none": 2, "quarantine": 12}, "reporters": ["google.com", "receiver.example"]},
			"headerFrom": [{"headerFrom": "`+d+`", "messages": 12, "dmarcPass": 0}, {"headerFrom": "mail.`+d+`", "messages": 2, "dmarcPass": 0}],
			"dkim": []},
		"fwd": {"ip": "198.51.100.5", "category": "FORWARDED", "service": null,
			"evidence": "DKIM passes for lists.example.org, not aligned with `+d+`: mail passed through another party",
			"stats": {"messages": 10, "spfPass": 10, "dkimPass": 10, "dkimAligned": 0, "reporters": ["receiver.example"]},
			"headerFrom": [{"headerFrom": "`+d+`", "messages": 10, "dmarcPass": 0}],
			"dkim": [{"domain": "lists.example.org", "selector": "s1", "result": "pass", "messages": 10},
				{"domain": "`+d+`", "selector": "mykey", "result": "fail", "messages": 6}]},
		"none": null}}}`, string(r.Data))

	// The MSP's account report covers its domain and its customer's, whose
	// counts pass 2^31 and stay exact; the customer's covers its own.
	accountQuery := `query($id: ID, $from: Date, $to: Date) { account(id: $id) { ` + report + ` } }`
	r = env.Do(t, msp.Token, accountQuery, map[string]any{"id": msp.AccountID.String(), "from": from, "to": to})
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"messages":3000000402,`, "a JSON number, exact")
	var ar struct {
		Account struct{ AuthReport arReportAnswer }
	}
	r.Decode(t, &ar)
	acct := ar.Account.AuthReport
	require.Equal(t, 2, acct.DomainCount)
	require.Equal(t, st(3_000_000_402, 3_000_000_330, 270, 220, 3_000_000_380, 3_000_000_320, 3_000_000_382, 20, 0, both...), acct.Totals)
	require.Equal(t, st(3_000_000_160, 3_000_000_120, 50, 10, 3_000_000_160, 3_000_000_110, 3_000_000_160, 0, 0, both...), acct.Categories[1].Stats)
	require.Equal(t, st(22, 0, 0, 0, 0, 0, 2, 20, 0, both...), acct.Categories[3].Stats)
	require.Equal(t, []arSender{
		{Category: "SERVICE", Service: strp("google-workspace"), Name: "Google Workspace", ServiceCategory: "workspace", Sources: 2,
			Stats: st(3_000_000_110, 3_000_000_110, 0, 0, 3_000_000_110, 3_000_000_110, 3_000_000_110, 0, 0, g)},
		{Category: "INTERNAL", Name: "Internal", Sources: 1, Stats: st(210, 210, 210, 210, 210, 210, 210, 0, 0, both...)},
		{Category: "SERVICE", Service: strp("sendgrid"), Name: "Twilio SendGrid", ServiceCategory: "transactional", Sources: 1,
			Stats: st(50, 10, 50, 10, 50, 0, 50, 0, 0, both...)},
		{Category: "UNIDENTIFIED", Name: "Unidentified", Sources: 3, Stats: st(22, 0, 0, 0, 0, 0, 2, 20, 0, both...)},
		{Category: "FORWARDED", Name: "Forwarded", Sources: 1, Stats: st(10, 0, 10, 0, 10, 0, 10, 0, 0, rx)},
	}, acct.Senders.Nodes)
	require.Equal(t, st(3_000_000_162, 3_000_000_150, 90, 90, 3_000_000_150, 3_000_000_150, 3_000_000_150, 12, 0, g), acct.Daily[1].Stats)
	require.Equal(t, []string{"203.0.113.9", "203.0.113.50", "203.0.113.10"}, []string{acct.Unidentified[0].IP, acct.Unidentified[1].IP, acct.Unidentified[2].IP})
	r = env.Do(t, cust.Token, accountQuery, map[string]any{"from": from, "to": to})
	r.NoErrors(t)
	var cr struct {
		Account struct{ AuthReport arReportAnswer }
	}
	r.Decode(t, &cr)
	require.Equal(t, 1, cr.Account.AuthReport.DomainCount)
	require.Equal(t, st(3_000_000_005, 3_000_000_000, 0, 0, 3_000_000_000, 3_000_000_000, 3_000_000_000, 5, 0, g), cr.Account.AuthReport.Totals)

	// Input errors.
	for args, msg := range map[string]string{
		`from: "2026-01-10", to: "2026-01-09"`: "from (2026-01-10) is after to (2026-01-09)",
		`from: "2025-01-01", to: "2026-01-02"`: "the range covers 367 days; the most is 366",
		`from: "2026-01-10"`:                   "from and to are given together",
	} {
		r := env.Do(t, msp.Token, `{ domain(name: "`+d+`") { authReport(`+args+`) { from } } }`, nil)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Equal(t, msg, r.Errors[0].Message, args)
	}
	r = env.Do(t, msp.Token, `{ domain(name: "`+d+`") { authReport(from: "2026-02-30", to: "2026-03-01") { from } } }`, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	for sel, msg := range map[string]string{
		`source(ip: "not-an-ip") { ip }`:          `"not-an-ip" is not an IP address`,
		`senders(first: 101) { totalCount }`:      "first must be between 0 and 100",
		`senders(after: "bm9wZQ") { totalCount }`: "invalid cursor",
		`unidentified(first: 101) { ip }`:         "first must be between 0 and 100",
	} {
		r := env.Do(t, msp.Token, `{ domain(name: "`+d+`") { authReport { `+sel+` } } }`, nil)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Equal(t, msg, r.Errors[0].Message, sel)
	}

	// A stranger sees neither the domain's report nor the account's.
	stranger := env.NewOwner(t, "Report Stranger")
	r = env.Do(t, stranger.Token, `{ domain(name: "`+d+`") { authReport { totals { messages } } } }`, nil)
	r.RequireCode(t, "NOT_FOUND")
	r = env.Do(t, stranger.Token, `query($id: ID) { account(id: $id) { authReport { totals { messages } } } }`, map[string]any{"id": msp.AccountID.String()})
	r.RequireCode(t, "NOT_FOUND")
	// The customer does not see its MSP's report.
	r = env.Do(t, cust.Token, `query($id: ID) { account(id: $id) { authReport { totals { messages } } } }`, map[string]any{"id": msp.AccountID.String()})
	r.RequireCode(t, "NOT_FOUND")

	// Every domain of a page with its report's summary: batched, and
	// within the limits.
	r = env.Do(t, msp.Token, `{ domains(first: 100) { nodes { name authReport(range: LAST_7_DAYS) { totals { messages dmarcPassRate }
		categories { category stats { messages } } } } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"totals":{"messages":397,"dmarcPassRate":`)
	require.Contains(t, r.Raw, `"totals":{"messages":3000000005,`)
}

// TestAuthReportPriced: a report's sections that each run a statement are
// priced so that asking for them across a page of domains is refused by
// the guard before anything runs (here without even a credential).
func TestAuthReportPriced(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	for name, q := range map[string]string{
		"senders of 100 domains": `{ domains(first: 100) { nodes { authReport { senders(first: 1) { totalCount } } } } }`,
		"sources of 100 domains": `{ domains(first: 100) { nodes { authReport { source(ip: "192.0.2.1") { ip } } } } }`,
		"daily of 100 domains":   `{ domains(first: 100) { nodes { authReport { daily { day } } } } }`,
		"unidentified of 100":    `{ domains(first: 100) { nodes { authReport { unidentified(first: 1) { ip } } } } }`,
	} {
		r := env.Do(t, "", q, nil)
		r.RequireCode(t, "BAD_USER_INPUT")
		require.Contains(t, r.Errors[0].Message, "the limit is 5000", name)
	}
	// Without a credential, a query within the limits is refused as
	// unauthenticated: the guard let it through.
	r := env.Do(t, "", `{ domains(first: 100) { nodes { authReport { totals { messages } categories { category } } } } }`, nil)
	r.RequireCode(t, "UNAUTHENTICATED")

	// Below a list the guard cannot size (the caller's accounts: an MSP's
	// customers), the sections that run a statement each are bounded at
	// run time: 35 accounts' reports of 4 statements each are refused past
	// the 100th.
	msp := env.NewOwner(t, "Priced MSP")
	_, err := env.Pool.Exec(context.Background(), `INSERT INTO accounts (name, parent_id) SELECT 'Customer ' || g, $1 FROM generate_series(1, 34) g`, msp.AccountID)
	require.NoError(t, err)
	const each = `{ viewer { accounts { authReport { daily { day } unidentified(first: 1) { ip } senders(first: 1) { totalCount } } } } }`
	r = env.Do(t, msp.Token, each, nil)
	r.RequireCode(t, "BAD_USER_INPUT")
	require.Equal(t, "the operation asks for more than 100 sections of authentication reports; ask for fewer", r.Errors[0].Message)
	r = env.Do(t, msp.Token, `{ viewer { accounts { authReport { daily { day } } } } }`, nil)
	r.NoErrors(t)
	require.Equal(t, 35, strings.Count(r.Raw, `"daily":[`), "70 statements: within the bound")
}
