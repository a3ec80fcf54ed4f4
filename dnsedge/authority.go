package dnsedge

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// result is the outcome of a lookup in the zones the edge serves. One place,
// Edge.respond, maps it to an rcode, the AA bit and the authority section.
type result uint8

const (
	// success: the name exists and has records of the type asked.
	success result = iota
	// noData: the name exists (possibly as an empty non-terminal) but has
	// no records of the type asked: NOERROR, empty answer, SOA.
	noData
	// nameError: the name does not exist in its zone: NXDOMAIN and SOA.
	nameError
	// refused: the name is in no zone the edge serves.
	refused
)

// dmarcLabel is the first label of the delegated zone _dmarc.<domain> and of
// the edge zone's subtree <domain>._dmarc.<edge zone>.
const dmarcLabel = "_dmarc"

// authority answers questions from an index for the zones the edge serves:
// the edge zone and, for every hosted domain D, the delegated zone _dmarc.D.
// Its own fields come from the configuration and never change.
type authority struct {
	set settings
	// dmarcApex is "_dmarc.<edge zone>." and dmarcSuffix "._dmarc.<edge zone>.",
	// so that <domain>._dmarc.<edge zone>. is found by one suffix test.
	dmarcApex, dmarcSuffix string
	// inZoneSuffix is ".<edge zone>.": a name ending with it is below the
	// edge zone's apex.
	inZoneSuffix string
	// hosts are the name servers inside the edge zone that have addresses,
	// by fully qualified lower-case name; hostParents are the empty
	// non-terminals between them and the apex.
	hosts       map[string][]netip.Addr
	hostParents map[string]bool
}

func newAuthority(s settings) *authority {
	a := &authority{
		set:          s,
		dmarcApex:    dmarcLabel + "." + s.zone,
		dmarcSuffix:  "." + dmarcLabel + "." + s.zone,
		inZoneSuffix: "." + s.zone,
		hosts:        map[string][]netip.Addr{},
		hostParents:  map[string]bool{},
	}
	for _, ns := range s.nameServers {
		if len(ns.addrs) == 0 {
			continue
		}
		a.hosts[ns.name] = ns.addrs
		for off, end := dns.NextLabel(ns.name, 0); !end; off, end = dns.NextLabel(ns.name, off) {
			p := ns.name[off:]
			if p == s.zone {
				break
			}
			a.hostParents[p] = true
		}
	}
	return a
}

// answer is what a lookup found.
type answer struct {
	result result
	// zone is the apex of the zone holding the name and serial its SOA
	// serial; both are unset when result is refused.
	zone   string
	serial uint32
	rrs    []dns.RR // answer section
	extra  []dns.RR // additional section
}

// node is a name that exists in one of the zones, with its records.
type node struct {
	apex  bool         // zone apex: SOA and NS
	txt   []string     // TXT character-strings, nil for none
	addrs []netip.Addr // A and AAAA
}

// lookup answers qtype at name. name must be lower case and fully
// qualified; owner is the name as the client sent it (0x20 case kept), used
// as the owner of the answer records.
func (a *authority) lookup(ix *index, name, owner string, qtype uint16) answer {
	// Longest match: walk from the full name towards the root and stop at
	// the first suffix that is a zone apex.
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		suffix := name[off:]
		// A hosted domain inside the edge zone cannot take names out of
		// it: the edge zone's own names win.
		if rest, ok := strings.CutPrefix(suffix, dmarcLabel+"."); ok && rest != "" && !strings.HasSuffix(suffix, a.inZoneSuffix) {
			if d, ok := ix.domains.get(rest[:len(rest)-1]); ok {
				return a.inDMARCZone(d, suffix, name, owner, qtype)
			}
		}
		if suffix == a.set.zone {
			return a.inEdgeZone(ix, name, owner, qtype)
		}
	}
	return answer{result: refused}
}

// inDMARCZone answers in _dmarc.<d.name>, whose only name is its apex.
func (a *authority) inDMARCZone(d *domain, apex, name, owner string, qtype uint16) answer {
	ans := answer{zone: apex, serial: uint32(d.serial)}
	if name != apex {
		ans.result = nameError
		return ans
	}
	return a.fromNode(ans, node{apex: true, txt: d.dmarcTXT}, owner, qtype)
}

// inEdgeZone answers in the edge zone: its apex, the name servers' addresses
// and <domain>._dmarc.<edge zone> for every hosted domain.
func (a *authority) inEdgeZone(ix *index, name, owner string, qtype uint16) answer {
	ans := answer{zone: a.set.zone, serial: uint32(ix.serial)}
	switch {
	case name == a.set.zone:
		return a.fromNode(ans, node{apex: true}, owner, qtype)
	case strings.HasSuffix(name, a.dmarcSuffix):
		host := name[:len(name)-len(a.dmarcSuffix)]
		if d, ok := ix.domains.get(host); ok {
			return a.fromNode(ans, node{txt: d.dmarcTXT}, owner, qtype)
		}
		if n, _ := ix.parents.get(host); n > 0 {
			ans.result = noData
			return ans
		}
	case name == a.dmarcApex:
		if ix.numDomains() > 0 {
			ans.result = noData
			return ans
		}
	case a.hosts[name] != nil:
		return a.fromNode(ans, node{addrs: a.hosts[name]}, owner, qtype)
	case a.hostParents[name]:
		ans.result = noData
		return ans
	}
	ans.result = nameError
	return ans
}

// fromNode answers qtype from the records of an existing node.
func (a *authority) fromNode(ans answer, n node, owner string, qtype uint16) answer {
	switch qtype {
	case dns.TypeANY:
		// RFC 8482: answer one RRset rather than everything the node has.
		switch {
		case n.txt != nil:
			ans.rrs = append(ans.rrs, a.txt(owner, n.txt))
		case n.addrs != nil:
			ans.rrs = a.addrRRs(ans.rrs, owner, n.addrs, 0)
		case n.apex:
			ans.rrs = append(ans.rrs, a.soa(owner, ans.serial, a.set.ttl))
		}
	case dns.TypeTXT:
		if n.txt != nil {
			ans.rrs = append(ans.rrs, a.txt(owner, n.txt))
		}
	case dns.TypeSOA:
		if n.apex {
			ans.rrs = append(ans.rrs, a.soa(owner, ans.serial, a.set.ttl))
		}
	case dns.TypeNS:
		if n.apex {
			for _, ns := range a.set.nameServers {
				ans.rrs = append(ans.rrs, &dns.NS{Hdr: a.hdr(owner, dns.TypeNS, a.set.ttl), Ns: ns.name})
			}
			// Addresses of the name servers we serve, as resolvers expect
			// next to an NS RRset; dropped first when space runs short.
			for _, ns := range a.set.nameServers {
				ans.extra = a.addrRRs(ans.extra, ns.name, a.hosts[ns.name], 0)
			}
		}
	case dns.TypeA, dns.TypeAAAA:
		ans.rrs = a.addrRRs(ans.rrs, owner, n.addrs, qtype)
	}
	if len(ans.rrs) == 0 {
		ans.result = noData
	} else {
		ans.result = success
	}
	return ans
}

func (a *authority) hdr(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// soa is the SOA record of the zone at apex.
func (a *authority) soa(apex string, serial, ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     a.hdr(apex, dns.TypeSOA, ttl),
		Ns:      a.set.nameServers[0].name,
		Mbox:    a.set.hostmaster,
		Serial:  serial,
		Refresh: a.set.refresh,
		Retry:   a.set.retry,
		Expire:  a.set.expire,
		Minttl:  a.set.negTTL,
	}
}

// negativeSOA is the SOA for the authority section of NXDOMAIN and NODATA
// answers, whose TTL is the smaller of the SOA's TTL and MINIMUM (RFC 2308 §3).
func (a *authority) negativeSOA(apex string, serial uint32) *dns.SOA {
	return a.soa(apex, serial, min(a.set.ttl, a.set.negTTL))
}

// txt builds the TXT record; the character-strings are shared with the index,
// which is fine because packing only reads them.
func (a *authority) txt(owner string, txt []string) *dns.TXT {
	return &dns.TXT{Hdr: a.hdr(owner, dns.TypeTXT, a.set.ttl), Txt: txt}
}

// addrRRs appends the A (qtype A), AAAA (qtype AAAA) or both (qtype 0)
// records of addrs.
func (a *authority) addrRRs(rrs []dns.RR, owner string, addrs []netip.Addr, qtype uint16) []dns.RR {
	for _, ip := range addrs {
		switch {
		case ip.Is4() && qtype != dns.TypeAAAA:
			rrs = append(rrs, &dns.A{Hdr: a.hdr(owner, dns.TypeA, a.set.ttl), A: ip.AsSlice()})
		case ip.Is6() && qtype != dns.TypeA:
			rrs = append(rrs, &dns.AAAA{Hdr: a.hdr(owner, dns.TypeAAAA, a.set.ttl), AAAA: ip.AsSlice()})
		}
	}
	return rrs
}
