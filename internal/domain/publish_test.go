package domain

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/spf"
	"github.com/rampartmail/rampart/internal/spfanswer"
)

// txtZone is a resolver over fixed TXT records, for evaluating published
// records with the project's RFC 7208 evaluator.
type txtZone map[string]string

func (z txtZone) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := z[strings.TrimSuffix(strings.ToLower(name), ".")]; ok {
		return []string{v}, nil
	}
	return nil, &spf.LookupError{Name: name, Type: "TXT", Err: spf.ErrNotFound}
}

func (z txtZone) LookupIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, spf.ErrNotFound
}

func (z txtZone) LookupMX(context.Context, string) ([]string, error) { return nil, spf.ErrNotFound }

func (z txtZone) LookupPTR(context.Context, netip.Addr) ([]string, error) {
	return nil, spf.ErrNotFound
}

// TestNSPFRecordsFitAndChain: the legacy form's netblocks, however many,
// are split into records that each fit a 512-octet answer, chained by
// includes, and a receiver walking the chain finds every netblock.
func TestNSPFRecordsFitAndChain(t *testing.T) {
	t.Parallel()
	const zone = "edge.rampart.example"
	for _, tc := range []struct {
		name  string
		v4    int
		v6    int
		pins  []string
		parts int
	}{
		{"one record", 5, 2, []string{"_spf.vendor.example"}, 1},
		{"120 netblocks", 120, 0, nil, 6},
		{"mixed, with pins", 60, 40, []string{"_spf.vendor.example", "spf.other.example"}, 6},
		{"long domain", 20, 20, nil, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "customer.example"
			if tc.name == "long domain" {
				name = strings.Repeat("d", 63) + "." + strings.Repeat("e", 40) + ".example"
			}
			var nets []netip.Prefix
			for i := range tc.v4 {
				nets = append(nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
			}
			for i := range tc.v6 {
				nets = append(nets, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48))
			}
			records := NSPFRecords(Sending, name, zone, nets, tc.pins)
			require.Len(t, records, tc.parts)
			z := txtZone{}
			var terms []string
			for k, r := range records {
				owner := NSPFName(name, zone, k+1)
				size := spfanswer.ResponseSize(owner, r)
				require.LessOrEqual(t, size, spfanswer.MaxResponse, "record %d at %s: %d octets", k+1, owner, size)
				_, err := spf.Parse(r)
				require.NoError(t, err, r)
				z[owner] = r
				for term := range strings.FieldsSeq(r) {
					if term != "v=spf1" && term != "-all" && !strings.Contains(term, "._nspf.") {
						terms = append(terms, term)
					}
				}
				if k < len(records)-1 {
					next := " include:" + NSPFName(name, zone, k+2) + " -all"
					require.True(t, strings.HasSuffix(r, next), r)
					// Greedy: the next record's first term did not fit.
					first := strings.Fields(records[k+1])[1]
					grown := strings.TrimSuffix(r, next) + " " + first + next
					require.Greater(t, spfanswer.ResponseSize(owner, grown), spfanswer.MaxResponse, "record %d could hold %s", k+1, first)
				}
			}
			// Every netblock and pin once, in order.
			require.Len(t, terms, len(nets)+len(tc.pins))
			for i, n := range nets {
				require.Contains(t, terms[i], n.String())
			}
			// A receiver finds the last netblock at the end of the chain,
			// within the lookup limit when the chain is short enough.
			last := nets[len(nets)-1].Addr().Next()
			z["probe.example"] = "v=spf1 include:" + NSPFName(name, zone, 1) + " -all"
			for _, pin := range tc.pins {
				z[pin] = "v=spf1 -all"
			}
			out := (&spf.Checker{Resolver: z, MaxVoidLookups: -1}).CheckHost(context.Background(), last, "probe.example", "x@probe.example", "mx.probe.example")
			want := spf.Pass
			if 1+len(records)+len(tc.pins) > 10 {
				want = spf.PermError
			}
			require.Equal(t, want, out.Result, "%v", out)
		})
	}
	require.Equal(t, []string{"v=spf1 -all"}, NSPFRecords(Blocked, "b.example", zone, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, nil))
}

// TestRSPFRecord: the redirect target, and the refusal of one that would
// not fit in 512 octets.
func TestRSPFRecord(t *testing.T) {
	t.Parallel()
	const zone = "edge.rampart.example"
	require.Equal(t, "v=spf1 -all", RSPFRecord(Blocked, "b.example", zone, []string{"_spf.v.example"}, 2))
	require.Equal(t, "v=spf1 ~all", RSPFRecord(Sending, "a.example", zone, nil, 0))
	require.Equal(t, "v=spf1 include:_spf.v.example include:%{h3}._ehlo.a.example._spf."+zone+" ~all",
		RSPFRecord(Sending, "a.example", zone, []string{"_spf.v.example"}, 3))
	_, err := spf.Parse(RSPFRecord(Sending, "a.example", zone, []string{"_spf.v.example"}, 3))
	require.NoError(t, err)

	var pins []string
	for i := range 8 {
		pins = append(pins, fmt.Sprintf("_spf.%d.%s.example", i, strings.Repeat("v", 40)))
	}
	p := Published{RSPF: RSPFRecord(Sending, "a.example", zone, pins, 2)}
	err = p.fits("a.example", zone)
	require.ErrorContains(t, err, "octets, over the 512 that fit in one UDP answer")
	p = Published{RSPF: RSPFRecord(Sending, "a.example", zone, pins[:2], 2)}
	require.NoError(t, p.fits("a.example", zone))
}

// TestFitsEdge: a name is hosted only when an IPv6 sender's current-form
// name fits 253 octets, so that no receiver cuts the address off.
func TestFitsEdge(t *testing.T) {
	t.Parallel()
	const zone = "edge.rampart.example" // 20 octets: a name has at most 253-63-5-6-20 = 159
	name := func(n int) string {
		var labels []string
		for n > 0 {
			l := min(n, 63)
			if n-l == 1 || n-l < 0 {
				l = n - 2
			}
			labels = append(labels, strings.Repeat("a", l))
			n -= l + 1
		}
		return strings.Join(labels, ".")
	}
	require.Len(t, name(159), 159)
	require.Len(t, name(160), 160)
	require.NoError(t, fitsEdge(name(159), zone))
	err := fitsEdge(name(160), zone)
	require.ErrorContains(t, err, "at most 159")
}
