package spfanswer

import (
	"net/netip"
	"strconv"
	"strings"
)

// maxName is the longest domain name, in octets without the trailing dot,
// that fits in a DNS message.
const maxName = 253

// Receive expands the macro include %{i}._ip.%{h}._ehlo.%{d}._spf.<zone>
// for a check of mail from ip, greeting as helo, for domain, the way a
// receiver does (RFC 7208 §7): %{i} is dotted IPv4 or 32 dot-separated
// nibbles for IPv6, %{h} is the HELO exactly as given, and a name over 253
// octets loses labels from its left (§7.3). It returns the name asked in
// presentation form (the bytes miekg/dns escapes escaped) and whether labels
// were cut. ok is false when the expansion is no valid domain name (an
// empty HELO, one with a trailing dot or an empty label, a label over 63
// octets): then no receiver asks the edge anything, the include target is
// malformed and the include is a permerror (RFC 7208 §4.3, §5.2).
func Receive(ip netip.Addr, helo, domain, zone string) (name string, truncated, ok bool) {
	return expand(MacroIP(ip) + "." + IPLabel + "." + helo + "." + EHLOLabel + "." + domain + "." + SPFLabel + "." + zone)
}

// expand is the receiver's side of an expanded include target raw: cut to
// 253 octets from the left, then checked.
func expand(raw string) (name string, truncated, ok bool) {
	raw = strings.TrimSuffix(raw, ".")
	for len(raw) > maxName {
		i := strings.IndexByte(raw, '.')
		if i < 0 {
			return "", true, false
		}
		raw, truncated = raw[i+1:], true
	}
	if !validName(raw) {
		return "", truncated, false
	}
	return presentation(raw), truncated, true
}

// ReceiveCurrent expands the current form's first include,
// %{i}._ip.<domain>._spf.<zone>, for a check of mail from ip, as Receive
// does. It has no HELO, so it is a valid name for every address whenever
// domain and zone are; ok is false otherwise.
func ReceiveCurrent(ip netip.Addr, domain, zone string) (name string, truncated, ok bool) {
	return expand(MacroIP(ip) + "." + IPLabel + "." + domain + "." + SPFLabel + "." + zone)
}

// HELOStepTarget is the current form's HELO step for domain, an include
// target with the rightmost labels labels of the HELO and no address:
// %{h<labels>}._ehlo.<domain>._spf.<zone>.
func HELOStepTarget(labels int, domain, zone string) string {
	return "%{h" + strconv.Itoa(labels) + "}." + EHLOLabel + "." + domain + "." + SPFLabel + "." + zone
}

// ReceiveHELOStep expands the current form's HELO step,
// HELOStepTarget(labels, domain, zone), for a check of mail from a server
// that greeted as helo, as Receive does: %{hN} splits the HELO at its dots
// and keeps the rightmost N parts (RFC 7208 §7.3).
func ReceiveHELOStep(helo string, labels int, domain, zone string) (name string, truncated, ok bool) {
	parts := strings.Split(helo, ".")
	if labels > 0 && labels < len(parts) {
		parts = parts[len(parts)-labels:]
	}
	return expand(strings.Join(parts, ".") + "." + EHLOLabel + "." + domain + "." + SPFLabel + "." + zone)
}

// Rest is what the edge parses of name, a name Receive returned: lower
// case, without "._spf.<zone>"; ok is false when name is not under it.
func Rest(name, zone string) (string, bool) {
	return strings.CutSuffix(strings.ToLower(name), "."+SPFLabel+"."+strings.ToLower(zone))
}

// validName reports whether name, without a trailing dot, is a domain name
// a query can carry: 1 to 253 octets of labels of 1 to 63 octets.
func validName(name string) bool {
	if name == "" || len(name) > maxName {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

// presentation writes raw, labels separated by dots, in the presentation
// form miekg/dns gives a name it unpacks: the bytes special in a zone file
// escaped with a backslash, the others outside printable ASCII as \DDD.
func presentation(raw string) string {
	clean := true
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; special(c) || c < '!' || c > '~' {
			clean = false
			break
		}
	}
	if clean {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '.':
			b.WriteByte(c)
		case special(c):
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < '!' || c > '~':
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func special(c byte) bool {
	switch c {
	case ' ', '\'', '@', ';', '(', ')', '"', '\\':
		return true
	}
	return false
}

// MacroIP is %{i} of ip: dotted IPv4, or 32 dot-separated hexadecimal
// nibbles for IPv6 (RFC 7208 §7.3).
func MacroIP(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	const hex = "0123456789abcdef"
	b := ip.As16()
	var s strings.Builder
	for i, x := range b {
		if i > 0 {
			s.WriteByte('.')
		}
		s.WriteByte(hex[x>>4])
		s.WriteByte('.')
		s.WriteByte(hex[x&0xf])
	}
	return s.String()
}
