package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver is the DNS the evaluator queries. Names are given without a
// trailing dot. Implementations classify their errors:
//
//   - a name that does not exist (NXDOMAIN) or has no records of the type
//     asked for (NODATA) is an error wrapping [ErrNotFound] (a *net.DNSError
//     with IsNotFound set is understood too), or an empty answer with a nil
//     error. The evaluator counts it as a void lookup;
//   - any other error (timeout, SERVFAIL, REFUSED, a broken answer) makes
//     the result temperror.
//
// Implementations must be safe for concurrent use if the Checker using them
// is used concurrently. [DNSResolver] queries a DNS server.
type Resolver interface {
	// LookupTXT returns the TXT records of name, the character-strings of
	// each record joined without separator (RFC 7208 §3.3).
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupIP returns the A (network "ip4") or AAAA ("ip6") records of
	// name.
	LookupIP(ctx context.Context, network, name string) ([]netip.Addr, error)
	// LookupMX returns the exchange names of the MX records of name. A null
	// MX (RFC 7505) is returned as "." or "" and never matches.
	LookupMX(ctx context.Context, name string) ([]string, error)
	// LookupPTR returns the names the PTR records of addr's reverse name
	// (in-addr.arpa or ip6.arpa) point at.
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error)
}

// ErrServerFailure is wrapped by DNSResolver errors for answers with an
// RCODE other than NOERROR and NXDOMAIN, such as SERVFAIL or REFUSED.
var ErrServerFailure = errors.New("spf: DNS server failure")

// isNotFound reports whether a resolver error means "no such records".
func isNotFound(err error) bool {
	if errors.Is(err, ErrNotFound) {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// DNSResolver is a Resolver that sends queries to one DNS server, over UDP
// and again over TCP when the UDP answer is truncated. It asks for
// recursion and follows CNAME chains, in the answer or by querying their
// targets, so it works against a recursive resolver as well as against an
// authoritative server such as Rampart's DNS edge.
//
// A DNSResolver is safe for concurrent use. Its fields must not change
// while it is in use.
type DNSResolver struct {
	// Server is the address of the DNS server, "host:port".
	Server string
	// Timeout bounds each exchange with the server; the context bounds the
	// whole lookup. Zero means 2 seconds.
	Timeout time.Duration
}

// NewDNSResolver returns a DNSResolver that queries server ("host:port")
// with the default timeout.
func NewDNSResolver(server string) *DNSResolver {
	return &DNSResolver{Server: server}
}

// maxCNAMEs bounds the CNAME chain DNSResolver follows.
const maxCNAMEs = 8

// ednsSize is the EDNS0 UDP payload size advertised, the size DNS flag day
// 2020 recommends to avoid fragmentation.
const ednsSize = 1232

// LookupTXT implements Resolver.
func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		var b strings.Builder
		for _, s := range rr.(*dns.TXT).Txt {
			b.WriteString(unescapePresentation(s))
		}
		out = append(out, b.String())
	}
	return out, nil
}

// LookupIP implements Resolver.
func (r *DNSResolver) LookupIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	qtype := dns.TypeA
	switch network {
	case "ip4":
	case "ip6":
		qtype = dns.TypeAAAA
	default:
		return nil, fmt.Errorf("spf: lookup %s: unknown network %q", name, network)
	}
	rrs, err := r.lookup(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(rrs))
	for _, rr := range rrs {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			if qtype == dns.TypeA {
				a = a.Unmap()
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// LookupMX implements Resolver.
func (r *DNSResolver) LookupMX(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, presentationToName(rr.(*dns.MX).Mx))
	}
	return out, nil
}

// LookupPTR implements Resolver.
func (r *DNSResolver) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr.Unmap().String())
	if err != nil {
		return nil, fmt.Errorf("spf: reverse name of %s: %w", addr, err)
	}
	rrs, err := r.lookup(ctx, strings.TrimSuffix(arpa, "."), dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, presentationToName(rr.(*dns.PTR).Ptr))
	}
	return out, nil
}

// lookup returns the records of type qtype at name, following CNAMEs.
func (r *DNSResolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	typ := dns.TypeToString[qtype]
	if !validDomain(name) {
		// No DNS message can carry this name, so no such record exists.
		return nil, &LookupError{Name: name, Type: typ, Err: ErrNotFound}
	}
	target := dns.Fqdn(nameToPresentation(name))
	for range maxCNAMEs {
		resp, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, &LookupError{Name: name, Type: typ, Err: err}
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, &LookupError{Name: name, Type: typ, Err: ErrNotFound}
		default:
			return nil, &LookupError{Name: name, Type: typ, Err: fmt.Errorf("%w: %s", ErrServerFailure, dns.RcodeToString[resp.Rcode])}
		}
		rrs, next := answers(resp.Answer, target, qtype)
		if len(rrs) > 0 {
			return rrs, nil
		}
		if next == "" {
			return nil, &LookupError{Name: name, Type: typ, Err: ErrNotFound}
		}
		target = next // a CNAME whose target the server did not resolve
	}
	return nil, &LookupError{Name: name, Type: typ, Err: errors.New("CNAME chain too long")}
}

// answers picks the records of type qtype for name out of an answer
// section, following the CNAME chain the section holds. If the chain ends
// in a name without records, that name is returned as next.
func answers(section []dns.RR, name string, qtype uint16) (rrs []dns.RR, next string) {
	for range maxCNAMEs + 1 {
		var cname string
		for _, rr := range section {
			h := rr.Header()
			if !sameName(h.Name, name) {
				continue
			}
			if h.Rrtype == qtype {
				rrs = append(rrs, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c.Target
			}
		}
		switch {
		case len(rrs) > 0:
			return rrs, ""
		case cname == "":
			return nil, next
		}
		name, next = cname, cname
	}
	return nil, ""
}

// exchange sends one query, over UDP and then over TCP if the answer is
// truncated.
func (r *DNSResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)
	c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: ednsSize}
	resp, _, err := c.ExchangeContext(ctx, m, r.Server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, r.Server)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// LookupError is the error DNSResolver returns. It wraps ErrNotFound,
// ErrServerFailure or the error of the exchange (a timeout, say).
type LookupError struct {
	Name string // the name queried, without trailing dot
	Type string // the query type, such as "TXT"
	Err  error
}

// Error formats the error as "spf: lookup TYPE name: cause".
func (e *LookupError) Error() string {
	return "spf: lookup " + e.Type + " " + e.Name + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *LookupError) Unwrap() error { return e.Err }

// Timeout reports whether the lookup timed out.
func (e *LookupError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || errors.As(e.Err, &ne) && ne.Timeout()
}

// validDomain reports whether name can be sent in a DNS query: labels of
// 1 to 63 octets, at most 253 octets without a trailing dot.
func validDomain(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > maxDomain {
		return false
	}
	for name != "" {
		label := name
		if i := strings.IndexByte(name, '.'); i >= 0 {
			label, name = name[:i], name[i+1:]
			if name == "" {
				return false // "a.." ends in an empty label
			}
		} else {
			name = ""
		}
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

// sameName reports whether two names in presentation form are the same
// name: escapes decoded (miekg/dns writes an octet as \DDD or \X as it
// likes, so "a\040b" and "a\(b" differ as text), ASCII letters compared
// without case (RFC 4343), every other octet exactly.
func sameName(a, b string) bool {
	a, b = presentationToName(a), presentationToName(b)
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// nameToPresentation escapes the octets of a domain name that have a
// meaning in DNS presentation format, which is what miekg/dns takes.
func nameToPresentation(name string) string {
	clean := true
	for i := 0; i < len(name); i++ {
		if needsEscape(name[i]) {
			clean = false
			break
		}
	}
	if clean {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if needsEscape(c) {
			fmt.Fprintf(&b, "\\%03d", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c <= ' ' || c >= 0x7f || strings.IndexByte(`"();@\$`, c) >= 0
}

// presentationToName turns a name from miekg/dns into the form Resolver
// returns: without trailing dot and with \DDD and \X escapes decoded.
func presentationToName(s string) string {
	return unescapePresentation(strings.TrimSuffix(s, "."))
}

// unescapePresentation decodes the \DDD and \X escapes miekg/dns uses for
// TXT character-strings and names.
func unescapePresentation(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n <= 255 {
				b = append(b, byte(n)) //nolint:gosec // G115: n <= 255, checked above
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}
