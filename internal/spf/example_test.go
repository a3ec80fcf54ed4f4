package spf_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/rampartmail/rampart/internal/spf"
)

func ExampleParse() {
	r, err := spf.Parse("v=spf1 +mx a:mail.example.com/24 ip4:192.0.2.0/24 include:_spf.example.net ~all")
	if err != nil {
		panic(err)
	}
	fmt.Println(r)
	fmt.Println("DNS-querying terms:", r.LookupTerms())

	_, err = spf.Parse("v=spf1 ip4:192.0.2.1/33 -all")
	fmt.Println(err)

	_, err = spf.Parse("v=spf10 -all")
	fmt.Println(errors.Is(err, spf.ErrNotSPF))
	// Output:
	// v=spf1 mx a:mail.example.com/24 ip4:192.0.2.0/24 include:_spf.example.net ~all
	// DNS-querying terms: 3
	// spf: term "ip4:192.0.2.1/33": CIDR length 33 is out of range 0-32
	// true
}

// staticDNS is a tiny in-memory Resolver for the example. Real code uses
// spf.NewDNSResolver("127.0.0.1:53") or another Resolver.
type staticDNS map[string][]string

func (z staticDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if txt, ok := z[name]; ok {
		return txt, nil
	}
	return nil, spf.ErrNotFound
}

func (z staticDNS) LookupIP(_ context.Context, network, name string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range z[network+" "+name] {
		out = append(out, netip.MustParseAddr(s))
	}
	if out == nil {
		return nil, spf.ErrNotFound
	}
	return out, nil
}

func (staticDNS) LookupMX(context.Context, string) ([]string, error) { return nil, spf.ErrNotFound }

func (staticDNS) LookupPTR(context.Context, netip.Addr) ([]string, error) {
	return nil, spf.ErrNotFound
}

func ExampleChecker_Check() {
	dns := staticDNS{
		"example.com":          {"v=spf1 a:mail.example.com include:_spf.example.net -all", "other TXT record"},
		"ip4 mail.example.com": {"192.0.2.10"},
		"_spf.example.net":     {"v=spf1 ip4:198.51.100.0/24 ~all"},
	}
	c := &spf.Checker{Resolver: dns, Trace: true}
	out := c.Check(context.Background(), netip.MustParseAddr("198.51.100.7"), "mx.example.org", "alice@example.com")
	fmt.Println(out.Result, "by", out.Mechanism, "after", out.Lookups, "lookups")
	for _, s := range out.Trace {
		fmt.Printf("%s%s %s: %s\n", strings.Repeat("  ", s.Depth), s.Domain, s.Term, s.Detail)
	}
	// Output:
	// pass by include:_spf.example.net after 2 lookups
	// example.com : record: v=spf1 a:mail.example.com include:_spf.example.net -all
	// example.com a:mail.example.com: 1 A records, none matches
	//   _spf.example.net : record: v=spf1 ip4:198.51.100.0/24 ~all
	//   _spf.example.net ip4:198.51.100.0/24: 198.51.100.7 is in 198.51.100.0/24
	// example.com include:_spf.example.net: included record passes
	// example.com : result pass
}

func ExampleFlatten() {
	dns := staticDNS{
		"_spf.example.net":      {"v=spf1 ip4:198.51.100.0/24 include:_v6.example.net a:relay.example.net ~all"},
		"_v6.example.net":       {"v=spf1 ip6:2001:db8::/32 -all"},
		"ip4 relay.example.net": {"203.0.113.5"},
	}
	prefixes, lookups, err := spf.Flatten(context.Background(), dns, "_spf.example.net")
	fmt.Println(prefixes, lookups, err)
	// Output:
	// [198.51.100.0/24 203.0.113.5/32 2001:db8::/32] 2 <nil>
}
