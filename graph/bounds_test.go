package graph_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/dnsedge"
	"github.com/rampartmail/rampart/internal/apitest"
)

// answerTTL asks the edge for TXT at name and returns the answer and the
// TTL a resolver would cache it for.
func answerTTL(t *testing.T, addr, name string) (string, time.Duration) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	r, err := dns.Exchange(m, addr)
	require.NoError(t, err)
	var txt []string
	ttl := time.Duration(-1)
	for _, rr := range r.Answer {
		if tx, ok := rr.(*dns.TXT); ok {
			txt = append(txt, strings.Join(tx.Txt, ""))
			ttl = time.Duration(tx.Hdr.Ttl) * time.Second
		}
	}
	if len(r.Answer) == 0 && len(r.Ns) > 0 {
		ttl = time.Duration(r.Ns[0].Header().Ttl) * time.Second // a cached negative answer
	}
	return strings.Join(txt, "|"), ttl
}

// TestChangeBoundsAtReceivers is the timing promise of each kind of change:
// for a change made through GraphQL, the answer a receiver's resolver may
// still hold from before it (its TTL as the edge served it) plus the time
// the edge took to answer the change stays within the bound the edge's
// configuration promises (dnsedge.Config.Bounds, documented in
// docs/architecture.md), for every name the change touches.
func TestChangeBoundsAtReceivers(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	edge := env.StartEdge(t, "")
	addr := edge.UDPAddr().String()
	bounds := dnsedge.Config{}.Bounds() // the edge runs with the defaults
	o := env.NewOwner(t, "Bounds")
	const d = "bounds-example.com"
	env.AddVerifiedDomain(t, o, d)
	zone := apitest.EdgeZone
	ipName := "192.0.2.10._ip." + d + "._spf." + zone
	legacyName := "192.0.2.10._ip.mx.example._ehlo." + d + "._spf." + zone
	rspf, nspf := d+"._rspf."+zone, d+"._nspf."+zone
	dkim := "s1._domainkey." + d
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	key := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub)

	// change makes one change and checks every name it touches: the
	// answer before (and its TTL), and how soon the edge answers what
	// the change makes of it (containing want).
	change := func(kind string, bound time.Duration, mutation string, names map[string]string) {
		t.Helper()
		held := map[string]time.Duration{}
		for name := range names {
			_, ttl := answerTTL(t, addr, name)
			require.GreaterOrEqual(t, ttl, time.Duration(0), "%s: no TTL at %s", kind, name)
			held[name] = ttl
		}
		committed := time.Now()
		if strings.Contains(mutation, "$k") {
			env.Do(t, o.Token, `mutation($k: String!) { `+mutation+` }`, map[string]any{"k": key}).NoErrors(t)
		} else {
			env.Do(t, o.Token, `mutation { `+mutation+` }`, nil).NoErrors(t)
		}
		for name, want := range names {
			var got string
			for got, _ = answerTTL(t, addr, name); !strings.Contains(got, want) && time.Since(committed) < 2*dnsedge.Propagation; got, _ = answerTTL(t, addr, name) {
				time.Sleep(5 * time.Millisecond)
			}
			took := time.Since(committed)
			require.Contains(t, got, want, "%s: %s", kind, name)
			worst := held[name] + took
			t.Logf("%s: %s answered within %v of the commit; a resolver may hold the answer from before for %v: worst %v, bound %v", kind, name, took.Round(time.Millisecond), held[name], worst.Round(time.Millisecond), bound)
			require.LessOrEqual(t, took, dnsedge.Propagation, "%s: propagation to %s", kind, name)
			require.LessOrEqual(t, worst, bound, "%s: %s", kind, name)
		}
	}

	change("add netblock", bounds.AddSender, `addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name }`, map[string]string{
		ipName: "v=spf1 ip4:192.0.2.10 -all", legacyName: "v=spf1 ip4:192.0.2.10 -all", nspf: "ip4:192.0.2.0/24",
	})
	change("add DKIM key", bounds.KeyAdded, `addDkimKey(domain: "`+d+`", selector: "s1", publicKey: $k) { warnings }`, map[string]string{
		dkim: key,
	})
	change("policy change", bounds.Policy, `updateDmarcPolicy(name: "`+d+`", policy: {p: QUARANTINE}, force: true) { name }`, map[string]string{
		"_dmarc." + d: "p=quarantine",
	})
	change("key revocation", bounds.KeyRevocation, `revokeDkimKey(domain: "`+d+`", selector: "s1") { selector }`, map[string]string{
		dkim: "v=DKIM1; p=",
	})
	change("remove netblock", bounds.RemoveSender, `removeNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name }`, map[string]string{
		ipName: "v=spf1 ~all", legacyName: "v=spf1 ~all", nspf: "v=spf1 -all",
	})
	env.Do(t, o.Token, `mutation { addNetblock(domain: "`+d+`", cidr: "192.0.2.0/24") { name } }`, nil).NoErrors(t)
	waitTXT(t, addr, ipName, dns.RcodeSuccess, "v=spf1 ip4:192.0.2.10 -all")
	change("block (SPF)", bounds.BlockSPF, `setDomainMode(name: "`+d+`", mode: BLOCKED) { name }`, map[string]string{
		ipName: "v=spf1 -all", legacyName: "v=spf1 -all", rspf: "v=spf1 -all", nspf: "v=spf1 -all",
	})
	env.Do(t, o.Token, `mutation { setDomainMode(name: "`+d+`", mode: SENDING) { name } }`, nil).NoErrors(t)
	change("block (keys and policy)", bounds.BlockKeysAndPolicy, `setDomainMode(name: "`+d+`", mode: BLOCKED) { name }`, map[string]string{
		"_dmarc." + d: "p=reject", dkim: "v=DKIM1; p=",
	})
}
