package dkim

import (
	"fmt"
	"slices"
	"strings"
)

// tag is one tag=value pair of a tag list, with the name in lowercase and
// the value trimmed.
type tag struct {
	name, value string
}

// parseTagList splits a key record into its tags (RFC 6376 §3.2). Empty
// tag-specs, as in ";;" or a trailing ";", are skipped. Tag names are
// case-sensitive in the RFC; they are read case-insensitively here because
// the record is rewritten in canonical lowercase anyway.
func parseTagList(s string) ([]tag, error) {
	var tags []tag
	for part := range strings.SplitSeq(s, ";") {
		part = trimFWS(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			if len(part) > maxQuote {
				return nil, errorf("", nil, fmt.Sprintf("a part of %d characters is not a tag=value pair; is p= missing before the key?", len(part)))
			}
			return nil, errorf("", nil, fmt.Sprintf("%q is not a tag=value pair", part))
		}
		name = trimFWS(name)
		if !isTagName(name) {
			reason := fmt.Sprintf("%q is not a valid tag name", shorten(name))
			if strings.ContainsAny(name, " \t\r\n") {
				reason += "; paste only the TXT value, not the record's name and type"
			}
			return nil, errorf("", nil, reason)
		}
		name = strings.ToLower(name)
		for _, t := range tags {
			if t.name == name {
				return nil, errorf(name, nil, "the tag occurs more than once, which makes the record invalid (RFC 6376 §3.2)")
			}
		}
		tags = append(tags, tag{name: name, value: trimFWS(value)})
	}
	if len(tags) == 0 {
		return nil, errorf("", nil, "the record has no tags")
	}
	return tags, nil
}

// isTagName reports whether s is ALPHA *(ALPHA / DIGIT / "_").
func isTagName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// parseList reads a colon-separated list of keywords, lowercased and without
// duplicates. An empty value gives nil.
func parseList(name, value string, allowed []string, what, hint string) ([]string, error) {
	if value == "" {
		return nil, nil
	}
	var out []string
	for item := range strings.SplitSeq(value, ":") {
		item = strings.ToLower(trimFWS(item))
		if item == "" {
			return nil, errorf(name, nil, "the list has an empty item")
		}
		if !slices.Contains(allowed, item) {
			return nil, errorf(name, nil, fmt.Sprintf("%s %q is not supported: %s", what, shorten(item), hint))
		}
		if !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out, nil
}

// parseNotes checks the n= value, a qp-section (RFC 6376 §3.6.1), and
// collapses its folding whitespace to single spaces. Double quotes and
// backslashes are refused although the grammar allows them, because DNS
// presentation formats give them meaning; quoted-printable writes them as
// =22 and =5C.
func parseNotes(value string) (string, error) {
	fields := strings.FieldsFunc(value, isFWS)
	for _, f := range fields {
		for i := 0; i < len(f); i++ {
			c := f[i]
			switch {
			case c == '"' || c == '\\':
				return "", errorf("n", nil, fmt.Sprintf("the notes contain %s; write it in quoted-printable (=22 for \", =5C for \\)", describeByte(c)))
			case c < 0x21 || c > 0x7e:
				return "", errorf("n", nil, fmt.Sprintf("the notes contain %s; only printable ASCII is allowed, other characters go in quoted-printable", describeByte(c)))
			}
		}
	}
	return strings.Join(fields, " "), nil
}

// isTagList reports whether text is a tag list rather than a bare base64
// key. Base64 never contains ';', and its '=' is padding at the end, while
// every DKIM key tag name is a single letter.
func isTagList(text string) bool {
	if strings.Contains(text, ";") {
		return true
	}
	name, _, ok := strings.Cut(text, "=")
	name = trimFWS(name)
	return ok && len(name) == 1 && isAlpha(name[0])
}

// unpaste undoes what DNS tools do to a TXT value: split into quoted
// character-strings, wrapped in a zone-file line, or escaped with
// backslashes. If the text has quotes, the result is the concatenation of
// the quoted strings; text outside them (an owner name, class and type,
// parentheses, a ";" comment) is dropped, but must not look like part of
// the record.
func unpaste(s string) (string, error) {
	if !strings.Contains(s, `"`) {
		return unescape(s)
	}
	var in, out strings.Builder
	quoted, sawQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			// An escaped byte, such as \", is never a delimiter.
			b := &out
			if quoted {
				b = &in
			}
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
		case c == '"':
			quoted, sawQuote = !quoted, true
		case quoted:
			in.WriteByte(c)
		case c == ';':
			// A zone-file comment runs to the end of the line; a ";"
			// followed by more quoted text on its line is not one.
			end := len(s)
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				end = i + j
			}
			if strings.Contains(s[i:end], `"`) {
				out.WriteByte(c)
			} else {
				i = end
			}
		default:
			out.WriteByte(c)
		}
	}
	if !sawQuote {
		return unescape(s)
	}
	if quoted {
		return "", errorf("", nil, "a quotation mark is not closed")
	}
	if strings.Contains(out.String(), "=") {
		return "", errorf("", nil, "the text mixes quoted and unquoted parts of the record; paste the TXT value either all in quotes or without them")
	}
	return unescape(in.String())
}

// unescape resolves the backslash escapes of DNS presentation format
// (RFC 1035 §5.1): \X is X, and \DDD is the byte with decimal value DDD.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return "", errorf("", nil, "the text ends in a lone backslash")
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v > 255 {
				return "", errorf("", nil, fmt.Sprintf("the escape \\%s is not a byte value", s[i+1:i+4]))
			}
			b.WriteByte(byte(v)) //nolint:gosec // G115: v <= 255, checked above
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String(), nil
}

// isFWS reports whether r is folding whitespace as DKIM allows it between
// and inside tag values: space, tab, CR and LF.
func isFWS(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

func trimFWS(s string) string { return strings.TrimFunc(s, isFWS) }

// stripSpace removes all whitespace, as RFC 6376 §3.6.1 allows FWS anywhere
// inside the base64 of p=.
func stripSpace(s string) string {
	if !strings.ContainsFunc(s, isFWS) {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, isFWS), "")
}

// maxQuote is the most of the input an error message quotes.
const maxQuote = 40

// shorten cuts s for quoting in an error message.
func shorten(s string) string {
	if len(s) <= maxQuote {
		return s
	}
	return s[:maxQuote] + "..."
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
