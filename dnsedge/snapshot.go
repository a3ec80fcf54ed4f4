package dnsedge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
// Payload, version 4 (uvarint-prefixed strings, varint integers, lists as
// a uvarint count followed by the strings):
//
//	confirmed  int64 Unix nanoseconds: when the data was last confirmed current
//	serial     varint: the index serial
//	count      uvarint: number of sender services
//	count times: name string, serial varint, ranges list (prefixes as text),
//	             HELO suffixes list, includes list
//	count      uvarint: number of domains
//	count times: name string, serial varint, mode string, dmarc string,
//	             netblocks list (prefixes as text), services list, nspf string,
//	             rspf string, dkim string (the column's JSON), bimi string
//
// The file is a cache written by the same program that reads it, so a new
// payload layout gets a new version and an edge refuses versions it does not
// know: it then loads from PostgreSQL as if there were no file. (Version 1
// had no services and only the name, serial, mode and dmarc of a domain;
// version 2 no rspf; version 3 one include string per service.)
const (
	snapshotMagic   = "RMPEDGE\n"
	snapshotVersion = 4
	snapshotHeader  = len(snapshotMagic) + 4 + 8 + sha256.Size
)

// snapshot is the content of a snapshot file.
type snapshot struct {
	index     *index
	confirmed time.Time
}

// The file is written and read as a stream: a payload the size of a large
// index (about 1.6 KB a domain with three 2048-bit DKIM keys, so 160 MB for
// 100,000 domains) is never held in memory whole, beside the index it
// describes.
const (
	// snapshotChunk is how much encoded payload the writer collects before
	// it hashes and writes it.
	snapshotChunk = 64 << 10
	// snapshotReadBuffer is the size of the reader's buffer, which grows
	// for a longer string.
	snapshotReadBuffer = 256 << 10
)

// encodeSnapshot serialises ix with its confirmation time. The edge streams
// the file with writeSnapshot instead; this is for tests.
func encodeSnapshot(ix *index, confirmed time.Time) []byte {
	var buf bytes.Buffer
	buf.Write(make([]byte, snapshotHeader))
	n, sum, _ := writePayload(&buf, ix, confirmed) // a bytes.Buffer does not fail
	b := buf.Bytes()
	putSnapshotHeader(b, n, sum)
	return b
}

// writeSnapshot replaces the snapshot file at path with ix and its
// confirmation time: the header with a zero length and checksum, the
// payload streamed behind it, then the header again with both filled in,
// all before the file takes the place of the old one.
func writeSnapshot(path string, ix *index, confirmed time.Time) error {
	return writeFileAtomic(path, func(f *os.File) error {
		if _, err := f.Write(make([]byte, snapshotHeader)); err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, snapshotChunk)
		n, sum, err := writePayload(w, ix, confirmed)
		if err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		header := make([]byte, snapshotHeader)
		putSnapshotHeader(header, n, sum)
		_, err = f.WriteAt(header, 0)
		return err
	})
}

// putSnapshotHeader writes the header of a payload of n bytes with checksum
// sum into b.
func putSnapshotHeader(b []byte, n int64, sum [sha256.Size]byte) {
	copy(b, snapshotMagic)
	h := b[len(snapshotMagic):]
	binary.BigEndian.PutUint32(h, snapshotVersion)
	binary.BigEndian.PutUint64(h[4:], uint64(n)) //nolint:gosec // G115: n is a byte count, never negative
	copy(h[12:], sum[:])
}

// writePayload writes the payload of ix to w and returns its length and
// checksum.
func writePayload(w io.Writer, ix *index, confirmed time.Time) (int64, [sha256.Size]byte, error) {
	var (
		h   = sha256.New()
		n   int64
		err error
		p   = make([]byte, 0, snapshotChunk+4096)
	)
	flush := func() {
		if err == nil {
			h.Write(p)
			_, err = w.Write(p)
			n += int64(len(p))
		}
		p = p[:0]
	}
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
			// The text of a prefix is at most maxPrefixText (49) bytes,
			// so its length is one uvarint byte, written once the text
			// is in place.
			at := len(p)
			p = pfx.AppendTo(append(p, 0))
			p[at] = byte(len(p) - at - 1) //nolint:gosec // G115: at most maxPrefixText (49) bytes, as said above
		}
	}
	p = binary.BigEndian.AppendUint64(p, uint64(confirmed.UnixNano()))
	p = binary.AppendVarint(p, ix.serial)
	p = binary.AppendUvarint(p, uint64(ix.numServices())) //nolint:gosec // G115: a count, never negative
	ix.services.all(func(_ string, s *service) bool {
		appendString(s.name)
		p = binary.AppendVarint(p, s.serial)
		appendPrefixes(s.ranges)
		appendList(s.heloSuffixes)
		appendList(s.includes)
		if len(p) >= snapshotChunk {
			flush()
		}
		return err == nil
	})
	p = binary.AppendUvarint(p, uint64(ix.numDomains())) //nolint:gosec // G115: a count, never negative
	ix.domains.all(func(_ string, d *domain) bool {
		appendString(d.name)
		p = binary.AppendVarint(p, d.serial)
		appendString(d.mode)
		appendString(d.dmarc)
		appendPrefixes(d.netblocks)
		appendList(d.services)
		appendString(d.nspf)
		appendString(d.rspf)
		appendString(d.dkim)
		appendString(d.bimi)
		if len(p) >= snapshotChunk {
			flush()
		}
		return err == nil
	})
	flush()
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return n, sum, err
}

// Smallest encodings, to reject counts larger than the payload can hold.
const (
	minServiceBytes = 6  // name (2), serial, three empty lists
	minDomainBytes  = 11 // name (2), serial, mode (2), dmarc, two lists, three strings
	maxPrefixText   = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128")
)

// decodeSnapshot parses and verifies a snapshot file held in memory; see
// readSnapshot.
func decodeSnapshot(b []byte) (snapshot, error) {
	return readSnapshot(bytes.NewReader(b), int64(len(b)))
}

// readSnapshot parses and verifies a snapshot file of size bytes read from
// r. The bytes are not trusted: any inconsistency is an error, and a
// returned index holds only rows that pass the same checks as rows read
// from PostgreSQL.
//
// The index is built as the payload is read and hashed, and the checksum
// compared at the end: a file whose checksum does not match is refused as
// such, whatever else is wrong with it, and its index dropped.
func readSnapshot(r io.Reader, size int64) (snapshot, error) {
	if size < int64(snapshotHeader) {
		return snapshot{}, fmt.Errorf("truncated: %d bytes, shorter than the %d-byte header", size, snapshotHeader)
	}
	header := make([]byte, snapshotHeader)
	if _, err := io.ReadFull(r, header); err != nil {
		return snapshot{}, fmt.Errorf("read header: %w", err)
	}
	if string(header[:len(snapshotMagic)]) != snapshotMagic {
		return snapshot{}, errors.New("not a dnsedge snapshot (bad magic)")
	}
	h := header[len(snapshotMagic):]
	if v := binary.BigEndian.Uint32(h); v != snapshotVersion {
		return snapshot{}, fmt.Errorf("unsupported format version %d (want %d)", v, snapshotVersion)
	}
	n := binary.BigEndian.Uint64(h[4:])
	if have := uint64(size) - uint64(snapshotHeader); n != have {
		return snapshot{}, fmt.Errorf("truncated or padded: header says %d payload bytes, file has %d", n, have)
	}

	hash := sha256.New()
	payload := io.TeeReader(io.LimitReader(r, int64(n)), hash)                      //nolint:gosec // G115: n equals the file's size less the header, checked above, so it fits int64
	d := decoder{r: payload, buf: make([]byte, snapshotReadBuffer), left: int64(n)} //nolint:gosec // G115: n equals the file's size less the header, checked above, so it fits int64
	snap, err := d.payload()
	// Hash what the parser left unread, so that the checksum decides
	// first.
	if _, rerr := io.Copy(io.Discard, payload); rerr != nil {
		return snapshot{}, fmt.Errorf("read payload: %w", rerr)
	}
	if d.read != nil {
		return snapshot{}, fmt.Errorf("read payload: %w", d.read)
	}
	if !bytes.Equal(hash.Sum(nil), h[12:12+sha256.Size]) {
		return snapshot{}, errors.New("checksum mismatch")
	}
	if err != nil {
		return snapshot{}, err
	}
	return snap, nil
}

// payload parses the payload into a new index.
func (d *decoder) payload() (snapshot, error) {
	confirmed := int64(d.uint64()) //nolint:gosec // G115: the bits of the UnixNano written by the encoder as uint64, read back
	serial := d.varint()
	if d.err == nil && serial < 0 {
		return snapshot{}, fmt.Errorf("negative serial %d", serial)
	}
	b := emptyIndex().edit()

	count := d.count(minServiceBytes, "service")
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := serviceRow{
			name:         d.string(maxServiceName),
			serial:       d.varint(),
			ranges:       d.prefixes(maxServiceRanges),
			heloSuffixes: d.strings(maxHELOSuffixes, 253),
			includes:     d.strings(maxIncludes, maxIncludeLen),
		}
		if d.err != nil {
			break
		}
		if _, dup := b.services.get(r.name); dup {
			return snapshot{}, fmt.Errorf("service %q listed twice", r.name)
		}
		if r.serial > serial {
			return snapshot{}, fmt.Errorf("service %q has serial %d above the snapshot's %d", r.name, r.serial, serial)
		}
		if err := b.putService(r); err != nil {
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
			nspf:      d.string(maxNSPFLen),
			rspf:      d.string(maxTXTLen),
			dkim:      d.string(maxDKIMJSON),
			bimi:      d.string(maxTXTLen),
		}
		if d.err != nil {
			break
		}
		if _, dup := b.domains.get(r.name); dup {
			return snapshot{}, fmt.Errorf("domain %q listed twice", r.name)
		}
		if r.serial > serial {
			return snapshot{}, fmt.Errorf("domain %q has serial %d above the snapshot's %d", r.name, r.serial, serial)
		}
		if err := b.put(r); err != nil {
			return snapshot{}, err
		}
	}
	if d.err != nil {
		return snapshot{}, fmt.Errorf("payload: %w", d.err)
	}
	if d.left != 0 {
		return snapshot{}, fmt.Errorf("payload: %d bytes after the last domain", d.left)
	}
	b.serial = serial
	return snapshot{index: b.finish(), confirmed: time.Unix(0, confirmed)}, nil
}

// decoder reads a payload of left more bytes from r, through a window b of
// buf that it refills as it goes; the first error sticks and later reads
// return zero values. err is a flaw in the payload; read an error reading
// it, which the caller reports as such.
type decoder struct {
	r    io.Reader
	buf  []byte
	b    []byte // read and not parsed yet
	left int64  // not parsed yet, b included
	err  error
	read error
}

var errShort = errors.New("unexpected end of payload")

// fill makes at least n bytes available in d.b, n no more than d.left.
func (d *decoder) fill(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) >= n {
		return true
	}
	if n > len(d.buf) { // a string longer than the buffer: at most maxDKIMJSON
		d.buf = make([]byte, n)
	}
	k := copy(d.buf, d.b)
	// Read what the buffer holds, but not past the payload.
	end := int(min(int64(len(d.buf)), d.left))
	m, err := io.ReadAtLeast(d.r, d.buf[k:end], n-k)
	d.b = d.buf[:k+m]
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			d.err = errShort // the file is shorter than its header says
		} else {
			d.read, d.err = err, err
		}
		return false
	}
	return true
}

// skip drops n bytes of d.b.
func (d *decoder) skip(n int) {
	d.b = d.b[n:]
	d.left -= int64(n)
}

func (d *decoder) uint64() uint64 {
	if d.err == nil && d.left < 8 {
		d.err = errShort
	}
	if !d.fill(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.skip(8)
	return v
}

// varintBytes makes the bytes a varint may take available.
func (d *decoder) varintBytes() bool {
	return d.fill(int(min(d.left, binary.MaxVarintLen64)))
}

func (d *decoder) uvarint() uint64 {
	if !d.varintBytes() {
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
	d.skip(n)
	return v
}

func (d *decoder) varint() int64 {
	if !d.varintBytes() {
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
	d.skip(n)
	return v
}

// count reads the number of elements that follow, each taking at least
// minBytes: a count the rest of the payload cannot hold is a lie.
func (d *decoder) count(minBytes int, what string) uint64 {
	n := d.uvarint()
	if d.err == nil && n > uint64(d.left)/uint64(minBytes) { //nolint:gosec // G115: d.left is never negative and minBytes is a positive constant of the callers
		d.err = fmt.Errorf("%s count %d exceeds the payload", what, n)
		return 0
	}
	return n
}

// strings reads a list of at most maxCount strings of at most maxLen bytes;
// nil when empty.
func (d *decoder) strings(maxCount, maxLen int) []string {
	n := d.count(1, "list")
	if d.err == nil && n > uint64(maxCount) { //nolint:gosec // G115: maxCount is a positive limit of the callers
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
	n := d.count(1, "list")
	if d.err == nil && n > uint64(maxCount) { //nolint:gosec // G115: maxCount is a positive limit of the callers
		d.err = fmt.Errorf("list of %d exceeds %d", n, maxCount)
	}
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]netip.Prefix, n)
	for i := range out {
		b := d.bytes(maxPrefixText)
		if d.err != nil {
			return nil
		}
		p, err := netip.ParsePrefix(string(b))
		if err != nil {
			d.err = err
			return nil
		}
		out[i] = p
	}
	return out
}

// bytes reads a string of at most maxLen bytes without copying it: the
// bytes are valid until the next read.
func (d *decoder) bytes(maxLen int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(maxLen) { //nolint:gosec // G115: maxLen is a positive limit of the callers
		d.err = fmt.Errorf("string of %d bytes exceeds %d", n, maxLen)
		return nil
	}
	if n > uint64(d.left) { //nolint:gosec // G115: d.left is never negative
		d.err = errShort
		return nil
	}
	if !d.fill(int(n)) { //nolint:gosec // G115: n <= maxLen, checked above
		return nil
	}
	b := d.b[:n]
	d.skip(int(n)) //nolint:gosec // G115: n <= maxLen, checked above
	return b
}

func (d *decoder) string(maxLen int) string {
	return string(d.bytes(maxLen))
}

// writeFileAtomic replaces path with what write writes to a new file: a
// temporary file in the same folder, fsync, rename, fsync of the folder. A
// reader sees the old file or the new one, never a mix, even across a crash.
func writeFileAtomic(path string, write func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // G301: the snapshot is public DNS data, readable by all like any zone file
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// The data is public DNS; readable by all like any zone file.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = write(f); err != nil {
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
	if d, err := os.Open(dir); err == nil { //nolint:gosec // G304: opens the snapshot's folder from the operator's -snapshot path, to fsync it
		_ = d.Sync() // not supported everywhere; the rename is done either way
		_ = d.Close()
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
// cancelled if the file is behind the index being served. A write asked for
// at once (after a full load or a resync) is made even when the index is the
// one last written: the file records when its data was last confirmed.
func (e *Edge) saveLoop(ctx context.Context) {
	saved := e.index.Load() // read from the file at start, or nil
	save := func(always bool) {
		ix := e.index.Load()
		if ix == nil || ix == saved && !always {
			return
		}
		start := time.Now()
		if err := writeSnapshot(e.cfg.SnapshotPath, ix, e.confirmedAt()); err != nil {
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
			save(false)
			return
		case <-e.saveNow:
			timer = nil
			save(true)
		case <-e.saveSoon:
			if timer == nil {
				timer = time.After(saveDelay)
			}
		case <-timer:
			timer = nil
			save(false)
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
	f, err := os.Open(path) //nolint:gosec // G304: the operator's -snapshot path; its contents are checked (magic, size, SHA-256) before use
	if errors.Is(err, fs.ErrNotExist) {
		e.log.Info("dnsedge: no snapshot file yet; waiting for PostgreSQL", "path", path)
		return
	}
	if err != nil {
		e.log.Error("dnsedge: cannot read snapshot file; loading from PostgreSQL instead", "path", path, "err", err)
		return
	}
	defer func() { _ = f.Close() }()
	start := time.Now()
	var snap snapshot
	fi, err := f.Stat()
	if err == nil {
		snap, err = readSnapshot(f, fi.Size())
	}
	if err != nil {
		e.log.Error("dnsedge: refusing snapshot file; loading from PostgreSQL instead", "path", path, "err", err)
		return
	}
	e.publish(snap.index)
	e.confirm(snap.confirmed)
	e.log.Info("dnsedge: serving snapshot file", "path", path, "serial", snap.index.serial,
		"domains", snap.index.numDomains(), "age", time.Since(snap.confirmed).Round(time.Second), "duration", time.Since(start).Round(time.Millisecond))
}
