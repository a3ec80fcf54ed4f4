// Package mbox splits an mbox file into its messages, one at a time, so
// that a mailbox of any size is read with one message in memory.
//
// Each message starts at a line beginning with "From " (the separator line,
// which is not part of the message) and runs to the next such line or the
// end of the input. Body lines that a writer escaped as ">From " (or, in the
// mboxrd variant, ">>From " and so on) lose one '>', and the blank line a
// writer puts between messages is dropped. Both LF and CRLF line endings
// are kept as they are.
package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

var separator = []byte("From ")

// IsMbox reports whether data, the beginning of a file, looks like an mbox:
// it starts with a "From " separator line. (A single e-mail message starts
// with a header field, and a header field name is followed by a colon.)
func IsMbox(data []byte) bool {
	return bytes.HasPrefix(data, separator)
}

// Message is one message of an mbox.
type Message struct {
	// Index is the message's position in the file, from 1.
	Index int
	// Separator is its "From " line, without the line ending.
	Separator string
	// Raw is the message. It is nil when TooLarge.
	Raw []byte
	// Size is the message's size, counted even when it is too large.
	Size int64
	// TooLarge says the message exceeded the reader's limit and was
	// skipped.
	TooLarge bool
}

// Reader reads the messages of an mbox.
type Reader struct {
	br      *bufio.Reader
	max     int64
	index   int
	started bool
	// atLineStart says the next byte read starts a line.
	atLineStart bool
	// next is the separator line that ends the current message and starts
	// the following one; nil at the end.
	next []byte
}

// NewReader returns a Reader that returns messages of at most max bytes
// (max <= 0: no limit) and skips larger ones. Memory holds one message
// (up to max) and a 64 KiB buffer, however long the lines are.
func NewReader(r io.Reader, max int64) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), max: max, atLineStart: true}
}

const (
	bufSize = 64 << 10
	// maxSeparator bounds the separator line kept in Message.Separator.
	maxSeparator = 1000
)

// ErrNotMbox is returned by the first Next when the input does not start
// with a separator line.
var ErrNotMbox = errors.New("mbox: the input does not start with a \"From \" line")

// Next returns the next message, or io.EOF after the last one.
func (r *Reader) Next() (Message, error) {
	if !r.started {
		r.started = true
		chunk, err := r.chunk()
		if err != nil && !errors.Is(err, io.EOF) {
			return Message{}, err
		}
		if !bytes.HasPrefix(chunk, separator) {
			return Message{}, ErrNotMbox
		}
		if err := r.separatorLine(chunk); err != nil {
			return Message{}, err
		}
	}
	if r.next == nil {
		return Message{}, io.EOF
	}
	r.index++
	m := Message{Index: r.index, Separator: string(trimEOL(r.next))}
	r.next = nil
	buf := []byte{}
	for {
		lineStart := r.atLineStart
		chunk, err := r.chunk()
		if err != nil && !errors.Is(err, io.EOF) {
			return Message{}, err
		}
		if lineStart && bytes.HasPrefix(chunk, separator) {
			if err := r.separatorLine(chunk); err != nil {
				return Message{}, err
			}
			break
		}
		if lineStart {
			chunk = unescape(chunk)
		}
		m.Size += int64(len(chunk))
		// +2: the blank line before the next separator, dropped below.
		if r.max > 0 && m.Size > r.max+2 {
			m.TooLarge, buf = true, nil
		}
		if !m.TooLarge {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if !m.TooLarge {
		buf = dropSeparatorBlank(buf)
		m.Size = int64(len(buf))
		if r.max > 0 && m.Size > r.max {
			m.TooLarge, buf = true, nil
		}
	}
	m.Raw = buf
	return m, nil
}

// chunk reads up to the end of the line or the buffer's size, whichever
// comes first; the bytes are valid until the next read. It returns io.EOF
// with the last bytes of the input.
func (r *Reader) chunk() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		err = nil
	}
	r.atLineStart = len(b) > 0 && b[len(b)-1] == '\n'
	return b, err
}

// separatorLine records the separator line that starts with first and
// skips the rest of it.
func (r *Reader) separatorLine(first []byte) error {
	r.next = append([]byte(nil), first[:min(len(first), maxSeparator)]...)
	for !r.atLineStart {
		chunk, err := r.chunk()
		if len(r.next) < maxSeparator {
			r.next = append(r.next, chunk[:min(len(chunk), maxSeparator-len(r.next))]...)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unescape removes one '>' from a line of the form >+"From ".
func unescape(line []byte) []byte {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	if i > 0 && bytes.HasPrefix(line[i:], separator) {
		return line[1:]
	}
	return line
}

// dropSeparatorBlank removes the blank line that separates a message from
// the next one, when there is one.
func dropSeparatorBlank(b []byte) []byte {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n\r\n")):
		return b[:len(b)-2]
	case bytes.HasSuffix(b, []byte("\n\n")):
		return b[:len(b)-1]
	case bytes.Equal(b, []byte("\r\n")), bytes.Equal(b, []byte("\n")):
		return b[:0]
	}
	return b
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
