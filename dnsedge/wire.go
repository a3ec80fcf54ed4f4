package dnsedge

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// The UDP fast path answers the common query (one question, class IN, at
// most an OPT record, a name of plain bytes) straight from the wire: it
// reads the question by hand, finds the answer with authority.find, which
// allocates nothing, and writes the reply into a buffer owned by the
// socket. It writes exactly the bytes the general path (miekg/dns's unpack,
// Edge.respond, Pack) would: the same header bits, sections, TTLs and name
// compression, which the differential test checks. Anything else, and any
// reply that would not fit the client's buffer, is left to the general
// path: fastSlow.

// fastAction is what the fast path did with a query.
type fastAction uint8

const (
	// fastSlow: not handled; the general path answers.
	fastSlow fastAction = iota
	// fastReply: the reply is written.
	fastReply
	// fastDrop: no reply; response rate limiting dropped it.
	fastDrop
)

// Header bits (RFC 1035 §4.1.1) and the fixed parts of a query.
const (
	flagAA     = 1 << 10
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	flagCD     = 1 << 4
	opcodeBits = opcodeMask << opcodeShift
	// maxWireName is the longest domain name in wire form (RFC 1035 §2.3.4).
	maxWireName = 255
	// optHeaderLength is an OPT record without options: root owner, type,
	// class (UDP size), TTL (extended rcode, version, flags), rdlength.
	optHeaderLength = 11
	// ednsDO is the DO bit in the flags of an OPT record's TTL.
	ednsDO = 1 << 15
)

// fastPath is the scratch space of one socket's fast path, reused for every
// query it reads; it is never shared between goroutines.
type fastPath struct {
	// name is the question's name in presentation form, lower case; lower
	// is its wire form, lower case.
	name  [maxWireName]byte
	lower [maxWireName]byte
	// target holds the wire form of a CNAME target being written.
	target [maxWireName]byte
	// names are the names written so far in the reply, for compression.
	names  [4]writtenName
	nnames int
	// counts are the socket's query counters.
	counts *queryCounts
}

// writtenName is a name written in the reply, which later names may point
// to: the name in full (uncompressed wire form), where it starts in the
// reply, how many of its bytes were written before a compression pointer
// (or its root label), and where its labels start.
type writtenName struct {
	wire   []byte
	off    int
	upto   int
	starts [4]uint64 // bit i set: a label starts at wire[i]
}

// wireQuery is a query as the fast path reads it.
type wireQuery struct {
	id, flags     uint16
	qname         []byte // wire form, as sent
	qtype, qclass uint16
	edns, do      bool
	size          int // the largest reply the client takes over UDP
}

// parseQuery reads q, which must be a plain query: header bits of a QUERY
// (QR clear), one question whose name has no compression pointer and only
// bytes that need no escaping in presentation form, and nothing else but
// an OPT record of version 0 with no options but those plainOption takes.
// It fills f.name and f.lower and reports whether q is such a query.
func (f *fastPath) parseQuery(q []byte) (wireQuery, bool) {
	var w wireQuery
	if len(q) < headerLength+5 {
		return w, false
	}
	w.id = binary.BigEndian.Uint16(q)
	w.flags = binary.BigEndian.Uint16(q[2:])
	if w.flags&(headerQR|opcodeBits) != 0 || // a response, or not QUERY
		binary.BigEndian.Uint16(q[4:]) != 1 || // QDCOUNT
		binary.BigEndian.Uint16(q[6:]) != 0 || // ANCOUNT
		binary.BigEndian.Uint16(q[8:]) != 0 { // NSCOUNT
		return w, false
	}
	arcount := binary.BigEndian.Uint16(q[10:])
	if arcount > 1 {
		return w, false
	}
	off := headerLength
	n := 0 // length of the presentation form
	for {
		if off >= len(q) {
			return w, false
		}
		l := int(q[off])
		if l == 0 {
			break
		}
		if l > 63 || off+1+l > len(q) || off+1+l-headerLength >= maxWireName {
			return w, false // a pointer, an extended label type, or too long
		}
		f.lower[off-headerLength] = byte(l)
		for i := off + 1; i <= off+l; i++ {
			c := q[i]
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c <= ' ' || c > '~' || c == '.' || c == '\'' || c == '@' || c == ';' ||
				c == '(' || c == ')' || c == '"' || c == '\\':
				return w, false // presentation form would escape it
			}
			f.lower[i-headerLength] = c
			f.name[n] = c
			n++
		}
		f.name[n] = '.'
		n++
		off += 1 + l
	}
	f.lower[off-headerLength] = 0
	off++
	if n == 0 {
		f.name[0] = '.' // nameString reads one byte for the root
	}
	w.qname = q[headerLength:off]
	if off+4 > len(q) {
		return w, false
	}
	w.qtype = binary.BigEndian.Uint16(q[off:])
	w.qclass = binary.BigEndian.Uint16(q[off+2:])
	off += 4
	w.size = minUDPSize
	if arcount == 1 {
		// An OPT record: root owner, type OPT, then class (UDP size), TTL
		// (extended rcode, version, flags) and options.
		if off+optHeaderLength > len(q) || q[off] != 0 || binary.BigEndian.Uint16(q[off+1:]) != dns.TypeOPT {
			return w, false
		}
		size := binary.BigEndian.Uint16(q[off+3:])
		if q[off+5] != 0 || q[off+6] != 0 { // extended rcode, version
			return w, false
		}
		w.do = binary.BigEndian.Uint16(q[off+7:])&ednsDO != 0
		rdlen := int(binary.BigEndian.Uint16(q[off+9:]))
		off += optHeaderLength
		if off+rdlen != len(q) {
			return w, false
		}
		for off < len(q) {
			if off+4 > len(q) {
				return w, false
			}
			code := binary.BigEndian.Uint16(q[off:])
			l := int(binary.BigEndian.Uint16(q[off+2:]))
			off += 4
			if off+l > len(q) || !plainOption(code, q[off:off+l]) {
				return w, false
			}
			off += l
		}
		w.edns = true
		w.size = min(max(int(size), minUDPSize), advertisedUDPSize)
	}
	if off != len(q) {
		return w, false
	}
	return w, true
}

// plainOption reports whether an EDNS option is one the fast path takes,
// ignoring it as the general path does: a cookie, padding or a client
// subnet that miekg/dns parses without error. The general path answers
// the others, and FORMERR to those it cannot parse.
func plainOption(code uint16, data []byte) bool {
	switch code {
	case dns.EDNS0COOKIE, dns.EDNS0PADDING:
		return true
	case dns.EDNS0SUBNET:
		if len(data) < 4 {
			return false
		}
		family, source, scope := binary.BigEndian.Uint16(data), data[2], data[3]
		switch family {
		case 0:
			return source == 0
		case 1:
			return source <= 32 && scope <= 32
		case 2:
			return source <= 128 && scope <= 128
		}
	}
	return false
}

// nameString is f.name as a string, without a copy. The string is valid
// only until the next query overwrites f.name: it must not be kept, which
// holds for authority.find, whose answer is used and dropped within
// answerFast.
func (f *fastPath) nameString(w *wireQuery) string {
	n := len(w.qname) - 1
	if n == 0 {
		n = 1
	}
	return unsafe.String(&f.name[0], n) //nolint:gosec // G103: a copy-free view of f.name, used and dropped within answerFast (see above)
}

// answerFast answers the UDP query q from the address from into out, whose
// capacity must be at least advertisedUDPSize, and returns the reply. It
// answers exactly as ServeDNS would, or returns fastSlow.
func (e *Edge) answerFast(f *fastPath, q, out []byte, from netip.Addr) ([]byte, fastAction) {
	w, ok := f.parseQuery(q)
	if !ok || w.qclass != dns.ClassINET {
		return nil, fastSlow
	}
	switch w.qtype {
	case 0, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeAXFR, dns.TypeIXFR:
		return nil, fastSlow // errors and refusals: the general path
	case dns.TypeNS:
		return nil, fastSlow // additional records; rare
	}
	ix := e.index.Load()
	if ix == nil {
		return nil, fastSlow
	}
	ans := e.auth.find(ix, f.nameString(&w), w.qtype)

	// Header and question, as Msg.SetReply and Edge.respond set them.
	b := out[:headerLength]
	flags := uint16(headerQR) | w.flags&(flagRD|flagCD)
	rcode := dns.RcodeSuccess
	switch ans.result {
	case success, noData:
		flags |= flagAA
	case nameError:
		flags |= flagAA
		rcode = dns.RcodeNameError
	case refused:
		rcode = dns.RcodeRefused
	}
	flags |= uint16(rcode)
	binary.BigEndian.PutUint16(b[0:], w.id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], 1)
	clear(b[6:12])
	b = append(b, w.qname...)
	b = binary.BigEndian.AppendUint16(b, w.qtype)
	b = binary.BigEndian.AppendUint16(b, w.qclass)
	question := len(b)
	f.nnames = 0
	f.record(w.qname, headerLength, len(w.qname)-1)

	wr := wireWriter{b: b, limit: w.size}
	if w.edns {
		wr.limit -= optHeaderLength
	}
	var an, ns uint16
	switch ans.result {
	case success:
		an = e.auth.appendRecords(&wr, f, &ans, &w)
	case noData, nameError:
		apex := f.lower[len(w.qname)-len(ans.zone)-1 : len(w.qname)]
		e.auth.appendSOA(&wr, f, apex, ans.serial, e.auth.negativeTTL(ans))
		ns = 1
	}
	if wr.fail {
		return nil, fastSlow // does not fit, or not plain: the general path truncates
	}
	b = wr.b
	if e.rrl != nil {
		switch e.rrl.check(from, time.Now()) {
		case rrlDrop:
			e.metrics.rrlDropped.Inc()
			return nil, fastDrop
		case rrlSlip:
			e.metrics.rrlSlipped.Inc()
			// As truncate: the question and OPT alone, TC set.
			binary.BigEndian.PutUint16(b[2:], flags|flagTC)
			b = b[:question]
			an, ns = 0, 0
		}
	}
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	if w.edns {
		binary.BigEndian.PutUint16(b[10:], 1)
		var ttl uint16
		if w.do {
			ttl = ednsDO
		}
		b = append(b, 0, 0, byte(dns.TypeOPT), byte(advertisedUDPSize>>8), byte(advertisedUDPSize&0xff),
			0, 0, byte(ttl>>8), 0, 0, 0)
	}
	f.counts.add(w.qtype, rcode)
	return b, fastReply
}

// record notes a name written at off, of which the first upto bytes were
// written in full, so that later names can point into it.
func (f *fastPath) record(wire []byte, off, upto int) {
	if f.nnames == len(f.names) {
		return // later names are written without pointers into it; see name
	}
	n := &f.names[f.nnames]
	f.nnames++
	n.wire, n.off, n.upto = wire, off, upto
	n.starts = [4]uint64{}
	for i := 0; i < upto; i += int(wire[i]) + 1 {
		n.starts[i/64] |= 1 << (i % 64)
	}
}

// wireWriter appends records to a reply, up to limit bytes. Past the limit,
// or on something the fast path does not write, it sets fail and stops.
type wireWriter struct {
	b     []byte
	limit int
	fail  bool
}

func (w *wireWriter) room(n int) bool {
	if w.fail || len(w.b)+n > w.limit {
		w.fail = true
		return false
	}
	return true
}

// name writes a domain name given in wire form, compressed as miekg/dns
// compresses: the longest suffix, at a label boundary, equal byte for byte
// (so case-sensitively) to a suffix already written becomes a pointer to
// it. The root is never compressed.
func (w *wireWriter) name(f *fastPath, wire []byte) {
	start := len(w.b)
	for i := 0; wire[i] != 0; i += int(wire[i]) + 1 {
		suffix := wire[i:]
		for k := range f.nnames {
			n := &f.names[k]
			j := len(n.wire) - len(suffix)
			if j < 0 || j >= n.upto || n.starts[j/64]&(1<<(j%64)) == 0 || !bytes.Equal(n.wire[j:], suffix) {
				continue
			}
			if !w.room(i + 2) {
				return
			}
			w.b = append(w.b, wire[:i]...)
			ptr := n.off + j
			w.b = append(w.b, 0xC0|byte(ptr>>8), byte(ptr)) //nolint:gosec // G115: the fast path's UDP replies are at most advertisedUDPSize (1232) bytes, so an offset fits a 14-bit pointer
			f.record(wire, start, i)
			return
		}
	}
	if !w.room(len(wire)) {
		return
	}
	w.b = append(w.b, wire...)
	f.record(wire, start, len(wire)-1)
}

// header writes the fixed part of a record after its owner, with a zero
// rdlength, and returns where the rdlength is.
func (w *wireWriter) header(rrtype uint16, ttl uint32) int {
	if !w.room(10) {
		return 0
	}
	w.b = binary.BigEndian.AppendUint16(w.b, rrtype)
	w.b = binary.BigEndian.AppendUint16(w.b, dns.ClassINET)
	w.b = binary.BigEndian.AppendUint32(w.b, ttl)
	w.b = append(w.b, 0, 0)
	return len(w.b) - 2
}

// rdlength sets the rdlength at at to the bytes written since.
func (w *wireWriter) rdlength(at int) {
	if !w.fail {
		binary.BigEndian.PutUint16(w.b[at:], uint16(len(w.b)-at-2)) //nolint:gosec // G115: the fast path's UDP replies are at most advertisedUDPSize (1232) bytes (w.room)
	}
}

// owner writes the owner of an answer record: the question's name as sent,
// which miekg/dns compresses to a pointer to the question (the root alone
// is never compressed).
func (w *wireWriter) owner(q *wireQuery) {
	if len(q.qname) == 1 {
		if w.room(1) {
			w.b = append(w.b, 0)
		}
		return
	}
	if w.room(2) {
		w.b = append(w.b, 0xC0, headerLength)
	}
}

// appendRecords writes the answer section of a successful answer, as
// authority.records builds it, and returns the number of records.
func (a *authority) appendRecords(w *wireWriter, f *fastPath, ans *answer, q *wireQuery) uint16 {
	n := &ans.node
	if n.cname != "" {
		w.owner(q)
		at := w.header(dns.TypeCNAME, a.set.ttl)
		w.name(f, appendWireName(f.target[:0], n.cname))
		w.rdlength(at)
		return 1
	}
	switch q.qtype {
	case dns.TypeANY:
		switch {
		case n.hasTXT():
			a.appendTXT(w, n, q)
			return 1
		case n.addrs != nil:
			return a.appendAddrs(w, n.addrs, q, 0)
		case n.apex:
			w.owner(q)
			a.appendSOAData(w, f, ans.serial, a.set.ttl)
			return 1
		}
	case dns.TypeTXT:
		a.appendTXT(w, n, q)
		return 1
	case dns.TypeSOA:
		w.owner(q)
		a.appendSOAData(w, f, ans.serial, a.set.ttl)
		return 1
	case dns.TypeA, dns.TypeAAAA:
		return a.appendAddrs(w, n.addrs, q, q.qtype)
	}
	w.fail = true // not written here (NS is left to the general path)
	return 0
}

// appendTXT writes the node's TXT record. A character-string holding a
// backslash is in the escaped form miekg/dns unescapes when packing; the
// fast path leaves such rare records to it.
func (a *authority) appendTXT(w *wireWriter, n *node, q *wireQuery) {
	w.owner(q)
	at := w.header(dns.TypeTXT, a.txtTTL(n))
	if n.spf.IsValid() {
		if !w.room(1 + len("v=spf1 ip6:") + 39 + len(" -all")) {
			return
		}
		l := len(w.b)
		w.b = spfanswer.AppendAddressRecord(append(w.b, 0), n.spf)
		w.b[l] = byte(len(w.b) - l - 1) //nolint:gosec // G115: an SPF hit of at most 55 bytes, reserved by w.room above
	} else {
		for _, s := range n.txt {
			if !w.room(1+len(s)) || strings.IndexByte(s, '\\') >= 0 {
				w.fail = true
				return
			}
			w.b = append(w.b, byte(len(s))) //nolint:gosec // G115: txtStrings cuts at 255 bytes; a string that escaping lengthened was refused just above
			w.b = append(w.b, s...)
		}
	}
	w.rdlength(at)
}

// appendAddrs writes the A (qtype A), AAAA (qtype AAAA) or both (qtype 0)
// records of addrs, as authority.addrRRs builds them.
func (a *authority) appendAddrs(w *wireWriter, addrs []netip.Addr, q *wireQuery, qtype uint16) uint16 {
	var count uint16
	for _, ip := range addrs {
		switch {
		case ip.Is4() && qtype != dns.TypeAAAA:
			w.owner(q)
			at := w.header(dns.TypeA, a.set.ttl)
			if w.room(4) {
				b := ip.As4()
				w.b = append(w.b, b[:]...)
			}
			w.rdlength(at)
			count++
		case ip.Is6() && qtype != dns.TypeA:
			w.owner(q)
			at := w.header(dns.TypeAAAA, a.set.ttl)
			if w.room(16) {
				b := ip.As16()
				w.b = append(w.b, b[:]...)
			}
			w.rdlength(at)
			count++
		}
	}
	return count
}

// appendSOA writes the SOA record of the zone whose apex is apex (wire
// form, lower case), as authority.soa builds it.
func (a *authority) appendSOA(w *wireWriter, f *fastPath, apex []byte, serial, ttl uint32) {
	w.name(f, apex)
	a.appendSOAData(w, f, serial, ttl)
}

// appendSOAData writes an SOA record after its owner.
func (a *authority) appendSOAData(w *wireWriter, f *fastPath, serial, ttl uint32) {
	at := w.header(dns.TypeSOA, ttl)
	w.name(f, a.mnameWire)
	w.name(f, a.rnameWire)
	if w.room(20) {
		w.b = binary.BigEndian.AppendUint32(w.b, serial)
		w.b = binary.BigEndian.AppendUint32(w.b, a.set.refresh)
		w.b = binary.BigEndian.AppendUint32(w.b, a.set.retry)
		w.b = binary.BigEndian.AppendUint32(w.b, a.set.expire)
		w.b = binary.BigEndian.AppendUint32(w.b, a.set.negTTL)
	}
	w.rdlength(at)
}

// appendWireName appends the wire form of name, a fully qualified name in
// presentation form whose labels need no escaping (as canonicalName
// guarantees).
func appendWireName(b []byte, name string) []byte {
	for len(name) > 0 && name != "." {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			i = len(name)
		}
		b = append(b, byte(i)) //nolint:gosec // G115: a label of a valid name is at most 63 bytes
		b = append(b, name[:i]...)
		name = name[min(i+1, len(name)):]
	}
	return append(b, 0)
}
