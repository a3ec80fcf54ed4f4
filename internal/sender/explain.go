package sender

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/domain"
)

// AnswerKind is the kind of per-query SPF answer the edge gives.
type AnswerKind string

// The answers, as DESIGN.md's "Per-query SPF answers" lists them.
const (
	// AnswerIP: the address is a netblock's or an enabled service's:
	// "v=spf1 ip4:<ip> -all" (or ip6:), a pass at no further lookup.
	AnswerIP AnswerKind = "IP"
	// AnswerInclude: only the HELO names an enabled service, whose ranges
	// may have moved: "v=spf1 include:<its include> -all".
	AnswerInclude AnswerKind = "INCLUDE"
	// AnswerNeutral: nothing matched: "v=spf1 ~all".
	AnswerNeutral AnswerKind = "NO_MATCH"
	// AnswerBlocked: the domain sends no mail: "v=spf1 -all".
	AnswerBlocked AnswerKind = "BLOCKED"
)

// Explanation is the edge's answer for one (address, HELO) and why.
type Explanation struct {
	// Query is the name a receiver asks for TXT, after RFC 7208 §7.3
	// truncation; Truncated says labels were dropped from its left.
	Query     string
	Truncated bool
	// Record is the TXT record the edge answers.
	Record string
	Kind   AnswerKind
	Reason string
	// Netblock or Service is what matched, if anything.
	Netblock *Netblock
	Service  *Service
}

// SPFIncludeTarget is the macro include of the customer's apex record.
func SPFIncludeTarget(edgeZone string) string {
	return "%{i}._ip.%{h}._ehlo.%{d}._spf." + edgeZone
}

// QueryName expands the macro include for one check the way a receiver
// does (RFC 7208 §7): %{i} is dotted IPv4 or 32 dot-separated nibbles for
// IPv6, and a name over 253 octets loses labels from the left (§7.3).
func QueryName(ip netip.Addr, helo, name, edgeZone string) (query string, truncated bool) {
	q := macroIP(ip) + "._ip." + helo + "._ehlo." + name + "._spf." + edgeZone
	for len(q) > 253 {
		i := strings.IndexByte(q, '.')
		if i < 0 {
			break
		}
		q, truncated = q[i+1:], true
	}
	return q, truncated
}

func macroIP(ip netip.Addr) string {
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

// Explain says what the edge answers when a receiver checks mail from ip,
// which greeted with helo, against the domain's SPF record.
func (m *Manager) Explain(ctx context.Context, name, ipText, helo string) (Explanation, error) {
	d, err := m.domains.Get(ctx, name)
	if err != nil {
		return Explanation{}, err
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(ipText))
	if err != nil || ip.Zone() != "" {
		return Explanation{}, apperr.Invalid("ip", "%q is not an IP address", ipText)
	}
	ip = ip.Unmap()
	helo = strings.TrimSuffix(strings.TrimSpace(helo), ".")
	if helo == "" {
		helo = "unknown"
	}
	if len(helo) > 255 {
		return Explanation{}, apperr.Invalid("helo", "a HELO name has at most 255 octets")
	}
	e := Explanation{}
	e.Query, e.Truncated = QueryName(ip, helo, d.Name, m.domains.Config().EdgeZone)
	if d.Mode == domain.Blocked {
		e.Kind, e.Record, e.Reason = AnswerBlocked, "v=spf1 -all", d.Name+" is blocked: no address may send as it"
		return e, nil
	}
	if e.Truncated && !strings.HasPrefix(e.Query, macroIP(ip)+"._ip.") {
		e.Kind, e.Record = AnswerNeutral, "v=spf1 ~all"
		e.Reason = "the expanded name is longer than 253 octets, so the receiver cut labels off its left and the address is lost; the edge cannot tell who is sending (a shorter HELO name avoids this)"
		return e, nil
	}
	nets, err := m.Netblocks(ctx, d)
	if err != nil {
		return Explanation{}, err
	}
	for i, n := range nets {
		if n.Prefix.Contains(ip) && (e.Netblock == nil || n.Prefix.Bits() > e.Netblock.Prefix.Bits()) {
			e.Netblock = &nets[i]
		}
	}
	if e.Netblock != nil {
		e.Kind, e.Record = AnswerIP, ipRecord(ip)
		e.Reason = fmt.Sprintf("%s is in the domain's netblock %s", ip, e.Netblock.Prefix)
		if e.Netblock.Label != "" {
			e.Reason += " (" + e.Netblock.Label + ")"
		}
		return e, nil
	}
	services, err := m.Enabled(ctx, d)
	if err != nil {
		return Explanation{}, err
	}
	for i, s := range services {
		for _, r := range Ranges(s) {
			if r.Contains(ip) {
				e.Service = &services[i]
				e.Kind, e.Record = AnswerIP, ipRecord(ip)
				e.Reason = fmt.Sprintf("%s is in %s's range %s, an enabled sender", ip, s.Name, r)
				return e, nil
			}
		}
	}
	lower := strings.ToLower(helo)
	for i, s := range services {
		for _, suffix := range s.HeloSuffixes {
			if s.SpfInclude != "" && strings.HasSuffix(lower, strings.ToLower(suffix)) {
				e.Service = &services[i]
				e.Kind, e.Record = AnswerInclude, "v=spf1 include:"+s.SpfInclude+" -all"
				e.Reason = fmt.Sprintf("%s is not in a known range, but the HELO name %s belongs to %s (suffix %s), an enabled sender: its own SPF record decides", ip, helo, s.Name, suffix)
				return e, nil
			}
		}
	}
	e.Kind, e.Record = AnswerNeutral, "v=spf1 ~all"
	e.Reason = fmt.Sprintf("%s is in no netblock of %s and in no range of its enabled senders, and the HELO name %s belongs to none of them", ip, d.Name, helo)
	return e, nil
}

func ipRecord(ip netip.Addr) string {
	if ip.Is4() {
		return "v=spf1 ip4:" + ip.String() + " -all"
	}
	return "v=spf1 ip6:" + ip.String() + " -all"
}
