package dnsedge

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gaissmai/bart"
	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures the handler alone (no sockets) on an index of
// 100,000 domains.
func BenchmarkServeDNS(b *testing.B) {
	e, err := New(Config{Zone: testZone, NameServers: testNameServers(), DatabaseURL: "host=/nonexistent", RRLRate: RRLOff}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]row, 100_000)
	for i := range rows {
		rows[i] = row{name: fmt.Sprintf("d%06d.example", i), serial: int64(i + 1), mode: "sending", dmarc: "v=DMARC1; p=none; rua=mailto:dmarc@reports.rampart.test"}
	}
	ix, _ := buildIndex(int64(len(rows)), rows, nil)
	e.publish(ix)
	for _, q := range []struct{ name, qname string }{
		{"txt", "_dmarc.d012345.example."},
		{"cname-target", "d012345.example._dmarc.edge.rampart.test."},
		{"nxdomain", "x._dmarc.d012345.example."},
		{"refused", "www.example.org."},
	} {
		b.Run(q.name, func(b *testing.B) {
			req := question(q.qname, dns.TypeTXT, 1232)
			w := &recorder{}
			b.ReportAllocs()
			for b.Loop() {
				e.ServeDNS(w, req)
			}
		})
	}
}

// BenchmarkApply measures deriving an index with one changed domain from an
// index of 100,000 domains.
func BenchmarkApply(b *testing.B) {
	rows := make([]row, 100_000)
	for i := range rows {
		rows[i] = row{name: fmt.Sprintf("d%06d.example", i), serial: int64(i + 1), mode: "sending", dmarc: "v=DMARC1; p=none"}
	}
	ix, _ := buildIndex(int64(len(rows)), rows, nil)
	change := []row{{name: "d000042.example", serial: int64(len(rows) + 1), mode: "blocked", dmarc: "v=DMARC1; p=reject"}}
	b.ReportAllocs()
	for b.Loop() {
		ix.apply(change, nil)
	}
}

// BenchmarkSPF measures per-query SPF answers on an index of 100,000
// domains, each with 2 netblocks and 3 of 50 services enabled.
func BenchmarkSPF(b *testing.B) {
	e, err := New(Config{Zone: testZone, NameServers: testNameServers(), DatabaseURL: "host=/nonexistent", RRLRate: RRLOff}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	services := make([]serviceRow, 50)
	for i := range services {
		services[i] = serviceRow{
			name: fmt.Sprintf("svc%02d", i), serial: int64(i + 1),
			ranges:       prefixes(fmt.Sprintf("100.%d.0.0/16", i), fmt.Sprintf("2001:db8:%x::/48", i)),
			heloSuffixes: []string{fmt.Sprintf("svc%02d.example", i)}, includes: []string{fmt.Sprintf("_spf.svc%02d.example", i)},
		}
	}
	rows := make([]row, 100_000)
	for i := range rows {
		rows[i] = row{
			name: fmt.Sprintf("d%06d.example", i), serial: int64(100 + i), mode: "sending",
			netblocks: prefixes(fmt.Sprintf("10.%d.%d.0/24", i>>8&0xff, i&0xff), "2001:db8:ffff::/48"),
			services:  []string{fmt.Sprintf("svc%02d", i%50), fmt.Sprintf("svc%02d", (i+1)%50), fmt.Sprintf("svc%02d", (i+2)%50)},
		}
	}
	ix, errs := buildIndex(200_000, rows, services)
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	e.publish(ix)
	for _, q := range []struct{ name, qname string }{
		{"netblock", "10.48.57.9._ip.mx.example.net._ehlo.d012345.example._spf.edge.rampart.test."},
		{"service-range", "100.46.1.2._ip.mx.example.net._ehlo.d012345.example._spf.edge.rampart.test."},
		{"helo", "192.0.2.1._ip.mta.svc47.example._ehlo.d012345.example._spf.edge.rampart.test."},
		{"miss", "192.0.2.1._ip.mx.example.net._ehlo.d012345.example._spf.edge.rampart.test."},
		{"ipv6", nibbles(netip.MustParseAddr("2001:db8:2f::1")) + "._ip.mx._ehlo.d012345.example._spf.edge.rampart.test."},
	} {
		b.Run(q.name, func(b *testing.B) {
			req := question(q.qname, dns.TypeTXT, 1232)
			w := &recorder{}
			b.ReportAllocs()
			for b.Loop() {
				e.ServeDNS(w, req)
			}
		})
	}
}

// BenchmarkNetblockLookup compares a prefix table with a linear scan for the
// few netblocks a domain has, to justify tables even for small sets.
func BenchmarkNetblockLookup(b *testing.B) {
	for _, n := range []int{1, 4, 16, 256} {
		nets := make([]netip.Prefix, n)
		table := new(bart.Lite)
		for i := range nets {
			nets[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
			table.Insert(nets[i])
		}
		miss := netip.MustParseAddr("192.0.2.1")
		b.Run(fmt.Sprintf("table/%d", n), func(b *testing.B) {
			for b.Loop() {
				if table.Contains(miss) {
					b.Fatal("hit")
				}
			}
		})
		b.Run(fmt.Sprintf("scan/%d", n), func(b *testing.B) {
			for b.Loop() {
				for _, p := range nets {
					if p.Contains(miss) {
						b.Fatal("hit")
					}
				}
			}
		})
	}
}
