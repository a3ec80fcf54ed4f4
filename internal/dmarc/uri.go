package dmarc

import (
	"strconv"
	"strings"
)

// URI is a DMARC reporting URI (RFC 7489 §6.2), such as
// mailto:dmarc@example.com!10m.
type URI struct {
	// Address is the mailto: URI, with the scheme in lowercase. Any "," or
	// "!" in it must be percent-encoded (%2C, %21).
	Address string
	// MaxSize is the optional size limit that followed "!": digits with an
	// optional lowercase unit k, m, g or t; "" means no limit.
	MaxSize string
}

// ParseURI parses one reporting URI, ignoring spaces and tabs around it.
//
// RFC 7489 allows any URI scheme, but report senders only send reports by
// mail, so only mailto: URIs with a plausible local@domain address are
// accepted: an http: address would be published and silently never used.
func ParseURI(s string) (URI, error) {
	s = trimWSP(s)
	if s == "" {
		return URI{}, &SyntaxError{Reason: "URI is empty"}
	}
	// "!" inside the address must be encoded, so the last one, if any,
	// starts the size; an earlier one is reported by parseAddress.
	addr, size, hasSize := s, "", false
	if i := strings.LastIndexByte(s, '!'); i >= 0 {
		addr, size, hasSize = s[:i], s[i+1:], true
	}
	var u URI
	var err error
	if u.Address, err = parseAddress(addr); err != nil {
		return URI{}, err
	}
	if hasSize {
		if u.MaxSize, err = parseSize(size, s); err != nil {
			return URI{}, err
		}
	}
	return u, nil
}

// String returns the URI as it appears in a record, with the size suffix if
// one is set.
func (u URI) String() string {
	if u.MaxSize == "" {
		return u.Address
	}
	return u.Address + "!" + u.MaxSize
}

// parseURIList parses the value of rua or ruf: URIs separated by commas, with
// optional whitespace around the commas (RFC 7489 §6.4).
func parseURIList(s string) ([]URI, error) {
	parts := strings.Split(s, ",")
	uris := make([]URI, 0, len(parts))
	for _, p := range parts {
		if trimWSP(p) == "" {
			return nil, &SyntaxError{Value: s, Reason: "has an empty URI in its list; remove the extra comma"}
		}
		u, err := ParseURI(p)
		if err != nil {
			return nil, err
		}
		uris = append(uris, u)
	}
	return uris, nil
}

func joinURIs(uris []URI) string {
	s := make([]string, len(uris))
	for i, u := range uris {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

// checkURIs is Validate's check of rua or ruf: every URI must be what
// ParseURI would return for its String.
func checkURIs(tag string, uris []URI) error {
	for _, u := range uris {
		a, err := parseAddress(u.Address)
		if err != nil {
			return withTag(tag, err)
		}
		if err := notCanonical(tag, u.Address, a); err != nil {
			return err
		}
		if u.MaxSize == "" {
			continue
		}
		size, err := parseSize(u.MaxSize, u.String())
		if err != nil {
			return withTag(tag, err)
		}
		if err := notCanonical(tag, u.MaxSize, size); err != nil {
			return err
		}
	}
	return nil
}

// parseSize parses a size limit, returning it with a lowercase unit. uri is
// the whole URI, for the error message.
func parseSize(size, uri string) (string, error) {
	digits := strings.TrimRight(size, "kmgtKMGT")
	if isDigits(digits) && len(size)-len(digits) <= 1 {
		return lowerASCII(size), nil
	}
	return "", &SyntaxError{Value: uri, Reason: "has an invalid size limit " + strconv.Quote(size) +
		" after \"!\" (want digits with an optional unit k, m, g or t)"}
}

const mailto = "mailto:"

// parseAddress checks a mailto: URI without size suffix and returns it with
// the scheme lowercased.
func parseAddress(addr string) (string, error) {
	if addr == "" {
		return "", &SyntaxError{Reason: "URI has an empty address"}
	}
	if len(addr) < len(mailto) || lowerASCII(addr[:len(mailto)]) != mailto {
		reason := "is not a mailto: URI; RFC 7489 allows other schemes, but reports are only sent by mail"
		if !strings.Contains(addr, ":") && strings.Contains(addr, "@") {
			reason = "is not a mailto: URI; did you mean " + strconv.Quote(mailto+addr) + "?"
		}
		return "", &SyntaxError{Value: addr, Reason: reason}
	}
	rest := addr[len(mailto):]
	for _, c := range []string{",", "!"} {
		if strings.Contains(rest, c) {
			enc := "%2C"
			if c == "!" {
				enc = "%21"
			}
			return "", &SyntaxError{Value: addr, Reason: "contains " + strconv.Quote(c) + ", which must be percent-encoded as " + enc}
		}
	}
	local, domain, ok := strings.Cut(rest, "@")
	if !ok || !isLocalPart(local) || !isDomain(domain) {
		return "", &SyntaxError{Value: addr, Reason: "is not a plausible mail address (want mailto:local@domain.example)"}
	}
	return mailto + rest, nil
}

// isLocalPart accepts the characters a mailto: local part may carry without
// percent-encoding (RFC 6068 §2, RFC 3986) and well-formed %XX escapes. "?"
// (header fields) and "@" are left out on purpose.
func isLocalPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c), isDigit(c), strings.IndexByte("-._~$&'()*+=:/", c) >= 0:
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

// isDomain accepts a host name with at least two labels of letters, digits
// and inner hyphens. Address literals and trailing dots are not plausible
// report destinations.
func isDomain(s string) bool {
	labels := strings.Split(s, ".")
	if len(s) > 253 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) > 63 || !isKeyword(l) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
