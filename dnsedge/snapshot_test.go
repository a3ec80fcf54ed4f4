package dnsedge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Sample sender services and DKIM keys shared by the tests.
const (
	sampleDKIM = `[{"selector": "s1", "txt": "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC"},
		{"selector": "s2", "cname": "s2.dkim.vendor.example"},
		{"selector": "a.b", "txt": "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]`
	sampleBIMI = "v=BIMI1; l=https://example.com/logo.svg; a=https://example.com/vmc.pem"
	sampleNSPF = "v=spf1 ip4:10.0.0.0/8 ip6:2001:db8:1::/48 include:_spf.mailer.example -all"
)

func sampleServices() []serviceRow {
	return []serviceRow{
		{name: "mailer", serial: 3, ranges: prefixes("192.0.2.0/24", "2001:db8:100::/48"),
			heloSuffixes: []string{"mailer.example"}, includes: []string{"_spf.mailer.example"}},
		{name: "vendor", serial: 4, ranges: prefixes("198.51.100.0/24"),
			heloSuffixes: []string{"out.vendor.example", "vendor-mta.example"}, includes: []string{"spf.vendor.example", "_spf2.vendor.example"}},
		{name: "bare", serial: 5, ranges: prefixes("203.0.113.0/28")},
	}
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// sampleIndex is an index with the kinds of rows the edge meets.
func sampleIndex(t testing.TB) *index {
	ix, errs := buildIndex(42, []row{
		{name: "example.com", serial: 7, mode: "sending", dmarc: "v=DMARC1; p=none; rua=mailto:d@reports.rampart.test",
			netblocks: prefixes("10.0.0.0/8", "2001:db8:1::/48"), services: []string{"mailer", "vendor", "missing"},
			nspf: sampleNSPF, dkim: sampleDKIM, bimi: sampleBIMI},
		{name: "blocked.example", serial: 9, mode: "blocked", dmarc: "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s",
			netblocks: prefixes("10.0.0.0/8"), services: []string{"mailer"}, dkim: sampleDKIM},
		{name: "long.example", serial: 11, mode: "sending", dmarc: longDMARC(1000)},
		{name: "empty.example", serial: 12, mode: "sending", dmarc: "", dkim: "[]"},
		{name: "odd.example", serial: 13, mode: "sending", dmarc: `v=DMARC1; p=none; note="a\b"` + "\x00\xff"},
		{name: "a.b.deep.example", serial: 14, mode: "sending", dmarc: "v=DMARC1; p=none", nspf: "v=spf1 -all"},
		{name: "xn--bcher-kva.example", serial: 15, mode: "sending", dmarc: "v=DMARC1; p=none", services: []string{"bare"}},
	}, sampleServices())
	require.Empty(t, errs)
	return ix
}

// requireSameIndex checks that two indexes serve the same data.
func requireSameIndex(t testing.TB, want, got *index) {
	require.Equal(t, want.serial, got.serial)
	require.Equal(t, want.numDomains(), got.numDomains())
	want.domains.all(func(name string, w *domain) bool {
		g, ok := got.domains.get(name)
		require.True(t, ok, name)
		require.Equal(t, w.row, g.row)
		return true
	})
	require.Equal(t, want.numServices(), got.numServices())
	want.services.all(func(name string, w *service) bool {
		g, ok := got.services.get(name)
		require.True(t, ok, name)
		require.Equal(t, w.serviceRow, g.serviceRow)
		return true
	})
	require.Equal(t, want.parents.len(), got.parents.len())
	want.parents.all(func(name string, n parentCount) bool {
		g, _ := got.parents.get(name)
		require.Equal(t, n, g, name)
		return true
	})
	require.Equal(t, want.nspfNames, got.nspfNames)
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	for name, ix := range map[string]*index{
		"empty":  emptyIndex(),
		"sample": sampleIndex(t),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			confirmed := time.Date(2025, 3, 1, 12, 0, 0, 123, time.UTC)
			snap, err := decodeSnapshot(encodeSnapshot(ix, confirmed))
			require.NoError(t, err)
			require.True(t, confirmed.Equal(snap.confirmed))
			requireSameIndex(t, ix, snap.index)
		})
	}
}

func TestSnapshotFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "edge.snapshot")
	ix := sampleIndex(t)
	require.NoError(t, writeSnapshot(path, ix, time.Now()))
	require.NoError(t, writeSnapshot(path, ix, time.Now())) // replaces
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	snap, err := decodeSnapshot(b)
	require.NoError(t, err)
	requireSameIndex(t, ix, snap.index)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
}

// withHeader wraps a payload in a valid header, so that tests and the fuzzer
// reach the payload parser past the checksum.
func withHeader(payload []byte) []byte {
	sum := sha256.Sum256(payload)
	out := []byte(snapshotMagic)
	out = binary.BigEndian.AppendUint32(out, snapshotVersion)
	out = binary.BigEndian.AppendUint64(out, uint64(len(payload)))
	out = append(out, sum[:]...)
	return append(out, payload...)
}

// testPayload encodes a version 2 payload with the given counts, which may
// lie about the rows that follow.
func testPayload(serial int64, nServices uint64, services []serviceRow, nDomains uint64, rows ...row) []byte {
	p := binary.BigEndian.AppendUint64(nil, 0)
	p = binary.AppendVarint(p, serial)
	str := func(s string) {
		p = binary.AppendUvarint(p, uint64(len(s)))
		p = append(p, s...)
	}
	list := func(ss []string) {
		p = binary.AppendUvarint(p, uint64(len(ss)))
		for _, s := range ss {
			str(s)
		}
	}
	pfx := func(ps []netip.Prefix) {
		var ss []string
		for _, p := range ps {
			ss = append(ss, p.String())
		}
		list(ss)
	}
	p = binary.AppendUvarint(p, nServices)
	for _, s := range services {
		str(s.name)
		p = binary.AppendVarint(p, s.serial)
		pfx(s.ranges)
		list(s.heloSuffixes)
		list(s.includes)
	}
	p = binary.AppendUvarint(p, nDomains)
	for _, r := range rows {
		str(r.name)
		p = binary.AppendVarint(p, r.serial)
		str(r.mode)
		str(r.dmarc)
		pfx(r.netblocks)
		list(r.services)
		str(r.nspf)
		str(r.rspf)
		str(r.dkim)
		str(r.bimi)
	}
	return p
}

func TestSnapshotDecodeErrors(t *testing.T) {
	t.Parallel()
	payload := func(serial int64, count uint64, rows ...row) []byte {
		return testPayload(serial, 0, nil, count, rows...)
	}
	ok := row{name: "example.com", serial: 3, mode: "sending", dmarc: "v=DMARC1; p=none"}
	svc := serviceRow{name: "mailer", serial: 2, ranges: prefixes("192.0.2.0/24"), heloSuffixes: []string{"mailer.example"}}
	// A prefix list holding text that is no prefix.
	badPrefix := testPayload(5, 0, nil, 1, row{name: "a.example", serial: 1, mode: "sending", netblocks: prefixes("192.0.2.0/24")})
	badPrefix = bytes.Replace(badPrefix, []byte("192.0.2.0/24"), []byte("192.0.2.0/99"), 1)
	for name, tc := range map[string]struct {
		data []byte
		err  string
	}{
		"empty file":                {nil, "truncated"},
		"count too large":           {withHeader(payload(5, 1000, ok)), "exceeds the payload"},
		"count too small":           {withHeader(payload(5, 0, ok)), "after the last domain"},
		"missing domain":            {withHeader(payload(5, 2, ok)), "unexpected end"},
		"duplicate domain":          {withHeader(payload(5, 2, ok, ok)), "listed twice"},
		"serial above":              {withHeader(payload(2, 1, ok)), "above the snapshot's"},
		"negative serial":           {withHeader(payload(-1, 0)), "negative serial"},
		"upper-case name":           {withHeader(payload(5, 1, row{name: "Example.com", serial: 3, mode: "sending"})), "not allowed"},
		"name with a space":         {withHeader(payload(5, 1, row{name: "a b.example", serial: 3, mode: "sending"})), "not allowed"},
		"bad mode":                  {withHeader(payload(5, 1, row{name: "a.example", serial: 3, mode: "Send!"})), "invalid mode"},
		"zero serial":               {withHeader(payload(5, 1, row{name: "a.example", serial: 0, mode: "sending"})), "not positive"},
		"dmarc too long":            {withHeader(payload(5, 1, row{name: "a.example", serial: 1, mode: "sending", dmarc: strings.Repeat("x", maxDMARCLen+1)})), "exceeds"},
		"dkim not JSON":             {withHeader(payload(5, 1, row{name: "a.example", serial: 1, mode: "sending", dkim: "{"})), "dkim"},
		"dkim txt and cname":        {withHeader(payload(5, 1, row{name: "a.example", serial: 1, mode: "sending", dkim: `[{"selector":"s","txt":"k","cname":"x.example"}]`})), "exactly one"},
		"dkim selector upper case":  {withHeader(payload(5, 1, row{name: "a.example", serial: 1, mode: "sending", dkim: `[{"selector":"S1","txt":"k"}]`})), "not allowed"},
		"dkim selector twice":       {withHeader(payload(5, 1, row{name: "a.example", serial: 1, mode: "sending", dkim: `[{"selector":"s","txt":"k"},{"selector":"s","txt":"k"}]`})), "twice"},
		"dkim bad cname":            {withHeader(payload(5, 1, row{name: "a.example", serial: 1, mode: "sending", dkim: `[{"selector":"s","cname":"a..b"}]`})), "cname"},
		"netblock not a prefix":     {withHeader(badPrefix), "ParsePrefix"},
		"service count too large":   {withHeader(testPayload(5, 1000, []serviceRow{svc}, 0)), "service count"},
		"duplicate service":         {withHeader(testPayload(5, 2, []serviceRow{svc, svc}, 0)), "listed twice"},
		"service serial above":      {withHeader(testPayload(1, 1, []serviceRow{svc}, 0)), "above the snapshot's"},
		"service bad HELO":          {withHeader(testPayload(5, 1, []serviceRow{{name: "x", serial: 1, heloSuffixes: []string{"a b"}}}, 0)), "HELO suffix"},
		"service bad include":       {withHeader(testPayload(5, 1, []serviceRow{{name: "x", serial: 1, includes: []string{"a b"}}}, 0)), "include"},
		"service empty include":     {withHeader(testPayload(5, 1, []serviceRow{{name: "x", serial: 1, includes: []string{""}}}, 0)), "empty"},
		"service too many includes": {withHeader(testPayload(5, 1, []serviceRow{{name: "x", serial: 1, includes: slices.Repeat([]string{"a.example"}, maxIncludes+1)}}, 0)), "exceeds 10"},
		"service empty name":        {withHeader(testPayload(5, 1, []serviceRow{{name: "", serial: 1}}, 0)), "service name"},
		"valid":                     {withHeader(testPayload(5, 1, []serviceRow{svc}, 1, ok)), ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			snap, err := decodeSnapshot(tc.data)
			if tc.err == "" {
				require.NoError(t, err)
				require.Equal(t, 1, snap.index.numDomains())
				require.Equal(t, 1, snap.index.numServices())
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func uniquePrefixes(ps []netip.Prefix) map[netip.Prefix]bool {
	m := map[netip.Prefix]bool{}
	for _, p := range ps {
		m[p] = true
	}
	return m
}

// FuzzSnapshotDecode feeds untrusted bytes to the snapshot decoder: it must
// return an error or an index that encodes back to the same content. A
// leading odd byte makes the target wrap the rest in a valid header, so that
// the fuzzer gets past the checksum into the payload parser.
func FuzzSnapshotDecode(f *testing.F) {
	good := encodeSnapshot(sampleIndex(f), time.Unix(1700000000, 0))
	f.Add(append([]byte{0}, good...))
	f.Add(append([]byte{1}, good[snapshotHeader:]...))
	f.Add(append([]byte{0}, encodeSnapshot(emptyIndex(), time.Unix(0, 0))...))
	f.Add(append([]byte{0}, good[:len(good)/2]...))
	f.Add([]byte{1})
	f.Add(append([]byte{1}, testPayload(9, 1, sampleServices()[:1], 1, row{name: "a.example", serial: 2, mode: "blocked",
		netblocks: prefixes("10.0.0.0/8"), services: []string{"mailer"}, dkim: `[{"selector":"s","cname":"x.example"}]`})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		b := data[1:]
		if data[0]&1 == 1 {
			b = withHeader(b)
		}
		snap, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		again, err := decodeSnapshot(encodeSnapshot(snap.index, snap.confirmed))
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		requireSameIndex(t, snap.index, again.index)
		// Every domain and service is servable.
		snap.index.domains.all(func(name string, d *domain) bool {
			if err := checkHostName(name); err != nil || d.name != name {
				t.Fatalf("decoded domain %q: %v", name, err)
			}
			for sel, k := range d.selectors {
				if checkHostName(sel) != nil || (k.txt == nil) == (k.cname == "") {
					t.Fatalf("decoded domain %q: selector %q: %+v", name, sel, k)
				}
			}
			return true
		})
		snap.index.services.all(func(name string, s *service) bool {
			if s.name != name || s.nets.Size() != len(uniquePrefixes(s.ranges)) {
				t.Fatalf("decoded service %q: %d ranges, table of %d", name, len(s.ranges), s.nets.Size())
			}
			return true
		})
	})
}
