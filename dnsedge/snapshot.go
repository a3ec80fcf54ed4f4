package dnsedge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
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
// Payload, version 1 (uvarint-prefixed strings, varint integers):
//
//	confirmed  int64 Unix nanoseconds: when the data was last confirmed current
//	serial     varint: the index serial
//	count      uvarint: number of domains
//	count times: name string, serial varint, mode string, dmarc string
//
// The file is a cache written by the same program that reads it, so a new
// payload layout gets a new version and an edge refuses versions it does not
// know: it then loads from PostgreSQL as if there were no file.
const (
	snapshotMagic   = "RMPEDGE\n"
	snapshotVersion = 1
	snapshotHeader  = len(snapshotMagic) + 4 + 8 + sha256.Size
)

// snapshot is the content of a snapshot file.
type snapshot struct {
	index     *index
	confirmed time.Time
}

// encodeSnapshot serialises ix with its confirmation time.
func encodeSnapshot(ix *index, confirmed time.Time) []byte {
	p := make([]byte, 0, 64+ix.numDomains()*96)
	p = binary.BigEndian.AppendUint64(p, uint64(confirmed.UnixNano()))
	p = binary.AppendVarint(p, ix.serial)
	p = binary.AppendUvarint(p, uint64(ix.numDomains()))
	appendString := func(s string) {
		p = binary.AppendUvarint(p, uint64(len(s)))
		p = append(p, s...)
	}
	ix.domains.all(func(_ string, d *domain) bool {
		appendString(d.name)
		p = binary.AppendVarint(p, d.serial)
		appendString(d.mode)
		appendString(d.dmarc)
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
	count := d.uvarint()
	// Each domain takes at least 4 bytes; a larger count is a lie.
	if d.err == nil && count > uint64(len(d.b))/4 {
		return snapshot{}, fmt.Errorf("domain count %d exceeds the payload", count)
	}
	if serial < 0 {
		return snapshot{}, fmt.Errorf("negative serial %d", serial)
	}
	b2 := emptyIndex().edit()
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := row{name: d.string(253), serial: d.varint(), mode: d.string(32), dmarc: d.string(maxDMARCLen)}
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
