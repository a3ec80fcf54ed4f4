package spfanswer

import "net/netip"

// Query is what a name under _spf.<edge zone> says.
type Query struct {
	IP     netip.Addr // the connecting address; invalid when unknown
	HELO   string     // presentation form, lower case, no trailing dot; "" when none
	Domain string     // the domain checked; "" when the name has none
}

// maxLabels bounds the labels of a name: a 255-octet name has at most 127.
const maxLabels = 128

// Parse parses rest, the part of a name before "._spf.<edge zone>.",
// lower case, in presentation form and without a trailing dot. Two forms
// are asked: the current one, <%{i}>._ip.<domain>, and the legacy one,
// <%{i}>._ip.<%{h}>._ehlo.<domain> (also the current form's HELO step);
// a name with an "_ehlo" label is of the legacy form.
//
// The HELO is chosen by the sender and may hold anything, including "_ip"
// and "_ehlo" labels, so the name is read from both ends: the domain is
// everything after the rightmost "_ehlo" label, the address everything
// before the first "_ip" label, and the HELO what lies between. A name that
// RFC 7208 §7.3 cut short to 253 octets has lost labels from the left, the
// address first: the address is known only when exactly 4 decimal labels
// (IPv4) or 32 nibble labels (IPv6, the dot format of %{i}) come before the
// first "_ip". Parsing never goes wrong in a way that helps a forger: an
// address answer authorises only the address parsed, which the receiver
// compares with the one actually connecting.
func Parse(rest string) Query {
	var q Query
	// starts holds the offset of every label; escapes (\. and \DDD) are
	// skipped so that an escaped dot is no label boundary.
	var starts [maxLabels]int
	n := 1
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '\\':
			i++
		case '.':
			if n == maxLabels {
				return q
			}
			starts[n] = i + 1
			n++
		}
	}
	label := func(k int) string {
		end := len(rest)
		if k+1 < n {
			end = starts[k+1] - 1
		}
		return rest[starts[k]:end]
	}

	ehlo := -1
	for k := n - 1; k >= 0; k-- {
		if label(k) == EHLOLabel {
			ehlo = k
			break
		}
	}
	if ehlo < 0 {
		return parseCurrent(rest, n, &starts, label)
	}
	if ehlo == n-1 {
		return q // no domain
	}
	q.Domain = rest[starts[ehlo+1]:]

	ip := -1
	for k := range ehlo {
		if label(k) == IPLabel {
			ip = k
			break
		}
	}
	heloFrom := 0
	if ip >= 0 {
		heloFrom = starts[ip+1]
		switch ip {
		case 4:
			q.IP = parseIPv4Labels(rest[:starts[ip]-1]) //nolint:gosec // G602: ip < ehlo < n <= maxLabels, so starts[ip] was set by the loop above
		case 32:
			q.IP = parseIPv6Nibbles(rest[:starts[ip]-1]) //nolint:gosec // G602: ip < ehlo < n <= maxLabels, so starts[ip] was set by the loop above
		}
	}
	if heloTo := starts[ehlo] - 1; heloFrom < heloTo { //nolint:gosec // G602: ehlo < n <= maxLabels, so starts[ehlo] was set by the loop above
		q.HELO = rest[heloFrom:heloTo]
	}
	return q
}

// parseCurrent parses a name of the current form, <%{i}>._ip.<domain>,
// which has no HELO: the domain is everything after the first "_ip" label
// (a domain name has no underscore labels) and the address the 4 or 32
// labels before it. A name cut short by RFC 7208 §7.3 has lost part of the
// address: it keeps its domain and has no address.
func parseCurrent(rest string, n int, starts *[maxLabels]int, label func(int) string) Query {
	var q Query
	for k := range n - 1 {
		if label(k) != IPLabel {
			continue
		}
		q.Domain = rest[starts[k+1]:]
		switch k {
		case 4:
			q.IP = parseIPv4Labels(rest[:starts[k]-1])
		case 32:
			q.IP = parseIPv6Nibbles(rest[:starts[k]-1])
		}
		return q
	}
	return q
}

// parseIPv4Labels parses a dotted quad of 4 decimal labels from 0 to 255
// without leading zeros; anything else is an invalid address.
func parseIPv4Labels(s string) netip.Addr {
	var b [4]byte
	k, v, digits := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || k == 4 {
				return netip.Addr{}
			}
			b[k] = byte(v)
			k, v, digits = k+1, 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || digits > 0 && v == 0 {
			return netip.Addr{} // not a digit, or a leading zero
		}
		v = v*10 + int(c-'0')
		digits++
		if v > 255 {
			return netip.Addr{}
		}
	}
	if k != 4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4(b)
}

// parseIPv6Nibbles parses 32 dot-separated hexadecimal nibbles, most
// significant first, as SPF's %{i} writes an IPv6 address.
func parseIPv6Nibbles(s string) netip.Addr {
	if len(s) != 63 {
		return netip.Addr{}
	}
	var b [16]byte
	for i := 0; i < 32; i++ {
		if i > 0 && s[2*i-1] != '.' {
			return netip.Addr{}
		}
		var v byte
		switch c := s[2*i]; {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return netip.Addr{}
		}
		b[i/2] |= v << (4 * (1 - i%2))
	}
	return netip.AddrFrom16(b)
}
