package dnsedge

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestApplyCopyOnWrite checks that deriving an index never changes the one
// it came from, and shares the shards it did not touch.
func TestApplyCopyOnWrite(t *testing.T) {
	t.Parallel()
	var rows []row
	for i := range 500 {
		rows = append(rows, row{name: fmt.Sprintf("d%03d.example", i), serial: int64(i + 1), mode: "sending", dmarc: "v=DMARC1; p=none"})
	}
	old, errs := buildIndex(500, rows, nil)
	require.Empty(t, errs)
	oldCopy, _ := buildIndex(500, rows, nil)

	next, errs := old.apply([]row{
		{name: "d000.example", serial: 501, mode: "blocked", dmarc: "v=DMARC1; p=reject"},
		{name: "d001.example", serial: 502, deleted: true},
		{name: "new.example", serial: 503, mode: "sending", dmarc: "v=DMARC1; p=none"},
		{name: "BAD.example", serial: 504, mode: "sending"},
		{name: "d002.example", serial: 505, mode: "sending", dmarc: strings.Repeat("x", maxDMARCLen+1)},
	}, nil)
	require.Len(t, errs, 2)
	requireSameIndex(t, oldCopy, old) // untouched

	require.Equal(t, int64(505), next.serial)
	require.Equal(t, 500-2+1, next.numDomains())
	d, ok := next.domains.get("d000.example")
	require.True(t, ok)
	require.Equal(t, "v=DMARC1; p=reject", d.dmarc)
	_, ok = next.domains.get("d001.example")
	require.False(t, ok)
	_, ok = next.domains.get("d002.example")
	require.False(t, ok, "an invalid row removes the domain, as a full load would")
	_, ok = next.domains.get("new.example")
	require.True(t, ok)

	shared := 0
	for i := range shardCount {
		if fmt.Sprintf("%p", old.domains.shards[i]) == fmt.Sprintf("%p", next.domains.shards[i]) {
			shared++
		}
	}
	require.GreaterOrEqual(t, shared, shardCount-4, "untouched shards are shared")
}

func TestParents(t *testing.T) {
	t.Parallel()
	ix, _ := buildIndex(3, []row{
		{name: "a.b.example", serial: 1, mode: "sending", nspf: "v=spf1 ip4:192.0.2.0/24 -all"},
		{name: "c.b.example", serial: 2, mode: "sending"},
		{name: "example", serial: 3, mode: "sending"},
	}, nil)
	count := func(ix *index, name string) parentCount { n, _ := ix.parents.get(name); return n }
	require.Equal(t, parentCount{all: 2, nspf: 1}, count(ix, "b.example"))
	require.Equal(t, parentCount{all: 2, nspf: 1}, count(ix, "example"))
	require.Equal(t, parentCount{}, count(ix, "a.b.example"))
	require.Equal(t, 1, ix.nspfNames)

	ix2, _ := ix.apply([]row{
		{name: "a.b.example", serial: 4, deleted: true},
		// update: the domain count is unchanged, and a blocked domain has
		// an _nspf name ("v=spf1 -all")
		{name: "c.b.example", serial: 5, mode: "blocked"},
	}, nil)
	require.Equal(t, parentCount{all: 1, nspf: 1}, count(ix2, "b.example"))
	require.Equal(t, 1, ix2.nspfNames)
	ix3, _ := ix2.apply([]row{{name: "c.b.example", serial: 6, deleted: true}}, nil)
	require.Equal(t, parentCount{}, count(ix3, "b.example"))
	require.Equal(t, 0, ix3.parents.len(), "no counts left once the children are gone")
	require.Equal(t, 0, ix3.nspfNames)
	require.Equal(t, parentCount{all: 2, nspf: 1}, count(ix, "b.example"), "old index unchanged")
}

// TestTXTStrings checks the split into 255-byte strings and the escaping,
// through miekg/dns's wire format and back.
func TestTXTStrings(t *testing.T) {
	t.Parallel()
	for _, value := range []string{
		"v=DMARC1; p=none",
		strings.Repeat("a", 255),
		strings.Repeat("b", 256),
		longDMARC(2000),
		`with "quotes" and a \ backslash \\ and \065 digits`,
		"control \x00\x01\n and high \x80\xff bytes",
		strings.Repeat(`\`, 300),
	} {
		txt := txtStrings(value)
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: txt}
		m := new(dns.Msg)
		m.Answer = []dns.RR{rr}
		wire, err := m.Pack()
		require.NoError(t, err)
		var back dns.Msg
		require.NoError(t, back.Unpack(wire))
		got := back.Answer[0].(*dns.TXT)
		// Each string is at most 255 bytes on the wire, and they join to the
		// value: compare via the wire form, which miekg/dns unescapes.
		var raw strings.Builder
		for _, s := range got.Txt {
			u := unescapeTXT(t, s)
			require.LessOrEqual(t, len(u), 255)
			raw.WriteString(u)
		}
		require.Equal(t, value, raw.String())
		require.Len(t, got.Txt, (len(value)+254)/255)
	}
	require.Nil(t, txtStrings(""))
}

// unescapeTXT reverses miekg/dns's presentation escaping of a character-string.
func unescapeTXT(t *testing.T, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		require.Less(t, i, len(s))
		if i+2 < len(s) && s[i] >= '0' && s[i] <= '9' {
			var n int
			_, err := fmt.Sscanf(s[i:i+3], "%03d", &n)
			require.NoError(t, err)
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
