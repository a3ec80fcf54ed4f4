package graph_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/app"
	"github.com/rampartmail/rampart/internal/dnscheck"
	"github.com/rampartmail/rampart/internal/domain"
)

type publishedDNS struct {
	Spf            string
	SpfRecord      *string
	CheckedAt      *time.Time
	DmarcDelegated *bool
	DkimDelegated  *bool
	Problem        *string
	Actions        []string
}

const publishedFields = `spf { value } legacySpf { value } published { spf spfRecord checkedAt dmarcDelegated dkimDelegated problem actions }`

type setupResult struct {
	Spf, LegacySpf struct{ Value string }
	Published      publishedDNS
}

// checkDNS runs checkDnsSetup for a domain.
func checkDNS(t *testing.T, env *apitest.Env, token, d string) setupResult {
	t.Helper()
	r := env.Do(t, token, `mutation($d: String!) { checkDnsSetup(domain: $d) { `+publishedFields+` } }`, map[string]any{"d": d})
	r.NoErrors(t)
	var out struct{ CheckDnsSetup setupResult }
	r.Decode(t, &out)
	return out.CheckDnsSetup
}

func joined(actions []string) string { return strings.Join(actions, "\n") }

// TestPublishedDNSSetup: checkDnsSetup looks at the customer's own zone (a
// real DNS server on loopback, through RAMPART_DNS_RESOLVER) and dnsSetup
// shows what it saw, with what to change: the current record, the legacy
// one, several, none, one without the edge; the _dmarc delegation by NS or
// CNAME and the _domainkey delegation.
func TestPublishedDNSSetup(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	o := env.NewOwner(t, "Published")
	const d = "published-example.com"
	env.AddVerifiedDomain(t, o, d)
	current := "v=spf1 include:%{i}._ip." + d + "._spf.edge.rampart.test redirect=" + d + "._rspf.edge.rampart.test"
	legacy := "v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.edge.rampart.test include:" + d + "._nspf.edge.rampart.test ~all"

	// Before any look: unknown, and the set-up says what to publish.
	r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { dnsSetup { `+publishedFields+` } } }`, nil)
	r.NoErrors(t)
	var before struct {
		Domain struct{ DnsSetup setupResult }
	}
	r.Decode(t, &before)
	s := before.Domain.DnsSetup
	require.Equal(t, current, s.Spf.Value)
	require.Equal(t, legacy, s.LegacySpf.Value)
	require.Equal(t, "UNKNOWN", s.Published.Spf)
	require.Nil(t, s.Published.CheckedAt)
	require.Nil(t, s.Published.DmarcDelegated)
	require.Contains(t, joined(s.Published.Actions), "has not seen the SPF record")

	// The current form, with _dmarc and _domainkey delegated by NS.
	env.DNS.Add(d, "google-site-verification=abc", current)
	env.DNS.SetNS("_dmarc."+d, "ns1.edge.rampart.test", "NS2.edge.rampart.test.")
	env.DNS.SetNS("_domainkey."+d, "ns1.edge.rampart.test", "ns2.edge.rampart.test")
	s = checkDNS(t, env, o.Token, d)
	require.Equal(t, "CURRENT", s.Published.Spf)
	require.Equal(t, current, *s.Published.SpfRecord)
	require.WithinDuration(t, time.Now(), *s.Published.CheckedAt, time.Minute)
	require.True(t, *s.Published.DmarcDelegated)
	require.True(t, *s.Published.DkimDelegated)
	require.Nil(t, s.Published.Problem)
	require.Empty(t, s.Published.Actions)

	// The legacy form: replace it, and why; _dmarc as a CNAME to the edge
	// counts as delegated, _domainkey half delegated does not.
	env.DNS.Set(d, legacy)
	env.DNS.Delete("_dmarc." + d)
	env.DNS.SetCNAME("_dmarc."+d, d+"._dmarc.edge.rampart.test")
	env.DNS.SetNS("_domainkey."+d, "ns1.edge.rampart.test", "ns.other-dns.example")
	s = checkDNS(t, env, o.Token, d)
	require.Equal(t, "LEGACY", s.Published.Spf)
	require.Equal(t, legacy, *s.Published.SpfRecord)
	require.True(t, *s.Published.DmarcDelegated)
	require.False(t, *s.Published.DkimDelegated)
	a := joined(s.Published.Actions)
	require.Contains(t, a, "Replace the SPF record at "+d+" with `"+current+"`")
	require.Contains(t, a, "HELO")
	require.Contains(t, a, "BLOCKED domain fail")
	require.Contains(t, a, "keeps working")
	require.NotContains(t, a, "_domainkey", "no hosted DKIM key: nothing to delegate for")

	// Two records: a permerror; merge them.
	env.DNS.Set(d, current, "v=spf1 include:_spf.google.com ~all")
	s = checkDNS(t, env, o.Token, d)
	require.Equal(t, "MULTIPLE", s.Published.Spf)
	require.Equal(t, current+"\nv=spf1 include:_spf.google.com ~all", *s.Published.SpfRecord)
	require.Contains(t, joined(s.Published.Actions), "Merge the SPF records")
	require.Contains(t, joined(s.Published.Actions), "permerror")

	// None, and _dmarc not delegated: publish both.
	env.DNS.Set(d, "google-site-verification=abc")
	env.DNS.Delete("_dmarc." + d)
	s = checkDNS(t, env, o.Token, d)
	require.Equal(t, "MISSING", s.Published.Spf)
	require.Nil(t, s.Published.SpfRecord)
	require.False(t, *s.Published.DmarcDelegated)
	a = joined(s.Published.Actions)
	require.Contains(t, a, "Publish the SPF record `"+current+"`")
	require.Contains(t, a, "Delegate _dmarc."+d+" to the edge (NS ns1.edge.rampart.test, ns2.edge.rampart.test) or publish a CNAME to "+d+"._dmarc.edge.rampart.test")

	// A record without the edge, and one whose all term cancels the redirect.
	env.DNS.Set(d, "v=spf1 include:_spf.google.com ~all")
	s = checkDNS(t, env, o.Token, d)
	require.Equal(t, "OTHER", s.Published.Spf)
	require.Contains(t, joined(s.Published.Actions), "does not use Rampart's edge")
	env.DNS.Set(d, current+" ~all")
	s = checkDNS(t, env, o.Token, d)
	require.Equal(t, "OTHER", s.Published.Spf)
	require.Contains(t, joined(s.Published.Actions), "Remove the all term")

	// A BLOCKED domain publishing v=spf1 -all needs no SPF change.
	env.DNS.Set(d, "v=spf1 -all")
	env.DNS.SetNS("_dmarc."+d, "ns1.edge.rampart.test", "ns2.edge.rampart.test")
	env.Do(t, o.Token, `mutation { setDomainMode(name: "`+d+`", mode: BLOCKED) { name } }`, nil).NoErrors(t)
	s = checkDNS(t, env, o.Token, d)
	require.Equal(t, "OTHER", s.Published.Spf)
	require.Empty(t, s.Published.Actions)

	// The owner of another account sees nothing.
	other := env.NewOwner(t, "Other")
	env.Do(t, other.Token, `mutation { checkDnsSetup(domain: "`+d+`") { spf { value } } }`, nil).RequireCode(t, "NOT_FOUND")
}

// TestPublishedDNSNoAnswer: a look whose lookups get no answer keeps what
// an earlier look found, says why in problem and brings the next look
// forward (a minute, doubling); with DNS checks off, checkDnsSetup is
// CONFLICT.
func TestPublishedDNSNoAnswer(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	o := env.NewOwner(t, "No answer")
	const d = "noanswer-example.com"
	env.AddVerifiedDomain(t, o, d)
	env.DNS.Add(d, "v=spf1 include:%{i}._ip."+d+"._spf.edge.rampart.test redirect="+d+"._rspf.edge.rampart.test")
	s := checkDNS(t, env, o.Token, d)
	require.Equal(t, "CURRENT", s.Published.Spf)
	require.False(t, *s.Published.DmarcDelegated)

	// The same database, a resolver that never answers.
	silent := domain.NewService(env.Pool, domain.Config{
		EdgeZone: apitest.EdgeZone, NameServers: []string{"ns1.edge.rampart.test", "ns2.edge.rampart.test"},
		Checker: &dnscheck.Checker{Server: blackhole(t), Timeout: 200 * time.Millisecond, Attempts: 1},
	}, apitest.Logger(t))
	for attempt, wait := range []time.Duration{time.Minute, 2 * time.Minute} {
		_, err := env.Pool.Exec(ctx, `UPDATE domains SET dns_check_next_at = now() WHERE name = $1`, d)
		require.NoError(t, err)
		run, err := silent.CheckPublished(ctx, time.Now().Add(30*time.Second))
		require.NoError(t, err)
		require.Equal(t, domain.PublishedRun{Checked: 1, Problems: 1}, run)
		var failures int
		var next time.Time
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT dns_check_failures, dns_check_next_at FROM domains WHERE name = $1`, d).Scan(&failures, &next))
		require.Equal(t, attempt+1, failures)
		require.WithinDuration(t, time.Now().Add(wait), next, 10*time.Second)
	}
	r := env.Do(t, o.Token, `{ domain(name: "`+d+`") { dnsSetup { `+publishedFields+` } } }`, nil)
	r.NoErrors(t)
	var after struct {
		Domain struct{ DnsSetup setupResult }
	}
	r.Decode(t, &after)
	p := after.Domain.DnsSetup.Published
	require.Equal(t, "CURRENT", p.Spf, "kept from the look that got an answer")
	require.False(t, *p.DmarcDelegated)
	require.Contains(t, *p.Problem, "looking up "+d+" TXT timed out")
	require.Contains(t, *p.Problem, "_dmarc."+d)

	// An answer again resets the backoff.
	s = checkDNS(t, env, o.Token, d)
	require.Nil(t, s.Published.Problem)
	var failures int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT dns_check_failures FROM domains WHERE name = $1`, d).Scan(&failures))
	require.Zero(t, failures)

	off := apitest.StartWith(t, func(c *app.Config) { c.DNSResolver = "off" })
	oo := off.NewOwner(t, "Off")
	off.Do(t, oo.Token, `mutation { addDomain(name: "`+d+`") { name } }`, nil).NoErrors(t)
	off.Do(t, oo.Token, `mutation { checkDnsSetup(domain: "`+d+`") { spf { value } } }`, nil).RequireCode(t, "CONFLICT")
	r = off.Do(t, oo.Token, `mutation { removeDomain(name: "`+d+`") { warnings } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"removeDomain": {"warnings": []}}`, string(r.Data), "an unverified claim")
}

// blackhole is a UDP address that takes queries and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	return pc.LocalAddr().String()
}

// TestCheckPublishedJob: the job's work looks at every due verified
// domain, records what it saw in the domain's columns and schedules the
// next look about an hour on; a domain not due is left alone.
func TestCheckPublishedJob(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	ctx := context.Background()
	o := env.NewOwner(t, "Job")
	names := []string{"job-current-example.com", "job-legacy-example.com", "job-missing-example.com", "job-multiple-example.com"}
	for _, n := range names {
		env.AddVerifiedDomain(t, o, n)
	}
	env.DNS.Add(names[0], "v=spf1 include:%{i}._ip."+names[0]+"._spf.edge.rampart.test redirect="+names[0]+"._rspf.edge.rampart.test")
	env.DNS.SetNS("_dmarc."+names[0], "ns1.edge.rampart.test", "ns2.edge.rampart.test")
	env.DNS.Add(names[1], "v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.edge.rampart.test include:"+names[1]+"._nspf.edge.rampart.test ~all")
	env.DNS.Add(names[3], "v=spf1 -all", "v=spf1 ~all")
	env.Do(t, o.Token, `mutation { addDomain(name: "job-unverified-example.com") { name } }`, nil).NoErrors(t)

	run, err := env.Services(t).Domains.CheckPublished(ctx, time.Now().Add(30*time.Second))
	require.NoError(t, err)
	require.Equal(t, 4, run.Checked, "verified domains only")
	require.Zero(t, run.Problems)

	type row struct {
		spf           string
		record        *string
		dmarc, dkim   *bool
		checked, next *time.Time
		problem       string
		failures      int
	}
	read := func(n string) row {
		var r row
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT spf_published, spf_published_record, dmarc_delegated, dkim_delegated,
			dns_checked_at, dns_check_next_at, dns_check_problem, dns_check_failures FROM domains WHERE name = $1`, n).
			Scan(&r.spf, &r.record, &r.dmarc, &r.dkim, &r.checked, &r.next, &r.problem, &r.failures))
		return r
	}
	for n, want := range map[string]string{names[0]: "current", names[1]: "legacy", names[2]: "missing", names[3]: "multiple"} {
		r := read(n)
		require.Equal(t, want, r.spf, n)
		require.NotNil(t, r.checked, n)
		require.Empty(t, r.problem, n)
		require.WithinRange(t, *r.next, time.Now().Add(55*time.Minute), time.Now().Add(66*time.Minute), n)
		require.NotNil(t, r.dmarc, n)
		require.Equal(t, n == names[0], *r.dmarc, n)
		require.False(t, *r.dkim, n)
	}
	require.Equal(t, "unknown", read("job-unverified-example.com").spf)

	// Nothing is due now.
	run, err = env.Services(t).Domains.CheckPublished(ctx, time.Now().Add(30*time.Second))
	require.NoError(t, err)
	require.Zero(t, run.Checked)

	// A record changed, due again: the next run sees it, and the set-up
	// shows it.
	env.DNS.Set(names[1], "v=spf1 include:%{i}._ip."+names[1]+"._spf.edge.rampart.test redirect="+names[1]+"._rspf.edge.rampart.test")
	_, err = env.Pool.Exec(ctx, `UPDATE domains SET dns_check_next_at = now() WHERE name = $1`, names[1])
	require.NoError(t, err)
	run, err = env.Services(t).Domains.CheckPublished(ctx, time.Now().Add(30*time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, run.Checked)
	r := env.Do(t, o.Token, `{ domain(name: "`+names[1]+`") { dnsSetup { published { spf } } } }`, nil)
	r.NoErrors(t)
	require.JSONEq(t, `{"domain": {"dnsSetup": {"published": {"spf": "CURRENT"}}}}`, string(r.Data))
}

// TestRemoveDomainWarnings: removing a domain whose DNS still points at the
// edge warns about each name, with the grace period; a domain whose DNS no
// longer does, and an unverified claim, get no warning.
func TestRemoveDomainWarnings(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.RemovalGrace = 14 * 24 * time.Hour })
	o := env.NewOwner(t, "Leaving")
	const d, clean = "leaving-example.com", "clean-example.com"
	env.AddVerifiedDomain(t, o, d)
	env.AddVerifiedDomain(t, o, clean)
	env.DNS.Add(d, "v=spf1 include:%{i}._ip."+d+"._spf.edge.rampart.test redirect="+d+"._rspf.edge.rampart.test")
	env.DNS.SetCNAME("_dmarc."+d, d+"._dmarc.edge.rampart.test")
	env.DNS.SetNS("_domainkey."+d, "ns1.edge.rampart.test", "ns2.edge.rampart.test")
	env.DNS.Add(clean, "v=spf1 include:_spf.google.com -all")
	env.DNS.Add("_dmarc."+clean, "v=DMARC1; p=none")

	remove := func(name string) []string {
		t.Helper()
		start := time.Now()
		r := env.Do(t, o.Token, `mutation { removeDomain(name: "`+name+`") { name warnings } }`, nil)
		r.NoErrors(t)
		require.Less(t, time.Since(start), 10*time.Second)
		var out struct {
			RemoveDomain struct {
				Name     string
				Warnings []string
			}
		}
		r.Decode(t, &out)
		require.Equal(t, name, out.RemoveDomain.Name)
		return out.RemoveDomain.Warnings
	}
	w := remove(d)
	require.Len(t, w, 3, "%q", w)
	require.Contains(t, w[0], "The SPF record at "+d+" still points at Rampart's edge")
	require.Contains(t, w[0], "For 14 days (until "+time.Now().Add(14*24*time.Hour).UTC().Format("2006-01-02"))
	require.Contains(t, w[0], "authorizes nothing")
	require.Contains(t, w[0], "permerror")
	require.Contains(t, w[1], "_dmarc."+d+" still points at Rampart's edge (CNAME "+d+"._dmarc.edge.rampart.test)")
	require.Contains(t, w[2], "_domainkey."+d+" still points at Rampart's edge (NS ns1.edge.rampart.test, ns2.edge.rampart.test)")

	require.Empty(t, remove(clean))

	// An unverified claim was never served: no look, no warning.
	env.Do(t, o.Token, `mutation { addDomain(name: "unverified-leaving-example.com") { name } }`, nil).NoErrors(t)
	env.DNS.Add("unverified-leaving-example.com", "v=spf1 redirect=unverified-leaving-example.com._rspf.edge.rampart.test")
	require.Empty(t, remove("unverified-leaving-example.com"))
}

// TestRemoveDomainWarningsWhenDNSIsSlow: a resolver that never answers
// does not hold the removal past the bound, and the warnings say the look
// failed.
func TestRemoveDomainWarningsWhenDNSIsSlow(t *testing.T) {
	t.Parallel()
	env := apitest.StartWith(t, func(c *app.Config) { c.DNSResolver = blackhole(t) })
	o := env.NewOwner(t, "Slow")
	const d = "slow-leaving-example.com"
	env.Do(t, o.Token, `mutation { addDomain(name: "`+d+`") { name } }`, nil).NoErrors(t)
	_, err := env.Services(t).Domains.VerifyAsOperator(context.Background(), d, &o.AccountID)
	require.NoError(t, err)
	start := time.Now()
	r := env.Do(t, o.Token, `mutation { removeDomain(name: "`+d+`") { warnings } }`, nil)
	r.NoErrors(t)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Contains(t, r.Raw, "Could not look up the SPF record of "+d)
	env.Do(t, o.Token, `{ domain(name: "`+d+`") { name } }`, nil).RequireCode(t, "NOT_FOUND")
}
