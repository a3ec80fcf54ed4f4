package attacktest_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/smtp"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/attacktest"
)

// ask sends one query to the edge and returns its rcode and answer section
// as record strings.
func ask(t *testing.T, edge, name string, qtype uint16) (int, []string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, edge)
	require.NoError(t, err)
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.TXT:
			out = append(out, strings.Join(v.Txt, ""))
		case *dns.CNAME:
			out = append(out, "CNAME "+v.Target)
		default:
			out = append(out, rr.String())
		}
	}
	return r.Rcode, out
}

// waitAnswer polls the edge until it answers rcode and want (nil: no
// answer records) and fails after 5 s.
func waitAnswer(t *testing.T, edge, name string, qtype uint16, rcode int, want []string) {
	t.Helper()
	var gotCode int
	var got []string
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		if gotCode, got = ask(t, edge, name, qtype); gotCode == rcode && equal(got, want) {
			return
		}
	}
	t.Fatalf("%s %s: the edge answers %s %q, want %s %q", name, dns.TypeToString[qtype],
		dns.RcodeToString[gotCode], got, dns.RcodeToString[rcode], want)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// dmarcOf reads a domain's DMARC record from the API as token sees it.
func dmarcOf(t *testing.T, s *attacktest.Serve, token, name string) string {
	t.Helper()
	r := s.API.Do(t, token, `query($n: String!) { domain(name: $n) { dmarcRecord } }`, map[string]any{"n": name})
	r.NoErrors(t)
	var d struct{ Domain struct{ DmarcRecord string } }
	r.Decode(t, &d)
	return d.Domain.DmarcRecord
}

// attacker plays tenant B on a claim of a name it does not control: it
// sets everything that would make mail signed by it pass DMARC there.
func attacker(t *testing.T, s *attacktest.Serve, token, name string) {
	t.Helper()
	vars := map[string]any{"n": name}
	for _, q := range []string{
		`mutation($n: String!) { updateDmarcPolicy(name: $n, policy: {p: NONE, rua: ["mailto:loot@attacker.example"]}) { name } }`,
		`mutation($n: String!) { addDkimKey(domain: $n, selector: "evil", cnameTarget: "evil.dkim.attacker.example") { warnings } }`,
		`mutation($n: String!) { addNetblock(domain: $n, cidr: "203.0.113.0/24", label: "attacker") { name } }`,
		`mutation($n: String!) { setBimi(domain: $n, logoUrl: "https://attacker.example/logo.svg") { name } }`,
	} {
		s.API.Do(t, token, q, vars).NoErrors(t)
	}
}

// refusedOnEdge checks that the edge serves nothing of the attacker's for
// name, a domain its owner removed and whose grace period runs: no DMARC
// record, no DKIM CNAME, no BIMI, and SPF names that authorise nothing
// (the owner's removed row answers, not the attacker's claim).
func refusedOnEdge(t *testing.T, e *attacktest.Edge, name string) {
	t.Helper()
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_dmarc." + name, dns.TypeTXT},
		{"evil._domainkey." + name, dns.TypeCNAME},
		{"evil._domainkey." + name, dns.TypeTXT},
		{"default._bimi." + name, dns.TypeTXT},
		{name + "._dmarc." + apitest.EdgeZone, dns.TypeTXT},
	} {
		code, got := ask(t, e.Addr, q.name, q.qtype)
		require.Contains(t, []int{dns.RcodeSuccess, dns.RcodeNameError}, code, "%s %s: %q", q.name, dns.TypeToString[q.qtype], got)
		require.Empty(t, got, "%s %s", q.name, dns.TypeToString[q.qtype])
	}
	for _, q := range []string{name + "._nspf." + apitest.EdgeZone, name + "._rspf." + apitest.EdgeZone} {
		code, got := ask(t, e.Addr, q, dns.TypeTXT)
		require.Equal(t, dns.RcodeSuccess, code, "%s: %q", q, got)
		require.Equal(t, []string{"v=spf1 ?all"}, got, q)
	}
	// The per-query SPF answers always exist; they must not let B's range in.
	for _, q := range []string{
		"5.113.0.203._ip.mail.attacker.example._ehlo." + name + "._spf." + apitest.EdgeZone,
		"5.113.0.203._ip." + name + "._spf." + apitest.EdgeZone,
	} {
		_, got := ask(t, e.Addr, q, dns.TypeTXT)
		require.NotContains(t, strings.Join(got, " "), "203.0.113", q)
	}
}

// TestDomainTakeoverRefused runs the built `rampart serve` and dnsedge and
// replays the takeovers of issue 7 point 4; each is refused:
//
//  1. a name still delegated to the edge after its owner A removed it is
//     re-added by tenant B, who sets a DMARC policy, a DKIM CNAME, a
//     netblock and BIMI for it: the edge serves none of it, through
//     verifyDomain or the periodic check, because B cannot publish B's
//     proof at the name;
//  2. B claims a name A holds (and never controlled by B): A's records keep
//     being served exactly, and B removing the claim takes nothing off;
//  3. B claims a name before A: the claim does not lock A out; A's proof
//     verifies A's claim at once and displaces B's;
//  4. B, verified for a parent domain, uploads a forged copy of the report
//     A's receivers send for A's subdomain: A's real report, mailed to A's
//     report address, is still stored, not taken as a duplicate.
//
// The operator's override (`rampart admin verify-domain`, the binary) is
// the one way around a proof, and it too needs the account named when
// several claim a name.
func TestDomainTakeoverRefused(t *testing.T) {
	t.Parallel()
	world := apitest.ServeZone(t, nil)
	s := attacktest.StartServe(t, attacktest.ServeOptions{Workers: 2, SMTP: true, Env: map[string]string{"RAMPART_DNS_RESOLVER": world.Addr}})
	s.API.DNS = world
	e := attacktest.StartEdge(t, s.DatabaseURL)
	a := s.API.NewOwner(t, "A")
	b := s.API.NewOwner(t, "B")

	// 1. A removes a domain it still delegates; B re-adds it.
	const removed = "removed-example.com"
	s.API.AddVerifiedDomain(t, a, removed)
	waitAnswer(t, e.Addr, "_dmarc."+removed, dns.TypeTXT, dns.RcodeSuccess, []string{dmarcOf(t, s, a.Token, removed)})
	s.API.Do(t, a.Token, `mutation { removeDomain(name: "`+removed+`") { name } }`, nil).NoErrors(t)
	// Its names stay on the edge for the grace period, with no record.
	waitAnswer(t, e.Addr, removed+"._rspf."+apitest.EdgeZone, dns.TypeTXT, dns.RcodeSuccess, []string{"v=spf1 ?all"})
	waitAnswer(t, e.Addr, "_dmarc."+removed, dns.TypeTXT, dns.RcodeSuccess, nil)
	r := s.API.Do(t, b.Token, `mutation { addDomain(name: "`+removed+`") { verified } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"addDomain": {"verified": false}}`, string(r.Data))
	attacker(t, s, b.Token, removed)
	// A's proof is still published at the name; it proves nothing for B.
	r = s.API.Do(t, b.Token, `mutation { verifyDomain(name: "`+removed+`") { verified ownership { lastCheckResult } } }`, nil)
	r.NoErrors(t)
	require.Contains(t, r.Raw, `"verified":false`)
	require.Contains(t, r.Raw, `at _rampart.`+removed+` (1 other TXT record(s) there)`)
	// The periodic check (River, in the served binary) finds nothing either.
	_, err := s.Pool.Exec(t.Context(), `UPDATE domains SET check_next_at = now(), checked_at = NULL WHERE name = $1`, removed)
	require.NoError(t, err)
	var checked bool
	for start := time.Now(); !checked && time.Since(start) < 90*time.Second; time.Sleep(100 * time.Millisecond) {
		require.NoError(t, s.Pool.QueryRow(t.Context(), `SELECT checked_at IS NOT NULL FROM domains WHERE name = $1`, removed).Scan(&checked))
	}
	require.True(t, checked, "the periodic check did not run")
	require.NoError(t, s.Pool.QueryRow(t.Context(), `SELECT verified_at IS NOT NULL FROM domains WHERE name = $1`, removed).Scan(&checked))
	require.False(t, checked)
	refusedOnEdge(t, e, removed)

	// 2. B claims a name A holds.
	const held = "held-example.com"
	s.API.AddVerifiedDomain(t, a, held)
	s.API.Do(t, a.Token, `mutation { updateDmarcPolicy(name: "`+held+`", policy: {p: REJECT}, force: true) { name } }`, nil).NoErrors(t)
	s.API.Do(t, a.Token, `mutation { addDkimKey(domain: "`+held+`", selector: "a1", cnameTarget: "a1.dkim.vendor.example") { warnings } }`, nil).NoErrors(t)
	aRecord := dmarcOf(t, s, a.Token, held)
	require.Contains(t, aRecord, "p=reject")
	waitAnswer(t, e.Addr, "_dmarc."+held, dns.TypeTXT, dns.RcodeSuccess, []string{aRecord})
	s.API.Do(t, b.Token, `mutation { addDomain(name: "`+held+`") { name } }`, nil).NoErrors(t)
	attacker(t, s, b.Token, held)
	r = s.API.Do(t, b.Token, `mutation { verifyDomain(name: "`+held+`") { verified } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"verifyDomain": {"verified": false}}`, string(r.Data))
	require.Contains(t, dmarcOf(t, s, b.Token, held), "loot@attacker.example", "B sees its own claim")
	require.Equal(t, aRecord, dmarcOf(t, s, a.Token, held), "A sees its own claim")
	code, got := ask(t, e.Addr, "_dmarc."+held, dns.TypeTXT)
	require.Equal(t, dns.RcodeSuccess, code)
	require.Equal(t, []string{aRecord}, got)
	waitAnswer(t, e.Addr, "a1._domainkey."+held, dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME a1.dkim.vendor.example."})
	code, got = ask(t, e.Addr, "evil._domainkey."+held, dns.TypeCNAME)
	require.Equal(t, dns.RcodeNameError, code, "%q", got)
	code, got = ask(t, e.Addr, "5.113.0.203._ip.mail.attacker.example._ehlo."+held+"._spf."+apitest.EdgeZone, dns.TypeTXT)
	require.Equal(t, dns.RcodeSuccess, code)
	require.NotContains(t, strings.Join(got, " "), "203.0.113")
	// B removing its claim takes nothing of A's off the edge.
	s.API.Do(t, b.Token, `mutation { removeDomain(name: "`+held+`") { name } }`, nil).NoErrors(t)
	time.Sleep(200 * time.Millisecond) // a tombstone would reach the edge within tens of ms
	code, got = ask(t, e.Addr, "_dmarc."+held, dns.TypeTXT)
	require.Equal(t, dns.RcodeSuccess, code)
	require.Equal(t, []string{aRecord}, got)

	// 3. B claims first; it does not lock A out.
	const first = "first-example.com"
	s.API.Do(t, b.Token, `mutation { addDomain(name: "`+first+`") { name } }`, nil).NoErrors(t)
	attacker(t, s, b.Token, first)
	s.API.AddVerifiedDomain(t, a, first)
	s.API.Do(t, b.Token, `{ domain(name: "`+first+`") { name } }`, nil).RequireCode(t, "NOT_FOUND")
	waitAnswer(t, e.Addr, "_dmarc."+first, dns.TypeTXT, dns.RcodeSuccess, []string{dmarcOf(t, s, a.Token, first)})
	code, _ = ask(t, e.Addr, "evil._domainkey."+first, dns.TypeCNAME)
	require.Equal(t, dns.RcodeNameError, code)

	// 4. A forged report for A's subdomain, uploaded by B (verified for the
	// parent), does not make A's real report a duplicate.
	const parent, sub = "shared-example.com", "mail.shared-example.com"
	s.API.AddVerifiedDomain(t, b, parent)
	s.API.AddVerifiedDomain(t, a, sub)
	uploadReport(t, s, b.Token, report(sub, "r-42", "203.0.113.9", 1000))
	r = s.API.Do(t, a.Token, `{ domain(name: "`+sub+`") { reportAddress } }`, nil)
	r.NoErrors(t)
	var ra struct {
		Domain struct{ ReportAddress string }
	}
	r.Decode(t, &ra)
	// B's forgery is stored (for B's parent domain) before A's report comes.
	waitReports(t, s, b.Token, parent, `"totalCount":1`)
	real := report(sub, "r-42", "192.0.2.10", 7)
	msg := "From: noreply-dmarc@receiver.example\r\nTo: " + ra.Domain.ReportAddress + "\r\nSubject: Report Domain: " + sub + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/xml; name=report.xml\r\n\r\n" + strings.ReplaceAll(real, "\n", "\r\n") + "\r\n"
	require.NoError(t, smtp.SendMail(s.SMTPAddr, nil, "noreply-dmarc@receiver.example", []string{ra.Domain.ReportAddress}, []byte(msg)))
	got4 := waitReports(t, s, a.Token, sub, `"totalCount":1`)
	require.Contains(t, got4, `"reportId":"r-42","messages":7,"duplicates":0,"status":"STORED"`)

	// The operator's override, through the binary: several accounts claim
	// the name, so the account must be named.
	const override = "override-example.com"
	s.API.Do(t, a.Token, `mutation { addDomain(name: "`+override+`") { name } }`, nil).NoErrors(t)
	s.API.Do(t, b.Token, `mutation { addDomain(name: "`+override+`") { name } }`, nil).NoErrors(t)
	out, err := adminVerify(t, s, override)
	require.Error(t, err, "%s", out)
	require.Contains(t, out, "2 accounts claim "+override)
	out, err = adminVerify(t, s, "-account", a.AccountID.String(), override)
	require.NoError(t, err, "%s", out)
	waitAnswer(t, e.Addr, "_dmarc."+override, dns.TypeTXT, dns.RcodeSuccess, []string{dmarcOf(t, s, a.Token, override)})
	s.API.Do(t, b.Token, `{ domain(name: "`+override+`") { name } }`, nil).RequireCode(t, "NOT_FOUND")
}

func adminVerify(t *testing.T, s *attacktest.Serve, args ...string) (string, error) {
	t.Helper()
	bin, _ := attacktest.Binaries(t)
	cmd := exec.Command(bin, append([]string{"admin", "verify-domain"}, args...)...)
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func report(domain, id, ip string, count int) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata><org_name>receiver.example</org_name><email>noreply-dmarc@receiver.example</email>
    <report_id>` + id + `</report_id><date_range><begin>1764201600</begin><end>1764287999</end></date_range></report_metadata>
  <policy_published><domain>` + domain + `</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>
  <record>
    <row><source_ip>` + ip + `</source_ip><count>` + itoa(count) + `</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>` + domain + `</header_from></identifiers>
    <auth_results><spf><domain>` + domain + `</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
`
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}

func uploadReport(t *testing.T, s *attacktest.Serve, token, xml string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "report.xml")
	require.NoError(t, err)
	_, _ = fw.Write([]byte(xml))
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, s.Base+"/upload", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// waitReports polls a domain's reports until the answer contains want.
func waitReports(t *testing.T, s *attacktest.Serve, token, name, want string) string {
	t.Helper()
	var raw string
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		r := s.API.Do(t, token, `query($n: String!) { domain(name: $n) { reports { totalCount nodes { reportId messages duplicates status } } } }`, map[string]any{"n": name})
		r.NoErrors(t)
		if raw = r.Raw; strings.Contains(raw, want) {
			return raw
		}
	}
	t.Fatalf("%s: reports never showed %s; last answer %s", name, want, raw)
	return ""
}
