package spf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// zone is an in-memory DNS zone implementing Resolver, with the semantics
// of the OpenSPF test suite's zonedata (see testdata and
// the README of the shared conformance testdata beside this repository):
//
//   - an entry TIMEOUT makes a query of the name time out, unless a record
//     of the queried type comes before it;
//   - records of type SPF are served as TXT when the name has no TXT
//     entries at all; "TXT: NONE" is a TXT entry that holds no record;
//   - CNAMEs are followed for every type; a CNAME loop is a server failure.
type zone map[string][]zoneRecord

type zoneRecord struct {
	typ  string // "A", "AAAA", "TXT", "SPF", "MX", "PTR", "CNAME" or "TIMEOUT"
	text string // TXT and SPF (strings joined), PTR, CNAME and MX target
	addr netip.Addr
	none bool // "TXT: NONE"
}

var errTimeout = errors.New("zone: query timed out")

// add parses records in zone file syntax, a convenience for hand-written
// tests: "A 192.0.2.1", "TXT v=spf1 -all", "MX mail.example.com", "TIMEOUT".
func (z zone) add(name string, records ...string) zone {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, r := range records {
		typ, val, _ := strings.Cut(r, " ")
		rec := zoneRecord{typ: typ}
		switch typ {
		case "A", "AAAA":
			rec.addr = netip.MustParseAddr(val)
		case "TXT", "SPF", "MX", "PTR", "CNAME":
			rec.text = val
		case "TIMEOUT":
		default:
			panic("zone: unknown record type " + typ)
		}
		z[name] = append(z[name], rec)
	}
	return z
}

// lookup returns the records of type typ at name.
func (z zone) lookup(ctx context.Context, name, typ string) ([]zoneRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	seen := map[string]bool{}
	for {
		if seen[name] {
			return nil, fmt.Errorf("zone: CNAME loop at %s", name)
		}
		seen[name] = true
		entries, ok := z[name]
		if !ok {
			return nil, fmt.Errorf("zone: %s: %w", name, ErrNotFound)
		}
		want := typ
		if typ == "TXT" && !hasType(entries, "TXT") {
			want = "SPF"
		}
		var out []zoneRecord
		cname := ""
		for _, e := range entries {
			switch {
			case e.typ == "TIMEOUT":
				if len(out) == 0 {
					return nil, errTimeout
				}
			case e.typ == want && !e.none:
				out = append(out, e)
			case e.typ == "CNAME":
				cname = e.text
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		if cname == "" {
			return nil, fmt.Errorf("zone: %s %s: %w", name, typ, ErrNotFound)
		}
		name = strings.ToLower(strings.TrimSuffix(cname, "."))
	}
}

func hasType(entries []zoneRecord, typ string) bool {
	for _, e := range entries {
		if e.typ == typ {
			return true
		}
	}
	return false
}

func (z zone) LookupTXT(ctx context.Context, name string) ([]string, error) {
	recs, err := z.lookup(ctx, name, "TXT")
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.text)
	}
	return out, err
}

func (z zone) LookupIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	typ := "A"
	if network == "ip6" {
		typ = "AAAA"
	}
	recs, err := z.lookup(ctx, name, typ)
	out := make([]netip.Addr, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.addr)
	}
	return out, err
}

func (z zone) LookupMX(ctx context.Context, name string) ([]string, error) {
	recs, err := z.lookup(ctx, name, "MX")
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.text)
	}
	return out, err
}

func (z zone) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	recs, err := z.lookup(ctx, reverseName(addr), "PTR")
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.text)
	}
	return out, err
}

// reverseName returns the in-addr.arpa or ip6.arpa name of addr.
func reverseName(addr netip.Addr) string {
	addr = addr.Unmap()
	var b strings.Builder
	if addr.Is4() {
		a := addr.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa", a[3], a[2], a[1], a[0])
		return b.String()
	}
	const hex = "0123456789abcdef"
	a := addr.As16()
	for i := len(a) - 1; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}
