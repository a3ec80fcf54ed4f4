package spf

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// testServer is a DNS server on loopback, answering from zone-file lines,
// over UDP and TCP on the same port.
type testServer struct {
	t       testing.TB
	addr    string
	records map[string][]dns.RR // by canonical owner name and type, "name TYPE"
	names   map[string]bool
	tcp     atomic.Int32 // TCP queries seen
}

func startTestServer(t *testing.T, lines ...string) *testServer {
	t.Helper()
	s := &testServer{t: t, records: map[string][]dns.RR{}, names: map[string]bool{}}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		require.NoError(t, err, l)
		h := rr.Header()
		name := canonical(t, h.Name)
		key := name + " " + dns.TypeToString[h.Rrtype]
		s.records[key] = append(s.records[key], rr)
		s.names[name] = true
	}

	var pc net.PacketConn
	var ln net.Listener
	for range 10 { // find a port free for both UDP and TCP
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		_ = pc.Close()
		pc = nil
	}
	require.NotNil(t, pc, "no port free for UDP and TCP")
	s.addr = pc.LocalAddr().String()

	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	tcp := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)}
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// canonical is a name as the server sees it from the wire: one spelling of
// each escaped octet, lower case.
func canonical(t testing.TB, name string) string {
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		t.Fatalf("pack %q: %v", name, err)
	}
	s, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		t.Fatalf("unpack %q: %v", name, err)
	}
	return strings.ToLower(s)
}

func (s *testServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	name := canonical(s.t, q.Name)
	isTCP := w.LocalAddr().Network() == "tcp"
	if isTCP {
		s.tcp.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch {
	case name == "slow.example.":
		return // no answer: the client times out
	case name == "servfail.example.":
		m.Rcode = dns.RcodeServerFailure
	case strings.HasPrefix(name, "tc.") && !isTCP:
		m.Truncated = true
	case !s.names[name]:
		m.Rcode = dns.RcodeNameError
	default:
		m.Answer = append(m.Answer, s.records[name+" "+dns.TypeToString[q.Qtype]]...)
		if len(m.Answer) == 0 {
			// Like an authoritative server, give the CNAME but do not chase
			// it, so that the client has to.
			m.Answer = append(m.Answer, s.records[name+" CNAME"]...)
		}
	}
	_ = w.WriteMsg(m)
}

func TestDNSResolver(t *testing.T) {
	t.Parallel()
	s := startTestServer(t,
		`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 " "-all"`,
		`example.com. 300 IN TXT "quote\" backslash\\ byte\200 semicolon;"`,
		`example.com. 300 IN A 192.0.2.1`,
		`example.com. 300 IN AAAA 2001:db8::1`,
		`example.com. 300 IN MX 10 mail.example.com.`,
		`example.com. 300 IN MX 20 .`,
		`alias.example.com. 300 IN CNAME example.com.`,
		`tc.example.com. 300 IN TXT "`+strings.Repeat("x", 200)+`"`,
		`1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com.`,
		`empty.example.com. 300 IN A 192.0.2.9`,
	)
	r := &DNSResolver{Server: s.addr, Timeout: 200 * time.Millisecond}
	ctx := context.Background()

	txt, err := r.LookupTXT(ctx, "example.com")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"v=spf1 ip4:192.0.2.0/24 -all", "quote\" backslash\\ byte\xc8 semicolon;"}, txt)

	txt, err = r.LookupTXT(ctx, "alias.example.com")
	require.NoError(t, err, "the CNAME is followed")
	require.Len(t, txt, 2)

	ips, err := r.LookupIP(ctx, "ip4", "Example.COM")
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.1")}, ips)
	ips, err = r.LookupIP(ctx, "ip6", "example.com")
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("2001:db8::1")}, ips)

	mx, err := r.LookupMX(ctx, "example.com")
	require.NoError(t, err)
	require.Equal(t, []string{"mail.example.com", ""}, mx)

	ptr, err := r.LookupPTR(ctx, netip.MustParseAddr("192.0.2.1"))
	require.NoError(t, err)
	require.Equal(t, []string{"mail.example.com"}, ptr)

	txt, err = r.LookupTXT(ctx, "tc.example.com")
	require.NoError(t, err)
	require.Equal(t, []string{strings.Repeat("x", 200)}, txt)
	require.Positive(t, s.tcp.Load(), "a truncated UDP answer is retried over TCP")

	_, err = r.LookupTXT(ctx, "nowhere.example.com")
	require.ErrorIs(t, err, ErrNotFound, "NXDOMAIN")
	require.True(t, isNotFound(err))
	_, err = r.LookupTXT(ctx, "empty.example.com")
	require.ErrorIs(t, err, ErrNotFound, "NODATA")
	_, err = r.LookupTXT(ctx, "bad..name")
	require.ErrorIs(t, err, ErrNotFound, "a name no query can carry")

	_, err = r.LookupTXT(ctx, "servfail.example")
	require.ErrorIs(t, err, ErrServerFailure)
	require.False(t, isNotFound(err))

	_, err = r.LookupTXT(ctx, "slow.example")
	var le *LookupError
	require.ErrorAs(t, err, &le)
	require.True(t, le.Timeout(), "%v", err)
	require.False(t, isNotFound(err))

	_, err = r.LookupIP(ctx, "ip5", "example.com")
	require.Error(t, err)
}

// TestDNSResolverEscapedNames: a name with octets that presentation format
// escapes (a HELO with a space or a parenthesis, expanded into an include)
// is found whichever escape the server's answer spells it with.
func TestDNSResolverEscapedNames(t *testing.T) {
	t.Parallel()
	s := startTestServer(t,
		`a\(b._ehlo.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`sp\032ace._ehlo.example. 300 IN TXT "v=spf1 ip4:192.0.2.2 -all"`,
		`Upper\032Case.example. 300 IN TXT "v=spf1 ip4:192.0.2.3 -all"`,
	)
	r := &DNSResolver{Server: s.addr, Timeout: time.Second}
	ctx := context.Background()
	for name, want := range map[string]string{
		"a(b._ehlo.example":    "v=spf1 ip4:192.0.2.1 -all",
		"sp ace._ehlo.example": "v=spf1 ip4:192.0.2.2 -all",
		"upper case.example":   "v=spf1 ip4:192.0.2.3 -all",
	} {
		txt, err := r.LookupTXT(ctx, name)
		require.NoError(t, err, name)
		require.Equal(t, []string{want}, txt, name)
	}
	require.True(t, sameName(`a\040b.example.`, `A\(B.example.`), "\\040 is the decimal escape of (")
	require.False(t, sameName(`a\040b.example.`, `a\041b.example.`))
	require.False(t, sameName("a\200.example.", "a\201.example."), "non-ASCII octets compare exactly")
}

// TestCheckOverLoopback evaluates records served by a real DNS server, the
// way the end-to-end tests use the package against Rampart's DNS edge.
func TestCheckOverLoopback(t *testing.T) {
	t.Parallel()
	s := startTestServer(t,
		`example.com. 300 IN TXT "v=spf1 include:_spf.example.net mx -all exp=exp.example.com"`,
		`exp.example.com. 300 IN TXT "%{i} is not one of %{d}'s servers"`,
		`_spf.example.net. 300 IN TXT "v=spf1 ip6:2001:db8:1::/48 a:relay.example.net ~all"`,
		`relay.example.net. 300 IN A 198.51.100.7`,
		`example.com. 300 IN MX 10 mail.example.com.`,
		`mail.example.com. 300 IN A 192.0.2.25`,
		`broken.example. 300 IN TXT "v=spf1 include:servfail.example -all"`,
	)
	c := &Checker{Resolver: NewDNSResolver(s.addr)}
	ctx := context.Background()
	for _, tt := range []struct {
		ip, domain string
		want       Result
	}{
		{"198.51.100.7", "example.com", Pass},
		{"2001:db8:1::25", "example.com", Pass},
		{"192.0.2.25", "example.com", Pass},
		{"203.0.113.1", "example.com", Fail},
		{"203.0.113.1", "nowhere.example", None},
		{"203.0.113.1", "broken.example", TempError},
	} {
		out := c.CheckHost(ctx, netip.MustParseAddr(tt.ip), tt.domain, "x@"+tt.domain, "helo.example")
		require.Equal(t, tt.want, out.Result, "%s %s: %v", tt.ip, tt.domain, out.Err)
		if tt.want == Fail {
			require.Equal(t, "203.0.113.1 is not one of example.com's servers", out.Explanation)
		}
	}

	prefixes, lookups, err := Flatten(ctx, c.Resolver, "example.com")
	require.NoError(t, err)
	require.Equal(t, 3, lookups)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("192.0.2.25/32"),
		netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("2001:db8:1::/48"),
	}, prefixes)
}

func TestLookupErrorClassification(t *testing.T) {
	t.Parallel()
	require.True(t, isNotFound(&net.DNSError{Err: "no such host", IsNotFound: true}))
	require.False(t, isNotFound(&net.DNSError{Err: "timeout", IsTimeout: true}))
	require.True(t, isNotFound(&LookupError{Name: "x", Type: "A", Err: ErrNotFound}))
	require.False(t, isNotFound(errors.New("boom")))
	require.Equal(t, "spf: lookup TXT x.example: spf: no such DNS records", (&LookupError{Name: "x.example", Type: "TXT", Err: ErrNotFound}).Error())
}

func TestPresentationEscapes(t *testing.T) {
	t.Parallel()
	require.Equal(t, `a\032b\034\092`, nameToPresentation(`a b"\`))
	require.Equal(t, "plain.example", nameToPresentation("plain.example"))
	require.Equal(t, `a b"\`, unescapePresentation(`a\032b\"\\`))
	require.Equal(t, "x\\", unescapePresentation(`x\`))
	require.Equal(t, "mail.example.com", presentationToName("mail.example.com."))
	require.True(t, validDomain("a.b"))
	require.True(t, validDomain("a.b."))
	require.False(t, validDomain("a..b"))
	require.False(t, validDomain("a.b.."))
	require.False(t, validDomain(strings.Repeat("a", 64)+".b"))
	require.False(t, validDomain(strings.Repeat("a.", 127)+"bb"))
}
