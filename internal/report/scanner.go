package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file is a small streaming XML tokenizer specialised for aggregate
// reports. It reads through its own buffer and hands out tokens as slices of
// that buffer, so a token costs no allocation; see doc.go for why
// encoding/xml is not used.
//
// It checks what matters for safety and for reading reports correctly: tags
// are well-formed and balanced, names are plausible, nesting is bounded, a
// single tag is bounded, and a DOCTYPE is refused outright. It does not
// check what reports never rely on (duplicate attributes, "--" inside
// comments, the full Unicode name character tables).

type tokKind uint8

const (
	tokEOF   tokKind = iota
	tokStart         // name, local, selfClosing are set
	tokEnd           // name, local are set
	tokText          // text and cdata are set; one text node may come in several chunks
	tokNone          // internal: a tag that was passed over; next reads on
)

const scanBufSize = 64 << 10

type attr struct{ name, value string }

type scanner struct {
	r      io.Reader
	buf    []byte
	pos    int   // next unread byte in buf
	end    int   // end of buffered data
	base   int64 // stream offset of buf[0]
	rerr   error // sticky error from r
	maxBuf int   // the buffer never grows past this: bounds one tag

	// Current token; slices are valid until the next call to next.
	name        []byte
	local       []byte
	text        []byte
	cdata       bool
	selfClosing bool

	pendingEnd bool // the last start tag was self-closing: next returns its end
	afterTag   bool // the last thing read was a start or end tag
	tags       int  // start and end tags read, to tell text nodes apart
	inCDATA    bool

	stack    []byte // names of the open elements, concatenated
	stackOff []int  // where each open element's name starts in stack
	maxDepth int

	rootAttrs []attr // attributes of the root element

	// schemaTags counts the <xs:schema> start and end tags passed over.
	schemaTags int

	// Set by prolog.
	bom      bool
	encoding string
}

func newScanner(r io.Reader, maxDepth, maxTag int) *scanner {
	maxBuf := scanBufSize
	if maxTag+64 > maxBuf {
		maxBuf = maxTag + 64
	}
	return &scanner{
		r:        r,
		buf:      make([]byte, scanBufSize),
		maxBuf:   maxBuf,
		maxDepth: maxDepth,
		stackOff: make([]int, 0, 16),
	}
}

// offset is the stream offset of the next unread byte.
func (s *scanner) offset() int64 { return s.base + int64(s.pos) }

func (s *scanner) depth() int { return len(s.stackOff) }

func (s *scanner) malformed(format string, args ...any) error {
	return refuse(Malformed, fmt.Sprintf(format, args...)+fmt.Sprintf(" at byte %d", s.offset()))
}

// fill reads more input into the buffer, first moving unread bytes to its
// start. It returns io.EOF at the end of input.
func (s *scanner) fill() error {
	if s.rerr != nil {
		return s.rerr
	}
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:s.end])
		s.base += int64(s.pos)
		s.end = n
		s.pos = 0
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= s.maxBuf {
			return &Refusal{Reason: ValueTooLong, Detail: fmt.Sprintf("markup longer than %d bytes at byte %d", s.maxBuf, s.offset())}
		}
		nb := make([]byte, min(2*len(s.buf), s.maxBuf))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			s.rerr = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	s.rerr = io.ErrNoProgress
	return s.rerr
}

// need makes at least n unread bytes available, or fails at end of input.
func (s *scanner) need(n int) error {
	for s.end-s.pos < n {
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return s.malformed("unexpected end of document")
			}
			return err
		}
	}
	return nil
}

// prolog consumes a byte-order mark and the XML declaration, if any.
func (s *scanner) prolog() error {
	for s.end-s.pos < 4 {
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
	}
	b := s.buf[s.pos:s.end]
	if len(bytes.TrimLeft(b, " \t\r\n")) == 0 && errors.Is(s.rerr, io.EOF) {
		return refuse(NoReport, "empty document")
	}
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		s.bom = true
		s.pos += 3
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}), bytes.HasPrefix(b, []byte{0xFF, 0xFE}),
		bytes.HasPrefix(b, []byte{0, '<'}), bytes.HasPrefix(b, []byte{'<', 0}):
		return refuse(Unsupported, "UTF-16 encoded XML")
	}
	if err := s.need(6); err != nil {
		return nil // too short for a declaration; let next report what it is
	}
	b = s.buf[s.pos:s.end]
	if !bytes.HasPrefix(b, []byte("<?xml")) || !isSpace(b[5]) {
		return nil
	}
	for {
		b = s.buf[s.pos:s.end]
		if i := bytes.Index(b, []byte("?>")); i >= 0 {
			s.encoding = pseudoAttr(b[5:i], "encoding")
			s.pos += i + 2
			return nil
		}
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return s.malformed("unterminated XML declaration")
			}
			return err
		}
	}
}

// pseudoAttr finds name="value" in an XML declaration.
func pseudoAttr(decl []byte, name string) string {
	for {
		i := bytes.Index(decl, []byte(name))
		if i < 0 {
			return ""
		}
		rest := bytes.TrimLeft(decl[i+len(name):], " \t\r\n")
		if len(rest) == 0 || rest[0] != '=' {
			decl = decl[i+len(name):]
			continue
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		if len(rest) == 0 || (rest[0] != '"' && rest[0] != '\'') {
			return ""
		}
		j := bytes.IndexByte(rest[1:], rest[0])
		if j < 0 {
			return ""
		}
		return string(rest[1 : 1+j])
	}
}

// next returns the next token, skipping comments and processing
// instructions. Inside an element, the end of input is an error; tokEOF is
// returned only outside the root element.
func (s *scanner) next() (tokKind, error) {
	if s.pendingEnd {
		s.pendingEnd = false
		s.pop()
		s.tags++
		return tokEnd, nil
	}
	if s.inCDATA {
		return s.cdataChunk()
	}
	for {
		if s.pos >= s.end {
			if err := s.fill(); err != nil {
				if !errors.Is(err, io.EOF) {
					return 0, err
				}
				if s.depth() > 0 {
					return 0, s.malformed("unexpected end of document inside <%s>", s.top())
				}
				return tokEOF, nil
			}
			continue
		}
		if s.buf[s.pos] != '<' {
			// White space between two tags is the most common text by
			// far and no element's value depends on it (values are
			// trimmed), so it is skipped here rather than returned. The
			// rule does not depend on how the input is chunked: a run of
			// at most maxSkipSpace bytes after a tag and before markup.
			if s.afterTag {
				i := s.pos
				for i < s.end && isSpace(s.buf[i]) {
					i++
				}
				if i == s.end {
					var err error
					if i, err = s.spaceRun(); err != nil {
						return 0, err
					}
				}
				if i < s.end && s.buf[i] == '<' && i-s.pos <= maxSkipSpace {
					s.pos = i
					continue
				}
			}
			s.afterTag = false
			return s.textChunk()
		}
		s.afterTag = false
		if err := s.need(2); err != nil {
			return 0, err
		}
		switch s.buf[s.pos+1] {
		case '/':
			k, err := s.endTag()
			if k == tokNone && err == nil {
				continue
			}
			return k, err
		case '?':
			s.pos += 2
			if err := s.skipPast("?>", "processing instruction"); err != nil {
				return 0, err
			}
		case '!':
			if err := s.need(4); err != nil {
				return 0, err
			}
			if bytes.HasPrefix(s.buf[s.pos:s.end], []byte("<!--")) {
				s.pos += 4
				if err := s.skipPast("-->", "comment"); err != nil {
					return 0, err
				}
				continue
			}
			if err := s.need(9); err != nil {
				return 0, err
			}
			b := s.buf[s.pos : s.pos+9]
			if strings.EqualFold(string(b[2:9]), "DOCTYPE") {
				return 0, &Refusal{Reason: Doctype, Detail: fmt.Sprintf("document type declaration at byte %d", s.offset())}
			}
			if string(b) == "<![CDATA[" {
				if s.depth() == 0 {
					return 0, s.malformed("CDATA section outside the root element")
				}
				s.pos += 9
				s.inCDATA = true
				return s.cdataChunk()
			}
			return 0, s.malformed("unexpected markup %q", b)
		default:
			k, err := s.startTag()
			if k == tokNone && err == nil {
				continue
			}
			return k, err
		}
	}
}

// maxSkipSpace bounds the white space that next skips between tags.
const maxSkipSpace = 4096

// spaceRun returns the index in buf of the first byte at or after pos that
// is not white space, reading more input as needed, but no further than
// maxSkipSpace bytes. The index is end when the run reaches the end of input
// or maxSkipSpace.
func (s *scanner) spaceRun() (int, error) {
	i := s.pos
	for {
		for i < s.end && isSpace(s.buf[i]) {
			i++
		}
		if i < s.end || i-s.pos > maxSkipSpace {
			return i, nil
		}
		off := i - s.pos
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return s.end, nil
			}
			return 0, err
		}
		i = s.pos + off
	}
}

// skipPast consumes input up to and including delim, without growing the
// buffer however long the skipped run is.
func (s *scanner) skipPast(delim, what string) error {
	for {
		if i := bytes.Index(s.buf[s.pos:s.end], []byte(delim)); i >= 0 {
			s.pos += i + len(delim)
			return nil
		}
		if keep := s.end - (len(delim) - 1); keep > s.pos {
			s.pos = keep
		}
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return s.malformed("unterminated %s", what)
			}
			return err
		}
	}
}

// textChunk returns character data up to the next '<' or the end of the
// buffer. A chunk never ends inside an entity reference, so chunks can be
// unescaped one at a time.
func (s *scanner) textChunk() (tokKind, error) {
	for {
		rest := s.buf[s.pos:s.end]
		if i := bytes.IndexByte(rest, '<'); i >= 0 {
			s.text, s.cdata = rest[:i], false
			s.pos += i
			return tokText, nil
		}
		n := len(rest)
		if s.rerr == nil {
			if j := bytes.LastIndexByte(rest, '&'); j >= 0 && n-j < maxRefLen && bytes.IndexByte(rest[j:], ';') < 0 {
				n = j
			}
		}
		if n > 0 {
			s.text, s.cdata = rest[:n], false
			s.pos += n
			return tokText, nil
		}
		if err := s.fill(); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
}

// cdataChunk returns the content of a CDATA section, in chunks.
func (s *scanner) cdataChunk() (tokKind, error) {
	for {
		rest := s.buf[s.pos:s.end]
		if i := bytes.Index(rest, []byte("]]>")); i >= 0 {
			s.text, s.cdata = rest[:i], true
			s.pos += i + 3
			s.inCDATA = false
			return tokText, nil
		}
		if n := len(rest) - 2; n > 0 {
			s.text, s.cdata = rest[:n], true
			s.pos += n
			return tokText, nil
		}
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, s.malformed("unterminated CDATA section")
			}
			return 0, err
		}
	}
}

func (s *scanner) startTag() (tokKind, error) {
	for {
		n, err := s.parseStart(s.buf[s.pos:s.end])
		if err != nil {
			return 0, err
		}
		if n > 0 && isSchema(s.local) {
			// Some reporters wrap the report in an XML Schema
			// <xs:schema> element, or put one inside it, often never
			// closed. No report element is called schema: its tags are
			// passed over as if absent, and what they enclose is read.
			s.pos += n
			s.afterTag = true
			s.schemaTags++
			return tokNone, nil
		}
		if n > 0 {
			if s.depth() >= s.maxDepth {
				return 0, &Refusal{Reason: TooDeep, Detail: fmt.Sprintf("elements nest deeper than %d at byte %d", s.maxDepth, s.offset())}
			}
			s.pos += n
			s.stackOff = append(s.stackOff, len(s.stack))
			s.stack = append(s.stack, s.name...)
			s.pendingEnd = s.selfClosing
			s.afterTag = true
			s.tags++
			return tokStart, nil
		}
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, s.malformed("unexpected end of document in a tag")
			}
			return 0, err
		}
	}
}

// parseStart parses the start tag at the beginning of b. It returns the
// tag's length, or 0 if b ends before the tag does.
func (s *scanner) parseStart(b []byte) (int, error) {
	i := 1
	if i >= len(b) {
		return 0, nil
	}
	if !isNameStart(b[i]) {
		return 0, s.malformed("invalid character %q after '<'", b[i])
	}
	colon := 0
	for i < len(b) && isNameChar(b[i]) {
		if b[i] == ':' {
			colon = i
		}
		i++
	}
	s.name = b[1:i]
	s.local = b[colon+1 : i]
	root := s.depth() == 0
	if root {
		s.rootAttrs = s.rootAttrs[:0]
	}
	for {
		sp := i
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return 0, nil
		}
		switch c := b[i]; {
		case c == '>':
			s.selfClosing = false
			return i + 1, nil
		case c == '/':
			if i+1 >= len(b) {
				return 0, nil
			}
			if b[i+1] != '>' {
				return 0, s.malformed("invalid character %q in tag <%s>", b[i+1], s.name)
			}
			s.selfClosing = true
			return i + 2, nil
		case i == sp || !isNameStart(c):
			return 0, s.malformed("invalid character %q in tag <%s>", c, s.name)
		}
		ns := i
		for i < len(b) && isNameChar(b[i]) {
			i++
		}
		ne := i
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return 0, nil
		}
		if b[i] != '=' {
			return 0, s.malformed("attribute %s without a value in tag <%s>", b[ns:ne], s.name)
		}
		i++
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return 0, nil
		}
		q := b[i]
		if q != '"' && q != '\'' {
			return 0, s.malformed("unquoted attribute %s in tag <%s>", b[ns:ne], s.name)
		}
		j := bytes.IndexByte(b[i+1:], q)
		if j < 0 {
			return 0, nil
		}
		val := b[i+1 : i+1+j]
		if bytes.IndexByte(val, '<') >= 0 {
			return 0, s.malformed("'<' in attribute %s of tag <%s>", b[ns:ne], s.name)
		}
		if root && len(s.rootAttrs) < 16 {
			s.rootAttrs = append(s.rootAttrs, attr{string(b[ns:ne]), string(val)})
		}
		i += j + 2
	}
}

func (s *scanner) endTag() (tokKind, error) {
	for {
		b := s.buf[s.pos:s.end]
		i := 2
		for i < len(b) && isNameChar(b[i]) {
			i++
		}
		name := b[2:i]
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			if err := s.fill(); err != nil {
				if errors.Is(err, io.EOF) {
					return 0, s.malformed("unexpected end of document in an end tag")
				}
				return 0, err
			}
			continue
		}
		if b[i] != '>' || len(name) == 0 {
			return 0, s.malformed("invalid end tag")
		}
		if local := name[bytes.LastIndexByte(name, ':')+1:]; isSchema(local) {
			s.pos += i + 1
			s.afterTag = true
			s.schemaTags++
			return tokNone, nil
		}
		if s.depth() == 0 {
			return 0, s.malformed("end tag </%s> without a start tag", name)
		}
		if !bytes.Equal(name, s.top()) {
			return 0, s.malformed("end tag </%s> does not close <%s>", name, s.top())
		}
		s.pos += i + 1
		s.pop()
		s.afterTag = true
		s.tags++
		return tokEnd, nil
	}
}

// isSchema tells the local name of the XML Schema root element.
func isSchema(local []byte) bool { return string(local) == "schema" }

// top is the name of the innermost open element.
func (s *scanner) top() []byte { return s.stack[s.stackOff[len(s.stackOff)-1]:] }

// pop closes the innermost element, leaving its name in name. local is
// not set: nothing looks at the local name of an end tag.
func (s *scanner) pop() {
	o := s.stackOff[len(s.stackOff)-1]
	s.name = s.stack[o:]
	s.local = nil
	s.stack = s.stack[:o]
	s.stackOff = s.stackOff[:len(s.stackOff)-1]
}

var nameStart, nameChar [256]bool

func init() {
	for c := 0; c < 256; c++ {
		start := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || c >= 0x80
		nameStart[c] = start
		nameChar[c] = start || c >= '0' && c <= '9' || c == '-' || c == '.'
	}
}

func isNameStart(c byte) bool { return nameStart[c] }
func isNameChar(c byte) bool  { return nameChar[c] }
func isSpace(c byte) bool     { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func allSpace(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}
