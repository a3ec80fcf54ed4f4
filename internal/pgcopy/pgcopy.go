// Package pgcopy writes PostgreSQL's binary COPY format straight from Go
// values: ingest's records and rollups, and the classifier's classes and
// summaries, are hundreds of thousands of rows for a large report.
package pgcopy

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The COPYs of a report's records and rollups are written in PostgreSQL's
// binary COPY format by the functions below, straight from the decoded
// values into the bytes sent, and handed to the connection as a reader
// (Rows). pgx's CopyFrom would box every value in an interface, plan
// its encoding for every row and ask the server for the columns' types
// first: for a 100,000-record report that was about a third of the Go
// side's CPU.
//
// Each value is its length (int32, -1 for NULL) and its binary form:
// uuid 16 bytes; integer, bigint big-endian; date days since 2000-01-01;
// boolean one byte; text and json their bytes; inet family, bits, is_cidr,
// address length, address; text[] a one-dimensional array of text.

// header starts a binary COPY stream: the signature, no flags, no
// header extension.
var header = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// EpochDay is PostgreSQL's epoch for dates, in days since the Unix one.
var EpochDay = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400

// PostgreSQL's address families for inet.
const (
	pgAFInet  = 2
	pgAFInet6 = 3
)

// TextOID is the type of text, for the elements of arrays.
const TextOID = 25

func appendInt16(b []byte, v int16) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) } //nolint:gosec // G115: the bits as they are

// AppendInt32 appends v big-endian.
func AppendInt32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) } //nolint:gosec // G115: the bits as they are

func appendInt64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) } //nolint:gosec // G115: the bits as they are

// Row starts a row of n values.
func Row(b []byte, n int) []byte { return appendInt16(b, int16(n)) } //nolint:gosec // G115: a table's columns

// Null writes a NULL.
func Null(b []byte) []byte { return AppendInt32(b, -1) }

// UUID writes a uuid.
func UUID(b []byte, u [16]byte) []byte { return append(AppendInt32(b, 16), u[:]...) }

// Int4 writes an integer.
func Int4(b []byte, v int32) []byte { return AppendInt32(AppendInt32(b, 4), v) }

// Int8 writes a bigint.
func Int8(b []byte, v int64) []byte { return appendInt64(AppendInt32(b, 8), v) }

// Bool writes a boolean.
func Bool(b []byte, v bool) []byte {
	b = AppendInt32(b, 1)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Date writes the date of t (a UTC midnight).
func Date(b []byte, t time.Time) []byte {
	return AppendInt32(AppendInt32(b, 4), int32(t.Unix()/86400-EpochDay)) //nolint:gosec // G115: dates of reports fit
}

// Text writes a text (or json) value.
func Text(b []byte, s string) []byte { return append(AppendInt32(b, int32(len(s))), s...) } //nolint:gosec // G115: values are bounded far below 2 GiB

// Inet writes an address as inet: an IPv4 address (not an IPv4-mapped
// IPv6 one) as IPv4, as pgx does.
func Inet(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		b = AppendInt32(b, 8)
		b = append(b, pgAFInet, 32, 0, 4)
		return append(b, v[:]...)
	}
	v := a.As16()
	b = AppendInt32(b, 20)
	b = append(b, pgAFInet6, 128, 0, 16)
	return append(b, v[:]...)
}

// BeginValue reserves a value's length, to be set by EndValue once the
// value is appended.
func BeginValue(b []byte) ([]byte, int) { return append(b, 0, 0, 0, 0), len(b) }

// EndValue sets the length of the value begun at at; an empty value
// becomes NULL when nullIfEmpty.
func EndValue(b []byte, at int, nullIfEmpty bool) []byte {
	n := len(b) - at - 4
	if n == 0 && nullIfEmpty {
		binary.BigEndian.PutUint32(b[at:], 0xffffffff)
		return b
	}
	binary.BigEndian.PutUint32(b[at:], uint32(n)) //nolint:gosec // G115: values are bounded far below 2 GiB
	return b
}

// Rows runs COPY table (columns) FROM STDIN in binary format in tx,
// with rows appending one row after another to a buffer until it returns
// false (or an error, which fails the COPY and is returned). It returns the
// number of rows copied.
func Rows(ctx context.Context, tx pgx.Tx, table string, columns []string, rows func(b []byte) ([]byte, bool, error)) (int64, error) {
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	sql := "COPY " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN (FORMAT binary)"
	r := &reader{rows: rows, buf: append(make([]byte, 0, chunk+4096), header...)}
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, r, sql)
	if r.err != nil {
		// The source failed: the COPY's error only says so.
		return 0, r.err
	}
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// chunk is how many bytes of rows reader encodes before handing
// them on.
const chunk = 64 << 10

// reader is a binary COPY stream, encoded as it is read.
type reader struct {
	rows func(b []byte) ([]byte, bool, error)
	buf  []byte
	off  int
	done bool
	err  error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		if r.done {
			if r.err != nil {
				return 0, fmt.Errorf("copy source: %w", r.err)
			}
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for !r.done && len(r.buf) < chunk {
			var more bool
			var err error
			if r.buf, more, err = r.rows(r.buf); err != nil {
				r.err, r.done = err, true
				return 0, fmt.Errorf("copy source: %w", err)
			}
			if !more {
				r.done = true
				r.buf = appendInt16(r.buf, -1)
			}
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// Bytea writes a bytea value; nil is NULL.
func Bytea(b, v []byte) []byte {
	if v == nil {
		return Null(b)
	}
	return append(AppendInt32(b, int32(len(v))), v...) //nolint:gosec // G115: values are bounded far below 2 GiB
}

// TextArray writes a one-dimensional text[] (an empty one for none).
func TextArray(b []byte, ss []string) []byte {
	b, at := BeginValue(b)
	if len(ss) == 0 {
		b = AppendInt32(b, 0) // no dimensions
		b = AppendInt32(b, 0) // no NULLs
		b = AppendInt32(b, TextOID)
		return EndValue(b, at, false)
	}
	b = AppendInt32(b, 1) // dimensions
	b = AppendInt32(b, 0) // no NULLs
	b = AppendInt32(b, TextOID)
	b = AppendInt32(b, int32(len(ss))) //nolint:gosec // G115: a row's list, far below 2^31
	b = AppendInt32(b, 1)              // lower bound
	for _, s := range ss {
		b = Text(b, s)
	}
	return EndValue(b, at, false)
}
