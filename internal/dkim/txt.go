package dkim

// maxCharString is the longest character-string of a TXT record (RFC 1035
// §3.3.14: a length octet and up to 255 octets).
const maxCharString = 255

// SplitTXT cuts a TXT value into the character-strings of one TXT record,
// each at most 255 bytes, in order. A verifier joins them without separators
// (RFC 6376 §3.6.2.2), so any cut point is as good as another; a 4096-bit
// RSA key record of about 740 bytes becomes three strings. The empty value
// gives one empty string, since a TXT record has at least one.
//
// The strings are raw bytes, not escaped for a zone file or for a DNS
// library that reads presentation format.
func SplitTXT(s string) []string {
	if s == "" {
		return []string{""}
	}
	out := make([]string, 0, (len(s)+maxCharString-1)/maxCharString)
	for len(s) > maxCharString {
		out = append(out, s[:maxCharString])
		s = s[maxCharString:]
	}
	return append(out, s)
}
