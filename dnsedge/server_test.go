package dnsedge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// dnsCase is one question and the reply expected, CoreDNS style.
type dnsCase struct {
	qname  string
	qtype  uint16
	edns   uint16 // UDP size in the query's OPT record; 0 for no OPT
	rcode  int
	answer []string
	ns     []string
	extra  []string // additional records other than OPT
}

// longDMARC returns a DMARC record of at least n bytes: many rua addresses.
func longDMARC(n int) string {
	var b strings.Builder
	b.WriteString("v=DMARC1; p=quarantine; rua=")
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "mailto:dmarc-reports-%03d@reports.rampart.test", i)
	}
	return b.String()
}

// txtRR renders a TXT record with value cut into 255-byte strings.
func txtRR(owner, value string) string {
	var parts []string
	for len(value) > 0 {
		n := min(len(value), 255)
		parts = append(parts, `"`+value[:n]+`"`)
		value = value[n:]
	}
	return owner + " 300 IN TXT " + strings.Join(parts, " ")
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	const (
		exampleDMARC = "v=DMARC1; p=none; rua=mailto:dmarc@reports.rampart.test"
		blockedDMARC = "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s"
	)
	long := longDMARC(700)  // over 512 bytes, under 1232
	huge := longDMARC(1500) // over 1232 bytes
	sExample := db.put(t, "example.com", "sending", exampleDMARC)
	sBlocked := db.put(t, "blocked.example", "blocked", blockedDMARC)
	db.put(t, "long.example", "sending", long)
	db.put(t, "huge.example", "sending", huge)
	db.put(t, "a.b.deep.example", "sending", "v=DMARC1; p=none")
	sEmpty := db.put(t, "empty.example", "sending", "")
	// A domain at the edge zone itself must not take _dmarc.<edge zone>
	// out of the edge zone.
	db.put(t, "edge.rampart.test", "sending", "v=DMARC1; p=none; self")
	db.put(t, "gone.example", "sending", "v=DMARC1; p=none")
	sLast := db.remove(t, "gone.example")

	e := startEdge(t, Config{DatabaseURL: db.url, NegativeTTL: time.Minute})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == sLast })

	soa := func(apex string, serial int64, ttl int) string {
		return fmt.Sprintf("%s %d IN SOA ns1.edge.rampart.test. hostmaster.edge.rampart.test. %d 3600 600 1209600 60", apex, ttl, serial)
	}
	negEdge := soa("edge.rampart.test.", sLast, 60)
	nsExtra := []string{
		"ns1.edge.rampart.test. 300 IN A 192.0.2.53",
		"ns1.edge.rampart.test. 300 IN AAAA 2001:db8::53",
		"ns2.edge.rampart.test. 300 IN A 192.0.2.54",
	}

	cases := map[string]dnsCase{
		"SOA at _dmarc.D apex": {
			qname: "_dmarc.example.com.", qtype: dns.TypeSOA,
			answer: []string{soa("_dmarc.example.com.", sExample, 300)},
		},
		"NS at _dmarc.D apex": {
			qname: "_dmarc.example.com.", qtype: dns.TypeNS,
			answer: []string{
				"_dmarc.example.com. 300 IN NS ns1.edge.rampart.test.",
				"_dmarc.example.com. 300 IN NS ns2.edge.rampart.test.",
			},
			extra: nsExtra,
		},
		"TXT at _dmarc.D": {
			qname: "_dmarc.example.com.", qtype: dns.TypeTXT,
			answer: []string{txtRR("_dmarc.example.com.", exampleDMARC)},
		},
		"TXT at _dmarc.D with EDNS0": {
			qname: "_dmarc.example.com.", qtype: dns.TypeTXT, edns: 4096,
			answer: []string{txtRR("_dmarc.example.com.", exampleDMARC)},
		},
		"TXT at CNAME target in edge zone": {
			qname: "example.com._dmarc.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtRR("example.com._dmarc.edge.rampart.test.", exampleDMARC)},
		},
		"ANY at _dmarc.D gives the TXT RRset only": {
			qname: "_dmarc.example.com.", qtype: dns.TypeANY,
			answer: []string{txtRR("_dmarc.example.com.", exampleDMARC)},
		},
		"blocked domain served as stored": {
			qname: "_dmarc.blocked.example.", qtype: dns.TypeTXT,
			answer: []string{txtRR("_dmarc.blocked.example.", blockedDMARC)},
		},
		"blocked domain SOA serial is its row's": {
			qname: "_dmarc.blocked.example.", qtype: dns.TypeSOA,
			answer: []string{soa("_dmarc.blocked.example.", sBlocked, 300)},
		},
		"SOA at edge apex carries the highest serial, tombstones included": {
			qname: "edge.rampart.test.", qtype: dns.TypeSOA,
			answer: []string{soa("edge.rampart.test.", sLast, 300)},
		},
		"NS at edge apex": {
			qname: "edge.rampart.test.", qtype: dns.TypeNS,
			answer: []string{
				"edge.rampart.test. 300 IN NS ns1.edge.rampart.test.",
				"edge.rampart.test. 300 IN NS ns2.edge.rampart.test.",
			},
			extra: nsExtra,
		},
		"A of a name server": {
			qname: "ns1.edge.rampart.test.", qtype: dns.TypeA,
			answer: []string{"ns1.edge.rampart.test. 300 IN A 192.0.2.53"},
		},
		"AAAA of a name server": {
			qname: "ns1.edge.rampart.test.", qtype: dns.TypeAAAA,
			answer: []string{"ns1.edge.rampart.test. 300 IN AAAA 2001:db8::53"},
		},
		"NODATA: name server without IPv6": {
			qname: "ns2.edge.rampart.test.", qtype: dns.TypeAAAA,
			ns: []string{negEdge},
		},
		"NODATA: other type at _dmarc.D": {
			qname: "_dmarc.example.com.", qtype: dns.TypeA,
			ns: []string{soa("_dmarc.example.com.", sExample, 60)},
		},
		"NODATA: other type at CNAME target": {
			qname: "example.com._dmarc.edge.rampart.test.", qtype: dns.TypeCNAME,
			ns: []string{negEdge},
		},
		"NODATA: domain with an empty dmarc value": {
			qname: "_dmarc.empty.example.", qtype: dns.TypeTXT,
			ns: []string{soa("_dmarc.empty.example.", sEmpty, 60)},
		},
		"NODATA: empty non-terminal _dmarc.<edge zone>": {
			qname: "_dmarc.edge.rampart.test.", qtype: dns.TypeTXT,
			ns: []string{negEdge},
		},
		"NODATA: empty non-terminal com._dmarc.<edge zone>": {
			qname: "com._dmarc.edge.rampart.test.", qtype: dns.TypeTXT,
			ns: []string{negEdge},
		},
		"NODATA: empty non-terminal deep.example._dmarc.<edge zone>": {
			qname: "deep.example._dmarc.edge.rampart.test.", qtype: dns.TypeTXT,
			ns: []string{negEdge},
		},
		"TXT below empty non-terminals": {
			qname: "a.b.deep.example._dmarc.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtRR("a.b.deep.example._dmarc.edge.rampart.test.", "v=DMARC1; p=none")},
		},
		"NXDOMAIN below _dmarc.D, in zone _dmarc.D": {
			qname: "foo._dmarc.example.com.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{soa("_dmarc.example.com.", sExample, 60)},
		},
		"NXDOMAIN in edge zone": {
			qname: "nope.edge.rampart.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{negEdge},
		},
		"NXDOMAIN for an unknown domain's CNAME target": {
			qname: "unknown.example._dmarc.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{negEdge},
		},
		"NXDOMAIN for a tombstoned domain's CNAME target": {
			qname: "gone.example._dmarc.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{negEdge},
		},
		"NXDOMAIN below a CNAME target": {
			qname: "x.example.com._dmarc.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{negEdge},
		},
		"REFUSED: customer apex": {
			qname: "example.com.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused,
		},
		"REFUSED: unknown domain": {
			qname: "_dmarc.unknown.example.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused,
		},
		"REFUSED: tombstoned domain": {
			qname: "_dmarc.gone.example.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused,
		},
		"REFUSED: parent of the edge zone": {
			qname: "rampart.test.", qtype: dns.TypeSOA, rcode: dns.RcodeRefused,
		},
		"REFUSED: root": {
			qname: ".", qtype: dns.TypeNS, rcode: dns.RcodeRefused,
		},
		"0x20: question and owner keep the case sent": {
			qname: "_DMaRC.ExAmPlE.CoM.", qtype: dns.TypeTXT,
			answer: []string{txtRR("_DMaRC.ExAmPlE.CoM.", exampleDMARC)},
		},
		"0x20 in the edge zone": {
			qname: "EXAMPLE.com._DMARC.Edge.Rampart.TEST.", qtype: dns.TypeTXT,
			answer: []string{txtRR("EXAMPLE.com._DMARC.Edge.Rampart.TEST.", exampleDMARC)},
		},
		"0x20 NXDOMAIN keeps the canonical SOA owner": {
			qname: "FOO._dmarc.Example.COM.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{soa("_dmarc.example.com.", sExample, 60)},
		},
		"over 512 bytes fits with EDNS0 1232": {
			qname: "_dmarc.long.example.", qtype: dns.TypeTXT, edns: 1232,
			answer: []string{txtRR("_dmarc.long.example.", long)},
		},
	}
	for name, tc := range cases {
		for _, transport := range []string{"udp", "tcp"} {
			t.Run(transport+"/"+name, func(t *testing.T) {
				t.Parallel()
				for _, rd := range []bool{false, true} {
					q := question(tc.qname, tc.qtype, tc.edns)
					q.RecursionDesired = rd
					var r *dns.Msg
					if transport == "udp" {
						var size int
						r, size = exchangeUDP(t, e.UDPAddr(), q)
						require.LessOrEqual(t, size, udpSize(q))
					} else {
						r = exchangeTCP(t, e.TCPAddr(), q)
					}
					checkReply(t, q, r, tc)
					require.Equal(t, rd, r.RecursionDesired, "RD copied")
				}
			})
		}
	}
}

// checkReply checks r, the reply to q, against tc.
func checkReply(t *testing.T, q, r *dns.Msg, tc dnsCase) {
	t.Helper()
	require.Equal(t, q.Id, r.Id)
	require.True(t, r.Response)
	require.Equal(t, q.Question, r.Question, "question echoed as sent")
	require.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[r.Rcode])
	require.Equal(t, tc.rcode != dns.RcodeRefused, r.Authoritative, "AA")
	require.False(t, r.RecursionAvailable, "RA")
	require.False(t, r.Truncated, "TC")
	require.Equal(t, parseRRs(t, tc.answer), rrStrings(r.Answer), "answer")
	require.Equal(t, parseRRs(t, tc.ns), rrStrings(r.Ns), "authority")
	require.Equal(t, parseRRs(t, tc.extra), rrStrings(r.Extra), "additional")
	checkOPT(t, q, r)
}

// checkOPT checks that r has an OPT record exactly when q had one.
func checkOPT(t *testing.T, q, r *dns.Msg) {
	t.Helper()
	qopt, ropt := q.IsEdns0(), r.IsEdns0()
	if qopt == nil {
		require.Nil(t, ropt, "OPT in reply to a query without one")
		return
	}
	require.NotNil(t, ropt, "no OPT in reply to a query with one")
	require.Equal(t, uint16(advertisedUDPSize), ropt.UDPSize())
	require.Equal(t, uint8(0), ropt.Version())
	require.Equal(t, qopt.Do(), ropt.Do(), "DO copied")
}

func TestTruncation(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	long := longDMARC(700)
	huge := longDMARC(1500)
	db.put(t, "long.example", "sending", long)
	s := db.put(t, "huge.example", "sending", huge)
	e := startEdge(t, Config{DatabaseURL: db.url})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == s })

	for _, tc := range []struct {
		name  string
		qname string
		edns  uint16
		tc    bool
		limit int
	}{
		{"no EDNS0: 512 bytes", "_dmarc.long.example.", 0, true, 512},
		{"EDNS0 under 512 is read as 512", "_dmarc.long.example.", 300, true, 512},
		{"EDNS0 1232 fits", "_dmarc.long.example.", 1232, false, 1232},
		{"EDNS0 4096 is clamped to 1232", "_dmarc.huge.example.", 4096, true, 1232},
		{"EDNS0 1232 too small", "_dmarc.huge.example.", 1232, true, 1232},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := question(tc.qname, dns.TypeTXT, tc.edns)
			r, size := exchangeUDP(t, e.UDPAddr(), q)
			require.LessOrEqual(t, size, tc.limit)
			require.Equal(t, tc.tc, r.Truncated, "TC")
			require.Equal(t, dns.RcodeSuccess, r.Rcode)
			require.True(t, r.Authoritative)
			require.Equal(t, q.Question, r.Question)
			checkOPT(t, q, r)
			if tc.tc {
				require.Empty(t, r.Answer, "a truncated reply carries no partial RRset")
				require.Empty(t, r.Ns)
				// The client retries over TCP and gets it all.
				full := exchangeTCP(t, e.TCPAddr(), q)
				require.False(t, full.Truncated)
				require.Len(t, full.Answer, 1)
				require.Equal(t, strings.Join(full.Answer[0].(*dns.TXT).Txt, ""), map[string]string{
					"_dmarc.long.example.": long, "_dmarc.huge.example.": huge,
				}[tc.qname])
			} else {
				require.Len(t, r.Answer, 1)
			}
			// miekg/dns's client reads with the buffer it advertised, so an
			// oversized reply would fail here.
			_ = exchangeClient(t, e.UDPAddr(), q)
		})
	}
}

func TestProtocolBasics(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	s := db.put(t, "example.com", "sending", "v=DMARC1; p=none")
	e := startEdge(t, Config{DatabaseURL: db.url})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == s })

	valid := question("_dmarc.example.com.", dns.TypeTXT, 0)

	t.Run("response dropped", func(t *testing.T) {
		t.Parallel()
		q := valid.Copy()
		q.Response = true
		_, _, err := tryExchangeUDP(e.UDPAddr(), q, 300*time.Millisecond)
		require.ErrorContains(t, err, "timeout")
		// and the server still answers queries
		r, _ := exchangeUDP(t, e.UDPAddr(), valid)
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
	})
	t.Run("short packet dropped", func(t *testing.T) {
		t.Parallel()
		_, _, err := rawExchangeUDP(e.UDPAddr(), []byte{1, 2, 3}, 300*time.Millisecond)
		require.ErrorContains(t, err, "timeout")
	})

	for _, tc := range []struct {
		name  string
		edit  func(m *dns.Msg)
		rcode int
	}{
		{"no question", func(m *dns.Msg) { m.Question = nil }, dns.RcodeFormatError},
		{"two questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError},
		{"opcode NOTIFY", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented},
		{"opcode UPDATE", func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, dns.RcodeNotImplemented},
		{"opcode STATUS", func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }, dns.RcodeNotImplemented},
		{"class CH", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused},
		{"AXFR", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR }, dns.RcodeRefused},
		{"EDNS version 1", func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }, dns.RcodeBadVers},
		{"two OPT records", func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.Extra = append(m.Extra, m.Extra[0])
		}, dns.RcodeFormatError},
	} {
		for _, transport := range []string{"udp", "tcp"} {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				q := valid.Copy()
				tc.edit(q)
				var r *dns.Msg
				if transport == "udp" {
					r, _ = exchangeUDP(t, e.UDPAddr(), q)
				} else {
					r = exchangeTCP(t, e.TCPAddr(), q)
				}
				require.Equal(t, q.Id, r.Id)
				require.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[r.Rcode])
				require.False(t, r.Authoritative)
				require.Empty(t, r.Answer)
			})
		}
	}
}

func TestServfailBeforeFirstLoad(t *testing.T) {
	t.Parallel()
	e := startEdge(t, Config{DatabaseURL: deadDatabaseURL(t)})
	for _, qname := range []string{"_dmarc.example.com.", "edge.rampart.test.", "example.org."} {
		r, _ := exchangeUDP(t, e.UDPAddr(), question(qname, dns.TypeSOA, 1232))
		require.Equal(t, dns.RcodeToString[dns.RcodeServerFailure], dns.RcodeToString[r.Rcode], qname)
		require.False(t, r.Authoritative)
	}
	require.Equal(t, int64(0), e.Serial())
}
