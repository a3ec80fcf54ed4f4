package dnsedge

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// TestResponseSizeMatchesWire checks spfanswer.ResponseSize, which the API
// uses to keep every SPF answer within 512 octets, against the response the
// edge packs: one TXT record, the owner compressed, an OPT record.
func TestResponseSizeMatchesWire(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ qname, txt string }{
		{"example.com._rspf.edge.rampart.test.", "v=spf1 ~all"},
		{"example.com._nspf.edge.rampart.test", "v=spf1 " + strings.Repeat("ip4:192.0.2.0/24 ", 30) + "-all"},
		{strings.Repeat("a", 63) + ".example.com._nspf.edge.rampart.test.", strings.Repeat("x", 255)},
		{"x.example.", strings.Repeat("y", 256)},
		{"x.example.", strings.Repeat("y", 510)},
	} {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(tc.qname), dns.TypeTXT)
		q.SetEdns0(1232, false)
		r := new(dns.Msg)
		r.SetReply(q)
		r.Compress = true
		r.Answer = []dns.RR{&dns.TXT{
			Hdr: dns.RR_Header{Name: dns.Fqdn(tc.qname), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: txtStrings(tc.txt),
		}}
		r.SetEdns0(1232, false)
		wire, err := r.Pack()
		require.NoError(t, err)
		require.Equal(t, len(wire), spfanswer.ResponseSize(tc.qname, tc.txt), "%s %q", tc.qname, tc.txt)
	}
}
