package dnsedge

import (
	"fmt"
	"sync"
	"sync/atomic"
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
	// queries counts the answered queries by (qtype, rcode) slot: shared
	// for the general path, one set per UDP socket for the fast path,
	// summed when scraped.
	queries     *queryCollector
	dropped     prometheus.Counter
	dbConnected prometheus.Gauge
	rrlDropped  prometheus.Counter
	rrlSlipped  prometheus.Counter
	tcpRefused  *prometheus.CounterVec
	tcpEvicted  prometheus.Counter
	tcpOpen     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, e *Edge) (*metrics, error) {
	m := &metrics{
		queries: newQueryCollector(),
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
		tcpEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnsedge_tcp_connections_evicted_total",
			Help: "TCP connections reset to let in a connection from a source holding fewer, while the total cap was reached.",
		}),
		tcpOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dnsedge_tcp_connections",
			Help: "TCP connections open.",
		}),
	}
	// Both reasons exist from the start, so that a rate query sees a zero.
	m.tcpRefused.WithLabelValues(refusedTotal)
	m.tcpRefused.WithLabelValues(refusedSource)
	collectors := []prometheus.Collector{
		m.queries, m.dropped, m.dbConnected, m.rrlDropped, m.rrlSlipped, m.tcpRefused, m.tcpEvicted, m.tcpOpen,
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

// query counts one query answered by the general path.
func (m *metrics) query(qtype uint16, rcode int) { m.queries.shared.add(qtype, rcode) }

// The slots of the query counters: one per qtype in queryQtypes and one for
// the others, one per rcode in queryRcodes and one for the others.
const (
	qtypeSlots = 16 // len(queryQtypes) + 1
	rcodeSlots = 8  // len(queryRcodes) + 1
)

// qtypeSlot and rcodeSlot map a qtype below 512 and an rcode below 32 to
// their slot; anything else is in the last slot.
var (
	qtypeSlot [512]uint8
	rcodeSlot [32]uint8
)

func init() {
	if len(queryQtypes)+1 != qtypeSlots || len(queryRcodes)+1 != rcodeSlots {
		panic("dnsedge: qtypeSlots or rcodeSlots out of date")
	}
	for i := range qtypeSlot {
		qtypeSlot[i] = qtypeSlots - 1
	}
	for i, t := range queryQtypes {
		qtypeSlot[t] = uint8(i)
	}
	for i := range rcodeSlot {
		rcodeSlot[i] = rcodeSlots - 1
	}
	for i, rc := range queryRcodes {
		rcodeSlot[rc] = uint8(i)
	}
}

// queryCounts counts queries by (qtype, rcode) slot. Each UDP socket has
// its own, written by its read loop alone, so that counting costs an
// uncontended atomic add on a cache line no other core writes.
type queryCounts struct {
	n [qtypeSlots][rcodeSlots]atomic.Uint64
	_ [64]byte // keeps the next one off the last cache line
}

func (c *queryCounts) add(qtype uint16, rcode int) {
	ts, rs := uint8(qtypeSlots-1), uint8(rcodeSlots-1)
	if int(qtype) < len(qtypeSlot) {
		ts = qtypeSlot[qtype]
	}
	if rcode >= 0 && rcode < len(rcodeSlot) {
		rs = rcodeSlot[rcode]
	}
	c.n[ts][rs].Add(1)
}

// queryCollector is dnsedge_queries_total: the sum of every queryCounts.
type queryCollector struct {
	desc   *prometheus.Desc
	labels [qtypeSlots][rcodeSlots][2]string
	shared *queryCounts

	mu     sync.Mutex
	shards []*queryCounts
}

func newQueryCollector() *queryCollector {
	c := &queryCollector{
		desc: prometheus.NewDesc("dnsedge_queries_total",
			"DNS queries answered, by query type and response code.", []string{"qtype", "rcode"}, nil),
		shared: new(queryCounts),
	}
	c.shards = []*queryCounts{c.shared}
	for i := range qtypeSlots {
		qt := "OTHER"
		if i < len(queryQtypes) {
			qt = dns.TypeToString[queryQtypes[i]]
		}
		for j := range rcodeSlots {
			rcs := "OTHER"
			switch {
			case j == len(queryRcodes):
			case queryRcodes[j] == dns.RcodeBadVers:
				// 16 is BADSIG in TSIG and BADVERS in EDNS; the edge only
				// ever means the latter.
				rcs = "BADVERS"
			default:
				rcs = dns.RcodeToString[queryRcodes[j]]
			}
			c.labels[i][j] = [2]string{qt, rcs}
		}
	}
	return c
}

// newShard returns counters of their own for a socket, counted in the sum.
func (c *queryCollector) newShard() *queryCounts {
	q := new(queryCounts)
	c.mu.Lock()
	c.shards = append(c.shards, q)
	c.mu.Unlock()
	return q
}

// Describe implements [prometheus.Collector].
func (c *queryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements [prometheus.Collector]: every (qtype, rcode) pair,
// zeros included, so that a rate query sees a series from the start.
func (c *queryCollector) Collect(ch chan<- prometheus.Metric) {
	var sum [qtypeSlots][rcodeSlots]uint64
	c.mu.Lock()
	for _, s := range c.shards {
		for i := range qtypeSlots {
			for j := range rcodeSlots {
				sum[i][j] += s.n[i][j].Load()
			}
		}
	}
	c.mu.Unlock()
	for i := range qtypeSlots {
		for j := range rcodeSlots {
			l := c.labels[i][j]
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(sum[i][j]), l[0], l[1])
		}
	}
}
