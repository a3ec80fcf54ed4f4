package dnsedge

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// benchEdge is an edge serving 100,000 domains the way make bench-dns
// loads them: a DMARC record, 3 netblocks, 3 of 20 services and 3 DKIM
// keys each.
func benchEdge(b *testing.B) *Edge {
	b.Helper()
	e, err := New(Config{Zone: testZone, NameServers: testNameServers(), DatabaseURL: "host=/nonexistent", RRLRate: RRLOff}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	services := make([]serviceRow, 20)
	for i := range services {
		services[i] = serviceRow{
			name: fmt.Sprintf("svc%02d", i), serial: int64(i + 1),
			ranges:       prefixes(fmt.Sprintf("100.64.%d.0/24", i), fmt.Sprintf("2001:db8:ff%02d::/48", i)),
			heloSuffixes: []string{fmt.Sprintf("svc%02d.example", i)}, includes: []string{fmt.Sprintf("_spf.svc%02d.example", i)},
		}
	}
	key := func(n int) string { return strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", n)[:n] }
	dkim := fmt.Sprintf(`[{"selector": "s1", "txt": "v=DKIM1; k=rsa; p=%s"}, {"selector": "s2", "txt": "v=DKIM1; k=rsa; p=%s"},
		{"selector": "s3", "txt": "v=DKIM1; k=ed25519; p=%s"}]`, key(392), key(216), key(44))
	rows := make([]row, 100_000)
	for i := range rows {
		rows[i] = row{
			name: fmt.Sprintf("d%06d.example", i), serial: int64(100 + i), mode: "sending",
			dmarc: "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=r; rua=mailto:dmarc@reports.rampart.test",
			netblocks: prefixes(fmt.Sprintf("10.%d.%d.0/24", i>>8&0xff, i&0xff), fmt.Sprintf("198.18.%d.%d/32", i>>8&0xff, i&0xff),
				fmt.Sprintf("2001:db8:%x:%x::/64", i>>8+1, i&0xff+1)),
			services: []string{fmt.Sprintf("svc%02d", i%20), fmt.Sprintf("svc%02d", (i+1)%20), fmt.Sprintf("svc%02d", (i+2)%20)},
			dkim:     dkim,
		}
	}
	ix, errs := buildIndex(200_000, rows, services)
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	e.publish(ix)
	return e
}

// BenchmarkFastPath measures the UDP fast path against the general path
// (miekg/dns's parser, ServeDNS, Pack) on the query kinds of make
// bench-dns. The fast path allocates nothing.
func BenchmarkFastPath(b *testing.B) {
	e := benchEdge(b)
	spf := func(ip string) string {
		a := netip.MustParseAddr(ip)
		i := a.String()
		if a.Is6() {
			i = nibbles(a)
		}
		return i + "._ip.mx1.sender.example._ehlo.d012345.example._spf.edge.rampart.test."
	}
	current := func(ip string) string {
		a := netip.MustParseAddr(ip)
		i := a.String()
		if a.Is6() {
			i = nibbles(a)
		}
		return i + "._ip.d012345.example._spf.edge.rampart.test."
	}
	for _, q := range []struct{ name, qname string }{
		{"dmarc", "_dmarc.d012345.example."},
		{"dkim", "s1._domainkey.d012345.example."},
		{"nxdomain", "k42._domainkey.d012345.example."},
		{"nxdomain-0x20", "K42._DomainKey.D012345.Example."},
		{"spf-hit-v4", spf("10.48.57.9")},
		{"spf-hit-v6", spf("2001:db8:31:3a::9")},
		{"spf-miss-v4", spf("203.0.113.5")},
		{"spf-miss-v6", spf("2001:db8:ffff:ffff::1")},
		{"current-hit-v4", current("10.48.57.9")},
		{"current-hit-v6", current("2001:db8:31:3a::9")},
		{"current-miss-v4", current("203.0.113.5")},
		{"helo-step", "sender.example._ehlo.d012345.example._spf.edge.rampart.test."},
		{"rspf", "d012345.example._rspf.edge.rampart.test."},
	} {
		wire, err := question(q.qname, dns.TypeTXT, 1232).Pack()
		if err != nil {
			b.Fatal(err)
		}
		b.Run("fast/"+q.name, func(b *testing.B) {
			f := &fastPath{counts: e.metrics.queries.newShard()}
			out := make([]byte, 0, advertisedUDPSize)
			from := netip.MustParseAddr("192.0.2.1")
			b.ReportAllocs()
			for b.Loop() {
				if _, act := e.answerFast(f, wire, out, from); act != fastReply {
					b.Fatal("not answered by the fast path")
				}
			}
		})
		b.Run("general/"+q.name, func(b *testing.B) {
			w := &recorder{}
			b.ReportAllocs()
			for b.Loop() {
				req := new(dns.Msg)
				if err := req.Unpack(wire); err != nil {
					b.Fatal(err)
				}
				e.ServeDNS(w, req)
			}
		})
	}
}
