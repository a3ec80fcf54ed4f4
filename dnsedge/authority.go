package dnsedge

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/rampartmail/rampart/internal/spfanswer"
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

// The first labels of the zones and subtrees the edge serves.
const (
	// dmarcLabel starts the delegated zone _dmarc.<domain> and the edge
	// zone's subtree <domain>._dmarc.<edge zone> (the CNAME targets).
	dmarcLabel = "_dmarc"
	// domainkeyLabel and bimiLabel start the delegated zones
	// _domainkey.<domain> and _bimi.<domain>.
	domainkeyLabel = "_domainkey"
	bimiLabel      = "_bimi"
	// nspfLabel starts the edge zone's subtree <domain>._nspf.<edge zone>,
	// and rspfLabel <domain>._rspf.<edge zone>.
	nspfLabel = spfanswer.NSPFLabel
	rspfLabel = spfanswer.RSPFLabel
	// reportLabel starts the report authorisation zone
	// _report._dmarc.<reports domain>.
	reportLabel = "_report"
	// bimiSelector is the one BIMI selector served.
	bimiSelector = "default"
)

// Fixed records.
var (
	// dkimRevoked is the key at every selector of a blocked domain: an
	// empty p= revokes it (RFC 6376 §3.6.1).
	dkimRevoked = []string{"v=DKIM1; p="}
	// reportAuthorised authorises external reports (RFC 7489 §7.1).
	reportAuthorised = []string{"v=DMARC1"}
)

// zoneKind tells the delegated zones of a hosted domain apart.
type zoneKind uint8

const (
	noZone zoneKind = iota
	dmarcZone
	domainkeyZone
	bimiZone
)

func delegatedZone(label string) zoneKind {
	switch label {
	case dmarcLabel:
		return dmarcZone
	case domainkeyLabel:
		return domainkeyZone
	case bimiLabel:
		return bimiZone
	}
	return noZone
}

// authority answers questions from an index for the zones the edge serves:
// the edge zone, the report authorisation zone when configured and, for every
// hosted domain D, the delegated zones _dmarc.D, _domainkey.D and _bimi.D.
// Its own fields come from the configuration and never change.
type authority struct {
	set settings
	// xApex is "<label>.<edge zone>." and xSuffix "." + xApex for the edge
	// zone's subtrees, so that <domain>.<label>.<edge zone>. is found by
	// one suffix test.
	dmarcApex, dmarcSuffix string
	spfApex, spfSuffix     string
	nspfApex, nspfSuffix   string
	rspfApex, rspfSuffix   string
	// reportsSuffix is "." + set.reportsApex, or "" when not served.
	reportsSuffix string
	// inZoneSuffix is ".<edge zone>.": a name ending with it is below the
	// edge zone's apex.
	inZoneSuffix string
	// hosts are the name servers inside the edge zone that have addresses,
	// by fully qualified lower-case name; hostParents are the empty
	// non-terminals between them and the apex.
	hosts       map[string][]netip.Addr
	hostParents map[string]bool
	// edgeShortcut is set when a hosted domain cannot make the edge zone's
	// apex its own (the apex's first label is no _dmarc, _domainkey or
	// _bimi), so that find may answer names in the edge zone without the
	// walk; reportsInZone when the report zone is the edge zone or lies
	// inside it.
	edgeShortcut, reportsInZone bool
	// mnameWire and rnameWire are the SOA's MNAME (the first name server)
	// and RNAME (the hostmaster) in wire form, for the UDP fast path.
	mnameWire, rnameWire []byte
}

func newAuthority(s settings) *authority {
	a := &authority{
		set:          s,
		dmarcApex:    dmarcLabel + "." + s.zone,
		spfApex:      spfLabel + "." + s.zone,
		nspfApex:     nspfLabel + "." + s.zone,
		rspfApex:     rspfLabel + "." + s.zone,
		inZoneSuffix: "." + s.zone,
		hosts:        map[string][]netip.Addr{},
		hostParents:  map[string]bool{},
		mnameWire:    appendWireName(nil, s.nameServers[0].name),
		rnameWire:    appendWireName(nil, s.hostmaster),
	}
	a.dmarcSuffix = "." + a.dmarcApex
	a.spfSuffix = "." + a.spfApex
	a.nspfSuffix = "." + a.nspfApex
	a.rspfSuffix = "." + a.rspfApex
	if s.reportsApex != "" {
		a.reportsSuffix = "." + s.reportsApex
		a.reportsInZone = s.reportsApex == s.zone || strings.HasSuffix(s.reportsApex, a.inZoneSuffix)
	}
	first, _, _ := strings.Cut(s.zone, ".")
	a.edgeShortcut = delegatedZone(first) == noZone
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
	// serial; both are unset when result is refused. zone is a suffix of
	// the name looked up (it may share its memory).
	zone   string
	serial uint32
	// negTTL, when set, caps the TTL of a negative answer's SOA: the SPF
	// subtrees' negative answers last no longer than their records.
	negTTL uint32
	// node holds the records that answer when result is success.
	node node
	// rrs and extra are the answer and additional sections, built by
	// lookup (find leaves them empty).
	rrs   []dns.RR
	extra []dns.RR
}

// node is a name that exists in one of the zones, with its records.
type node struct {
	apex bool     // zone apex: SOA and NS
	txt  []string // TXT character-strings, nil for none
	// spf, when valid, is the address of a per-query SPF answer
	// "v=spf1 ip4:<spf> -all" (ip6: for IPv6), the node's TXT record in
	// place of txt: it is written straight into the reply.
	spf   netip.Addr
	ttl   uint32       // TTL of the TXT record; 0 for the configured TTL
	cname string       // CNAME target; when set, the node has nothing else
	addrs []netip.Addr // A and AAAA
}

// hasTXT reports whether the node has a TXT record.
func (n *node) hasTXT() bool { return n.txt != nil || n.spf.IsValid() }

// lookup answers qtype at name with the records built: find, then records.
// name must be lower case and fully qualified; owner is the name as the
// client sent it (0x20 case kept), used as the owner of the answer records.
func (a *authority) lookup(ix *index, name, owner string, qtype uint16) answer {
	ans := a.find(ix, name, qtype)
	if ans.result == success {
		ans.rrs, ans.extra = a.records(ans, owner, qtype)
	}
	return ans
}

// find answers qtype at name, as lookup does, without building records: the
// answer's node says what they are. It allocates nothing, so that the UDP
// fast path can write the records straight into the reply. name must be
// lower case and fully qualified.
func (a *authority) find(ix *index, name string, qtype uint16) answer {
	if a.edgeShortcut && (name == a.set.zone || strings.HasSuffix(name, a.inZoneSuffix)) {
		// A name in the edge zone, the SPF names with their 40 labels
		// among them: no hosted domain can take it, so only the report
		// zone, when it lies inside the edge zone, is a longer match.
		// This is what walk finds, without the walk.
		if a.reportsInZone && (name == a.set.reportsApex || strings.HasSuffix(name, a.reportsSuffix)) {
			return a.inReportsZone(ix, name, qtype)
		}
		return a.inEdgeZone(ix, name, qtype)
	}
	return a.walk(ix, name, qtype)
}

// walk is find for any name: the longest match, from the full name towards
// the root, stopping at the first suffix that is a zone apex.
func (a *authority) walk(ix *index, name string, qtype uint16) answer {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		suffix := name[off:]
		if suffix == a.set.reportsApex {
			return a.inReportsZone(ix, name, qtype)
		}
		// <label>.<domain>. for a hosted domain. A hosted domain inside the
		// edge zone cannot take names out of it: the edge zone's own names
		// win. (A keyword label has no backslash, so the dot after it is a
		// real label boundary.)
		if i := strings.IndexByte(suffix, '.'); i > 0 && i < len(suffix)-1 && !strings.HasSuffix(suffix, a.inZoneSuffix) {
			if kind := delegatedZone(suffix[:i]); kind != noZone {
				if d, ok := ix.domains.get(suffix[i+1 : len(suffix)-1]); ok {
					return a.inDomainZone(kind, d, suffix, name, qtype)
				}
			}
		}
		if suffix == a.set.zone {
			return a.inEdgeZone(ix, name, qtype)
		}
	}
	return answer{result: refused}
}

// inDomainZone answers in one of the delegated zones of d, whose apex is
// apex and whose SOA serial is that of d's row:
//
//	_dmarc.D       apex, TXT: the DMARC record
//	_domainkey.D   apex; <selector>._domainkey.D TXT or CNAME; for a blocked
//	               domain, a revoked key at every name below the apex
//	_bimi.D        apex; default._bimi.D TXT, when not withheld
func (a *authority) inDomainZone(kind zoneKind, d *domain, apex, name string, qtype uint16) answer {
	ans := answer{zone: apex, serial: uint32(d.serial)} //nolint:gosec // G115: SOA serials are 32-bit sequence numbers (RFC 1982); the low 32 bits are the serial
	if name == apex {
		n := node{apex: true}
		if kind == dmarcZone {
			n.txt = d.dmarcTXT
		}
		return a.fromNode(ans, n, qtype)
	}
	host := name[:len(name)-len(apex)-1]
	switch kind {
	case domainkeyZone:
		if d.blocked {
			return a.fromNode(ans, node{txt: dkimRevoked}, qtype)
		}
		if k, ok := d.selectors[host]; ok {
			return a.fromNode(ans, node{txt: k.txt, cname: k.cname}, qtype)
		}
		if d.selectorParents[host] {
			ans.result = noData
			return ans
		}
	case bimiZone:
		if host == bimiSelector {
			// A withheld record (nil) is NODATA: the name is the one
			// selector served, its record held back until the API
			// publishes it.
			return a.fromNode(ans, node{txt: d.bimiTXT}, qtype)
		}
	}
	ans.result = nameError
	return ans
}

// inReportsZone answers in _report._dmarc.<reports domain>: its apex and
// <domain>._report._dmarc.<reports domain> for every hosted domain.
func (a *authority) inReportsZone(ix *index, name string, qtype uint16) answer {
	ans := answer{zone: a.set.reportsApex, serial: uint32(ix.serial)} //nolint:gosec // G115: SOA serials are 32-bit sequence numbers (RFC 1982); the low 32 bits are the serial
	if name == a.set.reportsApex {
		return a.fromNode(ans, node{apex: true}, qtype)
	}
	host := name[:len(name)-len(a.reportsSuffix)]
	if d, ok := ix.domains.get(host); ok {
		if d.removed {
			// It stays a name (its parents counted it), with no record.
			ans.result = noData
			return ans
		}
		return a.fromNode(ans, node{txt: reportAuthorised}, qtype)
	}
	if p, _ := ix.parents.get(host); p.all > 0 {
		ans.result = noData
		return ans
	}
	ans.result = nameError
	return ans
}

// inEdgeZone answers in the edge zone: its apex, the name servers'
// addresses and, for every hosted domain, <domain>._dmarc.<edge zone>,
// <domain>._nspf.<edge zone> and the per-query SPF names under
// _spf.<edge zone>.
func (a *authority) inEdgeZone(ix *index, name string, qtype uint16) answer {
	ans := answer{zone: a.set.zone, serial: uint32(ix.serial)} //nolint:gosec // G115: SOA serials are 32-bit sequence numbers (RFC 1982); the low 32 bits are the serial
	if strings.HasSuffix(name, a.spfSuffix) || strings.HasSuffix(name, a.rspfSuffix) || strings.HasSuffix(name, a.nspfSuffix) ||
		name == a.spfApex || name == a.rspfApex || name == a.nspfApex {
		ans.negTTL = a.set.spfTTL
	}
	switch {
	case name == a.set.zone:
		return a.fromNode(ans, node{apex: true}, qtype)
	case strings.HasSuffix(name, a.spfSuffix):
		// Every name below _spf exists and has exactly one TXT record: an
		// empty answer or NXDOMAIN would make the customer's SPF record a
		// permerror.
		txt, ip := spfLookup(ix, name[:len(name)-len(a.spfSuffix)])
		return a.fromNode(ans, node{txt: txt, spf: ip, ttl: a.set.spfTTL}, qtype)
	case name == a.spfApex:
		ans.result = noData
		return ans
	case strings.HasSuffix(name, a.rspfSuffix):
		// The SPF records below _rspf and _nspf have the per-query
		// answers' TTL, so that a change reaches receivers as soon.
		host := name[:len(name)-len(a.rspfSuffix)]
		if d, ok := ix.domains.get(host); ok {
			return a.fromNode(ans, node{txt: d.rspfAnswer(), ttl: a.set.spfTTL}, qtype)
		}
		if p, _ := ix.parents.get(host); p.all > 0 {
			ans.result = noData
			return ans
		}
	case name == a.rspfApex:
		if ix.numDomains() > 0 {
			ans.result = noData
			return ans
		}
	case strings.HasSuffix(name, a.nspfSuffix):
		host := name[:len(name)-len(a.nspfSuffix)]
		k := 1
		if n, rest, ok := nspfPart(host); ok {
			k, host = n, rest
		}
		if d, ok := ix.domains.get(host); ok && d.hasNSPF() {
			if txt := d.nspfAnswer(k); txt != nil {
				return a.fromNode(ans, node{txt: txt, ttl: a.set.spfTTL}, qtype)
			}
		}
		if p, _ := ix.parents.get(host); p.nspf > 0 && k == 1 {
			ans.result = noData
			return ans
		}
	case name == a.nspfApex:
		if ix.nspfNames > 0 {
			ans.result = noData
			return ans
		}
	case strings.HasSuffix(name, a.dmarcSuffix):
		host := name[:len(name)-len(a.dmarcSuffix)]
		if d, ok := ix.domains.get(host); ok {
			return a.fromNode(ans, node{txt: d.dmarcTXT}, qtype)
		}
		if p, _ := ix.parents.get(host); p.all > 0 {
			ans.result = noData
			return ans
		}
	case name == a.dmarcApex:
		if ix.numDomains() > 0 {
			ans.result = noData
			return ans
		}
	case a.hosts[name] != nil:
		return a.fromNode(ans, node{addrs: a.hosts[name]}, qtype)
	case a.hostParents[name]:
		ans.result = noData
		return ans
	}
	ans.result = nameError
	return ans
}

// nspfPart reads a host below _nspf of the form _<k>.<domain>, the k-th
// (k >= 2) _nspf record of domain: a domain name has no underscore labels.
func nspfPart(host string) (k int, domain string, ok bool) {
	label, rest, found := strings.Cut(host, ".")
	if !found || len(label) < 2 || len(label) > 5 || label[0] != '_' || label[1] == '0' {
		return 0, "", false
	}
	for _, c := range label[1:] {
		if c < '0' || c > '9' {
			return 0, "", false
		}
		k = k*10 + int(c-'0')
	}
	if k < 2 {
		return 0, "", false
	}
	return k, rest, true
}

// fromNode answers qtype from the records of an existing node: success
// when it has records of that type (or a CNAME), else NODATA.
func (a *authority) fromNode(ans answer, n node, qtype uint16) answer {
	ans.node = n
	ans.result = noData
	if n.has(qtype) {
		ans.result = success
	}
	return ans
}

// has reports whether the node answers qtype with at least one record.
func (n *node) has(qtype uint16) bool {
	if n.cname != "" {
		return true
	}
	switch qtype {
	case dns.TypeANY:
		return n.hasTXT() || len(n.addrs) > 0 || n.apex
	case dns.TypeTXT:
		return n.hasTXT()
	case dns.TypeSOA, dns.TypeNS:
		return n.apex
	case dns.TypeA, dns.TypeAAAA:
		for _, ip := range n.addrs {
			if ip.Is4() == (qtype == dns.TypeA) {
				return true
			}
		}
	}
	return false
}

// txtTTL is the TTL of the node's TXT record.
func (a *authority) txtTTL(n *node) uint32 {
	if n.ttl != 0 {
		return n.ttl
	}
	return a.set.ttl
}

// records builds the answer and additional sections of a successful
// answer, with owner as the owner of the answer records.
func (a *authority) records(ans answer, owner string, qtype uint16) (rrs, extra []dns.RR) {
	n := &ans.node
	if n.cname != "" {
		// RFC 1034 §3.6.2: a CNAME answers every type. Its target is
		// outside our zones, so the resolver follows it.
		return []dns.RR{&dns.CNAME{Hdr: a.hdr(owner, dns.TypeCNAME, a.set.ttl), Target: n.cname}}, nil
	}
	switch qtype {
	case dns.TypeANY:
		// RFC 8482: answer one RRset rather than everything the node has.
		switch {
		case n.hasTXT():
			rrs = append(rrs, a.txt(owner, n, a.txtTTL(n)))
		case n.addrs != nil:
			rrs = a.addrRRs(rrs, owner, n.addrs, 0)
		case n.apex:
			rrs = append(rrs, a.soa(owner, ans.serial, a.set.ttl))
		}
	case dns.TypeTXT:
		rrs = append(rrs, a.txt(owner, n, a.txtTTL(n)))
	case dns.TypeSOA:
		rrs = append(rrs, a.soa(owner, ans.serial, a.set.ttl))
	case dns.TypeNS:
		for _, ns := range a.set.nameServers {
			rrs = append(rrs, &dns.NS{Hdr: a.hdr(owner, dns.TypeNS, a.set.ttl), Ns: ns.name})
		}
		// Addresses of the name servers we serve, as resolvers expect
		// next to an NS RRset; dropped first when space runs short.
		for _, ns := range a.set.nameServers {
			extra = a.addrRRs(extra, ns.name, a.hosts[ns.name], 0)
		}
	case dns.TypeA, dns.TypeAAAA:
		rrs = a.addrRRs(rrs, owner, n.addrs, qtype)
	}
	return rrs, extra
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

// negativeSOA is the SOA for the authority section of an NXDOMAIN or NODATA
// answer; a resolver caches the answer for the smaller of the SOA's TTL and
// MINIMUM (RFC 2308 §5).
func (a *authority) negativeSOA(ans answer) *dns.SOA {
	return a.soa(ans.zone, ans.serial, a.negativeTTL(ans))
}

// negativeTTL is the TTL of a negative answer's SOA: the TTL or the SOA
// MINIMUM, whichever is smaller, and in the SPF subtrees at most the SPF
// answers' TTL, so that a name that appears (a domain published, a record
// split in two) reaches receivers as soon as a changed one.
func (a *authority) negativeTTL(ans answer) uint32 {
	ttl := min(a.set.ttl, a.set.negTTL)
	if ans.negTTL != 0 {
		ttl = min(ttl, ans.negTTL)
	}
	return ttl
}

// txt builds the node's TXT record; the character-strings are shared with
// the index, which is fine because packing only reads them.
func (a *authority) txt(owner string, n *node, ttl uint32) *dns.TXT {
	txt := n.txt
	if n.spf.IsValid() {
		txt = []string{string(spfanswer.AppendAddressRecord(nil, n.spf))}
	}
	return &dns.TXT{Hdr: a.hdr(owner, dns.TypeTXT, ttl), Txt: txt}
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
