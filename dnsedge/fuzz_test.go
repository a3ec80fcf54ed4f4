package dnsedge

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps the packed reply, as the
// server would send it.
type recorder struct {
	tcp  bool
	wire []byte
	err  error
}

func (r *recorder) LocalAddr() net.Addr { return r.RemoteAddr() }
func (r *recorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53000}
}
func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.wire, r.err = m.Pack()
	return r.err
}
func (r *recorder) Write(b []byte) (int, error) {
	r.wire = append([]byte(nil), b...)
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// FuzzHandler feeds raw wire bytes through the paths the server takes: over
// UDP the fast path first (answerFast), then the header check, miekg/dns's
// parser and ServeDNS. Messages the header check or the parser turn away
// are answered (or dropped) by miekg/dns itself. No input may panic; an
// accepted query always gets a reply that parses, has the query's id and
// fits the transport; and what the fast path answers, it answers byte for
// byte as the general path does.
func FuzzHandler(f *testing.F) {
	e, err := New(Config{Zone: testZone, NameServers: testNameServers(), DatabaseURL: "host=/nonexistent",
		// Slip 1: a limited reply is sent truncated, never dropped.
		ReportsDomain: "reports.rampart.test", RRLRate: 1000, RRLSlip: 1}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	e.publish(sampleIndex(f))

	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_dmarc.example.com.", dns.TypeTXT},
		{"_DMARC.Example.COM.", dns.TypeANY},
		{"_dmarc.long.example.", dns.TypeTXT},
		{"long.example._dmarc.edge.rampart.test.", dns.TypeTXT},
		{"deep.example._dmarc.edge.rampart.test.", dns.TypeTXT},
		{"edge.rampart.test.", dns.TypeNS},
		{"ns1.edge.rampart.test.", dns.TypeAAAA},
		{"x._dmarc.example.com.", dns.TypeSOA},
		{"example.org.", dns.TypeA},
		{`a\.b._dmarc.example.com.`, dns.TypeTXT},
		// The per-query SPF names, _nspf, DKIM, BIMI and report
		// authorisation.
		{"10.1.2.3._ip.mx._ehlo.example.com._spf.edge.rampart.test.", dns.TypeTXT},
		{nibbles(netip.MustParseAddr("2001:db8:1::1")) + "._ip.mx._ehlo.example.com._spf.edge.rampart.test.", dns.TypeTXT},
		{`203.0.113.9._ip.a\.b\032._ip._ehlo.mta.mailer.example._ehlo.example.com._spf.edge.rampart.test.`, dns.TypeANY},
		{"0.2.10._ip.out.vendor.example._ehlo.blocked.example._spf.edge.rampart.test.", dns.TypeA},
		{"example.com._nspf.edge.rampart.test.", dns.TypeTXT},
		{"deep.example._nspf.edge.rampart.test.", dns.TypeTXT},
		{"_2.example.com._nspf.edge.rampart.test.", dns.TypeTXT},
		{"_02.example.com._nspf.edge.rampart.test.", dns.TypeTXT},
		{"10.1.2.3._ip.example.com._spf.edge.rampart.test.", dns.TypeTXT},
		{"mailer.example._ehlo.example.com._spf.edge.rampart.test.", dns.TypeTXT},
		{"example.com._rspf.edge.rampart.test.", dns.TypeTXT},
		{"blocked.example._rspf.edge.rampart.test.", dns.TypeANY},
		{"_rspf.edge.rampart.test.", dns.TypeA},
		{"s1._domainkey.example.com.", dns.TypeTXT},
		{"s2._domainkey.example.com.", dns.TypeA},
		{"b._domainkey.example.com.", dns.TypeTXT},
		{"any._domainkey.blocked.example.", dns.TypeTXT},
		{"_domainkey.example.com.", dns.TypeNS},
		{"default._bimi.example.com.", dns.TypeTXT},
		{"example.com._report._dmarc.reports.rampart.test.", dns.TypeTXT},
		{"_report._dmarc.reports.rampart.test.", dns.TypeSOA},
		{"_dmarc.example.com.", 666},
	} {
		seed(question(q.name, q.qtype, 0))
		seed(question(q.name, q.qtype, 1232))
	}
	notify := question("_dmarc.example.com.", dns.TypeSOA, 0)
	notify.Opcode = dns.OpcodeNotify
	seed(notify)
	badvers := question("_dmarc.example.com.", dns.TypeTXT, 4096)
	badvers.IsEdns0().SetVersion(1)
	seed(badvers)
	// EDNS options: the fast path takes cookies, padding and valid client
	// subnets, and leaves the others to the general path.
	for _, o := range []dns.EDNS0{
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
		&dns.EDNS0_PADDING{Padding: make([]byte, 12)},
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8::")},
		&dns.EDNS0_NSID{Code: dns.EDNS0NSID},
	} {
		m := question("s1._domainkey.Example.com.", dns.TypeTXT, 4096)
		m.IsEdns0().Option = append(m.IsEdns0().Option, o)
		seed(m)
	}

	// plain has no rate limiting, so that its fast path and general path
	// can answer the same query in turn.
	plain, plainFast := fastEdge(f, Config{})
	limitedFast := &fastPath{counts: e.metrics.queries.newShard()}
	out := make([]byte, 0, advertisedUDPSize)
	client := netip.MustParseAddr("192.0.2.1")

	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		if !tcp {
			// The UDP fast path sees every packet first; what it answers,
			// it answers as the general path does, byte for byte.
			if got, act := plain.answerFast(plainFast, data, out, client); act != fastSlow {
				want := slowReply(t, plain, data)
				if act != fastReply || !bytes.Equal(got, want) {
					t.Fatalf("fast path (%d) replied %x, general path %x", act, got, want)
				}
			}
			if got, act := e.answerFast(limitedFast, data, out, client); act == fastReply {
				var reply, req dns.Msg
				if err := reply.Unpack(got); err != nil {
					t.Fatalf("fast reply does not parse: %v", err)
				}
				if err := req.Unpack(data); err != nil {
					t.Fatalf("fast path answered a query that does not parse: %v", err)
				}
				if reply.Id != req.Id || !reply.Response || len(got) > udpSize(&req) {
					t.Fatalf("fast reply id %d (QR %v, %d bytes) to query id %d", reply.Id, reply.Response, len(got), req.Id)
				}
			}
		}
		if len(data) < headerLength {
			return // the server drops these
		}
		dh := dns.Header{
			Id:      binary.BigEndian.Uint16(data[0:]),
			Bits:    binary.BigEndian.Uint16(data[2:]),
			Qdcount: binary.BigEndian.Uint16(data[4:]),
			Ancount: binary.BigEndian.Uint16(data[6:]),
			Nscount: binary.BigEndian.Uint16(data[8:]),
			Arcount: binary.BigEndian.Uint16(data[10:]),
		}
		if e.acceptHeader(dh) != dns.MsgAccept {
			return
		}
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return
		}
		w := &recorder{tcp: tcp}
		e.ServeDNS(w, req)
		if w.err != nil {
			t.Fatalf("reply does not pack: %v", w.err)
		}
		if w.wire == nil {
			t.Fatal("accepted query got no reply")
		}
		var reply dns.Msg
		if err := reply.Unpack(w.wire); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if reply.Id != dh.Id || !reply.Response {
			t.Fatalf("reply id %d (QR %v) to query id %d", reply.Id, reply.Response, dh.Id)
		}
		if !tcp && len(w.wire) > udpSize(req) {
			t.Fatalf("UDP reply of %d bytes exceeds %d", len(w.wire), udpSize(req))
		}
	})
}
