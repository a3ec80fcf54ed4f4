package dnsedge

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures the handler alone (no sockets) on an index of
// 100,000 domains.
func BenchmarkServeDNS(b *testing.B) {
	e, err := New(Config{Zone: testZone, NameServers: testNameServers(), DatabaseURL: "host=/nonexistent"}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]row, 100_000)
	for i := range rows {
		rows[i] = row{name: fmt.Sprintf("d%06d.example", i), serial: int64(i + 1), mode: "sending", dmarc: "v=DMARC1; p=none; rua=mailto:dmarc@reports.rampart.test"}
	}
	ix, _ := buildIndex(int64(len(rows)), rows)
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
	ix, _ := buildIndex(int64(len(rows)), rows)
	change := []row{{name: "d000042.example", serial: int64(len(rows) + 1), mode: "blocked", dmarc: "v=DMARC1; p=reject"}}
	b.ReportAllocs()
	for b.Loop() {
		ix.apply(change)
	}
}
