package spf

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// maxFlattenLookups bounds the work of Flatten on a chain far over the
// limit, such as one with includes forming a diamond many levels deep.
const maxFlattenLookups = 100

// Flatten resolves the SPF record of domain into the address ranges it
// authorises, for publishing them in place of an include of domain. It
// walks include, redirect, a and mx recursively, collects the ip4 and ip6
// networks and the addresses of a and mx (as /32 and /128, or the
// mechanism's CIDR lengths), and counts the DNS-querying terms the chain
// costs a receiver: lookups is that count for the records of the chain,
// not counting the lookup of domain's own record.
//
// The prefixes are masked, sorted (IPv4 first), without duplicates and
// without prefixes inside others.
//
// Errors:
//
//   - the chain depends on the message being checked (exists, ptr, macros)
//     or uses qualifiers other than "+" on mechanisms other than all, or
//     "+all": an error wrapping [ErrNotFlattenable] naming the first such
//     term; prefixes is nil and lookups is still the full count;
//   - the chain costs more than 10 lookups or more than 2 void lookups, or
//     an mx finds more than 10 MX records: an error wrapping
//     [ErrTooManyLookups], [ErrTooManyVoidLookups] or [ErrTooManyMX],
//     returned with the prefixes, since a receiver would give permerror
//     when it gets that far;
//   - a record is missing or invalid ([ErrNoRecord], [ErrMultipleRecords],
//     a [*SyntaxError]) or a DNS lookup fails: prefixes is nil.
func Flatten(ctx context.Context, resolver Resolver, domain string) (prefixes []netip.Prefix, lookups int, err error) {
	f := &flattener{ctx: ctx, r: resolver}
	err = f.walk(strings.TrimSuffix(domain, "."))
	switch {
	case err != nil:
		return nil, f.lookups, err
	case f.notFlat != nil:
		return nil, f.lookups, f.notFlat
	}
	prefixes = normalizePrefixes(f.prefixes)
	switch {
	case f.mxErr != nil:
		err = f.mxErr
	case f.lookups > DefaultMaxLookups:
		err = fmt.Errorf("%w: the SPF chain of %s costs %d", ErrTooManyLookups, domain, f.lookups)
	case f.voids > DefaultMaxVoidLookups:
		err = fmt.Errorf("%w: the SPF chain of %s has %d", ErrTooManyVoidLookups, domain, f.voids)
	}
	return prefixes, f.lookups, err
}

type flattener struct {
	ctx      context.Context
	r        Resolver
	lookups  int
	voids    int
	prefixes []netip.Prefix
	stack    []string // domains being walked, to detect loops
	notFlat  error    // the first reason the chain cannot be flattened
	mxErr    error
}

func (f *flattener) cannot(domain, term, why string) {
	if f.notFlat == nil {
		f.notFlat = fmt.Errorf("%w: %s: term %q %s", ErrNotFlattenable, domain, term, why)
	}
}

func (f *flattener) count() error {
	f.lookups++
	if f.lookups > maxFlattenLookups {
		return fmt.Errorf("%w: the chain costs more than %d, stopped counting", ErrTooManyLookups, maxFlattenLookups)
	}
	return nil
}

func (f *flattener) walk(domain string) error {
	if slices.ContainsFunc(f.stack, func(d string) bool { return strings.EqualFold(d, domain) }) {
		return fmt.Errorf("%w: %s includes itself", ErrTooManyLookups, domain)
	}
	f.stack = append(f.stack, domain)
	defer func() { f.stack = f.stack[:len(f.stack)-1] }()

	rec, err := f.record(domain)
	if err != nil {
		return err
	}
	for _, m := range rec.Mechanisms {
		term := m.String()
		if m.Kind.QueriesDNS() {
			if err := f.count(); err != nil {
				return err
			}
		}
		pass := m.Qualifier == 0 || m.Qualifier == QualifierPass
		if !pass && m.Kind != KindAll {
			f.cannot(domain, term, "has a qualifier other than +, which a list of ranges cannot express")
		}
		if strings.Contains(m.Domain, "%") {
			f.cannot(domain, term, "uses macros, which depend on the message")
			continue
		}
		target := m.Domain
		if target == "" {
			target = domain
		}
		target = strings.TrimSuffix(target, ".")
		switch m.Kind {
		case KindAll:
			if pass {
				f.cannot(domain, term, "authorises every address")
			}
			return nil // the rest, redirect included, is never reached
		case KindIP4, KindIP6:
			f.prefixes = append(f.prefixes, m.Prefix)
		case KindExists:
			f.cannot(domain, term, "depends on the message")
		case KindPTR:
			f.cannot(domain, term, "depends on the connecting host's reverse DNS")
		case KindA:
			if err := f.addresses(target, m); err != nil {
				return err
			}
		case KindMX:
			hosts, err := f.r.LookupMX(f.ctx, target)
			if err != nil && !isNotFound(err) {
				return fmt.Errorf("%s: %s: lookup MX %s: %w", domain, term, target, err)
			}
			if len(hosts) == 0 {
				f.voids++
			}
			if len(hosts) > maxNames && f.mxErr == nil {
				f.mxErr = fmt.Errorf("%w: %s: %s has %d", ErrTooManyMX, domain, target, len(hosts))
			}
			for _, h := range hosts {
				if h = strings.TrimSuffix(h, "."); h != "" {
					if err := f.addresses(h, m); err != nil {
						return err
					}
				}
			}
		case KindInclude:
			if err := f.walk(target); err != nil {
				return fmt.Errorf("%s: %s: %w", domain, term, err)
			}
		}
	}
	if rec.Redirect != "" {
		term := "redirect=" + rec.Redirect
		if err := f.count(); err != nil {
			return err
		}
		if strings.Contains(rec.Redirect, "%") {
			f.cannot(domain, term, "uses macros, which depend on the message")
			return nil
		}
		if err := f.walk(strings.TrimSuffix(rec.Redirect, ".")); err != nil {
			return fmt.Errorf("%s: %s: %w", domain, term, err)
		}
	}
	return nil
}

// record looks up the one SPF record of domain.
func (f *flattener) record(domain string) (*Record, error) {
	if !validDomain(domain) {
		return nil, fmt.Errorf("%w: %q is not a valid domain name", ErrNoRecord, domain)
	}
	txts, err := f.r.LookupTXT(f.ctx, domain)
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("lookup TXT %s: %w", domain, err)
	}
	var rec *Record
	for _, t := range txts {
		if !IsSPF(t) {
			continue
		}
		if rec != nil {
			return nil, fmt.Errorf("%s: %w", domain, ErrMultipleRecords)
		}
		if rec, err = Parse(t); err != nil {
			return nil, fmt.Errorf("record of %s: %w", domain, err)
		}
	}
	if rec == nil {
		return nil, fmt.Errorf("%w at %s", ErrNoRecord, domain)
	}
	return rec, nil
}

// addresses adds the A and AAAA records of name with the CIDR lengths of
// the a or mx mechanism m. Both families are looked up because the
// flattened ranges serve clients of both.
func (f *flattener) addresses(name string, m Mechanism) error {
	if !validDomain(name) {
		f.voids++
		return nil
	}
	found := false
	for _, network := range []string{"ip4", "ip6"} {
		addrs, err := f.r.LookupIP(f.ctx, network, name)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("lookup %s %s: %w", addrType(network), name, err)
		}
		bits := m.Bits4()
		if network == "ip6" {
			bits = m.Bits6()
		}
		for _, a := range addrs {
			if network == "ip4" {
				a = a.Unmap()
			}
			if p, err := a.Prefix(bits); err == nil {
				f.prefixes = append(f.prefixes, p)
				found = true
			}
		}
	}
	if !found && m.Kind == KindA {
		f.voids++
	}
	return nil
}

// normalizePrefixes masks, sorts and deduplicates prefixes, dropping those
// inside others.
func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	for i, p := range ps {
		ps[i] = p.Masked()
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 {
			last := out[n-1]
			if last.Addr().Is4() == p.Addr().Is4() && last.Bits() <= p.Bits() && last.Contains(p.Addr()) {
				continue
			}
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}
