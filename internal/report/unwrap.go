package report

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message"
)

// Attachment is one candidate report found by [Extract]: a stream that, once
// decompressed, should be report XML.
type Attachment struct {
	// Name is the best file name known for the report: a zip entry name, a
	// gzip header name, or a MIME filename. It may be empty.
	Name string
	// Path says where the attachment was found, for logs, e.g.
	// "part 1.2 (application/zip) > zip entry a.xml.gz > gzip".
	Path string

	open opener
}

// Open returns a fresh reader of the attachment's decompressed content. Each
// call starts over from the compressed bytes, which the Attachment holds.
// The limits given to Extract are enforced while reading: the reader fails
// with a *[Refusal] (InflatedTooLarge, RatioTooHigh, Malformed) rather than
// produce too much.
func (a Attachment) Open() (io.Reader, error) {
	if a.open == nil {
		return nil, refuse(NoReport, "empty attachment")
	}
	s, err := a.open()
	if err != nil {
		return nil, err
	}
	return s.r, nil
}

// Extract finds the candidate reports in raw, which may be a whole e-mail
// message, a bare XML file, a gzip file or a zip file. Archives are
// recognised by their content, not by names or content types, so the odd
// forms reporters send (.xml.zip, double gzip, a zip of a .gz, a wrong
// content type) are all unwrapped, up to [Limits.MaxDepth] layers.
//
// Extract reads each archive layer only far enough to see what it holds:
// decompression happens when an [Attachment] is opened, so a report is never
// held inflated in memory. Structural problems are found here; a bomb is
// found while reading.
//
// The error is a *[Refusal]; NoReport when nothing in raw can be a report.
func Extract(raw []byte, limits Limits) ([]Attachment, error) {
	x := &extractor{l: limits.withDefaults()}
	if len(raw) == 0 {
		return nil, refuse(NoReport, "empty input")
	}
	if limit := x.l.MaxInput(raw); int64(len(raw)) > limit {
		return nil, refuse(TooLarge, fmt.Sprintf("%d bytes, more than %d", len(raw), limit))
	}
	var err error
	switch sniff(raw) {
	case kindGzip, kindZip, kindXML, kindJSON:
		err = x.blob(raw, "", "input")
	default:
		err = x.message(raw)
	}
	if err != nil {
		return nil, err
	}
	if len(x.out) == 0 && x.tls {
		return nil, refuse(TLSReport, "an SMTP TLS report (RFC 8460), not a DMARC aggregate report: TLS reports are not supported yet")
	}
	if len(x.out) == 0 {
		detail := "nothing that can be a report"
		if len(x.skipped) > 0 {
			detail += "; skipped " + strings.Join(x.skipped, ", ")
		}
		return nil, refuse(NoReport, detail)
	}
	return x.out, nil
}

type kind int

const (
	kindOther kind = iota
	kindGzip
	kindZip
	kindXML
	// kindJSON is a JSON object: never a DMARC report, but what an SMTP
	// TLS report is.
	kindJSON
)

// sniff tells what b starts with.
func sniff(b []byte) kind {
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return kindGzip
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")), bytes.HasPrefix(b, []byte("PK\x07\x08")):
		return kindZip
	}
	if bytes.HasPrefix(b, []byte{0xFE, 0xFF}) || bytes.HasPrefix(b, []byte{0xFF, 0xFE}) {
		return kindXML // UTF-16, which the decoder refuses by name
	}
	b = bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF})
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '<' {
		return kindXML
	}
	if len(b) > 0 && b[0] == '{' {
		return kindJSON
	}
	return kindOther
}

type extractor struct {
	l        Limits
	parts    int
	buffered int64 // bytes held in memory besides the input
	out      []Attachment
	skipped  []string // what was passed over, for the NoReport detail
	tls      bool     // an SMTP TLS report was passed over
}

func (x *extractor) skip(what string) {
	if len(x.skipped) < 10 {
		x.skipped = append(x.skipped, what)
	}
}

// blob classifies bytes held in memory.
func (x *extractor) blob(data []byte, name, path string) error {
	return x.classify(memOpener(data), data, name, path, 0)
}

// classify looks at the first bytes of what open yields: a gzip layer is
// unwrapped lazily, a zip archive is listed, anything else is a candidate
// report. data is the content when it is already in memory, else nil.
func (x *extractor) classify(open opener, data []byte, name, path string, depth int) error {
	s, err := open()
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(s.r, tlsPeek)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		if len(head) == 0 || errors.As(err, new(*Refusal)) {
			return asRefusal(err, path)
		}
	}
	switch {
	case len(head) == 0:
		x.skip(path + " (empty)")
		return nil
	case sniff(head) == kindGzip:
		if depth >= x.l.MaxDepth {
			return refuse(TooDeep, fmt.Sprintf("%s: more than %d archive layers", path, x.l.MaxDepth))
		}
		gzName, err := gzipName(br)
		if err != nil {
			return asRefusal(err, path)
		}
		if gzName != "" {
			name = gzName
		} else {
			name = trimSuffixFold(trimSuffixFold(name, ".gz"), ".gzip")
		}
		return x.classify(gzipOpener(open, &x.l), nil, name, path+" > gzip", depth+1)
	case sniff(head) == kindZip:
		if depth >= x.l.MaxDepth {
			return refuse(TooDeep, fmt.Sprintf("%s: more than %d archive layers", path, x.l.MaxDepth))
		}
		if data == nil {
			// A zip needs random access: hold it, within what is left of
			// the budget for buffered data.
			room := x.l.MaxCompressed - x.buffered
			data, err = io.ReadAll(io.LimitReader(br, room+1))
			if err != nil {
				return asRefusal(err, path)
			}
			if err := x.hold(len(data), path); err != nil {
				return err
			}
		}
		return x.zip(data, path, depth+1)
	}
	// The first bytes (past a byte order mark and blank lines) say whether
	// it is JSON, and if it is, whether a TLS report; any other JSON is not
	// a report either. A read error here is met again when decoding.
	if head, _ = br.Peek(tlsPeek); sniff(head) == kindJSON {
		if isTLSReport(head) {
			x.tls = true
			x.skip(path + " (SMTP TLS report)")
		} else {
			x.skip(path + " (JSON)")
		}
		return nil
	}
	if len(x.out) >= x.l.MaxEntries {
		return refuse(TooManyEntries, fmt.Sprintf("%s: more than %d candidate reports in one input", path, x.l.MaxEntries))
	}
	x.out = append(x.out, Attachment{Name: cleanString(name, 255), Path: cleanString(path, 1024), open: open})
	return nil
}

// hold accounts for n more bytes held in memory: decoded MIME parts and
// unpacked nested zips share one budget of MaxCompressed, so nesting cannot
// multiply memory.
func (x *extractor) hold(n int, path string) error {
	x.buffered += int64(n)
	if x.buffered > x.l.MaxCompressed {
		return refuse(TooLarge, fmt.Sprintf("%s: more than %d bytes of parts and nested archives", path, x.l.MaxCompressed))
	}
	return nil
}

// message walks a MIME message.
func (x *extractor) message(raw []byte) error {
	// An mbox export starts with a "From " line that is not a header.
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && e == nil {
		return refuse(NoReport, "not XML, gzip, zip or a MIME message: "+err.Error())
	}
	return x.entity(e, err, "part", 0)
}

// entity handles one MIME entity; encErr is go-message's error about an
// unknown transfer encoding or charset, if any.
func (x *extractor) entity(e *message.Entity, encErr error, path string, depth int) error {
	x.parts++
	if x.parts > x.l.MaxParts {
		return refuse(TooManyParts, fmt.Sprintf("more than %d MIME parts", x.l.MaxParts))
	}
	mt := mediaType(e.Header)
	if mr := e.MultipartReader(); mr != nil {
		if depth >= x.l.MaxPartDepth {
			return refuse(TooDeep, fmt.Sprintf("%s: multipart nested more than %d deep", path, x.l.MaxPartDepth))
		}
		for i := 1; ; i++ {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if p == nil {
				if i > 1 {
					// A truncated message without its closing boundary:
					// keep what was found.
					return nil
				}
				return refuse(Malformed, fmt.Sprintf("%s: %v", path, err))
			}
			if err := x.entity(p, err, fmt.Sprintf("%s.%d", path, i), depth+1); err != nil {
				return err
			}
		}
	}
	if mt == "message/rfc822" || mt == "message/global" {
		if depth >= x.l.MaxPartDepth {
			return refuse(TooDeep, fmt.Sprintf("%s: message nested more than %d deep", path, x.l.MaxPartDepth))
		}
		inner, err := message.Read(e.Body)
		if inner == nil {
			return refuse(Malformed, fmt.Sprintf("%s: enclosed message: %v", path, err))
		}
		return x.entity(inner, err, path+".msg", depth+1)
	}
	name := fileName(e.Header)
	where := fmt.Sprintf("%s (%s)", path, mt)
	if strings.HasPrefix(mt, "application/tlsrpt+") {
		// RFC 8460 section 5.3: application/tlsrpt+gzip or +json.
		x.tls = true
		x.skip(where)
		return nil
	}
	if !wanted(mt, name) {
		x.skip(where)
		return nil
	}
	if message.IsUnknownEncoding(encErr) {
		return refuse(Unsupported, fmt.Sprintf("%s: %v", where, encErr))
	}
	data, err := io.ReadAll(io.LimitReader(e.Body, x.l.MaxCompressed-x.buffered+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return refuse(Malformed, fmt.Sprintf("%s: %v", where, err))
	}
	if err := x.hold(len(data), where); err != nil {
		return err
	}
	if sniff(data) == kindOther {
		// Taken for its type or name, but not XML, gzip or zip: a PDF
		// sent as application/octet-stream, an empty part.
		x.skip(where + " not XML, gzip or zip")
		return nil
	}
	return x.classify(memOpener(data), data, name, where, 0)
}

// tlsPeek is how many bytes of a JSON candidate are looked at to tell a
// TLS report: its top-level names come first in every report seen, within
// a few hundred bytes.
const tlsPeek = 1024

// tlsReportKeys are the top-level names of an RFC 8460 report.
var tlsReportKeys = []string{`"organization-name"`, `"date-range"`, `"contact-info"`, `"report-id"`, `"policies"`}

// isTLSReport tells whether head, the start of a JSON object, is an SMTP
// TLS report: it names one of the report's top-level members.
func isTLSReport(head []byte) bool {
	for _, k := range tlsReportKeys {
		if bytes.Contains(head, []byte(k)) {
			return true
		}
	}
	return false
}

// mediaType returns the lower-cased media type, even when its parameters
// do not parse.
func mediaType(h message.Header) string {
	mt, _, err := h.ContentType()
	if err != nil {
		mt, _, _ = strings.Cut(h.Get("Content-Type"), ";")
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// fileName returns the entity's file name from Content-Disposition or,
// failing that, the Content-Type name parameter.
func fileName(h message.Header) string {
	var name string
	if _, p, err := h.ContentDisposition(); err == nil {
		name = p["filename"]
	}
	if name == "" {
		if _, p, err := h.ContentType(); err == nil {
			name = p["name"]
		}
	}
	if dec, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
		name = dec
	}
	return name
}

var wantedTypes = map[string]bool{
	"application/zip":               true,
	"application/x-zip":             true,
	"application/x-zip-compressed":  true,
	"application/gzip":              true,
	"application/x-gzip":            true,
	"application/gzip-compressed":   true,
	"application/x-gzip-compressed": true,
	"application/x-gunzip":          true,
	"application/xml":               true,
	"text/xml":                      true,
	"application/octet-stream":      true,
}

// wanted tells whether a MIME part may hold a report: by its content type
// or by its file name, since reporters often send the wrong type.
func wanted(mt, name string) bool {
	if wantedTypes[mt] {
		return true
	}
	n := strings.ToLower(name)
	for _, suf := range []string{".xml", ".gz", ".gzip", ".zip"} {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return false
}

func trimSuffixFold(s, suffix string) string {
	if len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)]
	}
	return s
}
