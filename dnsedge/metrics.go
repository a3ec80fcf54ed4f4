package dnsedge

import (
	"fmt"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// queryQtypes are the qtypes counted under their own label; every other one
// is counted as OTHER so that random qtypes cannot grow the series count.
var queryQtypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeNS, dns.TypeSOA, dns.TypeCNAME,
	dns.TypeMX, dns.TypePTR, dns.TypeSRV, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY,
	dns.TypeHTTPS, dns.TypeSVCB, dns.TypeANY,
}

// queryRcodes are the rcodes the edge sends; any other is counted as OTHER.
var queryRcodes = []int{
	dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers,
}

// metrics are the edge's Prometheus metrics.
type metrics struct {
	// queries holds one counter per (qtype, rcode) label pair, resolved
	// once so that counting a query is an index and an atomic add.
	queries     [][]prometheus.Counter // [qtype slot][rcode slot]
	qtypeSlot   map[uint16]int
	rcodeSlot   map[int]int
	dropped     prometheus.Counter
	dbConnected prometheus.Gauge
	rrlDropped  prometheus.Counter
	rrlSlipped  prometheus.Counter
	tcpRefused  *prometheus.CounterVec
	tcpOpen     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, e *Edge) (*metrics, error) {
	queries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dnsedge_queries_total",
		Help: "DNS queries answered, by query type and response code.",
	}, []string{"qtype", "rcode"})
	m := &metrics{
		qtypeSlot: map[uint16]int{},
		rcodeSlot: map[int]int{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnsedge_queries_dropped_total",
			Help: "Messages received and not answered: responses (QR set) and packets shorter than a DNS header.",
		}),
		dbConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dnsedge_db_connected",
			Help: "1 while the edge holds a PostgreSQL connection listening for changes, else 0.",
		}),
		rrlDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnsedge_rrl_dropped_total",
			Help: "UDP responses dropped by response rate limiting.",
		}),
		rrlSlipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnsedge_rrl_slipped_total",
			Help: "UDP responses sent truncated (TC set, no records) by response rate limiting.",
		}),
		tcpRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnsedge_tcp_connections_refused_total",
			Help: "TCP connections closed on accept, by the cap reached: total (all connections) or source (one IPv4 address or IPv6 /64).",
		}, []string{"reason"}),
		tcpOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dnsedge_tcp_connections",
			Help: "TCP connections open.",
		}),
	}
	// Both reasons exist from the start, so that a rate query sees a zero.
	m.tcpRefused.WithLabelValues(refusedTotal)
	m.tcpRefused.WithLabelValues(refusedSource)
	qtypes := append(queryQtypes[:len(queryQtypes):len(queryQtypes)], 0)
	rcodes := append(queryRcodes[:len(queryRcodes):len(queryRcodes)], -1)
	for i, t := range qtypes {
		m.qtypeSlot[t] = i
		row := make([]prometheus.Counter, len(rcodes))
		for j, rc := range rcodes {
			m.rcodeSlot[rc] = j
			qt, rcs := "OTHER", "OTHER"
			if t != 0 {
				qt = dns.TypeToString[t]
			}
			switch {
			case rc == dns.RcodeBadVers:
				// 16 is BADSIG in TSIG and BADVERS in EDNS; the edge only
				// ever means the latter.
				rcs = "BADVERS"
			case rc >= 0:
				rcs = dns.RcodeToString[rc]
			}
			row[j] = queries.WithLabelValues(qt, rcs)
		}
		m.queries = append(m.queries, row)
	}
	// The other slots: qtype and rcode values not listed.
	delete(m.qtypeSlot, 0)
	delete(m.rcodeSlot, -1)

	collectors := []prometheus.Collector{
		queries, m.dropped, m.dbConnected, m.rrlDropped, m.rrlSlipped, m.tcpRefused, m.tcpOpen,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dnsedge_snapshot_serial",
			Help: "Highest edge table serial in the snapshot being served (0 before the first load).",
		}, func() float64 { return float64(e.Serial()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dnsedge_snapshot_domains",
			Help: "Domains in the snapshot being served.",
		}, func() float64 {
			if ix := e.index.Load(); ix != nil {
				return float64(ix.numDomains())
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dnsedge_snapshot_services",
			Help: "Sender services in the snapshot being served.",
		}, func() float64 {
			if ix := e.index.Load(); ix != nil {
				return float64(ix.numServices())
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dnsedge_snapshot_age_seconds",
			Help: "Seconds since the snapshot being served was last confirmed current with PostgreSQL " +
				"(for a snapshot read from the file, since its last confirmation before it was written; " +
				"before any snapshot, since the edge was created).",
		}, func() float64 { return time.Since(e.confirmedAt()).Seconds() }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// query counts one answered query.
func (m *metrics) query(qtype uint16, rcode int) {
	i, ok := m.qtypeSlot[qtype]
	if !ok {
		i = len(m.queries) - 1
	}
	row := m.queries[i]
	j, ok := m.rcodeSlot[rcode]
	if !ok {
		j = len(row) - 1
	}
	row[j].Inc()
}
