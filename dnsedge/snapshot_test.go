package dnsedge

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sampleIndex is an index with the kinds of rows the edge meets.
func sampleIndex(t testing.TB) *index {
	ix, errs := buildIndex(42, []row{
		{name: "example.com", serial: 7, mode: "sending", dmarc: "v=DMARC1; p=none; rua=mailto:d@reports.rampart.test"},
		{name: "blocked.example", serial: 9, mode: "blocked", dmarc: "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s"},
		{name: "long.example", serial: 11, mode: "sending", dmarc: longDMARC(1000)},
		{name: "empty.example", serial: 12, mode: "sending", dmarc: ""},
		{name: "odd.example", serial: 13, mode: "sending", dmarc: `v=DMARC1; p=none; note="a\b"` + "\x00\xff"},
		{name: "a.b.deep.example", serial: 14, mode: "sending", dmarc: "v=DMARC1; p=none"},
		{name: "xn--bcher-kva.example", serial: 15, mode: "sending", dmarc: "v=DMARC1; p=none"},
	})
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
		require.Equal(t, *w, *g)
		return true
	})
	require.Equal(t, want.parents.len(), got.parents.len())
	want.parents.all(func(name string, n int32) bool {
		g, _ := got.parents.get(name)
		require.Equal(t, n, g, name)
		return true
	})
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
	require.NoError(t, writeFileAtomic(path, encodeSnapshot(ix, time.Now())))
	require.NoError(t, writeFileAtomic(path, encodeSnapshot(ix, time.Now()))) // replaces
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

func TestSnapshotDecodeErrors(t *testing.T) {
	t.Parallel()
	payload := func(serial int64, count uint64, rows ...row) []byte {
		p := binary.BigEndian.AppendUint64(nil, 0)
		p = binary.AppendVarint(p, serial)
		p = binary.AppendUvarint(p, count)
		for _, r := range rows {
			for i, s := range []string{r.name, "", r.mode, r.dmarc} {
				if i == 1 {
					p = binary.AppendVarint(p, r.serial)
					continue
				}
				p = binary.AppendUvarint(p, uint64(len(s)))
				p = append(p, s...)
			}
		}
		return p
	}
	ok := row{name: "example.com", serial: 3, mode: "sending", dmarc: "v=DMARC1; p=none"}
	for name, tc := range map[string]struct {
		data []byte
		err  string
	}{
		"empty file":        {nil, "truncated"},
		"count too large":   {withHeader(payload(5, 1000, ok)), "exceeds the payload"},
		"count too small":   {withHeader(payload(5, 0, ok)), "after the last domain"},
		"missing domain":    {withHeader(payload(5, 2, ok)), "unexpected end"},
		"duplicate domain":  {withHeader(payload(5, 2, ok, ok)), "listed twice"},
		"serial above":      {withHeader(payload(2, 1, ok)), "above the snapshot's"},
		"negative serial":   {withHeader(payload(-1, 0)), "negative serial"},
		"upper-case name":   {withHeader(payload(5, 1, row{name: "Example.com", serial: 3, mode: "sending"})), "not allowed"},
		"name with a space": {withHeader(payload(5, 1, row{name: "a b.example", serial: 3, mode: "sending"})), "not allowed"},
		"bad mode":          {withHeader(payload(5, 1, row{name: "a.example", serial: 3, mode: "Send!"})), "invalid mode"},
		"zero serial":       {withHeader(payload(5, 1, row{name: "a.example", serial: 0, mode: "sending"})), "not positive"},
		"dmarc too long":    {withHeader(payload(5, 1, row{name: "a.example", serial: 1, mode: "sending", dmarc: strings.Repeat("x", maxDMARCLen+1)})), "exceeds"},
		"valid":             {withHeader(payload(5, 1, ok)), ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			snap, err := decodeSnapshot(tc.data)
			if tc.err == "" {
				require.NoError(t, err)
				require.Equal(t, 1, snap.index.numDomains())
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
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
		// Every domain is servable.
		snap.index.domains.all(func(name string, d *domain) bool {
			if err := checkHostName(name); err != nil || d.name != name {
				t.Fatalf("decoded domain %q: %v", name, err)
			}
			return true
		})
	})
}
