// Package dnscheck asks one DNS server, normally the recursive resolver of
// RAMPART_DNS_RESOLVER, what is published at a name, and says plainly what
// came back: the records, or that the name does not exist (NXDOMAIN), has
// no such records (NODATA), or that no answer could be had (SERVFAIL,
// REFUSED, a timeout, a broken or mismatched reply).
//
// It is the one place Rampart checks what a customer published in their own
// DNS: the domain ownership proof and the published SPF record and _dmarc
// and _domainkey delegations (internal/domain). It also asks for the
// reverse names of report sources and their addresses ([Checker.PTR],
// [Checker.Addrs]), for their forward-confirmed reverse DNS
// (internal/enrich). Callers decide what a
// [Result] means for them; [Status.Definitive] separates an answer about
// the name (which may be acted on) from a failure to get one (which should
// be retried, never taken as "the record is absent").
//
// A [Checker] sends one query over UDP (with EDNS0), retries a lost UDP
// query, repeats it over TCP when the answer is truncated, and follows CNAME
// chains: in the answer section, or by querying the target when the server
// did not (an authoritative server does not chase CNAMEs). Records in the
// answer that are not on the chain from the queried name are ignored, so a
// server cannot slip in records for another name.
package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Status is what a lookup found out.
type Status uint8

// The statuses. Found, NoData and NXDomain are answers about the name; the
// others are failures to get an answer.
const (
	// Found: records of the type asked for exist (Result.Records).
	Found Status = iota + 1
	// NoData: the name exists but has no records of the type (NOERROR,
	// empty answer), or a CNAME chain ends at such a name.
	NoData
	// NXDomain: the name (or the end of its CNAME chain) does not exist.
	NXDomain
	// ServFail: the server answered SERVFAIL, typically a broken or
	// unreachable authoritative server behind the resolver.
	ServFail
	// Refused: the server answered REFUSED or another error RCODE.
	Refused
	// Timeout: no answer in time.
	Timeout
	// Failed: the network failed, or the reply was malformed, did not
	// match the question, or the CNAME chain was too long or looped.
	Failed
)

var statusNames = [...]string{
	Found: "found", NoData: "no data", NXDomain: "NXDOMAIN", ServFail: "SERVFAIL",
	Refused: "refused", Timeout: "timeout", Failed: "failed",
}

func (s Status) String() string {
	if int(s) < len(statusNames) && statusNames[s] != "" {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Definitive reports whether the status is an answer about the name (the
// records exist, or they do not) rather than a failure to get one.
func (s Status) Definitive() bool { return s == Found || s == NoData || s == NXDomain }

// Result is the outcome of one lookup.
type Result struct {
	// Name is the name asked about, in presentation form without the
	// trailing dot; Type the query type.
	Name string
	Type uint16
	// Status says what was found out.
	Status Status
	// Rcode is the last reply's RCODE (-1 when there was no reply).
	Rcode int
	// Records are the records of Type at the end of the CNAME chain; set
	// only when Status is Found.
	Records []dns.RR
	// Chain lists the CNAME targets followed, in order (without trailing
	// dots); empty when Name held the records itself.
	Chain []string
	// Err is the cause of a failure (Timeout, Failed), for logs.
	Err error
}

// TXT returns the text of each TXT record in Records, its character-strings
// joined without separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func (r Result) TXT() []string {
	var out []string
	for _, rr := range r.Records {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

// Describe says in one sentence what the lookup found, for an owner: "no
// TXT record at _rampart.example.com (the name does not exist)".
func (r Result) Describe() string {
	typ := dns.TypeToString[r.Type]
	at := r.Name
	if len(r.Chain) > 0 {
		at += " (via CNAME " + r.Chain[len(r.Chain)-1] + ")"
	}
	switch r.Status {
	case Found:
		return fmt.Sprintf("%d %s record(s) at %s", len(r.Records), typ, at)
	case NoData:
		return fmt.Sprintf("no %s record at %s (the name exists)", typ, at)
	case NXDomain:
		return fmt.Sprintf("no %s record at %s (the name does not exist)", typ, at)
	case ServFail:
		return fmt.Sprintf("the DNS resolver could not look up %s %s (SERVFAIL); the domain's name servers may be unreachable", at, typ)
	case Refused:
		return fmt.Sprintf("the DNS resolver refused to look up %s %s (%s)", at, typ, dns.RcodeToString[r.Rcode])
	case Timeout:
		return fmt.Sprintf("looking up %s %s timed out", at, typ)
	}
	return fmt.Sprintf("looking up %s %s failed", at, typ)
}

// Checker sends lookups to one DNS server. The zero value is not usable;
// set Server. A Checker is safe for concurrent use; its fields must not
// change while it is in use.
type Checker struct {
	// Server is the DNS server's host:port.
	Server string
	// Timeout bounds each attempt (default 2 s); the context bounds the
	// whole lookup.
	Timeout time.Duration
	// Attempts is how many times a UDP query is sent before giving up on
	// an answer (default 2).
	Attempts int
}

// New returns a Checker querying server (host:port) with the defaults.
func New(server string) *Checker { return &Checker{Server: server} }

// maxChain bounds the CNAME chain followed, as resolvers do.
const maxChain = 8

// ednsSize is the UDP payload size advertised: the DNS flag day 2020 value,
// which avoids fragmentation.
const ednsSize = 1232

// TXT looks up the TXT records of name; see [Result.TXT] for their text.
func (c *Checker) TXT(ctx context.Context, name string) Result {
	return c.Lookup(ctx, name, dns.TypeTXT)
}

// PTR looks up the PTR records of ip's reverse name (in-addr.arpa or
// ip6.arpa), following CNAMEs (RFC 2317 delegations); see [Result.Names].
func (c *Checker) PTR(ctx context.Context, ip netip.Addr) Result {
	ip = ip.Unmap()
	name, err := dns.ReverseAddr(ip.String())
	if err != nil || !ip.IsValid() {
		return Result{Name: ip.String(), Type: dns.TypePTR, Rcode: -1, Status: Failed, Err: fmt.Errorf("%s is not an IP address", ip)}
	}
	return c.Lookup(ctx, name, dns.TypePTR)
}

// Addrs looks up the addresses of name of ip's family: A records for an
// IPv4 address, AAAA for IPv6; see [Result.Addrs].
func (c *Checker) Addrs(ctx context.Context, name string, ip netip.Addr) Result {
	if ip.Unmap().Is4() {
		return c.Lookup(ctx, name, dns.TypeA)
	}
	return c.Lookup(ctx, name, dns.TypeAAAA)
}

// Names returns the targets of the PTR records in Records, lower case and
// without the trailing dot, each once, in the order of the answer.
func (r Result) Names() []string {
	var out []string
	for _, rr := range r.Records {
		if p, ok := rr.(*dns.PTR); ok {
			n := strings.ToLower(strings.TrimSuffix(p.Ptr, "."))
			if n != "" && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// Addrs returns the addresses of the A and AAAA records in Records.
func (r Result) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, rr := range r.Records {
		var ip net.IP
		switch a := rr.(type) {
		case *dns.A:
			ip = a.A
		case *dns.AAAA:
			ip = a.AAAA
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, addr.Unmap())
		}
	}
	return out
}

// Lookup asks for the records of type qtype at name (with or without the
// trailing dot), following CNAMEs.
func (c *Checker) Lookup(ctx context.Context, name string, qtype uint16) Result {
	name = strings.TrimSuffix(name, ".")
	res := Result{Name: name, Type: qtype, Rcode: -1}
	if _, ok := dns.IsDomainName(name); !ok || name == "" || len(name) > 253 {
		res.Status, res.Err = Failed, fmt.Errorf("%q is not a domain name", name)
		return res
	}
	target := dns.Fqdn(name)
	for range maxChain {
		resp, err := c.exchange(ctx, target, qtype)
		if err != nil {
			res.Status, res.Err = failure(err), err
			return res
		}
		step := interpret(target, qtype, resp)
		res.Rcode = step.Rcode
		res.Chain = append(res.Chain, step.Chain...)
		if len(res.Chain) > maxChain {
			res.Status, res.Err = Failed, errors.New("CNAME chain too long")
			return res
		}
		if !step.open {
			res.Status, res.Records, res.Err = step.Status, step.Records, step.Err
			return res
		}
		// The chain ends at a name the server did not resolve: ask for it.
		target = dns.Fqdn(step.Chain[len(step.Chain)-1])
	}
	res.Status, res.Err = Failed, errors.New("CNAME chain too long")
	return res
}

// failure classifies an exchange error.
func failure(err error) Status {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return Failed
}

// exchange sends one query: over UDP, again on a lost answer, and over TCP
// when the UDP answer is truncated.
func (c *Checker) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 2
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)
	client := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: ednsSize}
	var resp *dns.Msg
	var err error
	for range attempts {
		resp, _, err = client.ExchangeContext(ctx, m, c.Server)
		if err == nil || failure(err) != Timeout || ctx.Err() != nil {
			break
		}
	}
	if err == nil && resp.Truncated {
		client.Net = "tcp"
		resp, _, err = client.ExchangeContext(ctx, m, c.Server)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s %s at %s: %w", strings.TrimSuffix(name, "."), dns.TypeToString[qtype], c.Server, err)
	}
	return resp, nil
}

// step is what one reply says.
type step struct {
	Result
	// open is set when the chain ends at a name the reply holds nothing
	// for (neither records nor a further CNAME): the server did not chase
	// it and the target must be asked.
	open bool
}

// interpret reads one reply to a query for qtype at name (fully
// qualified): its RCODE, the CNAME chain from name within the answer
// section, and the records of qtype at the chain's end. It trusts nothing
// in the reply: a reply to another question, or without the QR bit, is
// Failed.
func interpret(name string, qtype uint16, resp *dns.Msg) step {
	s := step{Result: Result{Name: strings.TrimSuffix(name, "."), Type: qtype, Rcode: resp.Rcode}}
	if !resp.Response || len(resp.Question) != 1 || resp.Question[0].Qtype != qtype ||
		resp.Question[0].Qclass != dns.ClassINET || !strings.EqualFold(resp.Question[0].Name, name) {
		s.Status, s.Err = Failed, errors.New("the reply does not match the question")
		return s
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	case dns.RcodeServerFailure:
		s.Status = ServFail
		return s
	default:
		s.Status = Refused
		return s
	}
	owner := name
	seen := map[string]bool{strings.ToLower(owner): true}
	for {
		var records []dns.RR
		var next string
		for _, rr := range resp.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, owner) {
				continue
			}
			if h.Rrtype == qtype {
				records = append(records, rr)
			} else if c, ok := rr.(*dns.CNAME); ok && next == "" {
				next = c.Target
			}
		}
		switch {
		case len(records) > 0:
			s.Status, s.Records = Found, records
			return s
		case next == "":
			if resp.Rcode == dns.RcodeNameError {
				s.Status = NXDomain
			} else {
				s.Status = NoData
				// Only a name reached through the chain may be unresolved;
				// the queried name itself answered NODATA.
				s.open = owner != name
			}
			return s
		}
		key := strings.ToLower(next)
		if seen[key] || len(s.Chain) >= maxChain {
			s.Status, s.Err = Failed, errors.New("CNAME loop or chain too long")
			return s
		}
		seen[key] = true
		s.Chain = append(s.Chain, strings.TrimSuffix(next, "."))
		owner = next
	}
}
