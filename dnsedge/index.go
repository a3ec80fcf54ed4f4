package dnsedge

import (
	"strings"
)

// index is one immutable snapshot of the edge tables: what the edge serves.
// It is built with no lock held and published with one atomic pointer store;
// once published it is never written, so a query reads one consistent index
// without locking. A changed index shares every shard it does not touch with
// the one it was derived from (see shardMap).
type index struct {
	// serial is the highest serial of both edge tables the index reflects,
	// tombstones included; it is the SOA serial of the edge zone and of the
	// report authorisation zone, and where following resumes.
	serial  int64
	domains *shardMap[*domain] // by name, "example.com"
	// services are the sender services by edge_service name. A domain names
	// the services it enables and a query looks them up here, so a changed
	// service row changes the answers of every domain enabling it without
	// touching those domains.
	services *shardMap[*service]
	// parents counts, for every proper suffix of a hosted domain name
	// ("com" for "example.com"), the hosted domains below it. These are the
	// empty non-terminals of the subtrees that hold a name per domain
	// (_dmarc and _nspf in the edge zone, the report authorisation zone),
	// which must answer NODATA rather than NXDOMAIN (RFC 8020; QNAME
	// minimisation walks through them).
	parents *shardMap[parentCount]
	// nspfNames counts the domains with a name in the _nspf subtree.
	nspfNames int
}

// parentCount is the number of hosted domains below a name, in all and in
// the _nspf subtree, which holds only the domains with an _nspf record.
type parentCount struct {
	all, nspf int32
}

// emptyIndex has no domains and no services.
func emptyIndex() *index {
	return &index{domains: &shardMap[*domain]{}, services: &shardMap[*service]{}, parents: &shardMap[parentCount]{}}
}

// numDomains is the number of domains served.
func (ix *index) numDomains() int { return ix.domains.len() }

// numServices is the number of sender services known.
func (ix *index) numServices() int { return ix.services.len() }

// rowErrors reports rows left out of an index, one error per row.
type rowErrors []error

// buildIndex builds a full index at serial from the live (non-deleted) rows of
// a full load. Invalid rows are left out and reported.
func buildIndex(serial int64, rows []row, services []serviceRow) (*index, rowErrors) {
	b := emptyIndex().edit()
	var errs rowErrors
	for _, r := range services {
		if err := b.putService(r); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range rows {
		if err := b.put(r); err != nil {
			errs = append(errs, err)
		}
	}
	b.serial = max(b.serial, serial)
	return b.finish(), errs
}

// apply returns a new index: ix with the changed rows applied in order. A
// deleted row, or an invalid one, removes its domain or service. ix is not
// modified.
func (ix *index) apply(rows []row, services []serviceRow) (*index, rowErrors) {
	b := ix.edit()
	var errs rowErrors
	for _, r := range services {
		if err := b.putService(r); err != nil {
			errs = append(errs, err)
		}
	}
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
	serial    int64
	domains   *shardEdit[*domain]
	services  *shardEdit[*service]
	parents   *shardEdit[parentCount]
	nspfNames int
}

func (ix *index) edit() *indexBuilder {
	return &indexBuilder{
		serial:    ix.serial,
		domains:   ix.domains.edit(),
		services:  ix.services.edit(),
		parents:   ix.parents.edit(),
		nspfNames: ix.nspfNames,
	}
}

// put applies one edge_domain row: an upsert, or a removal when the row is a
// tombstone or invalid.
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
	delta := parentCount{all: 1, nspf: b2i(d.hasNSPF())}
	if old, ok := b.domains.get(d.name); ok {
		delta = parentCount{nspf: delta.nspf - b2i(old.hasNSPF())}
	}
	b.domains.set(d.name, d)
	b.count(d.name, delta)
	return nil
}

func (b *indexBuilder) remove(name string) {
	old, ok := b.domains.get(name)
	if !ok {
		return
	}
	b.domains.delete(name)
	b.count(name, parentCount{all: -1, nspf: -b2i(old.hasNSPF())})
}

// putService applies one edge_service row: an upsert, or a removal when the
// row is a tombstone or invalid.
func (b *indexBuilder) putService(r serviceRow) error {
	b.serial = max(b.serial, r.serial)
	if r.deleted {
		b.services.delete(r.name)
		return nil
	}
	s, err := newService(r)
	if err != nil {
		b.services.delete(r.name)
		return err
	}
	b.services.set(s.name, s)
	return nil
}

// count adds delta to the count of every proper suffix of name, and delta.nspf
// to the number of names in the _nspf subtree.
func (b *indexBuilder) count(name string, delta parentCount) {
	b.nspfNames += int(delta.nspf)
	if delta == (parentCount{}) {
		return
	}
	for i := strings.IndexByte(name, '.'); i >= 0; {
		p := name[i+1:]
		n, _ := b.parents.get(p)
		n.all += delta.all
		n.nspf += delta.nspf
		if n.all > 0 {
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

func b2i(v bool) int32 {
	if v {
		return 1
	}
	return 0
}

func (b *indexBuilder) finish() *index {
	return &index{
		serial:    b.serial,
		domains:   b.domains.finish(),
		services:  b.services.finish(),
		parents:   b.parents.finish(),
		nspfNames: b.nspfNames,
	}
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
