// Package sketch counts distinct source addresses approximately, in
// sketches that merge: a HyperLogLog sketch (github.com/axiomhq/hyperloglog,
// precision 14) of a group's addresses per day is stored next to the day's
// sums (report_daily, account_daily), and the distinct addresses over a
// range are the merge of its days' sketches, whatever the number of
// domains and days, rather than a count over every source row.
//
// A sketch stays sparse, and its count exact in practice, up to a few
// thousand addresses; beyond, it is dense (16 KiB) and its count within
// about 1% (the standard error at precision 14 is 0.81%).
package sketch

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/axiomhq/hyperloglog"
)

// Addresses is a sketch of distinct addresses. Its zero value is empty and
// ready to use.
type Addresses struct {
	hll *hyperloglog.Sketch
}

func (a *Addresses) init() {
	if a.hll == nil {
		a.hll = hyperloglog.New14()
	}
}

// Add adds an address; an IPv4 address and its IPv4-mapped IPv6 form are
// one.
func (a *Addresses) Add(ip netip.Addr) {
	a.init()
	b := ip.Unmap().As16()
	a.hll.Insert(b[:])
}

// Merge adds the addresses of a stored sketch (as [Addresses.Bytes] wrote
// it); an empty one adds nothing.
func (a *Addresses) Merge(stored []byte) error {
	if len(stored) == 0 {
		return nil
	}
	var o hyperloglog.Sketch
	if err := o.UnmarshalBinary(stored); err != nil {
		return fmt.Errorf("decode address sketch: %w", err)
	}
	return a.MergeSketch(&Addresses{hll: &o})
}

// MergeSketch adds the addresses of another sketch.
func (a *Addresses) MergeSketch(o *Addresses) error {
	if o.hll == nil {
		return nil
	}
	a.init()
	if err := a.hll.Merge(o.hll); err != nil {
		return fmt.Errorf("merge address sketches: %w", err)
	}
	return nil
}

// Count is the estimate of how many distinct addresses were added.
func (a *Addresses) Count() int64 {
	if a.hll == nil {
		return 0
	}
	n := a.hll.Estimate()
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

// Bytes is the sketch as stored; nil for an empty one.
func (a *Addresses) Bytes() ([]byte, error) {
	if a.hll == nil {
		return nil, nil
	}
	b, err := a.hll.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode address sketch: %w", err)
	}
	return b, nil
}
