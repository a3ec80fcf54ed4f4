package dnscheck_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rampartmail/rampart/internal/dnscheck"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is an authoritative DNS server on loopback (UDP and TCP on one
// port) answering from zone-file lines, that does not chase CNAMEs, plus a
// few names that misbehave on purpose:
//
//	servfail.test, refused.test   that RCODE
//	silent.test                   never answered
//	flaky.test                    the first UDP query is dropped
//	liar.test                     answered as if the question were other.test
//	chased.test                   answered with its whole CNAME chain
type server struct {
	addr    string
	records map[string][]dns.RR
	mu      sync.Mutex
	seen    map[string]int // queries per "name/net"
}

func startServer(t *testing.T, lines ...string) *server {
	t.Helper()
	s := &server{records: map[string][]dns.RR{}, seen: map[string]int{}}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		require.NoError(t, err, l)
		n := strings.ToLower(rr.Header().Name)
		s.records[n] = append(s.records[n], rr)
	}
	var pc net.PacketConn
	var ln net.Listener
	for range 10 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close()
		pc = nil
	}
	require.NotNil(t, pc, "no port free for UDP and TCP")
	s.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

func (s *server) queries(name, network string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[name+"/"+network]
}

func (s *server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	network := w.RemoteAddr().Network()
	s.mu.Lock()
	s.seen[name+"/"+network]++
	n := s.seen[name+"/"+network]
	s.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	switch name {
	case "servfail.test.":
		m.Rcode = dns.RcodeServerFailure
	case "refused.test.":
		m.Rcode = dns.RcodeRefused
	case "silent.test.":
		return
	case "flaky.test.":
		if n == 1 {
			return
		}
		m.Answer = append(m.Answer, mustRR("flaky.test. 60 IN TXT \"second time\""))
	case "liar.test.":
		m.Question[0].Name = "other.test."
		m.Answer = append(m.Answer, mustRR("other.test. 60 IN TXT \"not yours\""))
	default:
		chase := strings.HasSuffix(name, "chased.test.")
		for hops := 0; hops < 20; hops++ {
			rrs, ok := s.records[name]
			if !ok {
				if hops == 0 || chase {
					m.Rcode = dns.RcodeNameError
				}
				break
			}
			var cname string
			for _, rr := range rrs {
				switch {
				case rr.Header().Rrtype == q.Qtype:
					m.Answer = append(m.Answer, rr)
				case rr.Header().Rrtype == dns.TypeCNAME:
					m.Answer = append(m.Answer, rr)
					cname = strings.ToLower(rr.(*dns.CNAME).Target)
				default:
					m.Extra = append(m.Extra, rr) // noise the checker must ignore
				}
			}
			if cname == "" || !chase {
				break
			}
			name = cname
		}
	}
	if network == "udp" {
		m.Truncate(dns.MinMsgSize)
	}
	_ = w.WriteMsg(m)
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

func TestLookupTXT(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200)
	var big []string
	for i := range 12 {
		big = append(big, "big.test. 60 IN TXT \""+long+string(rune('a'+i))+"\"")
	}
	s := startServer(t, append(big,
		`_rampart.example.test. 60 IN TXT "rampart-verify=abc" "def"`,
		`_rampart.example.test. 60 IN TXT "v=spf1 -all"`,
		`_rampart.example.test. 60 IN A 192.0.2.1`,
		`stuffed.test. 60 IN TXT "mine"`,
		`exists.test. 60 IN A 192.0.2.1`,
		`alias.test. 60 IN CNAME hop.test.`,
		`hop.test. 60 IN CNAME target.test.`,
		`target.test. 60 IN TXT "at the end"`,
		`dangling.test. 60 IN CNAME nowhere.test.`,
		`loop1.test. 60 IN CNAME loop2.test.`,
		`loop2.test. 60 IN CNAME loop1.test.`,
		`a.chased.test. 60 IN CNAME b.chased.test.`,
		`b.chased.test. 60 IN TXT "chased"`,
		`gone.chased.test. 60 IN CNAME nothing.chased.test.`,
	)...)
	c := &dnscheck.Checker{Server: s.addr, Timeout: 300 * time.Millisecond}

	for _, tc := range []struct {
		name   string
		status dnscheck.Status
		txt    []string
		chain  []string
	}{
		{"_rampart.example.test", dnscheck.Found, []string{"rampart-verify=abcdef", "v=spf1 -all"}, nil},
		{"_RAMPART.Example.TEST.", dnscheck.Found, []string{"rampart-verify=abcdef", "v=spf1 -all"}, nil},
		{"exists.test", dnscheck.NoData, nil, nil},
		{"missing.test", dnscheck.NXDomain, nil, nil},
		{"servfail.test", dnscheck.ServFail, nil, nil},
		{"refused.test", dnscheck.Refused, nil, nil},
		{"silent.test", dnscheck.Timeout, nil, nil},
		{"flaky.test", dnscheck.Found, []string{"second time"}, nil},
		{"liar.test", dnscheck.Failed, nil, nil},
		{"alias.test", dnscheck.Found, []string{"at the end"}, []string{"hop.test", "target.test"}},
		{"dangling.test", dnscheck.NXDomain, nil, []string{"nowhere.test"}},
		{"loop1.test", dnscheck.Failed, nil, nil},
		{"a.chased.test", dnscheck.Found, []string{"chased"}, []string{"b.chased.test"}},
		{"gone.chased.test", dnscheck.NXDomain, nil, []string{"nothing.chased.test"}},
		{"bad..name", dnscheck.Failed, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.TXT(context.Background(), tc.name)
			require.Equal(t, tc.status, r.Status, "%s: %v", r.Describe(), r.Err)
			require.Equal(t, tc.txt, r.TXT())
			if tc.chain != nil {
				require.Equal(t, tc.chain, r.Chain)
			}
			require.Equal(t, tc.status.Definitive(), r.Status == dnscheck.Found || r.Status == dnscheck.NoData || r.Status == dnscheck.NXDomain)
			require.NotEmpty(t, r.Describe())
			if r.Status == dnscheck.Found {
				require.NoError(t, r.Err)
			}
		})
	}
	require.Equal(t, 2, s.queries("silent.test.", "udp"), "a lost UDP query is sent again, Attempts times")

	// A truncated UDP answer is asked again over TCP and read whole.
	r := c.TXT(context.Background(), "big.test")
	require.Equal(t, dnscheck.Found, r.Status, r.Err)
	require.Len(t, r.TXT(), 12)
	require.Equal(t, 1, s.queries("big.test.", "tcp"))
}

// TestLookupContext checks that a cancelled context ends a lookup at once,
// as a timeout, without waiting for the attempts.
func TestLookupContext(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	c := &dnscheck.Checker{Server: s.addr, Timeout: 10 * time.Second, Attempts: 5}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := c.TXT(ctx, "silent.test")
	require.Equal(t, dnscheck.Timeout, r.Status)
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestNoServer checks that a server that is not there is a failure, not an
// answer: the port is closed, so the query is refused by the kernel.
func TestNoServer(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := pc.LocalAddr().String()
	require.NoError(t, pc.Close())
	r := (&dnscheck.Checker{Server: addr, Timeout: 300 * time.Millisecond}).TXT(context.Background(), "example.test")
	require.False(t, r.Status.Definitive(), "%v", r.Status)
	require.Error(t, r.Err)
}

// TestPTRAndAddrs: the reverse name of an IPv4, IPv6 and IPv4-mapped
// address, its PTR names (lower case, once each, through an RFC 2317
// CNAME), and a name's addresses of the IP's family.
func TestPTRAndAddrs(t *testing.T) {
	t.Parallel()
	s := startServer(t,
		`1.2.0.192.in-addr.arpa. 60 IN PTR Mail.Example.Test.`,
		`1.2.0.192.in-addr.arpa. 60 IN PTR mail.example.test.`,
		`1.2.0.192.in-addr.arpa. 60 IN PTR relay.example.test.`,
		`9.2.0.192.in-addr.arpa. 60 IN CNAME 9.0-63.2.0.192.in-addr.arpa.`,
		`9.0-63.2.0.192.in-addr.arpa. 60 IN PTR delegated.example.test.`,
		`1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 60 IN PTR six.example.test.`,
		`mail.example.test. 60 IN A 192.0.2.1`,
		`mail.example.test. 60 IN AAAA 2001:db8::1`,
	)
	c := &dnscheck.Checker{Server: s.addr, Timeout: 300 * time.Millisecond}
	ctx := context.Background()

	r := c.PTR(ctx, netip.MustParseAddr("192.0.2.1"))
	require.Equal(t, dnscheck.Found, r.Status, r.Err)
	require.Equal(t, "1.2.0.192.in-addr.arpa", r.Name)
	require.Equal(t, []string{"mail.example.test", "relay.example.test"}, r.Names())
	r = c.PTR(ctx, netip.MustParseAddr("::ffff:192.0.2.1"))
	require.Equal(t, "1.2.0.192.in-addr.arpa", r.Name)
	r = c.PTR(ctx, netip.MustParseAddr("192.0.2.9"))
	require.Equal(t, []string{"delegated.example.test"}, r.Names())
	require.Equal(t, []string{"9.0-63.2.0.192.in-addr.arpa"}, r.Chain)
	r = c.PTR(ctx, netip.MustParseAddr("2001:db8::1"))
	require.Equal(t, []string{"six.example.test"}, r.Names())
	require.Equal(t, dnscheck.NXDomain, c.PTR(ctx, netip.MustParseAddr("192.0.2.2")).Status)
	require.Equal(t, dnscheck.Failed, c.PTR(ctx, netip.Addr{}).Status)

	r = c.Addrs(ctx, "mail.example.test", netip.MustParseAddr("192.0.2.77"))
	require.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.1")}, r.Addrs())
	r = c.Addrs(ctx, "mail.example.test", netip.MustParseAddr("::ffff:192.0.2.77"))
	require.Equal(t, dns.TypeA, r.Type)
	r = c.Addrs(ctx, "mail.example.test", netip.MustParseAddr("2001:db8::77"))
	require.Equal(t, []netip.Addr{netip.MustParseAddr("2001:db8::1")}, r.Addrs())
}
