package dnsedge

import (
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Message sizes (RFC 1035, RFC 6891, DNS flag day 2020).
const (
	// advertisedUDPSize is the UDP payload size the edge advertises in its
	// OPT record and the most it sends over UDP, which avoids IP fragmentation.
	advertisedUDPSize = 1232
	minUDPSize        = dns.MinMsgSize // 512, for queries without EDNS0
	maxTCPSize        = dns.MaxMsgSize
	// readUDPSize is the server's UDP read buffer; queries are far smaller.
	readUDPSize = 4096
)

// Bits of the DNS header's flags word (RFC 1035 §4.1.1).
const (
	headerQR     = 1 << 15
	opcodeShift  = 11
	opcodeMask   = 0xF
	headerLength = 12
)

// ServeDNS answers one query; it implements [dns.Handler]. It writes nothing
// for a message that is not a query (QR set).
func (e *Edge) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	m := e.respond(r)
	if m == nil {
		e.metrics.dropped.Inc()
		return
	}
	size := maxTCPSize
	if !tcp {
		size = udpSize(r)
		// Over TCP the source is proven by the handshake, so only UDP
		// responses are limited.
		if client, ok := clientAddr(w.RemoteAddr()); ok && e.rrl != nil {
			switch e.rrl.check(client, time.Now()) {
			case rrlDrop:
				e.metrics.rrlDropped.Inc()
				return
			case rrlSlip:
				e.metrics.rrlSlipped.Inc()
				truncate(m)
			}
		}
	}
	fit(m, size)
	var qtype uint16
	if len(r.Question) > 0 {
		qtype = r.Question[0].Qtype
	}
	e.metrics.query(qtype, m.Rcode)
	_ = w.WriteMsg(m) // a failed write is the client's loss; nothing to retry
}

// respond builds the reply to r, or returns nil when r gets none.
func (e *Edge) respond(r *dns.Msg) *dns.Msg {
	if r.Response {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(r) // id, opcode, RD and CD copied; question echoed as sent
	m.Compress = true

	opt, nopt := queryOPT(r)
	if opt != nil {
		m.Extra = append(m.Extra, replyOPT(opt))
	}
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.Question = nil
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(r.Question) != 1 || nopt > 1:
		m.Question = nil
		m.Rcode = dns.RcodeFormatError
		return m
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers // RFC 6891 §6.1.3
		return m
	}
	q := r.Question[0]
	switch {
	case q.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeRefused
		return m
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		// Every edge loads the full snapshot from PostgreSQL; no transfers.
		m.Rcode = dns.RcodeRefused
		return m
	case q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG || q.Qtype == dns.TypeTKEY || q.Qtype == 0:
		m.Rcode = dns.RcodeFormatError
		return m
	}

	ix := e.index.Load()
	if ix == nil {
		// Nothing loaded yet, neither from the snapshot file nor from
		// PostgreSQL: a negative answer now would be cached as a lie.
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	name := dns.Fqdn(strings.ToLower(q.Name))
	ans := e.auth.lookup(ix, name, dns.Fqdn(q.Name), q.Qtype)
	switch ans.result {
	case success:
		m.Authoritative = true
		m.Answer = ans.rrs
		m.Extra = append(ans.extra, m.Extra...)
	case noData:
		m.Authoritative = true
		m.Ns = []dns.RR{e.auth.negativeSOA(ans)}
	case nameError:
		m.Authoritative = true
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{e.auth.negativeSOA(ans)}
	case refused:
		m.Rcode = dns.RcodeRefused
	}
	return m
}

// queryOPT returns the query's OPT record and how many it has (more than
// one is a format error, RFC 6891 §6.1.1).
func queryOPT(r *dns.Msg) (*dns.OPT, int) {
	var opt *dns.OPT
	n := 0
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt == nil {
				opt = o
			}
			n++
		}
	}
	return opt, n
}

// replyOPT is the OPT record of a reply to a query carrying q: our UDP size,
// version 0, the DO bit copied (RFC 3225), no options.
func replyOPT(q *dns.OPT) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(advertisedUDPSize)
	if q.Do() {
		o.SetDo()
	}
	return o
}

// udpSize is the largest UDP reply to r: 512 without EDNS0, else the
// client's buffer size clamped to 512..1232.
func udpSize(r *dns.Msg) int {
	opt, _ := queryOPT(r)
	if opt == nil {
		return minUDPSize
	}
	return min(max(int(opt.UDPSize()), minUDPSize), advertisedUDPSize)
}

// fit makes m fit in size bytes. Additional records go first, since they are
// optional; if the answer still does not fit, the reply carries only the
// question and TC so that the client retries over TCP (RFC 2181 §9: a
// partial RRset must not be sent).
func fit(m *dns.Msg, size int) {
	if m.Len() <= size {
		return
	}
	extra := m.Extra[:0:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	if m.Len() <= size {
		return
	}
	truncate(m)
}

// truncate leaves m with its question and OPT record alone, and TC set.
func truncate(m *dns.Msg) {
	m.Truncated = true
	m.Answer, m.Ns = nil, nil
	extra := m.Extra[:0:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
}

// acceptHeader is the server's first look at a message, from its header
// alone: the basics are decided before the body is parsed.
func (e *Edge) acceptHeader(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&headerQR != 0 {
		e.metrics.dropped.Inc()
		return dns.MsgIgnore
	}
	if int(dh.Bits>>opcodeShift)&opcodeMask != dns.OpcodeQuery {
		e.metrics.query(0, dns.RcodeNotImplemented)
		return dns.MsgRejectNotImplemented
	}
	// A query has one question; the other sections hold at most a record
	// or two (an OPT, a TSIG). Rejecting more here bounds the parsing work
	// a single packet can cause.
	if dh.Qdcount != 1 || dh.Ancount > 1 || dh.Nscount > 1 || dh.Arcount > 2 {
		e.metrics.query(0, dns.RcodeFormatError)
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// invalidMsg is called for messages the server cannot parse: shorter than a
// header (dropped) or with a malformed body (the server sends FORMERR).
func (e *Edge) invalidMsg(m []byte, _ error) {
	if len(m) < headerLength {
		e.metrics.dropped.Inc()
		return
	}
	e.metrics.query(0, dns.RcodeFormatError)
}
