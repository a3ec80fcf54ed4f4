package enrich

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"github.com/rampartmail/rampart/internal/dnscheck"
)

// PTR is the outcome of a forward-confirmed reverse lookup.
type PTR struct {
	Outcome Outcome
	// Name is the first PTR name that resolves back to the IP (Confirmed),
	// or else the first PTR name; "" when None.
	Name      string
	Confirmed bool
	// Err says why the outcome is Failed.
	Err error
}

// Confirm looks up the PTR names of ip, then the addresses of ip's family
// (A or AAAA) of at most maxNames of them, in the answer's order, and
// stops at the first that holds ip: forward-confirmed reverse DNS. Only a
// PTR name so confirmed may be taken as the IP's: anyone who holds the
// reverse zone of an address can name it anything.
//
// The outcome is Failed when the PTR lookup got no answer, or when no name
// was confirmed and a forward lookup got none (another try could confirm
// it).
func Confirm(ctx context.Context, c *dnscheck.Checker, ip netip.Addr, maxNames int) PTR {
	ip = ip.Unmap()
	r := c.PTR(ctx, ip)
	switch {
	case r.Status == dnscheck.NXDomain || r.Status == dnscheck.NoData:
		return PTR{Outcome: None}
	case r.Status != dnscheck.Found:
		return PTR{Outcome: Failed, Err: errors.New(r.Describe())}
	}
	names := r.Names()
	if len(names) == 0 {
		return PTR{Outcome: None}
	}
	var failed error
	for _, name := range names[:min(len(names), max(maxNames, 1))] {
		f := c.Addrs(ctx, name, ip)
		if f.Status == dnscheck.Found && slices.Contains(f.Addrs(), ip) {
			return PTR{Outcome: Found, Name: name, Confirmed: true}
		}
		if !f.Status.Definitive() && failed == nil {
			failed = errors.New(f.Describe())
		}
	}
	if failed != nil {
		return PTR{Outcome: Failed, Name: names[0], Err: failed}
	}
	return PTR{Outcome: Found, Name: names[0]}
}
