package spf

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// suiteRecords returns every TXT and SPF string of the conformance suites,
// as fuzzing seeds.
func suiteRecords(f *testing.F) []string {
	var out []string
	for _, path := range []string{"testdata/rfc7208-tests.yml", "testdata/rfc4408-tests.yml"} {
		for _, doc := range loadSuite(f, path) {
			for _, recs := range zoneFromSuite(f, doc.ZoneData) {
				for _, r := range recs {
					if r.typ == "TXT" || r.typ == "SPF" {
						out = append(out, r.text)
					}
				}
			}
		}
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, s := range suiteRecords(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := Parse(txt)
		if err != nil {
			require.Nil(t, r)
			return
		}
		require.NoError(t, r.Validate(), "a parsed record is valid")
		canonical := r.String()
		again, err := Parse(canonical)
		require.NoError(t, err, "canonical form %q of %q", canonical, txt)
		require.Equal(t, r, again, "round trip of %q via %q", txt, canonical)
		require.Equal(t, canonical, again.String())
		require.GreaterOrEqual(t, r.LookupTerms(), 0)
	})
}

func FuzzExpandMacro(f *testing.F) {
	f.Add("%{ir}.%{v}._spf.%{d2}", "strong-bad@email.example.com", "mail.example.org", []byte{192, 0, 2, 3})
	f.Add("%{l1r-}.%{O}.%{H}.example.com", "a-b-c@x.example", "%%%%", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xcb, 1})
	f.Add("foobar.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.example.com", "x@somewhat.long.exp.example.com", "h", []byte{})
	f.Add("%{c} %{r} %{t} %{p} %%%_%-", "@", "", []byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, spec, sender, helo string, ip []byte) {
		addr, _ := netip.AddrFromSlice(ip)
		d := &MacroData{Sender: sender, Domain: "example.com", IP: addr, HELO: helo, Now: time.Unix(0, 0)}
		name, err := ExpandDomainSpec(spec, d)
		if err == nil {
			require.LessOrEqual(t, len(name), maxDomain, "expansion of %q", spec)
			require.NoError(t, checkDomainSpec(spec))
		}
		text, err := ExpandExplanation(spec, d)
		if err == nil {
			require.LessOrEqual(t, len(text), maxExpansion)
		}
	})
}

// countingResolver counts the queries made through it.
type countingResolver struct {
	Resolver
	n atomic.Int64
}

func (c *countingResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	c.n.Add(1)
	return c.Resolver.LookupTXT(ctx, name)
}

func (c *countingResolver) LookupIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	c.n.Add(1)
	return c.Resolver.LookupIP(ctx, network, name)
}

func (c *countingResolver) LookupMX(ctx context.Context, name string) ([]string, error) {
	c.n.Add(1)
	return c.Resolver.LookupMX(ctx, name)
}

func (c *countingResolver) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	c.n.Add(1)
	return c.Resolver.LookupPTR(ctx, addr)
}

// FuzzCheckHost evaluates arbitrary records against a small zone: the
// fuzzed record is published at fuzz.example and sub.fuzz.example, so that
// it can include and redirect to itself, next to a few fixed names.
func FuzzCheckHost(f *testing.F) {
	for _, s := range suiteRecords(f) {
		f.Add(s, "", []byte{192, 0, 2, 1})
	}
	f.Add("v=spf1 include:fuzz.example", "v=spf1 redirect=sub.fuzz.example", []byte{192, 0, 2, 1})
	f.Add("v=spf1 mx mx mx mx mx mx mx mx mx mx -all", "v=spf1 ptr:%{d} -all", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add("v=spf1 exists:%{p}.%{ir}.%{v}.fuzz.example -all exp=exp.fuzz.example", "%{p} %{c} %{r} %{t}", []byte{192, 0, 2, 1})
	f.Fuzz(func(t *testing.T, record, other string, ip []byte) {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			addr = netip.MustParseAddr("192.0.2.1")
		}
		z := zone{}.
			add("fuzz.example", "TXT "+record, "A 192.0.2.1", "AAAA 2001:db8::1", "MX mx.fuzz.example").
			add("sub.fuzz.example", "TXT "+other, "TXT "+record).
			add("exp.fuzz.example", "TXT "+other).
			add("mx.fuzz.example", "A 192.0.2.2").
			add(reverseName(addr), "PTR fuzz.example", "PTR mx.fuzz.example", "PTR other.example").
			add("slow.fuzz.example", "TIMEOUT")
		for range 11 {
			z.add("fuzz.example", "MX mx.fuzz.example")
		}
		r := &countingResolver{Resolver: z}
		c := &Checker{Resolver: r, Trace: true, Timeout: 5 * time.Second}
		out := c.Check(context.Background(), addr, "helo.fuzz.example", "user@fuzz.example")

		require.LessOrEqual(t, out.Lookups, DefaultMaxLookups+1)
		require.LessOrEqual(t, out.VoidLookups, DefaultMaxVoidLookups+1)
		// Each of at most 11 terms makes at most 1+10 queries, the PTR
		// names and %{p} at most 1+10 per domain, the explanation 1.
		require.LessOrEqual(t, r.n.Load(), int64(1+11*11+11*12+1), "queries")
		require.NotErrorIs(t, out.Err, context.DeadlineExceeded)
		switch out.Result {
		case TempError, PermError:
			require.Error(t, out.Err)
		default:
			require.NoError(t, out.Err)
		}
		if out.Result != Fail {
			require.Empty(t, out.Explanation)
		}
	})
}
