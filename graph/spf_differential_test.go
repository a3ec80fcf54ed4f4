package graph_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/apitest"
	"github.com/rampartmail/rampart/internal/spf"
	"github.com/rampartmail/rampart/internal/spfanswer"
)

// TestExplainSpfMatchesEdge is the differential test of the per-query SPF
// answers: for generated (address, HELO) pairs it expands each name of the
// current form a receiver asks (the first include, the redirect, and the
// HELO step as the redirect target spells it) with the project's RFC 7208
// evaluator (the receiver), asks a running dnsedge over loopback DNS for
// the TXT at that name (packed by miekg/dns as a resolver sends it), and
// requires explainSpf, asked through GraphQL, to predict every name and
// answer exactly, and the result; when an expansion is no valid domain name
// no receiver asks, and explainSpf must say NO_QUERY. Inputs: addresses in and out of netblocks
// and enabled senders' ranges, HELOs at, below and beside the senders'
// suffixes, and HELOs that are empty, too long, address literals, end in a
// dot, have empty or 64-octet labels, hold _ip/_ehlo labels or bytes DNS
// escapes; for a sending and a blocked domain.
func TestExplainSpfMatchesEdge(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t)
	edge := env.StartEdge(t, "")
	world := vendorZone(t)
	// Mailchimp's include resolves to no ranges: the edge knows it by its
	// HELO names only. (One that never resolved could not be enabled: its
	// cost would not be known.)
	world.Set("servers.mcsv.net", "v=spf1 ~all")
	o := env.NewOwner(t, "SPF differential")
	const d, blocked = "spf-diff-example.com", "spf-diff-blocked.com"
	env.AddVerifiedDomain(t, o, d)
	env.AddVerifiedDomain(t, o, blocked)
	_, err := env.Services(t).Senders.ResolveRanges(context.Background(), spf.NewDNSResolver(world.Addr))
	require.NoError(t, err)
	for _, m := range []string{
		`addNetblock(domain: "` + d + `", cidr: "192.0.2.0/24")`,
		`addNetblock(domain: "` + d + `", cidr: "2001:db8:10::/48")`,
		`enableSender(domain: "` + d + `", service: "google-workspace")`,
		`enableSender(domain: "` + d + `", service: "sendgrid")`,
		`enableSender(domain: "` + d + `", service: "mailchimp")`,
		`addNetblock(domain: "` + blocked + `", cidr: "198.51.100.0/24")`,
		`enableSender(domain: "` + blocked + `", service: "sendgrid")`,
		`setDomainMode(name: "` + blocked + `", mode: BLOCKED)`,
	} {
		env.Do(t, o.Token, `mutation { `+m+` { name } }`, nil).NoErrors(t)
	}
	// The last change of each domain is visible: so are the others.
	name, _ := senderQuery("149.72.1.1", "o1.ptr.sendgrid.net", d)
	waitTXT(t, edge.UDPAddr().String(), name, dns.RcodeSuccess, "v=spf1 ip4:149.72.1.1 -all")
	name, _ = senderQuery("149.72.1.1", "o1.ptr.sendgrid.net", blocked)
	waitTXT(t, edge.UDPAddr().String(), name, dns.RcodeSuccess, "v=spf1 -all")

	rng := rand.New(rand.NewPCG(9, uint64(time.Now().UnixNano())))
	seed := rng.Uint64()
	rng = rand.New(rand.NewPCG(9, seed))
	t.Logf("seed %d", seed)

	in := []netip.Prefix{ // netblocks and the senders' resolved ranges
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:10::/48"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("64.233.160.0/19"), netip.MustParsePrefix("172.217.0.0/19"),
		netip.MustParsePrefix("2001:4860:4000::/36"), netip.MustParsePrefix("149.72.0.0/16"),
	}
	randIP := func() netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if rng.IntN(3) == 0 { // anywhere
			if rng.IntN(2) == 0 {
				return netip.AddrFrom4([4]byte(b[:4]))
			}
			return netip.AddrFrom16(b)
		}
		p := in[rng.IntN(len(in))]
		a := p.Addr().AsSlice()
		for i := p.Bits() / 8; i < len(a); i++ {
			if i == p.Bits()/8 {
				keep := byte(0xff) << (8 - p.Bits()%8)
				a[i] = a[i]&keep | b[i]&^keep
			} else {
				a[i] = b[i]
			}
		}
		ip, _ := netip.AddrFromSlice(a)
		return ip
	}
	label := func(n int) string {
		const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
		b := make([]byte, n)
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		return string(b)
	}
	suffixes := []string{"google.com", "sendgrid.net", "mcsv.net", "rsgsv.net", "mcdlv.net", "Google.COM", "example.net", "ptr.sendgrid.net"}
	randHELO := func() string {
		suf := suffixes[rng.IntN(len(suffixes))]
		switch rng.IntN(16) {
		case 0:
			return suf // a suffix itself
		case 1:
			return "." + suf
		case 2:
			return label(1+rng.IntN(12)) + suf // beside a suffix
		case 3:
			return ""
		case 4:
			return label(1+rng.IntN(10)) + "." + suf + "." // trailing dot
		case 5:
			return label(3) + ".." + suf // empty label
		case 6:
			return label(63+rng.IntN(2)) + "." + suf // 63 or 64 octets
		case 7:
			return "[" + randIP().String() + "]" // address literal
		case 8:
			return randIP().String()
		case 9:
			return "a._ip.b._ehlo." + suf
		case 10:
			return label(2) + []string{" ", "\\", "\"", "@", ";", "(", "é", "\t", "'", "$"}[rng.IntN(10)] + label(2) + "." + suf
		case 11, 12: // long: the receiver cuts labels, in the address or the HELO
			// At most 255 octets in all, as SMTP allows a domain
			// (RFC 5321 §4.5.3.1.2): the labels take at most n octets
			// and a dot each.
			var parts []string
			for n := rng.IntN(240 - len(suf)); n > 0; n -= 64 {
				parts = append(parts, label(min(63, max(1, n))))
			}
			return strings.Join(append(parts, suf), ".")
		default:
			return label(1+rng.IntN(10)) + "." + suf // below a suffix
		}
	}

	// A HELO name longer than SMTP allows is refused, naming the field.
	r := env.Do(t, o.Token, `query($d: String!, $h: String) { explainSpf(domain: $d, ip: "192.0.2.1", helo: $h) { result } }`,
		map[string]any{"d": d, "h": strings.Repeat("a.", 126) + "b.com"})
	r.RequireCode(t, "BAD_USER_INPUT")

	const cases = 400
	seen := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < cases && time.Now().Before(deadline); i++ {
		dom := d
		if i%8 == 7 {
			dom = blocked
		}
		ip, helo := randIP(), randHELO()
		r := env.Do(t, o.Token, `query($d: String!, $ip: String!, $h: String) { explainSpf(domain: $d, ip: $ip, helo: $h) { result kind steps { query record kind reason } } }`,
			map[string]any{"d": dom, "ip": ip.String(), "h": helo})
		r.NoErrors(t)
		var e struct {
			ExplainSpf struct {
				Result, Kind string
				Steps        []struct{ Query, Record, Kind, Reason string }
			}
		}
		r.Decode(t, &e)
		got := e.ExplainSpf
		require.NotEmpty(t, got.Steps)
		require.Equal(t, got.Steps[len(got.Steps)-1].Kind, got.Kind)

		// The receiver's side, by the project's evaluator: the first
		// include of the published record, then the redirect, then the
		// HELO step as the redirect target spells it.
		targets := []string{spfanswer.CurrentTarget(dom, apitest.EdgeZone), spfanswer.RSPFName(dom, apitest.EdgeZone)}
		for i, step := range got.Steps {
			seen[step.Kind]++
			if i >= len(targets) {
				t.Fatalf("ip %s helo %q: step %d has no receiver's name: %+v", ip, helo, i, got)
			}
			target, err := spf.ExpandDomainSpec(targets[i], &spf.MacroData{
				Sender: "someone@" + dom, Domain: dom, IP: ip, HELO: helo,
			})
			require.NoError(t, err)
			if _, ok := dns.IsDomainName(target); !ok || !validLabels(target) {
				require.Equal(t, "NO_QUERY", step.Kind, "ip %s helo %q: the receiver cannot ask %q; explainSpf says %+v", ip, helo, target, got)
				require.Empty(t, step.Record)
				require.Equal(t, len(got.Steps)-1, i, "nothing follows a NO_QUERY step")
				require.Equal(t, "PERMERROR", got.Result)
				continue
			}
			require.NotEqual(t, "NO_QUERY", step.Kind, "ip %s helo %q: the receiver asks %q", ip, helo, target)
			// The name goes out as miekg/dns packs it; the edge answers
			// every name under _spf and the domain's _rspf with one TXT
			// record.
			asked := nameToPresentation(target)
			rcode, txt := askEdge(t, edge.UDPAddr().String(), asked)
			require.Equal(t, dns.RcodeSuccess, rcode, "ip %s helo %q: %s", ip, helo, asked)
			require.Equal(t, txt, step.Record, "ip %s helo %q: the edge answers %q at %q; explainSpf says %+v", ip, helo, txt, asked, got)
			require.True(t, strings.EqualFold(dns.Fqdn(step.Query), asked), "ip %s helo %q: query %q, receiver %q", ip, helo, step.Query, asked)
			if i == 1 {
				// The HELO step is the redirect target's include with a
				// HELO, if it has one.
				for term := range strings.FieldsSeq(txt) {
					if inc, ok := strings.CutPrefix(term, "include:"); ok && strings.Contains(inc, "%{h") {
						targets = append(targets, inc)
					}
				}
			}
		}
		// The result follows from the last answer.
		last := got.Steps[len(got.Steps)-1]
		want := map[string]string{"IP": "PASS", "INCLUDE": "SENDER", "NO_MATCH": "SOFTFAIL", "BLOCKED": "FAIL", "NO_QUERY": "PERMERROR", "REDIRECT": "SOFTFAIL"}[last.Kind]
		require.Equal(t, want, got.Result, "ip %s helo %q: %+v", ip, helo, got)
		if got.Result == "PASS" {
			require.Len(t, got.Steps, 1, "a pass is decided by the first include, whatever the HELO")
		}
	}
	t.Logf("answers by kind: %v", seen)
	for _, k := range []string{"IP", "INCLUDE", "NO_MATCH", "BLOCKED", "NO_QUERY", "REDIRECT"} {
		require.Positive(t, seen[k], "no %s answer among the generated inputs: %v", k, seen)
	}
}

// askEdge asks the edge for TXT at name as a resolver does: over UDP, and
// over TCP when the answer is truncated or lost (the edge's response rate
// limiting slips or drops UDP answers to a client this fast).
func askEdge(t *testing.T, addr, name string) (int, string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	r, _, err := (&dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}).Exchange(m, addr)
	if err != nil || r.Truncated {
		r, _, err = (&dns.Client{Net: "tcp"}).Exchange(m, addr)
	}
	require.NoError(t, err, name)
	var txt []string
	for _, rr := range r.Answer {
		if tx, ok := rr.(*dns.TXT); ok {
			txt = append(txt, strings.Join(tx.Txt, ""))
		}
	}
	return r.Rcode, strings.Join(txt, "|")
}

// validLabels reports whether every label of name, a name in raw octets
// without a trailing dot, has 1 to 63 octets.
func validLabels(name string) bool {
	for l := range strings.SplitSeq(name, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return name != ""
}

// nameToPresentation is name, raw octets with dots between labels, as the
// fully qualified presentation form miekg/dns writes.
func nameToPresentation(name string) string {
	buf := make([]byte, 0, 256)
	for l := range strings.SplitSeq(name, ".") {
		buf = append(buf, byte(len(l)))
		buf = append(buf, l...)
	}
	buf = append(buf, 0)
	s, _, err := dns.UnpackDomainName(buf, 0)
	if err != nil {
		return ""
	}
	return s
}
