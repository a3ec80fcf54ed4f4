package dkim

import (
	"fmt"
	"strings"
)

// MaxSelectorLen is the longest selector ParseSelector accepts, in octets.
//
// RFC 6376 bounds a selector only by the DNS limit on the whole name
// <selector>._domainkey.<domain> (253 octets in text form). Selectors in use
// are short: "s1", "selector1", "google", a date, or a 32-character token,
// and the sending services that let one choose cap them at a label's length.
// A cap of one label's length (63) leaves 178 octets for the domain, so any
// accepted selector fits under any domain up to that length; [RecordName]
// checks the exact limit for a given domain.
const MaxSelectorLen = 63

// ParseSelector checks a DKIM selector and returns it in canonical form:
// lowercase, without surrounding whitespace.
//
// A selector is one or more dot-separated labels of letters, digits and
// hyphens, each 1 to 63 octets, not starting or ending with a hyphen (RFC
// 6376 §3.1, which uses the sub-domain syntax of RFC 5321). Underscores are
// refused. Internationalized selectors must be given in A-label form
// (xn--...). The whole selector is at most [MaxSelectorLen] octets.
func ParseSelector(s string) (string, error) {
	sel := strings.ToLower(strings.TrimSpace(s))
	switch {
	case sel == "":
		return "", errorf("", nil, "a selector is required")
	case strings.Contains(sel, "_domainkey"):
		return "", errorf("", nil, fmt.Sprintf("selector %q: give only the selector, the part before ._domainkey", shorten(s)))
	case len(sel) > MaxSelectorLen:
		return "", errorf("", nil, fmt.Sprintf("selector %q is %d octets long; at most %d are allowed", shorten(s), len(sel), MaxSelectorLen))
	}
	for label := range strings.SplitSeq(sel, ".") {
		if reason := checkLabel(label, false); reason != "" {
			return "", errorf("", nil, fmt.Sprintf("selector %q: %s", shorten(s), reason))
		}
	}
	return sel, nil
}

// RecordName returns the name a key record for selector is published at,
// <selector>._domainkey.<domain>, and checks that it fits the 253-octet
// limit on domain names. The selector is checked with [ParseSelector]; the
// domain is expected in the stored form (lowercase, no trailing dot) and is
// not checked further.
func RecordName(selector, domain string) (string, error) {
	sel, err := ParseSelector(selector)
	if err != nil {
		return "", err
	}
	if domain == "" {
		return "", errorf("", nil, "a domain is required")
	}
	name := sel + "._domainkey." + domain
	if len(name) > 253 {
		return "", errorf("", nil, fmt.Sprintf("selector %q is too long for %s: %s._domainkey.%s would be %d octets, over the 253 DNS allows", sel, domain, sel, domain, len(name)))
	}
	return name, nil
}

// ParseCNAMETarget checks the target of a CNAME published at a selector's
// name, for keys that a sending service rotates itself, and returns it in
// canonical form: lowercase, without a trailing dot.
//
// The target is a host name of at least two labels, at most 253 octets,
// whose labels are 1 to 63 octets of letters, digits, hyphens and
// underscores, not starting or ending with a hyphen. Underscores are allowed
// because such targets are themselves key records, as in
// selector1-example-com._domainkey.example.onmicrosoft.com. The last label
// must not be all digits, which refuses IP addresses.
func ParseCNAMETarget(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, ".")
	switch {
	case t == "":
		return "", errorf("", nil, "a CNAME target is required")
	case strings.Contains(t, "://"):
		return "", errorf("", nil, fmt.Sprintf("CNAME target %q: give a host name, not a URL", shorten(s)))
	case strings.Contains(t, "="):
		return "", errorf("", nil, fmt.Sprintf("CNAME target %q looks like a TXT record value; a CNAME target is a host name", shorten(s)))
	case len(t) > 253:
		return "", errorf("", nil, fmt.Sprintf("CNAME target %q is %d octets long; at most 253 are allowed", shorten(s), len(t)))
	}
	labels := strings.Split(t, ".")
	if len(labels) < 2 {
		return "", errorf("", nil, fmt.Sprintf("CNAME target %q is a single label; give the full host name", shorten(s)))
	}
	for _, label := range labels {
		if reason := checkLabel(label, true); reason != "" {
			return "", errorf("", nil, fmt.Sprintf("CNAME target %q: %s", shorten(s), reason))
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return "", errorf("", nil, fmt.Sprintf("CNAME target %q is not a host name: its last label is a number", shorten(s)))
	}
	return t, nil
}

// checkLabel checks one lowercase label and returns why it is invalid, or
// "" if it is valid.
func checkLabel(label string, underscore bool) string {
	switch {
	case label == "":
		return "it has an empty label"
	case len(label) > 63:
		return fmt.Sprintf("the label %q is longer than 63 octets", shorten(label))
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Sprintf("the label %q starts or ends with a hyphen", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case 'a' <= c && c <= 'z', isDigit(c), c == '-':
		case c == '_' && underscore:
		case c == '_':
			return "underscores are not allowed in a selector"
		case c >= 0x80:
			return "it has non-ASCII characters; give internationalized labels in their xn-- form"
		default:
			return fmt.Sprintf("%s is not allowed; use letters, digits and hyphens", describeByte(c))
		}
	}
	return ""
}
