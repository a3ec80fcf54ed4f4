package sender

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/domain"
	"github.com/rampartmail/rampart/internal/spfanswer"
)

// AnswerKind is the kind of answer the edge gives at one name.
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
	// AnswerRedirect: the current form's redirect target, the edge's final
	// record for the domain (pinned includes, the HELO step, ~all).
	AnswerRedirect AnswerKind = "REDIRECT"
)

// Result is the SPF result a receiver reaches with the current form.
type Result string

// The results.
const (
	ResultPass     Result = "PASS"
	ResultFail     Result = "FAIL"
	ResultSoftfail Result = "SOFTFAIL"
	// ResultPermerror: the HELO step's name is no valid domain name. Only
	// an address the domain does not authorise gets this far.
	ResultPermerror Result = "PERMERROR"
	// ResultSender: an enabled sender's own SPF record decides.
	ResultSender Result = "SENDER"
)

// Step is one name a receiver asks the edge, and the answer.
type Step struct {
	// Query is the name asked, after RFC 7208 §7.3 truncation, in
	// presentation form; Truncated says labels were dropped from its
	// left. Empty for AnswerNoQuery.
	Query     string
	Truncated bool
	// Record is the TXT record the edge answers; "" for AnswerNoQuery.
	Record string
	Kind   AnswerKind
	Reason string
}

// Explanation is what a receiver checking one (address, HELO) against the
// domain's current SPF record asks the edge, the answers, and the result.
type Explanation struct {
	Result Result
	// Steps are the names asked, in order.
	Steps []Step
	// Query, Truncated, Record, Kind and Reason are the step that decided.
	Query     string
	Truncated bool
	Record    string
	Kind      AnswerKind
	Reason    string
	// Netblock or Service is what matched, if anything.
	Netblock *Netblock
	Service  *Service
}

// decided makes s the deciding step, and the last.
func (e *Explanation) decided(r Result, s Step) {
	e.Result = r
	e.Steps = append(e.Steps, s)
	e.Query, e.Truncated, e.Record, e.Kind, e.Reason = s.Query, s.Truncated, s.Record, s.Kind, s.Reason
}

// Explain says what a receiver checking mail from ip, which greeted with
// helo, against the domain's current SPF record asks the edge and what it
// gets: the first include (the address alone), then the redirect target
// and, when the target has it, the HELO step. It expands each include as a
// receiver does (spfanswer.ReceiveCurrent, spfanswer.Receive), parses the
// name as the edge does and decides with the edge's function,
// spfanswer.Decide; the redirect target is the record the edge serves.
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
	facts := explainDomain{blocked: d.Mode == domain.Blocked}
	if !facts.blocked {
		if facts.nets, err = m.Netblocks(ctx, d); err != nil {
			return Explanation{}, err
		}
		if facts.services, err = m.Enabled(ctx, d); err != nil {
			return Explanation{}, err
		}
	}
	var p domain.Published
	err = pgx.BeginTxFunc(ctx, m.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		p, err = m.domains.Compile(ctx, tx, d)
		return err
	})
	if err != nil {
		return Explanation{}, err
	}
	var e Explanation

	// The first include: the address alone.
	first := Step{}
	var ok bool
	first.Query, first.Truncated, ok = spfanswer.ReceiveCurrent(ip, d.Name, zone)
	a := spfanswer.Answer{Kind: spfanswer.Neutral, Sender: -1}
	if ok {
		rest, _ := spfanswer.Rest(first.Query, zone)
		if q := spfanswer.Parse(rest); q.Domain == strings.ToLower(d.Name) {
			a = spfanswer.Decide(q, &facts)
		}
	}
	switch a.Kind {
	case spfanswer.Address:
		first.Kind, first.Record = AnswerIP, string(spfanswer.AppendAddressRecord(nil, ip))
		first.Reason = e.matched(ip, a, &facts)
		e.decided(ResultPass, first)
		return e, nil
	case spfanswer.Blocked:
		first.Kind, first.Record = AnswerBlocked, spfanswer.FailRecord
		first.Reason = d.Name + " is blocked: the include matches no address, and the redirect fails every one"
	default:
		first.Kind, first.Record = AnswerNeutral, spfanswer.NeutralRecord
		first.Reason = fmt.Sprintf("%s is in no netblock of %s and in no range of its enabled senders: the include matches nothing", ip, d.Name)
		if !ok || first.Truncated {
			first.Reason = "the expanded name is longer than 253 octets, so the receiver cut labels off its left and the address is lost: the include matches nothing"
		}
	}
	e.Steps = append(e.Steps, first)

	// The redirect: the edge's final record for the domain.
	target := Step{Query: domain.RSPFName(d.Name, zone), Record: p.RSPF, Kind: AnswerRedirect}
	if facts.blocked {
		target.Kind = AnswerBlocked
		target.Reason = d.Name + " is blocked: no address may send as it"
		e.decided(ResultFail, target)
		return e, nil
	}
	target.Reason = "the redirect target, the edge's final record for " + d.Name
	pins := pinsOf(p.RSPF)
	if len(pins) > 0 {
		target.Reason += "; the receiver evaluates its pinned includes (" + strings.Join(pins, ", ") + ") against their own records"
	}
	if !p.HELOStep {
		target.Reason += ", and ends in ~all"
		e.decided(ResultSoftfail, target)
		return e, nil
	}
	e.Steps = append(e.Steps, target)

	// The HELO step: an enabled sender recognised by its HELO name.
	step := Step{}
	step.Query, step.Truncated, ok = spfanswer.ReceiveHELOStep(helo, p.HELOLabels, d.Name, zone)
	if !ok {
		step.Query = ""
		step.Kind = AnswerNoQuery
		step.Reason = fmt.Sprintf("the HELO name %q expands the HELO step into no valid domain name (an empty name or label, a trailing dot, or a label over 63 octets), so no receiver asks the edge: the include is a permerror (the address was none of the domain's anyway)", helo)
		e.decided(ResultPermerror, step)
		return e, nil
	}
	rest, _ := spfanswer.Rest(step.Query, zone)
	q := spfanswer.Parse(rest)
	a = spfanswer.Answer{Kind: spfanswer.Neutral, Sender: -1}
	if q.Domain == strings.ToLower(d.Name) {
		a = spfanswer.Decide(q, &facts)
	}
	switch a.Kind {
	case spfanswer.Address:
		// The HELO itself spells an address of the domain's into the name:
		// the answer authorises that address, not the connecting one.
		step.Kind, step.Record = AnswerIP, string(spfanswer.AppendAddressRecord(nil, q.IP))
		if q.IP != ip {
			step.Reason = fmt.Sprintf("the HELO name %s puts the address %s into the name, and the edge authorises that address, not %s: the include matches nothing, and the record ends in ~all", helo, q.IP, ip)
			e.decided(ResultSoftfail, step)
			break
		}
		step.Reason = e.matched(ip, a, &facts)
		e.decided(ResultPass, step)
	case spfanswer.Include:
		e.Service = &facts.services[a.Sender]
		step.Kind, step.Record = AnswerInclude, spfanswer.HandoverRecord(e.Service.SpfIncludes...)
		suffixes, _ := facts.HELOSuffixes(a.Sender)
		suffix := e.Service.HeloSuffixes[spfanswer.MatchSuffix(q.HELO, suffixes)]
		step.Reason = fmt.Sprintf("%s is in no known range, but the HELO name %s belongs to %s (suffix %s), an enabled sender: its own SPF record decides", ip, helo, e.Service.Name, suffix)
		e.decided(ResultSender, step)
	default:
		step.Kind, step.Record = AnswerNeutral, spfanswer.NeutralRecord
		step.Reason = fmt.Sprintf("the HELO name %s belongs to no enabled sender: the include matches nothing, and the record ends in ~all", helo)
		e.decided(ResultSoftfail, step)
	}
	return e, nil
}

// matched says which netblock or sender's range holds ip, for an Address
// answer, and records it in e.
func (e *Explanation) matched(ip netip.Addr, a spfanswer.Answer, facts *explainDomain) string {
	if a.Sender < 0 {
		for i, n := range facts.nets {
			if n.Prefix.Contains(ip) && (e.Netblock == nil || n.Prefix.Bits() > e.Netblock.Prefix.Bits()) {
				e.Netblock = &facts.nets[i]
			}
		}
		reason := fmt.Sprintf("%s is in the domain's netblock %s", ip, e.Netblock.Prefix)
		if e.Netblock.Label != "" {
			reason += " (" + e.Netblock.Label + ")"
		}
		return reason
	}
	e.Service = &facts.services[a.Sender]
	for _, r := range Ranges(*e.Service) {
		if r.Contains(ip) {
			return fmt.Sprintf("%s is in %s's range %s, an enabled sender", ip, e.Service.Name, r)
		}
	}
	return fmt.Sprintf("%s is in a range of %s, an enabled sender", ip, e.Service.Name)
}

// pinsOf lists the literal includes of an SPF record.
func pinsOf(record string) []string {
	var out []string
	for term := range strings.FieldsSeq(record) {
		if inc, ok := strings.CutPrefix(term, "include:"); ok && !strings.Contains(inc, "%{") {
			out = append(out, inc)
		}
	}
	return out
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
	return x.suffixes[i], len(x.services[i].SpfIncludes) > 0
}
