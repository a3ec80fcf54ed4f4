package dnsedge

import (
	"fmt"
	"strings"
)

// maxDMARCLen bounds the TXT value of one domain. The API composes far
// shorter records; the bound keeps an answer well inside a TCP message.
const maxDMARCLen = 8192

// row is one edge_domain row as read from PostgreSQL or the snapshot file.
type row struct {
	name    string
	serial  int64
	mode    string
	dmarc   string
	deleted bool
}

// domain is one hosted domain as the index serves it. It is built once, when
// its row enters an index, and never changed: later indexes share it.
type domain struct {
	name   string // "example.com": lower case, no trailing dot
	serial int64  // edge_domain.serial, the SOA serial of _dmarc.<name>
	mode   string // "sending" or "blocked"; kept for later record types
	dmarc  string // the TXT value at _dmarc.<name>, as stored
	// dmarcTXT is dmarc cut into 255-byte character-strings, escaped for
	// miekg/dns (which reads backslash escapes when packing); nil when dmarc
	// is empty, in which case no TXT record exists.
	dmarcTXT []string
}

// newDomain validates r and builds the domain it describes.
func newDomain(r row) (*domain, error) {
	if err := checkHostName(r.name); err != nil {
		return nil, fmt.Errorf("name %q: %w", r.name, err)
	}
	// _dmarc.<name>. must fit the 255-octet wire limit: 7 + len + 2.
	if len(r.name) > 253-len("_dmarc.") {
		return nil, fmt.Errorf("name %q too long for _dmarc.<name>", r.name)
	}
	if r.serial <= 0 {
		return nil, fmt.Errorf("domain %q: serial %d not positive", r.name, r.serial)
	}
	if r.mode == "" || len(r.mode) > 32 || strings.ContainsFunc(r.mode, func(c rune) bool { return c < 'a' || c > 'z' }) {
		return nil, fmt.Errorf("domain %q: invalid mode %q", r.name, r.mode)
	}
	if len(r.dmarc) > maxDMARCLen {
		return nil, fmt.Errorf("domain %q: dmarc value of %d bytes exceeds %d", r.name, len(r.dmarc), maxDMARCLen)
	}
	return &domain{name: r.name, serial: r.serial, mode: r.mode, dmarc: r.dmarc, dmarcTXT: txtStrings(r.dmarc)}, nil
}

// txtStrings cuts s into the character-strings of one TXT record (at most
// 255 bytes each, RFC 1035 §3.3.14) in the escaped form miekg/dns packs.
func txtStrings(s string) []string {
	if s == "" {
		return nil
	}
	out := make([]string, 0, (len(s)+254)/255)
	for len(s) > 0 {
		n := min(len(s), 255)
		out = append(out, escapeTXT(s[:n]))
		s = s[n:]
	}
	return out
}

// escapeTXT escapes the bytes miekg/dns would otherwise interpret when packing
// a TXT character-string: backslash, and bytes outside printable ASCII.
func escapeTXT(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c < ' ' || c > '~' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, `\%03d`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// index is one immutable snapshot of the edge tables: what the edge serves.
// It is built with no lock held and published with one atomic pointer store;
// once published it is never written, so a query reads one consistent index
// without locking. A changed index shares every shard it does not touch with
// the one it was derived from (see shardMap).
//
// Later record types (SPF ranges, DKIM keys, BIMI) become more fields of
// domain and, for the sender services, more shardMaps here.
type index struct {
	// serial is the highest edge_domain serial the index reflects, tombstones
	// included; it is the edge zone's SOA serial and where following resumes.
	serial  int64
	domains *shardMap[*domain] // by name, "example.com"
	// parents counts, for every proper suffix of a hosted domain name
	// ("com" for "example.com"), the hosted domains below it. These are the
	// empty non-terminals of the edge zone's _dmarc subtree, which must
	// answer NODATA rather than NXDOMAIN (RFC 8020; QNAME minimisation walks
	// through them).
	parents *shardMap[int32]
}

// emptyIndex has no domains.
func emptyIndex() *index {
	return &index{domains: &shardMap[*domain]{}, parents: &shardMap[int32]{}}
}

// numDomains is the number of domains served.
func (ix *index) numDomains() int { return ix.domains.len() }

// rowErrors reports rows left out of an index, one error per row.
type rowErrors []error

// buildIndex builds a full index at serial from the live (non-deleted) rows of
// a full load. Invalid rows are left out and reported.
func buildIndex(serial int64, rows []row) (*index, rowErrors) {
	b := emptyIndex().edit()
	var errs rowErrors
	for _, r := range rows {
		if err := b.put(r); err != nil {
			errs = append(errs, err)
		}
	}
	b.serial = max(b.serial, serial)
	return b.finish(), errs
}

// apply returns a new index: ix with the changed rows applied in order. A
// deleted row, or an invalid one, removes its domain. ix is not modified.
func (ix *index) apply(rows []row) (*index, rowErrors) {
	b := ix.edit()
	var errs rowErrors
	for _, r := range rows {
		if err := b.put(r); err != nil {
			errs = append(errs, err)
		}
	}
	return b.finish(), errs
}

// indexBuilder derives a new index from an old one, copying shards on
// first write. It is private to one goroutine until finish.
type indexBuilder struct {
	serial  int64
	domains *shardEdit[*domain]
	parents *shardEdit[int32]
}

func (ix *index) edit() *indexBuilder {
	return &indexBuilder{serial: ix.serial, domains: ix.domains.edit(), parents: ix.parents.edit()}
}

// put applies one row: an upsert, or a removal when the row is a tombstone
// or invalid.
func (b *indexBuilder) put(r row) error {
	b.serial = max(b.serial, r.serial)
	if r.deleted {
		b.remove(r.name)
		return nil
	}
	d, err := newDomain(r)
	if err != nil {
		b.remove(r.name)
		return err
	}
	if _, ok := b.domains.get(d.name); !ok {
		b.forEachParent(d.name, 1)
	}
	b.domains.set(d.name, d)
	return nil
}

func (b *indexBuilder) remove(name string) {
	if _, ok := b.domains.get(name); !ok {
		return
	}
	b.domains.delete(name)
	b.forEachParent(name, -1)
}

// forEachParent adds delta to the count of every proper suffix of name.
func (b *indexBuilder) forEachParent(name string, delta int32) {
	for i := strings.IndexByte(name, '.'); i >= 0; {
		p := name[i+1:]
		n, _ := b.parents.get(p)
		if n += delta; n > 0 {
			b.parents.set(p, n)
		} else {
			b.parents.delete(p)
		}
		j := strings.IndexByte(p, '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
}

func (b *indexBuilder) finish() *index {
	return &index{serial: b.serial, domains: b.domains.finish(), parents: b.parents.finish()}
}

// shardCount is the number of shards of a shardMap. A change copies only the
// shards it touches, so an incremental update costs about 1/shardCount of a
// full copy per touched shard instead of a copy of the whole map.
const shardCount = 64

// shardMap is a string-keyed map split into shards. A published shardMap is
// never written: shardEdit copies a shard before its first write.
type shardMap[V any] struct {
	shards [shardCount]map[string]V
	n      int
}

// shardOf hashes k (FNV-1a) to a shard.
func shardOf(k string) int {
	h := uint32(2166136261)
	for i := 0; i < len(k); i++ {
		h ^= uint32(k[i])
		h *= 16777619
	}
	return int(h % shardCount)
}

func (m *shardMap[V]) get(k string) (V, bool) {
	v, ok := m.shards[shardOf(k)][k]
	return v, ok
}

func (m *shardMap[V]) len() int { return m.n }

// all calls yield for every entry, in no particular order, until it returns
// false.
func (m *shardMap[V]) all(yield func(string, V) bool) {
	for _, s := range m.shards {
		for k, v := range s {
			if !yield(k, v) {
				return
			}
		}
	}
}

// edit starts a copy of m that shares all of m's shards.
func (m *shardMap[V]) edit() *shardEdit[V] {
	c := *m // copies the array of shard references, not the shards
	return &shardEdit[V]{m: &c}
}

// shardEdit is a shardMap being derived from another one.
type shardEdit[V any] struct {
	m     *shardMap[V]
	owned [shardCount]bool // shards already copied, safe to write
}

func (e *shardEdit[V]) get(k string) (V, bool) { return e.m.get(k) }

func (e *shardEdit[V]) writable(i int) map[string]V {
	if !e.owned[i] {
		old := e.m.shards[i]
		s := make(map[string]V, len(old)+1)
		for k, v := range old {
			s[k] = v
		}
		e.m.shards[i] = s
		e.owned[i] = true
	}
	return e.m.shards[i]
}

func (e *shardEdit[V]) set(k string, v V) {
	s := e.writable(shardOf(k))
	if _, ok := s[k]; !ok {
		e.m.n++
	}
	s[k] = v
}

func (e *shardEdit[V]) delete(k string) {
	i := shardOf(k)
	if _, ok := e.m.shards[i][k]; !ok {
		return
	}
	delete(e.writable(i), k)
	e.m.n--
}

// finish returns the new map; the editor must not be used afterwards.
func (e *shardEdit[V]) finish() *shardMap[V] {
	m := e.m
	e.m = nil
	return m
}
