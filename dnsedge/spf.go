package dnsedge

import (
	"net/netip"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// Labels of the per-query SPF names (see package spfanswer).
const (
	spfLabel  = spfanswer.SPFLabel
	ipLabel   = spfanswer.IPLabel
	ehloLabel = spfanswer.EHLOLabel
)

// The fixed SPF answers.
var (
	spfNeutral = []string{spfanswer.NeutralRecord} // nothing known: let the customer's ~all decide
	spfFail    = []string{spfanswer.FailRecord}    // a blocked domain sends no mail
)

// spfAnswer is the TXT answer, as character-strings, at a name under
// _spf.<edge zone> whose labels before "._spf" are rest.
func spfAnswer(ix *index, rest string) []string {
	txt, ip := spfLookup(ix, rest)
	if ip.IsValid() {
		return []string{string(spfanswer.AppendAddressRecord(nil, ip))}
	}
	return txt
}

// spfLookup decides the TXT answer at a name under _spf.<edge zone> whose
// labels before "._spf" are rest, allocating nothing: either a fixed answer
// as character-strings, or, when the address is one the domain authorises,
// that address (see spfanswer.AppendAddressRecord) and nil.
func spfLookup(ix *index, rest string) ([]string, netip.Addr) {
	q := spfanswer.Parse(rest)
	d, ok := ix.domains.get(q.Domain)
	if !ok {
		return spfNeutral, netip.Addr{}
	}
	a := spfanswer.Decide(q, spfDomain{ix: ix, d: d})
	switch a.Kind {
	case spfanswer.Blocked:
		return spfFail, netip.Addr{}
	case spfanswer.Address:
		return nil, q.IP
	case spfanswer.Include:
		s, _ := ix.services.get(d.services[a.Sender])
		return s.includeTXT, netip.Addr{}
	}
	return spfNeutral, netip.Addr{}
}

// spfDomain is a domain of the index as spfanswer.Decide reads it: its
// senders are the services it enables, one the index lacks matching nothing.
type spfDomain struct {
	ix *index
	d  *domain
}

func (s spfDomain) Blocked() bool { return s.d.blocked }

func (s spfDomain) InNetblocks(ip netip.Addr) bool { return s.d.nets != nil && s.d.nets.Contains(ip) }

func (s spfDomain) Senders() int { return len(s.d.services) }

func (s spfDomain) InRanges(i int, ip netip.Addr) bool {
	svc, ok := s.ix.services.get(s.d.services[i])
	return ok && svc.nets.Contains(ip)
}

func (s spfDomain) HELOSuffixes(i int) ([]string, bool) {
	if svc, ok := s.ix.services.get(s.d.services[i]); ok {
		return svc.heloSuffixes, svc.includeTXT != nil
	}
	return nil, false
}
