package ingest

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRollupMerge: the rollup's rows, summed by sorting and merging in
// several rounds, are those of a map of the keys, in key order.
func TestRollupMerge(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	r := newRollup()
	type skey struct {
		ip                 netip.Addr
		hf, spfDom, disp   string
		spfPass, dkimPass  bool
		spfAl, dkimAl, fwd bool
	}
	type dkey struct {
		ip        netip.Addr
		d, s, res string
	}
	wantS, wantD := map[skey]int64{}, map[dkey]int64{}
	hfs := []string{"a.example", "b.example", "c.example"}
	results := []string{"pass", "fail", ""}
	const records = 3*minMerge + 123 // several merges, and a last one in finish
	for range records {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(rnd.IntN(40)), byte(rnd.IntN(200))})
		if rnd.IntN(10) == 0 {
			ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(rnd.IntN(50))})
		}
		d := derived{spfDomain: hfs[rnd.IntN(3)], spfPass: rnd.IntN(2) == 0, dkimPass: rnd.IntN(2) == 0, forwarded: rnd.IntN(5) == 0}
		for range rnd.IntN(3) {
			d.sigs = append(d.sigs, sig{hfs[rnd.IntN(3)], "s" + results[rnd.IntN(3)], results[rnd.IntN(3)]})
		}
		hf, disp, spf, dkim := hfs[rnd.IntN(3)], "none", results[rnd.IntN(3)], results[rnd.IntN(3)]
		n := int64(rnd.IntN(100))
		r.add(ip, hf, disp, spf, dkim, &d, n)
		wantS[skey{ip, hf, d.spfDomain, disp, d.spfPass, d.dkimPass, spf == "pass", dkim == "pass", d.forwarded}] += n
		for _, s := range d.sigs {
			wantD[dkey{ip, s.domain, s.selector, s.result}] += n
		}
	}
	r.finish()
	require.Equal(t, len(wantS)+len(wantD), r.rows())
	str := r.strs
	gotS := map[skey]int64{}
	for i, k := range r.sourceRows() {
		gotS[skey{k.ip, str[k.headerFrom], str[k.spfDomain], str[k.disposition], k.spfPass, k.dkimPass, k.spfAligned, k.dkimAl, k.forwarded}] = k.messages
		if i > 0 {
			require.LessOrEqual(t, r.sources[i-1].ip.Compare(k.ip), 0, "rows in key order")
		}
	}
	require.Equal(t, wantS, gotS)
	gotD := map[dkey]int64{}
	for i, k := range r.dkimRows() {
		gotD[dkey{k.ip, str[k.domain], str[k.selector], str[k.result]}] = k.messages
		if i > 0 {
			require.LessOrEqual(t, r.dkim[i-1].ip.Compare(k.ip), 0, "rows in key order")
		}
	}
	require.Equal(t, wantD, gotD)
}
