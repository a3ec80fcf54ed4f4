package sender

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/spfanswer"
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
	// AnswerNoQuery: the expanded name is no valid domain name, so no
	// receiver asks the edge; the include is a permerror. Record is "".
	AnswerNoQuery AnswerKind = "NO_QUERY"
)

// Explanation is the edge's answer for one (address, HELO) and why.
type Explanation struct {
	// Query is the name a receiver asks for TXT, after RFC 7208 §7.3
	// truncation; Truncated says labels were dropped from its left.
	Query     string
	Truncated bool
	// Record is the TXT record the edge answers; "" for AnswerNoQuery.
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
	q := spfanswer.MacroIP(ip) + "._ip." + helo + "._ehlo." + name + "._spf." + edgeZone
	for len(q) > 253 {
		i := strings.IndexByte(q, '.')
		if i < 0 {
			break
		}
		q, truncated = q[i+1:], true
	}
	return q, truncated
}

// Explain says what the edge answers when a receiver checks mail from ip,
// which greeted with helo, against the domain's SPF record. It expands the
// include as a receiver does (spfanswer.Receive), parses the name as the
// edge does and decides with the edge's function, spfanswer.Decide.
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
	if len(helo) > 255 {
		return Explanation{}, apperr.Invalid("helo", "a HELO name has at most 255 octets")
	}
	zone := m.domains.Config().EdgeZone
	e := Explanation{}
	var ok bool
	e.Query, e.Truncated, ok = spfanswer.Receive(ip, helo, d.Name, zone)
	if !ok {
		e.Kind = AnswerNoQuery
		e.Reason = fmt.Sprintf("the HELO name %q expands the include into no valid domain name (an empty name or label, a trailing dot, or a label over 63 octets), so no receiver asks the edge: the include is a permerror", helo)
		return e, nil
	}
	rest, _ := spfanswer.Rest(e.Query, zone)
	q := spfanswer.Parse(rest)
	facts := explainDomain{blocked: d.Mode == domain.Blocked}
	if !facts.blocked {
		if facts.nets, err = m.Netblocks(ctx, d); err != nil {
			return Explanation{}, err
		}
		if facts.services, err = m.Enabled(ctx, d); err != nil {
			return Explanation{}, err
		}
	}
	var a spfanswer.Answer
	if q.Domain == strings.ToLower(d.Name) {
		a = spfanswer.Decide(q, &facts)
	} else {
		a = spfanswer.Answer{Kind: spfanswer.Neutral, Sender: -1}
	}
	switch a.Kind {
	case spfanswer.Blocked:
		e.Kind, e.Record, e.Reason = AnswerBlocked, "v=spf1 -all", d.Name+" is blocked: no address may send as it"
	case spfanswer.Address:
		e.Kind, e.Record = AnswerIP, ipRecord(ip)
		if a.Sender < 0 {
			for i, n := range facts.nets {
				if n.Prefix.Contains(ip) && (e.Netblock == nil || n.Prefix.Bits() > e.Netblock.Prefix.Bits()) {
					e.Netblock = &facts.nets[i]
				}
			}
			e.Reason = fmt.Sprintf("%s is in the domain's netblock %s", ip, e.Netblock.Prefix)
			if e.Netblock.Label != "" {
				e.Reason += " (" + e.Netblock.Label + ")"
			}
			break
		}
		e.Service = &facts.services[a.Sender]
		for _, r := range Ranges(*e.Service) {
			if r.Contains(ip) {
				e.Reason = fmt.Sprintf("%s is in %s's range %s, an enabled sender", ip, e.Service.Name, r)
				break
			}
		}
	case spfanswer.Include:
		e.Service = &facts.services[a.Sender]
		e.Kind, e.Record = AnswerInclude, "v=spf1 include:"+e.Service.SpfInclude+" -all"
		suffixes, _ := facts.HELOSuffixes(a.Sender)
		suffix := e.Service.HeloSuffixes[spfanswer.MatchSuffix(q.HELO, suffixes)]
		if q.IP.IsValid() {
			e.Reason = fmt.Sprintf("%s is not in a known range, but", ip)
		} else {
			e.Reason = "the receiver cut the address off the name, but"
		}
		e.Reason += fmt.Sprintf(" the HELO name %s belongs to %s (suffix %s), an enabled sender: its own SPF record decides", q.HELO, e.Service.Name, suffix)
	default:
		e.Kind, e.Record = AnswerNeutral, "v=spf1 ~all"
		switch {
		case !q.IP.IsValid():
			e.Reason = "the expanded name is longer than 253 octets, so the receiver cut labels off its left and the address is lost"
			if q.HELO != "" {
				e.Reason += fmt.Sprintf("; what is left of the HELO name, %s, belongs to no enabled sender", q.HELO)
			}
			e.Reason += ": the edge cannot tell who is sending (a shorter HELO name avoids this)"
		default:
			e.Reason = fmt.Sprintf("%s is in no netblock of %s and in no range of its enabled senders, and the HELO name %s belongs to none of them", ip, d.Name, q.HELO)
		}
	}
	return e, nil
}

// explainDomain is a domain's data as spfanswer.Decide reads it, from the
// same rows the edge's tables are published from.
type explainDomain struct {
	blocked  bool
	nets     []Netblock
	services []Service
	suffixes [][]string // normalised HELO suffixes, by service, built on first use
}

func (x *explainDomain) Blocked() bool { return x.blocked }

func (x *explainDomain) InNetblocks(ip netip.Addr) bool {
	for _, n := range x.nets {
		if n.Prefix.Contains(ip) {
			return true
		}
	}
	return false
}

func (x *explainDomain) Senders() int { return len(x.services) }

func (x *explainDomain) InRanges(i int, ip netip.Addr) bool {
	for _, r := range Ranges(x.services[i]) {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

func (x *explainDomain) HELOSuffixes(i int) ([]string, bool) {
	if x.suffixes == nil {
		x.suffixes = make([][]string, len(x.services))
		for j, s := range x.services {
			for _, h := range s.HeloSuffixes {
				x.suffixes[j] = append(x.suffixes[j], spfanswer.NormalizeSuffix(h))
			}
		}
	}
	return x.suffixes[i], x.services[i].SpfInclude != ""
}

func ipRecord(ip netip.Addr) string {
	if ip.Is4() {
		return "v=spf1 ip4:" + ip.String() + " -all"
	}
	return "v=spf1 ip6:" + ip.String() + " -all"
}
