package ingest

import (
	"bufio"
	"bytes"
	"mime"
	"strings"
	"unicode"

	"github.com/emersion/go-message/textproto"
)

// MailHeaders are what names a mail message for a person reading why it
// was not stored: a mail has no file name. They come from the sender and
// are untrusted: [ParseMailHeaders] bounds and cleans them.
type MailHeaders struct {
	From, Subject, MessageID string
}

// The bounds of ParseMailHeaders: the header is looked for in the first
// 64 KiB (a report's header is a few KiB; the rest is its body), and each
// value kept is at most 255 bytes, as a file name is.
const (
	maxMailHeaderBytes = 64 << 10
	maxMailHeaderValue = 255
)

// ParseMailHeaders reads the From, Subject and Message-ID of a mail
// message, decoding RFC 2047 encoded words. Each value is valid UTF-8
// without control characters (NULs and line breaks included), its spaces
// collapsed, at most 255 bytes; a missing or unreadable field is "". It
// reads at most the first 64 KiB of raw and never fails: a header broken
// part way keeps the fields before the break.
func ParseMailHeaders(raw []byte) MailHeaders {
	if len(raw) > maxMailHeaderBytes {
		raw = raw[:maxMailHeaderBytes]
	}
	// An mbox export starts with a "From " line that is not a header.
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	return MailHeaders{
		From:      cleanHeader(decodeWords(h.Get("From"))),
		Subject:   cleanHeader(decodeWords(h.Get("Subject"))),
		MessageID: cleanHeader(h.Get("Message-Id")),
	}
}

// decodeWords decodes RFC 2047 encoded words in the charsets the standard
// library knows (UTF-8, ISO-8859-1, US-ASCII); others are left encoded.
func decodeWords(s string) string {
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// cleanHeader makes an untrusted header value fit to store and show.
func cleanHeader(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == 0, unicode.Is(unicode.Cf, r):
			// NULs, and format characters such as bidi overrides that
			// would make a subject read as something else.
			return -1
		case unicode.IsControl(r), unicode.IsSpace(r):
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	return clip(s, maxMailHeaderValue)
}
