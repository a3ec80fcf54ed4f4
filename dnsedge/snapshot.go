package dnsedge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// The snapshot file keeps the last index on local disk so that a restarted
// edge serves at once, even while PostgreSQL is away. Layout, integers big
// endian:
//
//	magic    8 bytes  "RMPEDGE\n"
//	version  uint32   snapshotVersion
//	length   uint64   payload length
//	checksum 32 bytes SHA-256 of the payload
//	payload
//
// Payload, version 2 (uvarint-prefixed strings, varint integers, lists as
// a uvarint count followed by the strings):
//
//	confirmed  int64 Unix nanoseconds: when the data was last confirmed current
//	serial     varint: the index serial
//	count      uvarint: number of sender services
//	count times: name string, serial varint, ranges list (prefixes as text),
//	             HELO suffixes list, include string
//	count      uvarint: number of domains
//	count times: name string, serial varint, mode string, dmarc string,
//	             netblocks list (prefixes as text), services list, nspf string,
//	             dkim string (the column's JSON), bimi string
//
// The file is a cache written by the same program that reads it, so a new
// payload layout gets a new version and an edge refuses versions it does not
// know: it then loads from PostgreSQL as if there were no file. (Version 1
// had no services and only the name, serial, mode and dmarc of a domain.)
const (
	snapshotMagic   = "RMPEDGE\n"
	snapshotVersion = 2
	snapshotHeader  = len(snapshotMagic) + 4 + 8 + sha256.Size
)

// snapshot is the content of a snapshot file.
type snapshot struct {
	index     *index
	confirmed time.Time
}

// encodeSnapshot serialises ix with its confirmation time.
func encodeSnapshot(ix *index, confirmed time.Time) []byte {
	p := make([]byte, 0, 64+ix.numDomains()*128+ix.numServices()*256)
	p = binary.BigEndian.AppendUint64(p, uint64(confirmed.UnixNano()))
	p = binary.AppendVarint(p, ix.serial)
	appendString := func(s string) {
		p = binary.AppendUvarint(p, uint64(len(s)))
		p = append(p, s...)
	}
	appendList := func(ss []string) {
		p = binary.AppendUvarint(p, uint64(len(ss)))
		for _, s := range ss {
			appendString(s)
		}
	}
	appendPrefixes := func(ps []netip.Prefix) {
		p = binary.AppendUvarint(p, uint64(len(ps)))
		for _, pfx := range ps {
			appendString(pfx.String())
		}
	}
	p = binary.AppendUvarint(p, uint64(ix.numServices()))
	ix.services.all(func(_ string, s *service) bool {
		appendString(s.name)
		p = binary.AppendVarint(p, s.serial)
		appendPrefixes(s.ranges)
		appendList(s.heloSuffixes)
		appendString(s.include)
		return true
	})
	p = binary.AppendUvarint(p, uint64(ix.numDomains()))
	ix.domains.all(func(_ string, d *domain) bool {
		appendString(d.name)
		p = binary.AppendVarint(p, d.serial)
		appendString(d.mode)
		appendString(d.dmarc)
		appendPrefixes(d.netblocks)
		appendList(d.services)
		appendString(d.nspf)
		appendString(d.dkim)
		appendString(d.bimi)
		return true
	})
	sum := sha256.Sum256(p)
	out := make([]byte, 0, snapshotHeader+len(p))
	out = append(out, snapshotMagic...)
	out = binary.BigEndian.AppendUint32(out, snapshotVersion)
	out = binary.BigEndian.AppendUint64(out, uint64(len(p)))
	out = append(out, sum[:]...)
	return append(out, p...)
}

// Smallest encodings, to reject counts larger than the payload can hold.
const (
	minServiceBytes = 6  // name (2), serial, two empty lists, empty include
	minDomainBytes  = 11 // name (2), serial, mode (2), dmarc, two lists, three strings
	maxPrefixText   = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128")
)

// decodeSnapshot parses and verifies a snapshot file. The bytes are not
// trusted: any inconsistency is an error, and a returned index holds only
// rows that pass the same checks as rows read from PostgreSQL.
func decodeSnapshot(b []byte) (snapshot, error) {
	if len(b) < snapshotHeader {
		return snapshot{}, fmt.Errorf("truncated: %d bytes, shorter than the %d-byte header", len(b), snapshotHeader)
	}
	if string(b[:len(snapshotMagic)]) != snapshotMagic {
		return snapshot{}, errors.New("not a dnsedge snapshot (bad magic)")
	}
	h := b[len(snapshotMagic):]
	if v := binary.BigEndian.Uint32(h); v != snapshotVersion {
		return snapshot{}, fmt.Errorf("unsupported format version %d (want %d)", v, snapshotVersion)
	}
	n := binary.BigEndian.Uint64(h[4:])
	payload := b[snapshotHeader:]
	if n != uint64(len(payload)) {
		return snapshot{}, fmt.Errorf("truncated or padded: header says %d payload bytes, file has %d", n, len(payload))
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], h[12:12+sha256.Size]) {
		return snapshot{}, errors.New("checksum mismatch")
	}

	d := decoder{b: payload}
	confirmed := int64(d.uint64())
	serial := d.varint()
	if d.err == nil && serial < 0 {
		return snapshot{}, fmt.Errorf("negative serial %d", serial)
	}
	b2 := emptyIndex().edit()

	count := d.count(minServiceBytes, "service")
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := serviceRow{
			name:         d.string(maxServiceName),
			serial:       d.varint(),
			ranges:       d.prefixes(maxServiceRanges),
			heloSuffixes: d.strings(maxHELOSuffixes, 253),
			include:      d.string(maxIncludeLen),
		}
		if d.err != nil {
			break
		}
		if _, dup := b2.services.get(r.name); dup {
			return snapshot{}, fmt.Errorf("service %q listed twice", r.name)
		}
		if r.serial > serial {
			return snapshot{}, fmt.Errorf("service %q has serial %d above the snapshot's %d", r.name, r.serial, serial)
		}
		if err := b2.putService(r); err != nil {
			return snapshot{}, err
		}
	}

	count = d.count(minDomainBytes, "domain")
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := row{
			name:      d.string(253),
			serial:    d.varint(),
			mode:      d.string(32),
			dmarc:     d.string(maxDMARCLen),
			netblocks: d.prefixes(maxNetblocks),
			services:  d.strings(maxDomainServices, maxServiceName),
			nspf:      d.string(maxTXTLen),
			dkim:      d.string(maxDKIMJSON),
			bimi:      d.string(maxTXTLen),
		}
		if d.err != nil {
			break
		}
		if _, dup := b2.domains.get(r.name); dup {
			return snapshot{}, fmt.Errorf("domain %q listed twice", r.name)
		}
		if r.serial > serial {
			return snapshot{}, fmt.Errorf("domain %q has serial %d above the snapshot's %d", r.name, r.serial, serial)
		}
		if err := b2.put(r); err != nil {
			return snapshot{}, err
		}
	}
	if d.err != nil {
		return snapshot{}, fmt.Errorf("payload: %w", d.err)
	}
	if len(d.b) != 0 {
		return snapshot{}, fmt.Errorf("payload: %d bytes after the last domain", len(d.b))
	}
	b2.serial = serial
	return snapshot{index: b2.finish(), confirmed: time.Unix(0, confirmed)}, nil
}

// decoder reads a payload; the first error sticks and later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("unexpected end of payload")

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n == 0 {
		d.err = errShort
		return 0
	}
	if n < 0 {
		d.err = errors.New("unsigned varint overflows 64 bits")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n == 0 {
		d.err = errShort
		return 0
	}
	if n < 0 {
		d.err = errors.New("varint overflows 64 bits")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads the number of elements that follow, each taking at least
// minBytes: a count the rest of the payload cannot hold is a lie.
func (d *decoder) count(minBytes int, what string) uint64 {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b))/uint64(minBytes) {
		d.err = fmt.Errorf("%s count %d exceeds the payload", what, n)
		return 0
	}
	return n
}

// strings reads a list of at most maxCount strings of at most maxLen bytes;
// nil when empty.
func (d *decoder) strings(maxCount, maxLen int) []string {
	n := d.count(1, "list")
	if d.err == nil && n > uint64(maxCount) {
		d.err = fmt.Errorf("list of %d exceeds %d", n, maxCount)
	}
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.string(maxLen)
	}
	return out
}

// prefixes reads a list of at most maxCount prefixes in text form; nil when
// empty.
func (d *decoder) prefixes(maxCount int) []netip.Prefix {
	ss := d.strings(maxCount, maxPrefixText)
	if d.err != nil || ss == nil {
		return nil
	}
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			d.err = err
			return nil
		}
		out[i] = p
	}
	return out
}

func (d *decoder) string(maxLen int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(maxLen) {
		d.err = fmt.Errorf("string of %d bytes exceeds %d", n, maxLen)
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// writeFileAtomic replaces path with data: a temporary file in the same
// folder, fsync, rename, fsync of the folder. A reader sees the old file or
// the new one, never a mix, even across a crash.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// The data is public DNS; readable by all like any zone file.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // not supported everywhere; the rename is done either way
		d.Close()
	}
	return nil
}

// saveDelay is how long the writer waits after an incremental change before
// it writes the file, so that a burst of changes costs one write.
const saveDelay = time.Second

// requestSave asks the snapshot writer for a write, now or after saveDelay.
func (e *Edge) requestSave(now bool) {
	ch := e.saveSoon
	if now {
		ch = e.saveNow
	}
	select {
	case ch <- struct{}{}:
	default: // one is already pending
	}
}

// saveLoop writes the snapshot file when asked, and once more when ctx is
// cancelled if the file is behind the index being served.
func (e *Edge) saveLoop(ctx context.Context) {
	saved := e.index.Load() // read from the file at start, or nil
	save := func() {
		ix := e.index.Load()
		if ix == nil || ix == saved {
			return
		}
		start := time.Now()
		if err := writeFileAtomic(e.cfg.SnapshotPath, encodeSnapshot(ix, e.confirmedAt())); err != nil {
			e.log.Error("dnsedge: write snapshot file", "path", e.cfg.SnapshotPath, "err", err)
			return
		}
		saved = ix
		e.log.Debug("dnsedge: wrote snapshot file", "path", e.cfg.SnapshotPath, "serial", ix.serial, "domains", ix.numDomains(), "duration", time.Since(start))
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-e.saveNow:
			timer = nil
			save()
		case <-e.saveSoon:
			if timer == nil {
				timer = time.After(saveDelay)
			}
		case <-timer:
			timer = nil
			save()
		}
	}
}

// loadSnapshotFile publishes the index in the snapshot file, if there is a
// valid one. A file that fails its checks is refused with an error logged;
// the edge then waits for PostgreSQL.
func (e *Edge) loadSnapshotFile() {
	path := e.cfg.SnapshotPath
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		e.log.Info("dnsedge: no snapshot file yet; waiting for PostgreSQL", "path", path)
		return
	}
	if err != nil {
		e.log.Error("dnsedge: cannot read snapshot file; loading from PostgreSQL instead", "path", path, "err", err)
		return
	}
	snap, err := decodeSnapshot(b)
	if err != nil {
		e.log.Error("dnsedge: refusing snapshot file; loading from PostgreSQL instead", "path", path, "err", err)
		return
	}
	e.publish(snap.index)
	e.confirm(snap.confirmed)
	e.log.Info("dnsedge: serving snapshot file", "path", path, "serial", snap.index.serial,
		"domains", snap.index.numDomains(), "age", time.Since(snap.confirmed).Round(time.Second))
}
