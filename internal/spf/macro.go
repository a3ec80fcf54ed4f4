package spf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// MacroData holds the values that macros expand to (RFC 7208 §7.2).
type MacroData struct {
	// Sender is <sender>, the MAIL FROM address or postmaster@<HELO>: %{s}.
	// Its local-part is %{l} ("postmaster" when it has none) and its domain
	// %{o}.
	Sender string
	// Domain is <domain>, the domain whose record is evaluated: %{d}.
	Domain string
	// IP is the SMTP client address: %{i}, %{c} and %{v}. IPv4-mapped IPv6
	// addresses should be unmapped first.
	IP netip.Addr
	// HELO is the HELO/EHLO domain: %{h}.
	HELO string
	// Validated is the validated domain name of IP: %{p}. Empty expands to
	// "unknown".
	Validated string
	// Receiver is the domain of the receiving host: %{r}, explanations
	// only. Empty expands to "unknown".
	Receiver string
	// Now is the time: %{t}, explanations only. The zero value means the
	// current time.
	Now time.Time
}

// maxExpansion bounds what one macro-string may expand to, so that a long
// record full of %{s} cannot make the evaluator allocate megabytes. Domain
// names are at most 253 octets and explanations end up in one SMTP reply.
const maxExpansion = 4096

// maxDomain is the longest domain name, in presentation form without the
// trailing dot, that fits in a DNS message.
const maxDomain = 253

type macroKind uint8

const (
	macroDomain   macroKind = iota // domain-spec: letters s l o d i p v h
	macroModifier                  // unknown-modifier value: any macro-letter
	macroExplain                   // explain-string: any macro-letter, and spaces
)

var errTooLong = fmt.Errorf("macro expansion exceeds %d octets", maxExpansion)

// ExpandDomainSpec expands the macros of a domain-spec (RFC 7208 §7) and
// returns the domain name to query, without a trailing dot. If the result
// is longer than 253 octets, labels are removed from the left until it fits
// (RFC 7208 §7.3); if even the last label does not fit the result is "". It
// returns a syntax error if spec is not a valid domain-spec, and an error if
// the expansion exceeds 4096 octets.
func ExpandDomainSpec(spec string, d *MacroData) (string, error) {
	var b strings.Builder
	if err := expandMacros(&b, spec, macroDomain, d); err != nil {
		return "", err
	}
	return truncateDomain(strings.TrimSuffix(b.String(), ".")), nil
}

// ExpandExplanation expands the macros of explanation text, the TXT record
// an exp= modifier points at (RFC 7208 §6.2). The letters c, r and t are
// allowed here only, and so are spaces.
func ExpandExplanation(text string, d *MacroData) (string, error) {
	var b strings.Builder
	if err := expandMacros(&b, text, macroExplain, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// truncateDomain removes labels from the left of name until it is at most
// 253 octets long (RFC 7208 §7.3).
func truncateDomain(name string) string {
	for len(name) > maxDomain {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return ""
		}
		name = name[i+1:]
	}
	return name
}

// checkDomainSpec checks the syntax of a domain-spec (RFC 7208 §7.1):
//
//	domain-spec = macro-string domain-end
//	domain-end  = ( "." toplabel [ "." ] ) / macro-expand
func checkDomainSpec(spec string) error {
	return expandMacros(nil, spec, macroDomain, nil)
}

// checkMacroString checks the syntax of a macro-string.
func checkMacroString(s string, kind macroKind) error {
	return expandMacros(nil, s, kind, nil)
}

// macro is one parsed "%{...}" expression.
type macro struct {
	letter  byte // lowercase
	escape  bool // the letter was uppercase: URL-escape the value
	keep    int  // number of right-hand parts to keep, 0 for all
	reverse bool
	delims  string
}

// expandMacros scans s as a macro-string of the given kind and, when b is
// not nil, writes its expansion to b. With b nil it only checks syntax.
// For macroDomain it also checks that s ends in a domain-end.
func expandMacros(b *strings.Builder, s string, kind macroKind, d *MacroData) error {
	lastMacro := false // whether the last token was a macro-expand
	tail := 0          // start of the literal text after the last macro-expand
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			if c < 0x21 || c > 0x7e {
				if !(c == ' ' && kind == macroExplain) {
					return fmt.Errorf("invalid character %s at offset %d", quoteByte(c), i)
				}
			}
			j := i + 1
			for j < len(s) && s[j] != '%' && (s[j] >= 0x21 && s[j] <= 0x7e || s[j] == ' ' && kind == macroExplain) {
				j++
			}
			if b != nil {
				b.WriteString(s[i:j])
			}
			if lastMacro {
				tail, lastMacro = i, false
			}
			i = j
			continue
		}
		if i+1 >= len(s) {
			return fmt.Errorf("%q at the end: a %% must be followed by {, %%, _ or -", s[i:])
		}
		lastMacro = true
		switch s[i+1] {
		case '%':
			if b != nil {
				b.WriteByte('%')
			}
			i += 2
			continue
		case '_':
			if b != nil {
				b.WriteByte(' ')
			}
			i += 2
			continue
		case '-':
			if b != nil {
				b.WriteString("%20")
			}
			i += 2
			continue
		case '{':
		default:
			return fmt.Errorf("invalid macro %q: a %% must be followed by {, %%, _ or -", s[i:i+2])
		}
		m, n, err := parseMacro(s[i:], kind)
		if err != nil {
			return err
		}
		if b != nil {
			m.expand(b, d)
			if b.Len() > maxExpansion {
				return errTooLong
			}
		}
		i += n
	}
	if b != nil && b.Len() > maxExpansion {
		return errTooLong
	}
	if kind != macroDomain {
		return nil
	}
	if s == "" {
		return errors.New("empty domain")
	}
	if lastMacro {
		return nil
	}
	return checkDomainEnd(s, s[tail:])
}

// checkDomainEnd checks that lit, the literal text at the end of the
// domain-spec spec, is "." toplabel [ "." ].
func checkDomainEnd(spec, lit string) error {
	lit = strings.TrimSuffix(lit, ".")
	dot := strings.LastIndexByte(lit, '.')
	if dot < 0 {
		return fmt.Errorf("domain %q must end in a macro or in a dot and a top-level label, like .com", spec)
	}
	if top := lit[dot+1:]; !isTopLabel(top) {
		return fmt.Errorf("domain %q has an invalid top-level label %q: it must be letters, digits and inner hyphens, not all digits", spec, top)
	}
	return nil
}

// isTopLabel reports whether s matches RFC 7208's
//
//	toplabel = ( *alphanum ALPHA *alphanum ) /
//	           ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
func isTopLabel(s string) bool {
	if s == "" {
		return false
	}
	alpha, hyphen := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isAlpha(c):
			alpha = true
		case isDigit(c):
		case c == '-':
			hyphen = true
		default:
			return false
		}
	}
	if hyphen {
		return s[0] != '-' && s[len(s)-1] != '-'
	}
	return alpha
}

// parseMacro parses the "%{...}" at the start of s and returns it and its
// length.
//
//	macro-expand = "%{" macro-letter transformers *delimiter "}"
//	transformers = *DIGIT [ "r" ]
func parseMacro(s string, kind macroKind) (macro, int, error) {
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return macro{}, 0, fmt.Errorf("unterminated macro %q", s)
	}
	expr := s[2:end]
	bad := func(why string) (macro, int, error) {
		return macro{}, 0, fmt.Errorf("invalid macro %q: %s", s[:end+1], why)
	}
	if expr == "" {
		return bad("no macro letter")
	}
	var m macro
	letter := expr[0]
	m.letter = letter | 0x20
	m.escape = letter >= 'A' && letter <= 'Z'
	switch m.letter {
	case 's', 'l', 'o', 'd', 'i', 'p', 'v', 'h':
	case 'c', 'r', 't':
		if kind == macroDomain {
			return bad("the letters c, r and t are allowed in explanation text only")
		}
	default:
		return bad(fmt.Sprintf("unknown macro letter %s", quoteByte(letter)))
	}
	if !isAlpha(letter) {
		return bad(fmt.Sprintf("unknown macro letter %s", quoteByte(letter)))
	}
	i := 1
	if i < len(expr) && isDigit(expr[i]) {
		n := 0
		for i < len(expr) && isDigit(expr[i]) {
			// More parts than any value can have mean "all of them".
			n = min(n*10+int(expr[i]-'0'), 1<<16)
			i++
		}
		if n == 0 {
			return bad("the number of parts must not be zero")
		}
		m.keep = n
	}
	if i < len(expr) && expr[i]|0x20 == 'r' {
		m.reverse = true
		i++
	}
	for j := i; j < len(expr); j++ {
		if !strings.ContainsRune(".-+,/_=", rune(expr[j])) {
			return bad(fmt.Sprintf("invalid delimiter %s", quoteByte(expr[j])))
		}
	}
	m.delims = expr[i:]
	return m, end + 1, nil
}

// expand writes the value of m to b.
func (m macro) expand(b *strings.Builder, d *MacroData) {
	var scratch [72]byte // an IPv6 %{i} is 63 octets
	v := m.value(d, scratch[:0])
	if m.keep == 0 && !m.reverse && m.delims == "" {
		writeEscaped(b, v, m.escape)
		return
	}
	delims := m.delims
	if delims == "" {
		delims = "."
	}
	var partsBuf [16]string
	parts := partsBuf[:0]
	for {
		i := strings.IndexAny(v, delims)
		if i < 0 {
			parts = append(parts, v)
			break
		}
		parts = append(parts, v[:i])
		v = v[i+1:]
	}
	if m.reverse {
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	if m.keep > 0 && m.keep < len(parts) {
		parts = parts[len(parts)-m.keep:]
	}
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		writeEscaped(b, p, m.escape)
	}
}

// value returns the unescaped, untransformed value of the macro letter,
// using buf for values that have to be built.
func (m macro) value(d *MacroData, buf []byte) string {
	if d == nil {
		d = &MacroData{}
	}
	switch m.letter {
	case 's':
		return d.Sender
	case 'l':
		local, _ := splitSender(d.Sender)
		return local
	case 'o':
		_, domain := splitSender(d.Sender)
		return domain
	case 'd':
		return d.Domain
	case 'i':
		return string(appendDottedIP(buf, d.IP))
	case 'c':
		if !d.IP.IsValid() {
			return ""
		}
		return d.IP.String()
	case 'p':
		if d.Validated == "" {
			return "unknown"
		}
		return d.Validated
	case 'v':
		if d.IP.Is6() {
			return "ip6"
		}
		return "in-addr"
	case 'h':
		return d.HELO
	case 'r':
		if d.Receiver == "" {
			return "unknown"
		}
		return d.Receiver
	case 't':
		now := d.Now
		if now.IsZero() {
			now = time.Now()
		}
		return strconv.FormatInt(now.Unix(), 10)
	}
	return ""
}

// splitSender splits a sender into local-part and domain. A sender
// without a local-part has local-part "postmaster" (RFC 7208 §4.3).
func splitSender(sender string) (local, domain string) {
	i := strings.LastIndexByte(sender, '@')
	if i < 0 {
		return "postmaster", sender
	}
	local, domain = sender[:i], sender[i+1:]
	if local == "" {
		local = "postmaster"
	}
	return local, domain
}

// appendDottedIP appends the %{i} form of ip: dotted quad for IPv4, 32
// dot-separated nibbles for IPv6 (RFC 7208 §7.3).
func appendDottedIP(buf []byte, ip netip.Addr) []byte {
	switch {
	case ip.Is4():
		return ip.AppendTo(buf)
	case ip.Is6():
		const hex = "0123456789abcdef"
		for i, x := range ip.As16() {
			if i > 0 {
				buf = append(buf, '.')
			}
			buf = append(buf, hex[x>>4], '.', hex[x&0xf])
		}
		return buf
	}
	return buf
}

// writeEscaped writes s, URL-escaping every octet outside the unreserved
// set of RFC 3986 if escape is set (RFC 7208 §7.3).
func writeEscaped(b *strings.Builder, s string, escape bool) {
	if !escape {
		b.WriteString(s)
		return
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
}
