package dnsedge

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Config configures an [Edge]. The zero value of every field except Zone and
// DatabaseURL has a working default, applied by [New].
type Config struct {
	// Zone is the edge's own zone, for example "edge.rampart.test". Customers
	// CNAME _dmarc.<their domain> to <their domain>._dmarc.<Zone>.
	Zone string

	// NameServers are the edge's name servers, the NS records of every zone it
	// serves; the first is the SOA MNAME. Default: ns1.<Zone> and ns2.<Zone>
	// without addresses.
	NameServers []NameServer

	// Hostmaster is the SOA RNAME, as a domain name ("hostmaster.example.net")
	// or a mailbox ("hostmaster@example.net"). Default: hostmaster.<Zone>.
	Hostmaster string

	// SOA timers. Defaults: refresh 1h, retry 10m, expire 14d.
	Refresh, Retry, Expire time.Duration

	// TTL is the TTL of every record served except the per-query SPF
	// answers. Default 5m.
	TTL time.Duration

	// SPFTTL is the TTL of the per-query SPF answers under _spf.<Zone>.
	// Receivers cache them per connecting IP, so a short TTL costs little
	// and makes enabled senders, moved vendor ranges and netblocks take
	// effect quickly. Default 1m.
	SPFTTL time.Duration

	// NegativeTTL is the SOA MINIMUM, how long resolvers cache NXDOMAIN and
	// NODATA answers (RFC 2308). Default 5m.
	NegativeTTL time.Duration

	// Listen is the address the DNS server binds for both UDP and TCP.
	// Default "127.0.0.1:5353". With port 0 the system picks a port and the
	// edge tries to bind UDP and TCP on the same one; see [Edge.UDPAddr] and
	// [Edge.TCPAddr].
	Listen string

	// MetricsListen is the address of the HTTP listener serving /metrics.
	// Empty means no listener (the registry passed to [New] may be served by
	// the caller).
	MetricsListen string

	// SnapshotPath is the file holding the last snapshot on local disk. Empty
	// means no file: the edge has nothing to serve until PostgreSQL answers.
	SnapshotPath string

	// ResyncInterval is how often the edge reloads the edge tables in full,
	// on top of following NOTIFY. Default 5m.
	ResyncInterval time.Duration

	// DatabaseURL is the PostgreSQL connection string (URL or key=value form)
	// of a database holding the edge tables. Required.
	DatabaseURL string

	// ReportsDomain is the domain receiving DMARC aggregate reports, for
	// example "reports.rampart.test". When set, the edge is authoritative
	// for _report._dmarc.<ReportsDomain> and answers the external report
	// authorisation records of RFC 7489 §7.1,
	// <domain>._report._dmarc.<ReportsDomain> TXT "v=DMARC1", for every
	// hosted domain. Empty means the zone is not served.
	ReportsDomain string

	// TCPMaxConns caps the TCP connections open at once; a connection over
	// the cap is closed as soon as it is accepted. Default 1024.
	TCPMaxConns int

	// TCPMaxConnsPerSource caps the TCP connections open at once from one
	// source: one IPv4 address, or one IPv6 /64 (what a single host
	// usually holds). Default 64.
	TCPMaxConnsPerSource int

	// TCPReadTimeout bounds the wait for the first query on a new TCP
	// connection and every write to it. Default 5s.
	TCPReadTimeout time.Duration

	// TCPIdleTimeout is how long a TCP connection may stay idle after a
	// query before the edge closes it (RFC 7766 §6.2.3). Default 10s.
	TCPIdleTimeout time.Duration

	// RRLRate is the response rate limit over UDP: responses per second
	// allowed to each client network (IPv4 /24, IPv6 /56), with a burst of
	// as many. Default DefaultRRLRate (200, NSD's rrl-ratelimit); RRLOff (or
	// any negative value) turns the limit off, which only a benchmark
	// measuring throughput from one network should want.
	RRLRate int

	// RRLSlip is how limited responses are handled: every RRLSlip-th one is
	// sent truncated (TC set, no records), telling a real resolver to retry
	// over TCP, and the others are dropped. 1 slips every one; a negative
	// value drops every one. Default 2.
	RRLSlip int
}

// NameServer is one of the edge's name servers. Addrs are served as A and
// AAAA records and may be set only when Name is inside the edge zone.
type NameServer struct {
	Name  string
	Addrs []netip.Addr
}

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultListen               = "127.0.0.1:5353"
	DefaultTTL                  = 5 * time.Minute
	DefaultNegativeTTL          = 5 * time.Minute
	DefaultResyncInterval       = 5 * time.Minute
	DefaultSPFTTL               = time.Minute
	DefaultTCPMaxConns          = 1024
	DefaultTCPMaxConnsPerSource = 64
	DefaultTCPReadTimeout       = 5 * time.Second
	DefaultTCPIdleTimeout       = 10 * time.Second
	DefaultRRLRate              = 200
	DefaultRRLSlip              = 2
	defaultRefresh              = time.Hour
	defaultRetry                = 10 * time.Minute
	defaultExpire               = 14 * 24 * time.Hour
)

// RRLOff as Config.RRLRate turns response rate limiting off.
const RRLOff = -1

// ParseNameServers parses a comma-separated list of name servers, each
// "name" or "name=address". A name may repeat to give it several addresses:
//
//	ns1.edge.example=192.0.2.53,ns1.edge.example=2001:db8::53,ns2.edge.example
//
// The order of first appearance is the order of the NS records.
func ParseNameServers(s string) ([]NameServer, error) {
	var out []NameServer
	seen := map[string]int{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, addr, hasAddr := strings.Cut(item, "=")
		name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
		i, ok := seen[name]
		if !ok {
			i = len(out)
			seen[name] = i
			out = append(out, NameServer{Name: name})
		}
		if hasAddr {
			a, err := netip.ParseAddr(strings.TrimSpace(addr))
			if err != nil {
				return nil, fmt.Errorf("name server %q: %w", name, err)
			}
			out[i].Addrs = append(out[i].Addrs, a.Unmap())
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no name servers")
	}
	return out, nil
}

// settings is a validated Config in the forms the server uses: lower-case
// fully qualified names and TTLs in seconds.
type settings struct {
	zone        string // "edge.rampart.test."
	nameServers []nameServer
	hostmaster  string // "hostmaster.edge.rampart.test."
	refresh     uint32
	retry       uint32
	expire      uint32
	ttl         uint32
	spfTTL      uint32
	negTTL      uint32
	// reportsApex is "_report._dmarc.<reports domain>.", or "" when the
	// report authorisation zone is not served.
	reportsApex string
}

type nameServer struct {
	name  string // fully qualified, lower case
	addrs []netip.Addr
}

// validate applies the defaults and checks c.
func (c Config) validate() (Config, settings, error) {
	var s settings
	if c.DatabaseURL == "" {
		return c, s, errors.New("DatabaseURL is required")
	}
	zone, err := canonicalName(c.Zone)
	if err != nil {
		return c, s, fmt.Errorf("zone: %w", err)
	}
	s.zone = zone
	c.Zone = strings.TrimSuffix(zone, ".")

	if len(c.NameServers) == 0 {
		c.NameServers = []NameServer{{Name: "ns1." + c.Zone}, {Name: "ns2." + c.Zone}}
	}
	seen := map[string]bool{}
	for _, ns := range c.NameServers {
		name, err := canonicalName(ns.Name)
		if err != nil {
			return c, s, fmt.Errorf("name server: %w", err)
		}
		if seen[name] {
			return c, s, fmt.Errorf("name server %q listed twice", name)
		}
		seen[name] = true
		if len(ns.Addrs) > 0 && !dns.IsSubDomain(s.zone, name) {
			return c, s, fmt.Errorf("name server %q has addresses but is outside zone %q", name, c.Zone)
		}
		for _, a := range ns.Addrs {
			if !a.IsValid() {
				return c, s, fmt.Errorf("name server %q: invalid address", name)
			}
		}
		s.nameServers = append(s.nameServers, nameServer{name: name, addrs: ns.Addrs})
	}

	if c.Hostmaster == "" {
		c.Hostmaster = "hostmaster." + c.Zone
	}
	hm := c.Hostmaster
	if local, domain, ok := strings.Cut(hm, "@"); ok {
		if local == "" || strings.ContainsAny(local, `.\`) {
			return c, s, fmt.Errorf("hostmaster %q: the part before @ must be one plain label", hm)
		}
		hm = local + "." + domain
	}
	if s.hostmaster, err = canonicalName(hm); err != nil {
		return c, s, fmt.Errorf("hostmaster: %w", err)
	}

	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.ReportsDomain != "" {
		rd, err := canonicalName(c.ReportsDomain)
		if err != nil {
			return c, s, fmt.Errorf("reports domain: %w", err)
		}
		c.ReportsDomain = strings.TrimSuffix(rd, ".")
		s.reportsApex = reportLabel + "." + dmarcLabel + "." + rd
		if len(s.reportsApex) > 254 {
			return c, s, fmt.Errorf("reports domain %q: %s.<domain> too long", c.ReportsDomain, reportLabel+"."+dmarcLabel)
		}
		// Every name under _spf.<zone> is an SPF answer; a zone in there
		// would take some of them.
		if dns.IsSubDomain(spfLabel+"."+s.zone, s.reportsApex) {
			return c, s, fmt.Errorf("reports domain %q is inside %s.%s", c.ReportsDomain, spfLabel, c.Zone)
		}
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{
		{"TCPMaxConns", &c.TCPMaxConns, DefaultTCPMaxConns},
		{"TCPMaxConnsPerSource", &c.TCPMaxConnsPerSource, DefaultTCPMaxConnsPerSource},
	} {
		if *n.v == 0 {
			*n.v = n.def
		}
		if *n.v < 0 {
			return c, s, fmt.Errorf("%s %d is negative", n.name, *n.v)
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"TCPReadTimeout", &c.TCPReadTimeout, DefaultTCPReadTimeout},
		{"TCPIdleTimeout", &c.TCPIdleTimeout, DefaultTCPIdleTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return c, s, fmt.Errorf("%s %v is negative", d.name, *d.v)
		}
	}
	switch {
	case c.RRLRate == 0:
		c.RRLRate = DefaultRRLRate
	case c.RRLRate < 0:
		c.RRLRate = RRLOff
	}
	if c.RRLSlip == 0 {
		c.RRLSlip = DefaultRRLSlip
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
		out  *uint32
	}{
		{"TTL", &c.TTL, DefaultTTL, &s.ttl},
		{"SPFTTL", &c.SPFTTL, DefaultSPFTTL, &s.spfTTL},
		{"NegativeTTL", &c.NegativeTTL, DefaultNegativeTTL, &s.negTTL},
		{"Refresh", &c.Refresh, defaultRefresh, &s.refresh},
		{"Retry", &c.Retry, defaultRetry, &s.retry},
		{"Expire", &c.Expire, defaultExpire, &s.expire},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < time.Second || *d.v > math.MaxInt32*time.Second {
			return c, s, fmt.Errorf("%s %v out of range (1s to 68 years)", d.name, *d.v)
		}
		*d.out = uint32(*d.v / time.Second)
	}
	return c, s, nil
}

// canonicalName checks that name is a host-like domain name (letters, digits,
// hyphens and underscores) and returns it lower case and fully qualified.
func canonicalName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if err := checkHostName(n); err != nil {
		return "", fmt.Errorf("%q: %w", name, err)
	}
	return n + ".", nil
}

// checkHostName checks a lower-case name without a trailing dot. Only
// letters, digits, hyphens and underscores are allowed, so that a name needs
// no escaping in presentation format and compares byte for byte.
func checkHostName(n string) error {
	if n == "" {
		return errors.New("empty name")
	}
	if len(n) > 253 {
		return errors.New("name longer than 253 characters")
	}
	label := 0
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case c == '.':
			if label == 0 {
				return errors.New("empty label")
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("character %q not allowed", c)
		}
		label++
		if label > 63 {
			return errors.New("label longer than 63 characters")
		}
	}
	if label == 0 {
		return errors.New("empty label")
	}
	return nil
}
