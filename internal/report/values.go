package report

import (
	"bytes"
	"math"
	"net/netip"
	"strconv"
	"unicode/utf8"
)

// maxRefLen bounds an entity or character reference, '&' and ';' included.
// Longer candidates are not references and are kept literally.
const maxRefLen = 32

// appendUnescaped appends src to dst, replacing entity and character
// references. An '&' that starts no valid reference is kept literally and
// reported through bad.
func appendUnescaped(dst, src []byte) (out []byte, bad bool) {
	for {
		i := bytes.IndexByte(src, '&')
		if i < 0 {
			return append(dst, src...), bad
		}
		dst = append(dst, src[:i]...)
		src = src[i:]
		j := bytes.IndexByte(src[:min(len(src), maxRefLen)], ';')
		if j < 0 {
			dst = append(dst, '&')
			src = src[1:]
			bad = true
			continue
		}
		ref := src[1:j]
		switch string(ref) {
		case "lt":
			dst = append(dst, '<')
		case "gt":
			dst = append(dst, '>')
		case "amp":
			dst = append(dst, '&')
		case "apos":
			dst = append(dst, '\'')
		case "quot":
			dst = append(dst, '"')
		default:
			r, ok := charRef(ref)
			if !ok {
				dst = append(dst, '&')
				src = src[1:]
				bad = true
				continue
			}
			if !isXMLChar(r) {
				r = utf8.RuneError
				bad = true
			}
			dst = utf8.AppendRune(dst, r)
		}
		src = src[j+1:]
	}
}

// charRef parses the inside of a character reference: "#65" or "#x41".
func charRef(ref []byte) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	base, digits := 10, ref[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range digits {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		v = v*uint64(base) + d
		if v > utf8.MaxRune {
			return utf8.RuneError, true
		}
	}
	return rune(v), true
}

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r < 0x20:
		return false
	case r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF, r > utf8.MaxRune:
		return false
	}
	return true
}

// cleanText returns b as valid UTF-8 without characters XML forbids,
// replacing offenders by U+FFFD; changed reports a replacement. With
// latin1, bytes from 0x80 are read as Windows-1252 characters instead of
// UTF-8. The result may alias b or tmp.
func cleanText(b, tmp []byte, latin1 bool) (out, newTmp []byte, changed bool) {
	i := 0
	for i < len(b) {
		c := b[i]
		if c >= 0x80 || c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			break
		}
		i++
	}
	if i == len(b) {
		return b, tmp, false
	}
	tmp = append(tmp[:0], b[:i]...)
	for i < len(b) {
		c := b[i]
		if c < 0x80 {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				tmp = utf8.AppendRune(tmp, utf8.RuneError)
				changed = true
			} else {
				tmp = append(tmp, c)
			}
			i++
			continue
		}
		if latin1 {
			r := rune(c)
			if c < 0xA0 {
				r = cp1252[c-0x80]
			}
			tmp = utf8.AppendRune(tmp, r)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && size == 1) || !isXMLChar(r) {
			tmp = utf8.AppendRune(tmp, utf8.RuneError)
			changed = true
		} else {
			tmp = append(tmp, b[i:i+size]...)
		}
		i += size
	}
	return tmp, tmp, changed
}

// cp1252 maps Windows-1252 bytes 0x80..0x9F; unassigned ones become U+FFFD.
var cp1252 = [32]rune{
	0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
	0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
}

// trimSpace trims XML white space.
func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

func trimLeftSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// lowerASCII lower-cases b in place and reports whether it changed.
func lowerASCII(b []byte) bool {
	changed := false
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
			changed = true
		}
	}
	return changed
}

// parseUint parses a non-negative decimal integer that fits an int64.
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-9)/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseIP parses an IPv4 or IPv6 address without zone. The common dotted
// IPv4 form is parsed without allocating.
func parseIP(b []byte) (netip.Addr, bool) {
	var v4 [4]byte
	octet, n, digits := 0, 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && octet == 0 { // leading zero: let netip refuse it
				goto slow
			}
			octet = octet*10 + int(c-'0')
			digits++
			if octet > 255 {
				goto slow
			}
		case c == '.' && digits > 0 && n < 3:
			v4[n] = byte(octet) //nolint:gosec // G115: octet <= 255, checked above
			n++
			octet, digits = 0, 0
		default:
			goto slow
		}
	}
	if n == 3 && digits > 0 {
		v4[3] = byte(octet)
		return netip.AddrFrom4(v4), true
	}
slow:
	if bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// interner returns one string per distinct value, so the domains, selectors
// and results repeated across records are allocated once. It stops adding
// entries when full, so a hostile report cannot grow it without bound.
type interner struct{ m map[string]string }

const (
	internMaxEntries = 1 << 14
	internMaxLen     = 128
)

func (in *interner) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= internMaxLen && len(in.m) < internMaxEntries {
		if in.m == nil {
			in.m = make(map[string]string, 256)
		}
		in.m[s] = s
	}
	return s
}

// carve copies tmp into arena and returns the copy with its capacity
// clipped, so that records share a few large allocations instead of one
// small one each, and appending to one record's slice cannot touch another's.
func carve[T any](arena *[]T, tmp []T) []T {
	if len(tmp) == 0 {
		return nil
	}
	if cap(*arena)-len(*arena) < len(tmp) {
		*arena = make([]T, 0, max(256, len(tmp)))
	}
	start := len(*arena)
	*arena = append(*arena, tmp...)
	return (*arena)[start:len(*arena):len(*arena)]
}

func quote(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}
