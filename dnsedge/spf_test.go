package dnsedge

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

func TestParseSPFName(t *testing.T) {
	t.Parallel()
	v6 := nibbles(netip.MustParseAddr("2001:db8::1"))
	for _, tc := range []struct {
		rest             string
		ip, helo, domain string
	}{
		{"192.0.2.10._ip.mta1.mailer.example._ehlo.example.com", "192.0.2.10", "mta1.mailer.example", "example.com"},
		{v6 + "._ip.mx._ehlo.example.com", "2001:db8::1", "mx", "example.com"},
		{"0.0.0.0._ip.mx._ehlo.example.com", "0.0.0.0", "mx", "example.com"},
		{"255.255.255.255._ip.mx._ehlo.example.com", "255.255.255.255", "mx", "example.com"},
		// The HELO may hold the markers; the domain is right of the last
		// _ehlo, the address left of the first _ip.
		{"192.0.2.10._ip.a._ip.b._ehlo.c._ehlo.example.com", "192.0.2.10", "a._ip.b._ehlo.c", "example.com"},
		{"192.0.2.10._ip._ehlo.example.com", "192.0.2.10", "", "example.com"},
		{"192.0.2.10._ip.[192.0.2.1]._ehlo.example.com", "192.0.2.10", "[192.0.2.1]", "example.com"},
		{`192.0.2.10._ip.a\._ip.b._ehlo.example.com`, "192.0.2.10", `a\._ip.b`, "example.com"},
		{`192\.0.2.10._ip.b._ehlo.example.com`, "", "b", "example.com"},
		// Cut short by the 253-octet rule: no address.
		{"0.2.10._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		{"_ip.mx._ehlo.example.com", "", "mx", "example.com"},
		{"mx.mailer.example._ehlo.example.com", "", "mx.mailer.example", "example.com"},
		{v6[2:] + "._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		// Not an address.
		{"01.2.3.4._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		{"1.2.3.256._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		{"1.2.3.-1._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		{"1.2.3.4.5._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		{strings.Replace(v6, "1", "g", 1) + "._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		{strings.Replace(v6, ".", "", 1) + ".0._ip.mx._ehlo.example.com", "", "mx", "example.com"},
		// The current form: no HELO, the domain after the first _ip.
		{"192.0.2.10._ip.mx.example.com", "192.0.2.10", "", "mx.example.com"},
		{"192.0.2.10._ip.example.com", "192.0.2.10", "", "example.com"},
		{v6 + "._ip.example.com", "2001:db8::1", "", "example.com"},
		{"2.10._ip.example.com", "", "", "example.com"},      // cut short
		{v6[2:] + "._ip.example.com", "", "", "example.com"}, // cut short
		{"_ip.example.com", "", "", "example.com"},
		{"1.2.3.256._ip.example.com", "", "", "example.com"},
		// No domain.
		{"192.0.2.10._ip.mx._ehlo", "", "", ""},
		{"192.0.2.10._ip", "", "", ""},
		{"192.0.2.10.example.com", "", "", ""},
		{"", "", "", ""},
		{"_ehlo", "", "", ""},
	} {
		q := spfanswer.Parse(tc.rest)
		ip := ""
		if q.IP.IsValid() {
			ip = q.IP.String()
		}
		require.Equal(t, tc.ip, ip, tc.rest)
		require.Equal(t, tc.helo, q.HELO, tc.rest)
		require.Equal(t, tc.domain, q.Domain, tc.rest)
	}
	// Too many labels for a name: nothing.
	require.Equal(t, spfanswer.Query{}, spfanswer.Parse(strings.Repeat("a.", 200)+"_ehlo.example.com"))
}

// TestSPFAnswerOrder checks that when several enabled senders match the
// HELO, the first in the domain's order decides.
func TestSPFAnswerOrder(t *testing.T) {
	t.Parallel()
	ix, errs := buildIndex(10, []row{
		{name: "ab.example", serial: 1, mode: "sending", services: []string{"a", "b"}},
		{name: "ba.example", serial: 2, mode: "sending", services: []string{"b", "a"}},
		{name: "nob.example", serial: 3, mode: "sending", services: []string{"noinclude", "b"}},
		{name: "multi.example", serial: 7, mode: "sending", services: []string{"multi", "a"}},
	}, []serviceRow{
		{name: "a", serial: 4, heloSuffixes: []string{"shared.example"}, includes: []string{"_spf.a.example"}},
		{name: "b", serial: 5, heloSuffixes: []string{"mx.shared.example"}, includes: []string{"_spf.b.example"}},
		{name: "noinclude", serial: 6, heloSuffixes: []string{"shared.example"}},
		{name: "multi", serial: 8, heloSuffixes: []string{"shared.example"}, includes: []string{"_spf.m1.example", "_spf.m2.example"}},
	})
	require.Empty(t, errs)
	answer := func(domain string) string {
		return strings.Join(spfAnswer(ix, "192.0.2.1._ip.out.mx.shared.example._ehlo."+domain), "")
	}
	require.Equal(t, "v=spf1 include:_spf.a.example -all", answer("ab.example"))
	require.Equal(t, "v=spf1 include:_spf.b.example -all", answer("ba.example"))
	require.Equal(t, "v=spf1 include:_spf.b.example -all", answer("nob.example"), "a service without an include is skipped")
	require.Equal(t, "v=spf1 include:_spf.m1.example include:_spf.m2.example -all", answer("multi.example"), "every include of the service")
}

func TestMatchHELO(t *testing.T) {
	t.Parallel()
	s, err := newService(serviceRow{name: "x", serial: 1, heloSuffixes: []string{".Mailer.Example."}})
	require.NoError(t, err)
	require.Equal(t, []string{"mailer.example"}, s.heloSuffixes)
	for helo, want := range map[string]bool{
		"mailer.example":           true,
		"mta1.mailer.example":      true,
		"a.b.mailer.example":       true,
		"xmailer.example":          false,
		"mailer.example.evil":      false,
		"ailer.example":            false,
		`evil\.mailer.example`:     false,
		`evil\\.mailer.example`:    true,
		`evil\\\.mailer.example`:   false,
		"":                         false,
		".mailer.example":          true, // an empty label cannot come from the wire
		"mailer\\.example":         false,
		"mailer.example\\032":      false,
		"mta1.mailer.example.":     false,
		"mta1.mailer.examplex":     false,
		"mta1.mailer.examp":        false,
		"[192.0.2.1]":              false,
		"mailer.example._ehlo.foo": false,
	} {
		require.Equal(t, want, s.matchHELO(helo), helo)
	}
}

// FuzzSPFName feeds arbitrary names under _spf.<edge zone> through the
// authority: every one, whatever its HELO, gets exactly one TXT record that
// is one of the answers the edge gives, and an address answer only ever
// names an address in a netblock or range of the domain.
func FuzzSPFName(f *testing.F) {
	e, err := New(Config{Zone: testZone, NameServers: testNameServers(), DatabaseURL: "host=/nonexistent"}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	ix := sampleIndex(f)
	for _, s := range []string{
		"10.1.2.3._ip.mx._ehlo.example.com",
		"192.0.2.10._ip.mta1.mailer.example._ehlo.example.com",
		nibbles(netip.MustParseAddr("2001:db8:100::1")) + "._ip.mx._ehlo.example.com",
		"0.2.10._ip.out.vendor.example._ehlo.example.com",
		"1.2.3.4._ip.a._ip.b._ehlo.c._ehlo.blocked.example",
		`1.2.3.4._ip.a\._ehlo.b\\._ehlo.example.com`,
		"[192.0.2.1]._ehlo.xn--bcher-kva.example",
		"10.1.2.3._ip.example.com",
		nibbles(netip.MustParseAddr("2001:db8:100::1")) + "._ip.example.com",
		"2.3._ip.example.com",
		"mailer.example._ehlo.example.com",
		"1.2.3.4._ip.blocked.example",
		"",
	} {
		f.Add(s)
	}
	allowed := map[string]bool{"v=spf1 ~all": true, "v=spf1 -all": true,
		"v=spf1 include:_spf.mailer.example -all": true, "v=spf1 include:spf.vendor.example include:_spf2.vendor.example -all": true}
	f.Fuzz(func(t *testing.T, rest string) {
		name := strings.ToLower(rest) + "._spf." + testZone + "."
		if rest == "" || len(name) > 1024 {
			return
		}
		if _, ok := dns.IsDomainName(name); !ok {
			return
		}
		ans := e.auth.lookup(ix, name, name, dns.TypeTXT)
		if ans.result != success || len(ans.rrs) != 1 {
			t.Fatalf("%q: result %d with %d records", name, ans.result, len(ans.rrs))
		}
		txt := strings.Join(ans.rrs[0].(*dns.TXT).Txt, "")
		if allowed[txt] {
			return
		}
		q := spfanswer.Parse(name[:len(name)-len("._spf."+testZone+".")])
		if !q.IP.IsValid() {
			t.Fatalf("%q: address answer %q without an address", name, txt)
		}
		mech := "ip6:"
		if q.IP.Is4() {
			mech = "ip4:"
		}
		if txt != "v=spf1 "+mech+q.IP.String()+" -all" {
			t.Fatalf("%q: unexpected answer %q", name, txt)
		}
		d, _ := ix.domains.get(q.Domain)
		in := d.nets != nil && d.nets.Contains(q.IP)
		for _, s := range d.services {
			if svc, ok := ix.services.get(s); ok && svc.nets.Contains(q.IP) {
				in = true
			}
		}
		if !in {
			t.Fatalf("%q: %q for an address outside the domain's ranges", name, txt)
		}
	})
}
