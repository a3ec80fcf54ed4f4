package dnsedge

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// rsa4096Key is a DKIM record the size of a 4096-bit RSA key's: the
// 550-byte SubjectPublicKeyInfo in base64 is 736 characters, so the record
// needs three character-strings and more than 512 bytes.
var rsa4096Key = func() string {
	b := make([]byte, 550)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(b)
}()

// txtTTL renders a TXT record with value cut into 255-byte strings.
func txtTTL(owner string, ttl int, value string) string {
	return strings.Replace(txtRR(owner, value), " 300 IN TXT ", fmt.Sprintf(" %d IN TXT ", ttl), 1)
}

// heloOfLength is a HELO name of exactly n characters ending with suffix,
// in labels of at most 63 characters.
func heloOfLength(n int, suffix string) string {
	var labels []string
	for rest := n - len(suffix); rest > 0; {
		if len(labels) > 0 {
			rest-- // the dot before this label
		}
		l := min(rest, 63)
		if rest == 64 {
			l = 60 // leave room for a dot and a label of a few characters
		}
		labels = append(labels, strings.Repeat("h", l))
		rest -= l
	}
	h := strings.Join(labels, ".") + suffix
	if len(h) != n {
		panic(fmt.Sprintf("heloOfLength(%d) made %d characters", n, len(h)))
	}
	return h
}

// label63 is a label of the maximum length.
var label63 = strings.Repeat("h", 63)

// hostedFixture writes the services and domains the answer tests share.
type hostedFixture struct {
	sExample, sBlocked, sWithheld, sLast int64
}

func writeHostedFixture(t *testing.T, db *testDB) hostedFixture {
	var f hostedFixture
	db.putService(t, "mailer", []string{"192.0.2.0/24", "2001:db8:100::/48"}, []string{"mailer.example"}, []string{"_spf.mailer.example"}, false)
	db.putService(t, "vendor", []string{"198.51.100.0/24"}, []string{"out.vendor.example", "vendor-mta.example"}, []string{"spf.vendor.example"}, false)
	db.putService(t, "other", []string{"203.0.113.0/24"}, []string{"other.example"}, []string{"_spf.other.example"}, false)
	db.putService(t, "gone", []string{"100.64.0.0/10"}, []string{"gone.example"}, []string{"_spf.gone.example"}, true)
	f.sExample = db.putHosted(t, hosted{
		name: "example.com", dmarc: "v=DMARC1; p=none",
		netblocks: []string{"10.1.0.0/16", "2001:db8:1::/48"},
		services:  []string{"mailer", "gone", "vendor"},
		nspf:      sampleNSPF,
		rspf:      sampleRSPF,
		dkim: fmt.Sprintf(`[{"selector": "s1", "txt": %q}, {"selector": "s2", "cname": "s2.dkim.vendor.example."},
			{"selector": "a.b", "txt": "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]`, rsa4096Key),
		bimi: sampleBIMI,
	})
	f.sBlocked = db.putHosted(t, hosted{
		name: "blocked.example", mode: "blocked", dmarc: "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s",
		netblocks: []string{"10.1.0.0/16"}, services: []string{"mailer"}, nspf: "v=spf1 ip4:10.1.0.0/16 -all",
		dkim: `[{"selector": "s1", "txt": "v=DKIM1; p=abc"}, {"selector": "s2", "cname": "s2.dkim.vendor.example"}]`,
		bimi: sampleBIMI,
	})
	f.sWithheld = db.putHosted(t, hosted{name: "withheld.example", dmarc: "v=DMARC1; p=quarantine", services: []string{"vendor"}})
	db.putHosted(t, hosted{name: "x.y.nested.example", dmarc: "v=DMARC1; p=none", nspf: "v=spf1 -all"})
	db.putHosted(t, hosted{name: "split.example", dmarc: "v=DMARC1; p=none", nspf: splitNSPF[0] + "\n" + splitNSPF[1], rspf: "v=spf1 ~all"})
	db.putHosted(t, hosted{name: "left.example", mode: "removed", nspf: "v=spf1 ?all", rspf: "v=spf1 ?all"})
	f.sLast = db.remove(t, "gone.example")
	return f
}

// sampleRSPF is a redirect target with a pinned include and the HELO step.
const sampleRSPF = "v=spf1 include:_spf.pin.example include:%{h2}._ehlo.example.com._spf.edge.rampart.test ~all"

// splitNSPF are the two _nspf records of split.example.
var splitNSPF = [2]string{
	"v=spf1 ip4:192.0.2.0/24 include:_2.split.example._nspf.edge.rampart.test -all",
	"v=spf1 ip4:198.51.100.0/24 -all",
}

func TestHostedAnswers(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	f := writeHostedFixture(t, db)
	e := startEdge(t, Config{DatabaseURL: db.url, NegativeTTL: time.Minute, ReportsDomain: "reports.rampart.test"})
	waitFor(t, 5*time.Second, "initial load", func() bool { return e.Serial() == f.sLast })

	soa := func(apex string, serial int64, ttl int) string {
		return fmt.Sprintf("%s %d IN SOA ns1.edge.rampart.test. hostmaster.edge.rampart.test. %d 3600 600 1209600 60", apex, ttl, serial)
	}
	negEdge := soa("edge.rampart.test.", f.sLast, 60)
	negReports := soa("_report._dmarc.reports.rampart.test.", f.sLast, 60)
	negDKIM := soa("_domainkey.example.com.", f.sExample, 60)
	nsRRs := func(apex string) []string {
		return []string{apex + " 300 IN NS ns1.edge.rampart.test.", apex + " 300 IN NS ns2.edge.rampart.test."}
	}
	nsExtra := []string{
		"ns1.edge.rampart.test. 300 IN A 192.0.2.53",
		"ns1.edge.rampart.test. 300 IN AAAA 2001:db8::53",
		"ns2.edge.rampart.test. 300 IN A 192.0.2.54",
	}
	spf := func(qname, value string) dnsCase {
		return dnsCase{qname: qname, qtype: dns.TypeTXT, edns: 1232, answer: []string{txtTTL(qname, 60, value)}}
	}
	const (
		neutral = "v=spf1 ~all"
		fail    = "v=spf1 -all"
		mailer  = "v=spf1 include:_spf.mailer.example -all"
		vendor  = "v=spf1 include:spf.vendor.example -all"
	)
	// A HELO long enough that the receiver's 253-octet truncation takes the
	// whole address and some of the HELO, and one that takes one label of
	// the address only.
	longHELO := strings.Join([]string{label63, label63, label63, "mta1.mailer.example"}, ".")
	base := len(spfName("192.0.2.10", "", "example.com")) - 1
	partName := spfName("192.0.2.10", heloOfLength(253+len("192.")-base, ".mailer.example"), "example.com")
	require.True(t, strings.HasPrefix(partName, "0.2.10._ip."), partName)
	long6 := spfName("2001:db8:100::1", strings.Join([]string{label63, label63, label63, "x.example"}, "."), "example.com")
	require.False(t, strings.HasPrefix(long6, "2.0.0.1."), "address cut short: %s", long6)
	require.Contains(t, long6, "._ip.")

	cases := map[string]dnsCase{
		// Per-query SPF answers.
		"SPF: netblock IPv4":              spf(spfName("10.1.2.3", "mx.example.com", "example.com"), "v=spf1 ip4:10.1.2.3 -all"),
		"SPF: netblock IPv6":              spf(spfName("2001:db8:1::25", "mx.example.com", "example.com"), "v=spf1 ip6:2001:db8:1::25 -all"),
		"SPF: service range IPv4":         spf(spfName("192.0.2.10", "anything.example", "example.com"), "v=spf1 ip4:192.0.2.10 -all"),
		"SPF: service range IPv6":         spf(spfName("2001:db8:100::1:2", "anything.example", "example.com"), "v=spf1 ip6:2001:db8:100::1:2 -all"),
		"SPF: second service range":       spf(spfName("198.51.100.7", "anything.example", "example.com"), "v=spf1 ip4:198.51.100.7 -all"),
		"SPF: HELO of a sender":           spf(spfName("203.0.113.9", "mta1.mailer.example", "example.com"), mailer),
		"SPF: HELO is the suffix":         spf(spfName("203.0.113.9", "mailer.example", "example.com"), mailer),
		"SPF: HELO of a later sender":     spf(spfName("203.0.113.9", "a.b.vendor-mta.example", "example.com"), vendor),
		"SPF: HELO, sender order":         spf(spfName("203.0.113.9", "mailer.example", "withheld.example"), neutral),
		"SPF: HELO no label boundary":     spf(spfName("203.0.113.9", "evilmailer.example", "example.com"), neutral),
		"SPF: HELO escaped dot":           spf(spfName("203.0.113.9", `evil\.mailer.example`, "example.com"), neutral),
		"SPF: HELO escaped backslash":     spf(spfName("203.0.113.9", `evil\\.mailer.example`, "example.com"), mailer),
		"SPF: HELO of a disabled one":     spf(spfName("203.0.113.9", "mx.other.example", "example.com"), neutral),
		"SPF: range of a disabled one":    spf(spfName("203.0.113.9", "mx.example.com", "example.com"), neutral),
		"SPF: tombstoned service":         spf(spfName("100.64.0.1", "mx.gone.example", "example.com"), neutral),
		"SPF: miss":                       spf(spfName("192.0.2.10", "mx.example.net", "withheld.example"), neutral),
		"SPF: unknown domain":             spf(spfName("10.1.2.3", "mx.example.com", "unknown.example"), neutral),
		"SPF: tombstoned domain":          spf(spfName("10.1.2.3", "mx.example.com", "gone.example"), neutral),
		"SPF: blocked, netblock":          spf(spfName("10.1.2.3", "mx.example.com", "blocked.example"), fail),
		"SPF: blocked, sender":            spf(spfName("192.0.2.10", "mta1.mailer.example", "blocked.example"), fail),
		"SPF: blocked, miss":              spf(spfName("203.0.113.9", "x.example", "blocked.example"), fail),
		"SPF: truncated, HELO decides":    spf(spfName("10.1.2.3", longHELO, "example.com"), mailer),
		"SPF: truncated, unknown HELO":    spf(spfName("10.1.2.3", strings.Join([]string{label63, label63, label63, label63}, "."), "example.com"), neutral),
		"SPF: truncated into the address": spf(partName, mailer),
		"SPF: truncated IPv6 address":     spf(long6, neutral),
		"SPF: truncated, blocked":         spf(spfName("10.1.2.3", longHELO, "blocked.example"), fail),
		"SPF: address-literal HELO":       spf(spfName("10.1.2.3", "[192.0.2.1]", "example.com"), "v=spf1 ip4:10.1.2.3 -all"),
		"SPF: address-literal miss":       spf(spfName("203.0.113.9", "[192.0.2.1]", "example.com"), neutral),
		"SPF: escaped bytes in HELO":      spf(spfName("10.1.2.3", `mx\ evil\007\"\;.example`, "example.com"), "v=spf1 ip4:10.1.2.3 -all"),
		"SPF: _ip and _ehlo in HELO":      spf(spfName("192.0.2.10", "1.2.3.4._ip.x._ehlo.unknown.example._ehlo.y", "example.com"), "v=spf1 ip4:192.0.2.10 -all"),
		"SPF: _ehlo in HELO, HELO match":  spf(spfName("203.0.113.9", "blocked.example._ehlo.mta1.mailer.example", "example.com"), mailer),
		"SPF: forged address in HELO":     spf("4._ip.10.1.2.3._ip.mx._ehlo.example.com._spf.edge.rampart.test.", neutral),
		"SPF: 63-byte labels in HELO":     spf(spfName("10.1.2.3", label63+"."+label63, "example.com"), "v=spf1 ip4:10.1.2.3 -all"),
		"SPF: 0x20 case":                  spf("10.1.2.3._IP.Mx.Example.COM._EHLO.ExAmple.com._SPF.edge.RAMPART.test.", "v=spf1 ip4:10.1.2.3 -all"),
		"SPF: upper-case nibbles": spf(strings.ToUpper(spfName("2001:db8:1::abcd", "mx", "example.com")),
			"v=spf1 ip6:2001:db8:1::abcd -all"),
		"SPF: HELO 0x20":             spf(spfName("203.0.113.9", "MTA1.Mailer.EXAMPLE", "example.com"), mailer),
		"SPF: leading zero":          spf("010.1.2.3._ip.mx._ehlo.example.com._spf.edge.rampart.test.", neutral),
		"SPF: octet over 255":        spf("10.1.2.256._ip.mx._ehlo.example.com._spf.edge.rampart.test.", neutral),
		"SPF: five octets":           spf("1.10.1.2.3._ip.mx._ehlo.example.com._spf.edge.rampart.test.", neutral),
		"SPF: no _ip label":          spf("mta1.mailer.example._ehlo.example.com._spf.edge.rampart.test.", mailer),
		"SPF: no HELO":               spf("10.1.2.3._ip._ehlo.example.com._spf.edge.rampart.test.", "v=spf1 ip4:10.1.2.3 -all"),
		"SPF: no _ehlo or _ip label": spf("10.1.2.3.example.com._spf.edge.rampart.test.", neutral),
		"SPF: nothing after _ehlo":   spf("10.1.2.3._ip.mx._ehlo._spf.edge.rampart.test.", neutral),
		"SPF: one label":             spf("x._spf.edge.rampart.test.", neutral),
		"SPF: ANY gives the TXT": {
			qname: spfName("10.1.2.3", "mx", "example.com"), qtype: dns.TypeANY,
			answer: []string{txtTTL(spfName("10.1.2.3", "mx", "example.com"), 60, "v=spf1 ip4:10.1.2.3 -all")},
		},
		"SPF: NODATA for A": {
			qname: spfName("10.1.2.3", "mx", "example.com"), qtype: dns.TypeA, ns: []string{negEdge},
		},
		"SPF: NODATA at _spf.<edge zone>": {
			qname: "_spf.edge.rampart.test.", qtype: dns.TypeTXT, ns: []string{negEdge},
		},

		// The current form's first include: the address alone, whatever
		// the HELO.
		"SPF current: netblock":       spf("10.1.2.3._ip.example.com._spf.edge.rampart.test.", "v=spf1 ip4:10.1.2.3 -all"),
		"SPF current: sender's range": spf(nibbles(netip.MustParseAddr("2001:db8:100::9"))+"._ip.example.com._spf.edge.rampart.test.", "v=spf1 ip6:2001:db8:100::9 -all"),
		"SPF current: no match":       spf("10.2.2.3._ip.example.com._spf.edge.rampart.test.", neutral),
		"SPF current: blocked":        spf("10.1.2.3._ip.blocked.example._spf.edge.rampart.test.", fail),
		"SPF current: removed":        spf("10.1.2.3._ip.left.example._spf.edge.rampart.test.", neutral),
		"SPF current: cut short":      spf("2.3._ip.example.com._spf.edge.rampart.test.", neutral),

		// _rspf: the redirect target, with the SPF answers' TTL.
		"rspf: record": {
			qname: "example.com._rspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("example.com._rspf.edge.rampart.test.", 60, sampleRSPF)},
		},
		"rspf: blocked fails whatever the row says": {
			qname: "blocked.example._rspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("blocked.example._rspf.edge.rampart.test.", 60, fail)},
		},
		"rspf: removed is neutral": {
			qname: "left.example._rspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("left.example._rspf.edge.rampart.test.", 60, "v=spf1 ?all")},
		},
		"rspf: a row compiled before the column": {
			qname: "withheld.example._rspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("withheld.example._rspf.edge.rampart.test.", 60, neutral)},
		},
		"rspf: NODATA at an empty non-terminal": {
			qname: "nested.example._rspf.edge.rampart.test.", qtype: dns.TypeTXT, ns: []string{negEdge},
		},
		"rspf: NODATA at _rspf.<edge zone>": {
			qname: "_rspf.edge.rampart.test.", qtype: dns.TypeTXT, ns: []string{negEdge},
		},
		"rspf: NXDOMAIN for an unknown domain": {
			qname: "unknown.example._rspf.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negEdge},
		},

		// _nspf, with the SPF answers' TTL.
		"nspf: record": {
			qname: "example.com._nspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("example.com._nspf.edge.rampart.test.", 60, sampleNSPF)},
		},
		"nspf: blocked": {
			qname: "blocked.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("blocked.example._nspf.edge.rampart.test.", 60, fail)},
		},
		"nspf: below empty non-terminals": {
			qname: "x.y.nested.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("x.y.nested.example._nspf.edge.rampart.test.", 60, fail)},
		},
		"nspf: removed is neutral": {
			qname: "left.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("left.example._nspf.edge.rampart.test.", 60, "v=spf1 ?all")},
		},
		"nspf: first of two records": {
			qname: "split.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("split.example._nspf.edge.rampart.test.", 60, splitNSPF[0])},
		},
		"nspf: second of two records": {
			qname: "_2.split.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtTTL("_2.split.example._nspf.edge.rampart.test.", 60, splitNSPF[1])},
		},
		"nspf: NXDOMAIN past the last record": {
			qname: "_3.split.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negEdge},
		},
		"nspf: NXDOMAIN for a record number with a leading zero": {
			qname: "_02.split.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negEdge},
		},
		"nspf: NXDOMAIN for a second record of a one-record domain": {
			qname: "_2.example.com._nspf.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negEdge},
		},
		"nspf: NODATA at an empty non-terminal": {
			qname: "nested.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT, ns: []string{negEdge},
		},
		"nspf: NODATA at _nspf.<edge zone>": {
			qname: "_nspf.edge.rampart.test.", qtype: dns.TypeTXT, ns: []string{negEdge},
		},
		"nspf: NODATA for another type": {
			qname: "example.com._nspf.edge.rampart.test.", qtype: dns.TypeA, ns: []string{negEdge},
		},
		"nspf: NXDOMAIN without a record": {
			qname: "withheld.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negEdge},
		},
		"nspf: NXDOMAIN for an unknown domain": {
			qname: "unknown.example._nspf.edge.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negEdge},
		},

		// DKIM.
		"DKIM: hosted key in strings": {
			qname: "s1._domainkey.example.com.", qtype: dns.TypeTXT, edns: 1232,
			answer: []string{txtRR("s1._domainkey.example.com.", rsa4096Key)},
		},
		"DKIM: selector with a dot": {
			qname: "a.b._domainkey.example.com.", qtype: dns.TypeTXT,
			answer: []string{txtRR("a.b._domainkey.example.com.", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")},
		},
		"DKIM: vendor key as CNAME": {
			qname: "s2._domainkey.example.com.", qtype: dns.TypeTXT,
			answer: []string{"s2._domainkey.example.com. 300 IN CNAME s2.dkim.vendor.example."},
		},
		"DKIM: CNAME answers any type": {
			qname: "S2._domainkey.example.com.", qtype: dns.TypeA,
			answer: []string{"S2._domainkey.example.com. 300 IN CNAME s2.dkim.vendor.example."},
		},
		"DKIM: CNAME for CNAME": {
			qname: "s2._domainkey.example.com.", qtype: dns.TypeCNAME,
			answer: []string{"s2._domainkey.example.com. 300 IN CNAME s2.dkim.vendor.example."},
		},
		"DKIM: NODATA at an empty non-terminal": {
			qname: "b._domainkey.example.com.", qtype: dns.TypeTXT, ns: []string{negDKIM},
		},
		"DKIM: NODATA for another type": {
			qname: "s1._domainkey.example.com.", qtype: dns.TypeAAAA, ns: []string{negDKIM},
		},
		"DKIM: NXDOMAIN for an unknown selector": {
			qname: "nope._domainkey.example.com.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negDKIM},
		},
		"DKIM: NXDOMAIN below a selector": {
			qname: "x.s1._domainkey.example.com.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{negDKIM},
		},
		"DKIM: SOA at the apex": {
			qname: "_domainkey.example.com.", qtype: dns.TypeSOA,
			answer: []string{soa("_domainkey.example.com.", f.sExample, 300)},
		},
		"DKIM: NS at the apex": {
			qname: "_domainkey.example.com.", qtype: dns.TypeNS,
			answer: nsRRs("_domainkey.example.com."), extra: nsExtra,
		},
		"DKIM: NODATA for TXT at the apex": {
			qname: "_domainkey.example.com.", qtype: dns.TypeTXT, ns: []string{negDKIM},
		},
		"DKIM: blocked, stored selector revoked": {
			qname: "s1._domainkey.blocked.example.", qtype: dns.TypeTXT,
			answer: []string{txtRR("s1._domainkey.blocked.example.", "v=DKIM1; p=")},
		},
		"DKIM: blocked, CNAME selector revoked": {
			qname: "s2._domainkey.blocked.example.", qtype: dns.TypeTXT,
			answer: []string{txtRR("s2._domainkey.blocked.example.", "v=DKIM1; p=")},
		},
		"DKIM: blocked, any selector revoked": {
			qname: "google._domainkey.blocked.example.", qtype: dns.TypeTXT,
			answer: []string{txtRR("google._domainkey.blocked.example.", "v=DKIM1; p=")},
		},
		"DKIM: blocked, dotted selector revoked": {
			qname: "x.y._domainkey.blocked.example.", qtype: dns.TypeTXT,
			answer: []string{txtRR("x.y._domainkey.blocked.example.", "v=DKIM1; p=")},
		},
		"DKIM: blocked, NODATA for another type": {
			qname: "s2._domainkey.blocked.example.", qtype: dns.TypeCNAME,
			ns: []string{soa("_domainkey.blocked.example.", f.sBlocked, 60)},
		},
		"DKIM: REFUSED for an unknown domain": {
			qname: "s1._domainkey.unknown.example.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused,
		},
		"DKIM: REFUSED for a tombstoned domain": {
			qname: "s1._domainkey.gone.example.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused,
		},

		// BIMI.
		"BIMI: record": {
			qname: "default._bimi.example.com.", qtype: dns.TypeTXT,
			answer: []string{txtRR("default._bimi.example.com.", sampleBIMI)},
		},
		"BIMI: withheld is NODATA": {
			qname: "default._bimi.withheld.example.", qtype: dns.TypeTXT,
			ns: []string{soa("_bimi.withheld.example.", f.sWithheld, 60)},
		},
		"BIMI: other selector NXDOMAIN": {
			qname: "brand._bimi.example.com.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{soa("_bimi.example.com.", f.sExample, 60)},
		},
		"BIMI: SOA at the apex": {
			qname: "_bimi.example.com.", qtype: dns.TypeSOA,
			answer: []string{soa("_bimi.example.com.", f.sExample, 300)},
		},

		// External report authorisation (RFC 7489 §7.1).
		"report: authorised": {
			qname: "example.com._report._dmarc.reports.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtRR("example.com._report._dmarc.reports.rampart.test.", "v=DMARC1")},
		},
		"report: authorised, blocked domain": {
			qname: "blocked.example._report._dmarc.reports.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtRR("blocked.example._report._dmarc.reports.rampart.test.", "v=DMARC1")},
		},
		"report: 0x20": {
			qname: "Example.COM._REPORT._dmarc.Reports.rampart.test.", qtype: dns.TypeTXT,
			answer: []string{txtRR("Example.COM._REPORT._dmarc.Reports.rampart.test.", "v=DMARC1")},
		},
		"report: NXDOMAIN for an unknown domain": {
			qname: "unknown.example._report._dmarc.reports.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{negReports},
		},
		"report: NODATA for a removed domain": {
			qname: "left.example._report._dmarc.reports.rampart.test.", qtype: dns.TypeTXT, ns: []string{negReports},
		},
		"report: NXDOMAIN for a tombstoned domain": {
			qname: "gone.example._report._dmarc.reports.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError,
			ns: []string{negReports},
		},
		"report: NODATA at an empty non-terminal": {
			qname: "y.nested.example._report._dmarc.reports.rampart.test.", qtype: dns.TypeTXT, ns: []string{negReports},
		},
		"report: SOA at the apex": {
			qname: "_report._dmarc.reports.rampart.test.", qtype: dns.TypeSOA,
			answer: []string{soa("_report._dmarc.reports.rampart.test.", f.sLast, 300)},
		},
		"report: NS at the apex": {
			qname: "_report._dmarc.reports.rampart.test.", qtype: dns.TypeNS,
			answer: nsRRs("_report._dmarc.reports.rampart.test."), extra: nsExtra,
		},
		"report: REFUSED above the zone": {
			qname: "_dmarc.reports.rampart.test.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused,
		},

		// Unknown types.
		"TYPE666 at _dmarc.D": {
			qname: "_dmarc.example.com.", qtype: 666, ns: []string{soa("_dmarc.example.com.", f.sExample, 60)},
		},
		"TYPE666 at a DKIM key": {
			qname: "s1._domainkey.example.com.", qtype: 666, ns: []string{negDKIM},
		},
		"TYPE666 at an SPF name": {
			qname: spfName("10.1.2.3", "mx", "example.com"), qtype: 666, ns: []string{negEdge},
		},
	}
	for name, tc := range cases {
		for _, transport := range []string{"udp", "tcp"} {
			t.Run(transport+"/"+name, func(t *testing.T) {
				t.Parallel()
				for _, bits := range []struct{ rd, cd bool }{{false, false}, {true, true}, {false, true}} {
					q := question(tc.qname, tc.qtype, tc.edns)
					q.RecursionDesired = bits.rd
					q.CheckingDisabled = bits.cd
					var r *dns.Msg
					if transport == "udp" {
						var size int
						r, size = exchangeUDP(t, e.UDPAddr(), q)
						require.LessOrEqual(t, size, udpSize(q))
					} else {
						r = exchangeTCP(t, e.TCPAddr(), q)
					}
					checkReply(t, q, r, tc)
					require.Equal(t, bits.rd, r.RecursionDesired, "RD copied")
					require.Equal(t, bits.cd, r.CheckingDisabled, "CD copied")
				}
			})
		}
	}
}
