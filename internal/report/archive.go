package report

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
)

// stream is one opening of a possibly compressed source. root counts the
// compressed bytes read from the outermost in-memory layer, against which
// every layer's inflation ratio is measured.
type stream struct {
	r    io.Reader
	root *countingReader
}

// opener opens a fresh stream; Attachments keep one so that each Open
// starts over.
type opener func() (stream, error)

func memOpener(data []byte) opener {
	return func() (stream, error) {
		c := &countingReader{r: bytes.NewReader(data)}
		return stream{r: c, root: c}, nil
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// limitedReader enforces MaxInflated and MaxRatio on one decompressed
// layer as it is read, and turns decompression errors into refusals.
type limitedReader struct {
	r    io.Reader
	n    int64 // bytes produced so far
	root *countingReader
	l    *Limits
	what string
	err  error
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	if lr.err != nil {
		return 0, lr.err
	}
	// Never read more than one byte past the limit.
	if room := lr.l.MaxInflated - lr.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := lr.r.Read(p)
	lr.n += int64(n)
	switch {
	case lr.n > lr.l.MaxInflated:
		lr.err = refuse(InflatedTooLarge, fmt.Sprintf("%s inflates past %d bytes", lr.what, lr.l.MaxInflated))
		return 0, lr.err
	case lr.n > lr.l.RatioGrace && lr.n > lr.l.MaxRatio*max(lr.root.n, 1):
		lr.err = refuse(RatioTooHigh, fmt.Sprintf("%s inflated %d bytes from %d, more than %d:1", lr.what, lr.n, lr.root.n, lr.l.MaxRatio))
		return 0, lr.err
	}
	if err != nil && err != io.EOF {
		lr.err = asRefusal(err, lr.what)
		return n, lr.err
	}
	return n, err
}

// asRefusal passes refusals through and makes any other error a Malformed
// refusal: the sources are in memory, so a read error means broken data.
func asRefusal(err error, what string) error {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return refuse(Malformed, fmt.Sprintf("%s: %v", what, err))
}

// gzipName reads a gzip header from r and returns the original file name
// it records, if any.
func gzipName(r io.Reader) (string, error) {
	z, err := gzip.NewReader(r)
	if err != nil {
		return "", err
	}
	return strings.ToValidUTF8(z.Name, "\uFFFD"), nil
}

// gzipOpener opens inner and inflates it.
func gzipOpener(inner opener, l *Limits) opener {
	return func() (stream, error) {
		s, err := inner()
		if err != nil {
			return stream{}, err
		}
		br := bufio.NewReader(s.r)
		z, err := gzip.NewReader(br)
		if err != nil {
			return stream{}, asRefusal(err, "gzip")
		}
		z.Multistream(false)
		m := &gzipMembers{z: z, r: br}
		return stream{r: &limitedReader{r: m, root: s.root, l: l, what: "gzip"}, root: s.root}, nil
	}
}

// gzipMembers reads concatenated gzip members, as gzip.Reader does, except
// that anything after the last member that is not a gzip header is ignored:
// some tools pad files with zeros.
type gzipMembers struct {
	z *gzip.Reader
	r *bufio.Reader
}

func (m *gzipMembers) Read(p []byte) (int, error) {
	for {
		n, err := m.z.Read(p)
		if !errors.Is(err, io.EOF) {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
		if head, _ := m.r.Peek(2); len(head) < 2 || head[0] != 0x1f || head[1] != 0x8b {
			return 0, io.EOF
		}
		if err := m.z.Reset(m.r); err != nil {
			return 0, err
		}
		m.z.Multistream(false)
	}
}

// zip lists a zip archive held in memory and classifies its entries.
func (x *extractor) zip(data []byte, path string, depth int) error {
	// Every central directory header starts with this signature, so its
	// count bounds the entries archive/zip could list: refuse before
	// letting it allocate for them.
	if n := bytes.Count(data, []byte("PK\x01\x02")); n > x.l.MaxEntries {
		return refuse(TooManyEntries, fmt.Sprintf("%s: zip with at least %d entries, more than %d", path, n, x.l.MaxEntries))
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return refuse(Malformed, fmt.Sprintf("%s: %v", path, err))
	}
	if len(zr.File) > x.l.MaxEntries {
		return refuse(TooManyEntries, fmt.Sprintf("%s: zip with %d entries, more than %d", path, len(zr.File), x.l.MaxEntries))
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") || strings.HasPrefix(f.Name, "__MACOSX/") {
			continue
		}
		name := strings.ToValidUTF8(f.Name, "\uFFFD")
		where := path + " > zip entry " + name
		if f.Flags&0x1 != 0 {
			return refuse(Unsupported, where+": encrypted")
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			return refuse(Unsupported, fmt.Sprintf("%s: compression method %d", where, f.Method))
		}
		if err := x.classify(zipOpener(f, &x.l, where), nil, name, where, depth); err != nil {
			return err
		}
	}
	return nil
}

// zipOpener reads one entry from its raw compressed bytes, so that the
// sizes declared in the archive are never trusted: the limits apply to
// what is actually inflated, and the CRC is checked at the end.
func zipOpener(f *zip.File, l *Limits, what string) opener {
	return func() (stream, error) {
		raw, err := f.OpenRaw()
		if err != nil {
			return stream{}, asRefusal(err, what)
		}
		c := &countingReader{r: raw}
		var r io.Reader = c
		if f.Method == zip.Deflate {
			r = flate.NewReader(c)
		}
		r = &crcReader{r: r, want: f.CRC32, h: crc32.NewIEEE()}
		return stream{r: &limitedReader{r: r, root: c, l: l, what: "zip entry"}, root: c}, nil
	}
}

type crcReader struct {
	r    io.Reader
	want uint32
	h    hash.Hash32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF && c.want != 0 && c.h.Sum32() != c.want {
		return n, zip.ErrChecksum
	}
	return n, err
}
