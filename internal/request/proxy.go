package request

import (
	"fmt"
	"net/netip"
	"strings"
)

// Proxies is the set of networks whose connections are trusted to say who
// the client is: through X-Forwarded-For on HTTP, through the PROXY protocol
// on SMTP. The zero value trusts no one, so that the peer address is the
// client address. A Proxies is immutable and safe for concurrent use.
type Proxies struct {
	prefixes []netip.Prefix
}

// ParseProxies reads a comma-separated list of CIDR prefixes
// ("10.0.0.0/8, 2001:db8::/32"); a bare address stands for itself (/32 or
// /128). Empty elements are skipped, so "" trusts no one. Anything else,
// including a prefix with host bits set ("10.0.0.1/8", usually a typo), is
// an error naming the element.
func ParseProxies(s string) (Proxies, error) {
	var p Proxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var pfx netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if pfx, err = netip.ParsePrefix(f); err != nil {
				return Proxies{}, fmt.Errorf("trusted proxy %q is not a CIDR prefix: %w", f, err)
			}
			if pfx.Addr().Zone() != "" {
				return Proxies{}, fmt.Errorf("trusted proxy %q: a prefix has no zone", f)
			}
			if pfx.Masked() != pfx {
				return Proxies{}, fmt.Errorf("trusted proxy %q has bits set beyond the prefix length (did you mean %s?)", f, pfx.Masked())
			}
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" {
				return Proxies{}, fmt.Errorf("trusted proxy %q is neither a CIDR prefix nor an address", f)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		// An IPv4-mapped prefix would never match: addresses are unmapped
		// before they are compared.
		if pfx.Addr().Is4In6() {
			if pfx.Bits() < 96 {
				return Proxies{}, fmt.Errorf("trusted proxy %q: an IPv4-mapped prefix must be at least /96", f)
			}
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		p.prefixes = append(p.prefixes, pfx)
	}
	return p, nil
}

// MustParseProxies is ParseProxies for constants in tests; it panics on an
// error.
func MustParseProxies(s string) Proxies {
	p, err := ParseProxies(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Empty reports whether no one is trusted.
func (p Proxies) Empty() bool { return len(p.prefixes) == 0 }

// String lists the prefixes, comma-separated.
func (p Proxies) String() string {
	s := make([]string, len(p.prefixes))
	for i, pfx := range p.prefixes {
		s[i] = pfx.String()
	}
	return strings.Join(s, ",")
}

// Trusts reports whether addr is a trusted proxy.
func (p Proxies) Trusts(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, pfx := range p.prefixes {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientAddr returns the client's address for a request that arrived from
// peer carrying the X-Forwarded-For header values forwardedFor (every
// header line, in order).
//
// If peer is not a trusted proxy its word counts for nothing and peer is the
// client. Otherwise the list is read from the right, the end each proxy
// appends to: the first address that is not a trusted proxy is the client.
// Everything left of it was written by that client and is ignored, so a
// client cannot choose its address by sending the header itself. An element
// that is not an address (or address:port) stops the walk at the last
// trusted hop, which is then taken as the client; so does a list of trusted
// proxies only.
func (p Proxies) ClientAddr(peer netip.Addr, forwardedFor []string) netip.Addr {
	client := peer.Unmap().WithZone("")
	if !p.Trusts(client) {
		return client
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		hops := strings.Split(forwardedFor[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			h := strings.TrimSpace(hops[j])
			if h == "" {
				continue
			}
			a, ok := parseHop(h)
			if !ok {
				return client
			}
			client = a
			if !p.Trusts(a) {
				return a
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For element: an address, or an address
// with a port ("192.0.2.1:5000", "[2001:db8::1]:5000"), as some proxies
// write.
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}
