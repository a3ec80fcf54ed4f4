package dnsedge

import (
	"fmt"
	"net/netip"

	"github.com/gaissmai/bart"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// Bounds on one edge_service row, as for domains.
const (
	maxServiceRanges = 1 << 16
	maxHELOSuffixes  = 256
	maxIncludeLen    = 253
	// maxIncludes bounds a service's includes: sender_services holds at
	// most 10, and the hand-over answer must fit 512 octets anyway.
	maxIncludes = 10
)

// serviceRow is one edge_service row as read from PostgreSQL or the snapshot
// file: a sender service that domains enable by name.
type serviceRow struct {
	name   string
	serial int64
	// ranges are the addresses the service sends from, as last resolved.
	ranges []netip.Prefix
	// heloSuffixes are the names its servers greet with (HELO/EHLO), as
	// label-boundary suffixes: "mailer.example" matches mta1.mailer.example.
	heloSuffixes []string
	// includes are the service's own SPF includes (domain-specs), all
	// answered at once when the HELO matches but the address does not;
	// empty for none.
	includes []string
	deleted  bool
}

// service is one sender service as the index serves it. Like a domain it is
// built once and shared by every later index until its row changes; every
// domain enabling it reads the same prefix table.
type service struct {
	// serviceRow is the validated row (ranges masked, suffixes lower case).
	serviceRow
	nets *bart.Lite
	// includeTXT is the SPF answer "v=spf1 include:<include>... -all" as
	// character-strings; nil when the service has no include.
	includeTXT []string
}

// newService validates r and builds the service it describes.
func newService(r serviceRow) (*service, error) {
	if err := checkServiceName(r.name); err != nil {
		return nil, err
	}
	if r.serial <= 0 {
		return nil, fmt.Errorf("service %q: serial %d not positive", r.name, r.serial)
	}
	if len(r.ranges) > maxServiceRanges {
		return nil, fmt.Errorf("service %q: %d ranges exceed %d", r.name, len(r.ranges), maxServiceRanges)
	}
	s := &service{nets: new(bart.Lite)}
	// Empty lists become nil: one form for "none", whatever the source.
	var ranges []netip.Prefix
	if len(r.ranges) > 0 {
		ranges = make([]netip.Prefix, len(r.ranges))
	}
	for i, p := range r.ranges {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("service %q: invalid range %v", r.name, p)
		}
		ranges[i] = p.Masked()
		s.nets.Insert(ranges[i])
	}
	r.ranges = ranges

	if len(r.heloSuffixes) > maxHELOSuffixes {
		return nil, fmt.Errorf("service %q: %d HELO suffixes exceed %d", r.name, len(r.heloSuffixes), maxHELOSuffixes)
	}
	var helo []string
	if len(r.heloSuffixes) > 0 {
		helo = make([]string, len(r.heloSuffixes))
	}
	for i, h := range r.heloSuffixes {
		h = spfanswer.NormalizeSuffix(h)
		if err := checkHostName(h); err != nil {
			return nil, fmt.Errorf("service %q: HELO suffix %q: %w", r.name, r.heloSuffixes[i], err)
		}
		helo[i] = h
	}
	r.heloSuffixes = helo

	if len(r.includes) > maxIncludes {
		return nil, fmt.Errorf("service %q: %d includes exceed %d", r.name, len(r.includes), maxIncludes)
	}
	var includes []string
	if len(r.includes) > 0 {
		includes = make([]string, len(r.includes))
	}
	for k, inc := range r.includes {
		if inc == "" {
			return nil, fmt.Errorf("service %q: include %d is empty", r.name, k+1)
		}
		if len(inc) > maxIncludeLen {
			return nil, fmt.Errorf("service %q: include of %d bytes exceeds %d", r.name, len(inc), maxIncludeLen)
		}
		for i := 0; i < len(inc); i++ {
			// An SPF domain-spec: printable ASCII without spaces (macros
			// such as %{i} included).
			if c := inc[i]; c <= ' ' || c > '~' {
				return nil, fmt.Errorf("service %q: include %q: byte %#x not allowed", r.name, inc, c)
			}
		}
		includes[k] = inc
	}
	r.includes = includes
	if len(includes) > 0 {
		s.includeTXT = txtStrings(spfanswer.HandoverRecord(includes...))
	}
	s.serviceRow = r
	return s, nil
}

// matchHELO reports whether helo, a lower-case name in presentation form
// without a trailing dot, is one of the service's HELO suffixes or below one
// (spfanswer.MatchSuffix).
func (s *service) matchHELO(helo string) bool {
	return spfanswer.MatchSuffix(helo, s.heloSuffixes) >= 0
}
