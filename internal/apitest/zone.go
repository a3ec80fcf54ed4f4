package apitest

import (
	"net"

	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// Zone is a tiny authoritative DNS server on loopback serving fixed TXT
// records: the outside world (vendors' SPF records, customers' apex
// records) that tests cannot reach, and the NS and CNAME records a customer
// hands names to the edge with. Names not in it are NXDOMAIN.
type Zone struct {
	mu    sync.Mutex
	txt   map[string][]string
	ns    map[string][]string
	cname map[string]string
	Addr  string
}

// ServeZone starts a Zone on 127.0.0.1 (UDP) until the test ends.
func ServeZone(t testing.TB, txt map[string][]string) *Zone {
	t.Helper()
	z := &Zone{txt: map[string][]string{}, ns: map[string][]string{}, cname: map[string]string{}}
	for name, v := range txt {
		z.Set(name, v...)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: z}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	z.Addr = pc.LocalAddr().String()
	return z
}

// Set replaces the TXT records of a name.
func (z *Zone) Set(name string, txt ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.txt[dns.CanonicalName(name)] = txt
}

// Add adds TXT records to a name.
func (z *Zone) Add(name string, txt ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	n := dns.CanonicalName(name)
	z.txt[n] = append(append([]string(nil), z.txt[n]...), txt...)
}

// SetNS replaces the NS records of a name (a delegation, answered as a
// resolver would: NS queries get them, other types NODATA).
func (z *Zone) SetNS(name string, hosts ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.ns[dns.CanonicalName(name)] = hosts
}

// SetCNAME makes a name a CNAME to target; the target is not chased.
func (z *Zone) SetCNAME(name, target string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.cname[dns.CanonicalName(name)] = dns.Fqdn(target)
}

// Delete removes a name and its records.
func (z *Zone) Delete(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	n := dns.CanonicalName(name)
	delete(z.txt, n)
	delete(z.ns, n)
	delete(z.cname, n)
}

// ServeDNS answers TXT from the map.
func (z *Zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	n := dns.CanonicalName(q.Name)
	z.mu.Lock()
	txt, ok := z.txt[n]
	ns, isNS := z.ns[n]
	cname, isCNAME := z.cname[n]
	z.mu.Unlock()
	switch {
	case isCNAME:
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: cname})
	case isNS:
		if q.Qtype == dns.TypeNS {
			for _, h := range ns {
				m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: dns.Fqdn(h)})
			}
		}
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeTXT:
		for _, v := range txt {
			var parts []string
			for len(v) > 255 {
				parts, v = append(parts, v[:255]), v[255:]
			}
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: append(parts, v)})
		}
	}
	_ = w.WriteMsg(m)
}
