package domain

import (
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/rampartmail/rampart/internal/apperr"
)

// idnaProfile converts owner input to the ASCII (A-label) form: it maps
// Unicode case and width, checks the IDNA 2008 rules and the LDH rule for
// ASCII labels, and refuses underscores and other non-hostname bytes.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.ValidateLabels(true),
	idna.StrictDomainName(true),
	idna.VerifyDNSLength(true),
	idna.Transitional(false),
)

// maxNameLen keeps the ownership proof's name, "_rampart." plus the name
// (longer than "_dmarc." plus the name), within the 253-octet limit: a name
// whose proof cannot be looked up could never be verified.
const maxNameLen = 253 - len(proofLabel+".")

// NormalizeName turns owner input into the stored form of a domain name:
// IDNA to ASCII, lower case, no trailing dot. The name must be a registrable
// domain (one label under a public suffix) or a name below one; public
// suffixes themselves and names under unknown top-level domains are refused.
func NormalizeName(input string) (string, error) {
	s := strings.TrimSpace(input)
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", apperr.Invalid("name", "a domain name is required")
	}
	ascii, err := idnaProfile.ToASCII(s)
	if err != nil {
		return "", apperr.Invalid("name", "%q is not a valid domain name: %v", input, err)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > maxNameLen {
		return "", apperr.Invalid("name", "%q is too long: at most %d octets, so that _rampart.<name> and _dmarc.<name> fit in DNS", input, maxNameLen)
	}
	if !strings.Contains(ascii, ".") {
		return "", apperr.Invalid("name", "%q is not a registrable domain name: it has a single label", input)
	}
	suffix, icann := publicsuffix.PublicSuffix(ascii)
	if !icann && !strings.Contains(suffix, ".") {
		return "", apperr.Invalid("name", "%q is not under a known top-level domain", input)
	}
	if suffix == ascii {
		return "", apperr.Invalid("name", "%q is a public suffix, not a registrable domain name", input)
	}
	return ascii, nil
}

// UnicodeName returns the display (U-label) form of a stored name.
func UnicodeName(ascii string) string {
	u, err := idna.Display.ToUnicode(ascii)
	if err != nil {
		return ascii
	}
	return u
}
