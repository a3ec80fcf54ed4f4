package dnsedge

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// fastEdge is an edge serving sampleIndex, not started, with a fast path
// of its own for calling answerFast directly.
func fastEdge(t testing.TB, cfg Config) (*Edge, *fastPath) {
	t.Helper()
	cfg.Zone = testZone
	cfg.NameServers = testNameServers()
	cfg.DatabaseURL = "host=/nonexistent"
	cfg.ReportsDomain = "reports.rampart.test"
	cfg.RRLRate = testRRLRate(cfg.RRLRate)
	e, err := New(cfg, nil, nil)
	require.NoError(t, err)
	e.publish(sampleIndex(t))
	return e, &fastPath{counts: e.metrics.queries.newShard()}
}

// slowReply is the general path's reply to the wire query q over UDP, as the
// server builds it: the header check, miekg/dns's parser, ServeDNS. nil
// when the general path sends nothing or miekg/dns answers by itself.
func slowReply(t testing.TB, e *Edge, q []byte) []byte {
	t.Helper()
	if len(q) < headerLength {
		return nil
	}
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(q[0:]),
		Bits:    binary.BigEndian.Uint16(q[2:]),
		Qdcount: binary.BigEndian.Uint16(q[4:]),
		Ancount: binary.BigEndian.Uint16(q[6:]),
		Nscount: binary.BigEndian.Uint16(q[8:]),
		Arcount: binary.BigEndian.Uint16(q[10:]),
	}
	if e.acceptHeader(dh) != dns.MsgAccept {
		return nil
	}
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil {
		return nil
	}
	w := &recorder{}
	e.ServeDNS(w, req)
	require.NoError(t, w.err)
	return w.wire
}

// randomCase changes the case of each letter of name with probability 1/2,
// as resolvers using 0x20 do.
func randomCase(r *rand.Rand, name string) string {
	b := []byte(name)
	for i, c := range b {
		if c >= 'a' && c <= 'z' && r.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// differentialNames are names of every kind the edge answers.
func differentialNames() []string {
	v6 := nibbles(netip.MustParseAddr("2001:db8:1::1"))
	names := []string{
		".", "example.com.", "rampart.test.", "test.", "www.example.org.",
		"_dmarc.example.com.", "_dmarc.blocked.example.", "_dmarc.long.example.", "_dmarc.empty.example.",
		"_dmarc.odd.example.", "_dmarc.a.b.deep.example.", "_dmarc.xn--bcher-kva.example.", "_dmarc.unknown.example.",
		"x._dmarc.example.com.", "a.b.c._dmarc.example.com.",
		"s1._domainkey.example.com.", "s2._domainkey.example.com.", "a.b._domainkey.example.com.",
		"b._domainkey.example.com.", "zz._domainkey.example.com.", "any._domainkey.blocked.example.",
		"_domainkey.example.com.", "s1._domainkey.empty.example.",
		"default._bimi.example.com.", "other._bimi.example.com.", "_bimi.example.com.", "default._bimi.empty.example.",
		"edge.rampart.test.", "ns1.edge.rampart.test.", "ns2.edge.rampart.test.", "nope.edge.rampart.test.",
		"_dmarc.edge.rampart.test.", "example.com._dmarc.edge.rampart.test.", "com._dmarc.edge.rampart.test.",
		"deep.example._dmarc.edge.rampart.test.", "long.example._dmarc.edge.rampart.test.",
		"example.com._nspf.edge.rampart.test.", "blocked.example._nspf.edge.rampart.test.", "_nspf.edge.rampart.test.",
		"deep.example._nspf.edge.rampart.test.", "empty.example._nspf.edge.rampart.test.", "_spf.edge.rampart.test.",
		"_report._dmarc.reports.rampart.test.", "example.com._report._dmarc.reports.rampart.test.",
		"com._report._dmarc.reports.rampart.test.", "nope._report._dmarc.reports.rampart.test.",
		"reports.rampart.test.",
		// Names that need escaping in presentation form, or odd bytes:
		// the general path's.
		`a\.b._dmarc.example.com.`, `a\032b._domainkey.example.com.`, `a\(b.edge.rampart.test.`, `\255.edge.rampart.test.`,
	}
	for _, helo := range []string{"mx.example.net", "mta.mailer.example", "out.vendor.example", "", "a._ip.b._ehlo.c"} {
		for _, ip := range []string{"10.1.2.3", "192.0.2.7", "198.51.100.9", "203.0.113.5", v6,
			nibbles(netip.MustParseAddr("2001:db8:100::9")), nibbles(netip.MustParseAddr("2001:db8:ffff::1")), "0.2.10", "01.2.3.4"} {
			for _, d := range []string{"example.com", "blocked.example", "xn--bcher-kva.example", "unknown.example"} {
				name := ip + "._ip." + helo + "._ehlo." + d + "._spf.edge.rampart.test."
				if helo == "" {
					name = ip + "._ip._ehlo." + d + "._spf.edge.rampart.test."
				}
				names = append(names, name)
			}
		}
	}
	return append(names, "_ehlo.example.com._spf.edge.rampart.test.", "x._spf.edge.rampart.test.")
}

// TestFastPathDifferential checks that, for queries of every kind, the
// fast path's reply is byte for byte the general path's: with and without
// EDNS, buffer sizes from 300 to 65535, DO, RD and CD set or not, options,
// and names in random case. Queries the fast path leaves alone are counted,
// so that it is seen to take the common ones.
func TestFastPathDifferential(t *testing.T) {
	t.Parallel()
	e, f := fastEdge(t, Config{})
	r := rand.New(rand.NewPCG(7, 9))
	qtypes := []uint16{dns.TypeTXT, dns.TypeA, dns.TypeAAAA, dns.TypeSOA, dns.TypeNS, dns.TypeANY, dns.TypeCNAME,
		dns.TypeMX, dns.TypeCAA, 666, dns.TypeAXFR, 0}
	out := make([]byte, 0, advertisedUDPSize)
	var fast, total int
	for _, name := range differentialNames() {
		for _, qtype := range qtypes {
			for variant := range 6 {
				q := question(name, qtype, 0)
				q.Id = uint16(r.Uint32())
				q.RecursionDesired = r.IntN(2) == 0
				q.CheckingDisabled = r.IntN(4) == 0
				if variant > 0 {
					q.Question[0].Name = randomCase(r, name)
				}
				switch variant {
				case 2:
					q.SetEdns0(1232, false)
				case 3:
					q.SetEdns0([]uint16{300, 512, 1232, 4096, 65535}[r.IntN(5)], r.IntN(2) == 0)
				case 4:
					q.SetEdns0(4096, true)
					opt := q.IsEdns0()
					switch r.IntN(4) {
					case 0:
						opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
					case 1:
						opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, r.IntN(40))})
					case 2:
						opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
							Address: netip.MustParseAddr("198.51.100.0").AsSlice()})
					case 3:
						opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
					}
				case 5:
					q.Question[0].Qclass = []uint16{dns.ClassINET, dns.ClassCHAOS, dns.ClassANY}[r.IntN(3)]
				}
				wire, err := q.Pack()
				require.NoError(t, err)
				want := slowReply(t, e, wire)
				got, act := e.answerFast(f, wire, out, netip.MustParseAddr("192.0.2.1"))
				total++
				if act == fastSlow {
					continue
				}
				fast++
				require.Equal(t, fastReply, act)
				if !bytes.Equal(want, got) {
					var w, g dns.Msg
					_ = w.Unpack(want)
					_ = g.Unpack(got)
					t.Fatalf("%s %s: fast path differs\nquery:\n%v\ngeneral path (%d bytes):\n%v\nfast path (%d bytes):\n%v",
						q.Question[0].Name, dns.TypeToString[qtype], q, len(want), &w, len(got), &g)
				}
			}
		}
	}
	t.Logf("fast path answered %d of %d queries", fast, total)
	require.Greater(t, fast, total/2, "the fast path takes the common queries")
}

// TestFastPathLeavesToGeneralPath lists what the fast path must not answer.
func TestFastPathLeavesToGeneralPath(t *testing.T) {
	t.Parallel()
	e, f := fastEdge(t, Config{})
	out := make([]byte, 0, advertisedUDPSize)
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		require.NoError(t, err)
		return b
	}
	valid := pack(question("_dmarc.example.com.", dns.TypeTXT, 1232))
	_, act := e.answerFast(f, valid, out, netip.Addr{})
	require.Equal(t, fastReply, act, "the valid query itself is the fast path's")

	two := question("_dmarc.example.com.", dns.TypeTXT, 0)
	two.Question = append(two.Question, two.Question[0])
	notify := question("_dmarc.example.com.", dns.TypeSOA, 0)
	notify.Opcode = dns.OpcodeNotify
	response := question("_dmarc.example.com.", dns.TypeTXT, 0)
	response.Response = true
	badvers := question("_dmarc.example.com.", dns.TypeTXT, 1232)
	badvers.IsEdns0().SetVersion(1)
	twoOPT := question("_dmarc.example.com.", dns.TypeTXT, 1232)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	compressed := append([]byte(nil), valid[:headerLength]...)
	compressed = append(compressed, 0xC0, 12, 0, 16, 0, 1) // a pointer as the name
	for name, q := range map[string][]byte{
		"short":             valid[:headerLength+3],
		"two questions":     pack(two),
		"opcode NOTIFY":     pack(notify),
		"a response":        pack(response),
		"EDNS version 1":    pack(badvers),
		"two OPT records":   pack(twoOPT),
		"pointer in name":   compressed,
		"trailing bytes":    append(append([]byte(nil), valid...), 0),
		"truncated OPT":     valid[:len(valid)-1],
		"too large for 512": pack(question("_dmarc.long.example.", dns.TypeTXT, 0)),
		"escaped TXT":       pack(question("_dmarc.odd.example.", dns.TypeTXT, 1232)),
		"NS and its glue":   pack(question("edge.rampart.test.", dns.TypeNS, 1232)),
		"escaped name":      pack(question(`a\.b._dmarc.example.com.`, dns.TypeTXT, 0)),
		"class CHAOS": pack(func() *dns.Msg {
			m := question("version.bind.", dns.TypeTXT, 0)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}()),
		"zone transfer":       pack(question("edge.rampart.test.", dns.TypeAXFR, 0)),
		"malformed option":    append(append(append([]byte(nil), valid[:len(valid)-2]...), 0, 3), 0, 1, 0),
		"bad client subnet":   withOption(valid, dns.EDNS0SUBNET, []byte{0, 3, 24, 0, 198, 51, 100}),
		"subnet mask too big": withOption(valid, dns.EDNS0SUBNET, []byte{0, 1, 33, 0, 198, 51, 100, 0}),
		"other option":        withOption(valid, dns.EDNS0NSID, nil),
	} {
		_, act := e.answerFast(f, q, out, netip.Addr{})
		require.Equal(t, fastSlow, act, name)
	}

	empty, err := New(Config{Zone: testZone, DatabaseURL: "host=/nonexistent"}, nil, nil)
	require.NoError(t, err)
	_, act = empty.answerFast(&fastPath{counts: empty.metrics.queries.newShard()}, valid, out, netip.Addr{})
	require.Equal(t, fastSlow, act, "no snapshot yet: SERVFAIL is the general path's")
}

// withOption appends an EDNS option to q, whose last record is an OPT
// record without options.
func withOption(q []byte, code uint16, data []byte) []byte {
	b := append([]byte(nil), q[:len(q)-2]...)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.BigEndian.AppendUint16(b, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// TestFastPathRRL checks response rate limiting on the fast path: the
// first responses of a burst are answered, then every RRLSlip-th is sent
// truncated and the others dropped, as on the general path.
func TestFastPathRRL(t *testing.T) {
	t.Parallel()
	e, f := fastEdge(t, Config{RRLRate: 3, RRLSlip: 2})
	q, err := question("_dmarc.example.com.", dns.TypeTXT, 1232).Pack()
	require.NoError(t, err)
	out := make([]byte, 0, advertisedUDPSize)
	client := netip.MustParseAddr("198.51.100.7")
	var answered, slipped, dropped int
	for range 9 {
		reply, act := e.answerFast(f, q, out, client)
		switch act {
		case fastDrop:
			dropped++
		case fastReply:
			var m dns.Msg
			require.NoError(t, m.Unpack(reply))
			require.True(t, m.Authoritative)
			require.NotNil(t, m.IsEdns0())
			if m.Truncated {
				require.Empty(t, m.Answer)
				slipped++
			} else {
				require.Len(t, m.Answer, 1)
				answered++
			}
		default:
			t.Fatal("left to the general path")
		}
	}
	// The burst takes microseconds: no token comes back.
	require.Equal(t, 3, answered)
	require.Equal(t, 3, slipped)
	require.Equal(t, 3, dropped)
}

// TestFastPathCounts checks that the fast path's queries are counted in
// dnsedge_queries_total with the general path's.
func TestFastPathCounts(t *testing.T) {
	t.Parallel()
	e, f := fastEdge(t, Config{})
	out := make([]byte, 0, advertisedUDPSize)
	for _, name := range []string{"_dmarc.example.com.", "x._dmarc.example.com.", "_dmarc.unknown.example."} {
		q, err := question(name, dns.TypeTXT, 0).Pack()
		require.NoError(t, err)
		_, act := e.answerFast(f, q, out, netip.Addr{})
		require.Equal(t, fastReply, act, name)
	}
	e.metrics.query(dns.TypeTXT, dns.RcodeSuccess)
	families, err := e.reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "dnsedge_queries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			got[strings.Join(labels, "/")] = m.GetCounter().GetValue()
		}
	}
	require.Len(t, got, qtypeSlots*rcodeSlots)
	require.Equal(t, 2.0, got["TXT/NOERROR"])
	require.Equal(t, 1.0, got["TXT/NXDOMAIN"])
	require.Equal(t, 1.0, got["TXT/REFUSED"])
	require.Equal(t, 0.0, got["OTHER/OTHER"])
}

// TestAppendWireName checks the wire form of plain names.
func TestAppendWireName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{".", "com.", "ns1.edge.rampart.test.", "a.b-c_d.e."} {
		want := make([]byte, 256)
		n, err := dns.PackDomainName(name, want, 0, nil, false)
		require.NoError(t, err)
		require.Equal(t, want[:n], appendWireName(nil, name), name)
	}
}

// TestFindShortcut checks that find, which answers names in the edge zone
// without walking their labels, finds what the walk finds, whatever the
// zones' places: the report zone outside, inside, at or above the edge
// zone, and an edge zone a hosted domain could take.
func TestFindShortcut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ zone, reports string }{
		{testZone, "reports.rampart.test"},
		{testZone, ""},
		{testZone, "r.edge.rampart.test"},
		{"edge._report._dmarc.reports.test", "reports.test"},
		{"_report._dmarc.x.test", "x.test"},
		{"_dmarc.example.com", "reports.rampart.test"},
	} {
		e, err := New(Config{Zone: tc.zone, ReportsDomain: tc.reports, DatabaseURL: "host=/nonexistent"}, nil, nil)
		require.NoError(t, err)
		zone := strings.TrimSuffix(e.auth.set.zone, ".")
		ix, errs := buildIndex(9, []row{
			{name: "example.com", serial: 1, mode: "sending", dmarc: "v=DMARC1; p=none", dkim: sampleDKIM, nspf: sampleNSPF},
			{name: "in." + zone, serial: 2, mode: "sending", dmarc: "v=DMARC1; p=none"},
			{name: zone, serial: 3, mode: "blocked", dmarc: "v=DMARC1; p=reject"},
		}, nil)
		require.Empty(t, errs)
		var names []string
		for _, n := range []string{"", "ns1.", "_dmarc.", "_dmarc.in.", "in._dmarc.", "example.com._nspf.", "_spf.",
			"10.1.2.3._ip.mx._ehlo.example.com._spf.", "_domainkey.in.", "s1._domainkey.", "nope.", "_report._dmarc.",
			"example.com._report._dmarc."} {
			names = append(names, n+zone+".")
		}
		if rd := e.auth.set.reportsApex; rd != "" {
			names = append(names, rd, "example.com."+rd, "x."+rd, "_dmarc."+rd)
		}
		names = append(names, "_dmarc.example.com.", "s1._domainkey.example.com.", "example.com.", ".")
		for _, name := range names {
			for _, qtype := range []uint16{dns.TypeTXT, dns.TypeSOA, dns.TypeA} {
				require.Equal(t, e.auth.walk(ix, name, qtype), e.auth.find(ix, name, qtype), "zone %s, reports %s: %s %s",
					tc.zone, tc.reports, name, dns.TypeToString[qtype])
			}
		}
	}
}
