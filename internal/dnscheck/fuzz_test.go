package dnscheck

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzInterpret feeds arbitrary replies (as a resolver might send them) to
// interpret: it must not panic, records come only with Found and only of
// the type asked, and only a reply to the question asked is an answer.
func FuzzInterpret(f *testing.F) {
	for _, lines := range [][]string{
		{`_rampart.example.test. 60 IN TXT "rampart-verify=abc" "def"`},
		{`_rampart.example.test. 60 IN CNAME a.test.`, `a.test. 60 IN CNAME b.test.`, `b.test. 60 IN TXT "x"`},
		{`_rampart.example.test. 60 IN CNAME _rampart.example.test.`},
		{`other.test. 60 IN TXT "not here"`},
	} {
		m := new(dns.Msg)
		m.SetQuestion("_rampart.example.test.", dns.TypeTXT)
		m.Response = true
		for _, l := range lines {
			rr, err := dns.NewRR(l)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		for _, rcode := range []int{dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeServerFailure} {
			m.Rcode = rcode
			b, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return
		}
		s := interpret("_rampart.example.test.", dns.TypeTXT, m)
		if (s.Status == Found) != (len(s.Records) > 0) {
			t.Fatalf("status %v with %d records", s.Status, len(s.Records))
		}
		for _, rr := range s.Records {
			if rr.Header().Rrtype != dns.TypeTXT {
				t.Fatalf("record of type %d returned for TXT", rr.Header().Rrtype)
			}
		}
		if s.Status.Definitive() && (len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, "_rampart.example.test.")) {
			t.Fatalf("a reply to another question was taken as an answer: %v", m.Question)
		}
		if len(s.Chain) > maxChain {
			t.Fatalf("chain of %d", len(s.Chain))
		}
		_ = s.TXT()
		_ = s.Describe()
	})
}
