package spf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Qualifier is the prefix of a mechanism that says which result a match
// gives (RFC 7208 §4.6.2). The zero value is treated as QualifierPass.
type Qualifier byte

// The qualifiers of RFC 7208 §4.6.2.
const (
	QualifierPass     Qualifier = '+'
	QualifierFail     Qualifier = '-'
	QualifierSoftFail Qualifier = '~'
	QualifierNeutral  Qualifier = '?'
)

// Result returns the result a mechanism with this qualifier gives when it
// matches.
func (q Qualifier) Result() Result {
	switch q {
	case QualifierFail:
		return Fail
	case QualifierSoftFail:
		return SoftFail
	case QualifierNeutral:
		return Neutral
	default:
		return Pass
	}
}

// String returns the qualifier character, "+" for the zero value.
func (q Qualifier) String() string {
	if q == 0 {
		return "+"
	}
	return string(rune(q))
}

func (q Qualifier) valid() bool {
	switch q {
	case 0, QualifierPass, QualifierFail, QualifierSoftFail, QualifierNeutral:
		return true
	}
	return false
}

// Kind names a mechanism (RFC 7208 §5).
type Kind uint8

// The mechanisms of RFC 7208 §5.
const (
	KindAll Kind = iota + 1
	KindInclude
	KindA
	KindMX
	KindPTR
	KindIP4
	KindIP6
	KindExists
)

var kindNames = [...]string{
	KindAll:     "all",
	KindInclude: "include",
	KindA:       "a",
	KindMX:      "mx",
	KindPTR:     "ptr",
	KindIP4:     "ip4",
	KindIP6:     "ip6",
	KindExists:  "exists",
}

// String returns the mechanism name as written in records, such as "mx".
func (k Kind) String() string {
	if k == 0 || int(k) >= len(kindNames) {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// QueriesDNS reports whether the mechanism causes DNS queries when it is
// evaluated, and so counts against the limit of 10 (RFC 7208 §4.6.4).
func (k Kind) QueriesDNS() bool {
	switch k {
	case KindInclude, KindA, KindMX, KindPTR, KindExists:
		return true
	}
	return false
}

func kindByName(name string) Kind {
	for k := KindAll; k <= KindExists; k++ {
		if strings.EqualFold(name, kindNames[k]) {
			return k
		}
	}
	return 0
}

// Mechanism is one directive of a record: a qualifier and a mechanism with
// its arguments.
type Mechanism struct {
	// Qualifier is the result the mechanism gives when it matches.
	Qualifier Qualifier
	// Kind names the mechanism.
	Kind Kind
	// Domain is the domain-spec as written, macros unexpanded. It is
	// required for include and exists, optional for a, mx and ptr (where ""
	// means the domain being checked) and empty for the others.
	Domain string
	// Prefix is the network of ip4 and ip6, with the address as written
	// (not masked) so that it is published as the owner wrote it.
	Prefix netip.Prefix
	// CIDR4 and CIDR6 are the dual-cidr-length of a and mx, which apply only
	// when CIDR4Set and CIDR6Set are set; otherwise 32 and 128 apply. Use
	// [Mechanism.Bits4] and [Mechanism.Bits6] for the effective lengths.
	CIDR4, CIDR6       int
	CIDR4Set, CIDR6Set bool
}

// Bits4 returns the IPv4 prefix length an a or mx mechanism compares with.
func (m Mechanism) Bits4() int {
	if m.CIDR4Set {
		return m.CIDR4
	}
	return 32
}

// Bits6 returns the IPv6 prefix length an a or mx mechanism compares with.
func (m Mechanism) Bits6() int {
	if m.CIDR6Set {
		return m.CIDR6
	}
	return 128
}

// String composes the mechanism as it is written in a record, leaving out a
// "+" qualifier and an ip4 or ip6 prefix length that covers one address.
func (m Mechanism) String() string {
	var b strings.Builder
	m.appendTo(&b)
	return b.String()
}

func (m Mechanism) appendTo(b *strings.Builder) {
	if m.Qualifier != 0 && m.Qualifier != QualifierPass {
		b.WriteByte(byte(m.Qualifier))
	}
	b.WriteString(m.Kind.String())
	switch m.Kind {
	case KindIP4, KindIP6:
		b.WriteByte(':')
		b.WriteString(m.Prefix.Addr().String())
		if m.Prefix.Bits() != m.Prefix.Addr().BitLen() {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(m.Prefix.Bits()))
		}
		return
	}
	if m.Domain != "" {
		b.WriteByte(':')
		b.WriteString(m.Domain)
	}
	if m.CIDR4Set {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(m.CIDR4))
	}
	if m.CIDR6Set {
		b.WriteString("//")
		b.WriteString(strconv.Itoa(m.CIDR6))
	}
}

// Modifier is an unknown modifier (RFC 7208 §6), kept so that a record
// survives a round trip. Evaluation ignores it.
type Modifier struct {
	// Name is the modifier name in lowercase.
	Name string
	// Value is the macro-string after "=", as written.
	Value string
}

// Record is a parsed SPF record. The order of mechanisms matters; the
// order of modifiers does not (RFC 7208 §4.6.3), so they are kept apart.
type Record struct {
	// Mechanisms are the directives, in the order they are evaluated.
	Mechanisms []Mechanism
	// Redirect is the domain-spec of the redirect= modifier, "" if absent.
	Redirect string
	// Exp is the domain-spec of the exp= modifier, "" if absent.
	Exp string
	// Unknown holds other modifiers in the order they were written.
	Unknown []Modifier
}

// String composes the canonical text of the record: "v=spf1", the
// mechanisms in order, then redirect=, exp= and the unknown modifiers,
// separated by single spaces. Parse(r.String()) gives r back for a record
// returned by Parse.
func (r *Record) String() string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("v=spf1")
	for _, m := range r.Mechanisms {
		b.WriteByte(' ')
		m.appendTo(&b)
	}
	if r.Redirect != "" {
		b.WriteString(" redirect=")
		b.WriteString(r.Redirect)
	}
	if r.Exp != "" {
		b.WriteString(" exp=")
		b.WriteString(r.Exp)
	}
	for _, u := range r.Unknown {
		b.WriteByte(' ')
		b.WriteString(u.Name)
		b.WriteByte('=')
		b.WriteString(u.Value)
	}
	return b.String()
}

// LookupTerms counts the terms of this record alone that cause DNS queries
// when evaluated: include, a, mx, ptr and exists mechanisms and the redirect
// modifier (RFC 7208 §4.6.4). A receiver allows at most 10 of them over the
// whole evaluation, including records reached through include and redirect;
// use [Flatten] to count a whole chain. A redirect is counted even though a
// receiver follows it only when no mechanism matched.
func (r *Record) LookupTerms() int {
	n := 0
	for _, m := range r.Mechanisms {
		if m.Kind.QueriesDNS() {
			n++
		}
	}
	if r.Redirect != "" {
		n++
	}
	return n
}

// IsSPF reports whether a TXT record is an SPF record, that is whether it
// starts with "v=spf1" (in any case) followed by a space or the end of the
// text (RFC 7208 §4.5). Records that are not SPF records are to be ignored
// when selecting the SPF record of a domain.
func IsSPF(txt string) bool {
	return len(txt) >= len(version) && strings.EqualFold(txt[:len(version)], version) &&
		(len(txt) == len(version) || txt[len(version)] == ' ')
}

const version = "v=spf1"

// Parse parses an SPF record with the syntax of RFC 7208 §4.5, §4.6, §5,
// §6 and §12. Any syntax error anywhere makes the whole record invalid, as
// RFC 7208 §4.6 requires; the error is a [*SyntaxError] naming the term.
// Text that is not an SPF record at all gives a SyntaxError wrapping
// [ErrNotSPF].
func Parse(txt string) (*Record, error) {
	if !IsSPF(txt) {
		return nil, &SyntaxError{Reason: `record does not start with "v=spf1" followed by a space or the end`, Err: ErrNotSPF}
	}
	r := new(Record)
	rest := txt[len(version):]
	for rest != "" {
		// Terms are separated by one or more spaces, and only spaces.
		if rest[0] == ' ' {
			rest = rest[1:]
			continue
		}
		term := rest
		if i := strings.IndexByte(rest, ' '); i >= 0 {
			term, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if err := r.parseTerm(term); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// isNameChar reports whether c may appear in a modifier name (RFC 7208 §12).
func isNameChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '-' || c == '_' || c == '.'
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (r *Record) parseTerm(term string) error {
	body := term
	q := QualifierPass
	switch Qualifier(body[0]) {
	case QualifierPass, QualifierFail, QualifierSoftFail, QualifierNeutral:
		q = Qualifier(body[0])
		body = body[1:]
	}
	i := 0
	for i < len(body) && isNameChar(body[i]) {
		i++
	}
	name, rest := body[:i], body[i:]

	if rest != "" && rest[0] == '=' {
		if len(body) != len(term) {
			return termError(term, "a modifier cannot have a qualifier")
		}
		return r.parseModifier(term, name, rest[1:])
	}
	if name == "" {
		if rest == "" {
			return termError(term, "qualifier without a mechanism")
		}
		return termError(term, "invalid character %s: a term starts with a mechanism or a modifier name", quoteByte(rest[0]))
	}
	kind := kindByName(name)
	if kind == 0 {
		return termError(term, "unknown mechanism %q", name)
	}
	if rest != "" && rest[0] != ':' && rest[0] != '/' {
		return termError(term, "invalid character %s after mechanism name", quoteByte(rest[0]))
	}
	m := Mechanism{Qualifier: q, Kind: kind}
	if err := m.parseArgs(term, rest); err != nil {
		return err
	}
	r.Mechanisms = append(r.Mechanisms, m)
	return nil
}

func (r *Record) parseModifier(term, name, value string) error {
	if name == "" {
		return termError(term, "modifier has no name")
	}
	if !isAlpha(name[0]) {
		return termError(term, "modifier name %q must start with a letter", name)
	}
	switch {
	case strings.EqualFold(name, "redirect"), strings.EqualFold(name, "exp"):
		lname := strings.ToLower(name)
		if value == "" {
			return termError(term, "%s= needs a domain", lname)
		}
		if err := checkDomainSpec(value); err != nil {
			return termError(term, "%s", err.Error())
		}
		field := &r.Redirect
		if lname == "exp" {
			field = &r.Exp
		}
		if *field != "" {
			return &SyntaxError{Term: term, Reason: "modifier " + lname + "= occurs more than once", Err: ErrDuplicateModifier}
		}
		*field = value
	default:
		if err := checkMacroString(value, macroModifier); err != nil {
			return termError(term, "%s", err.Error())
		}
		r.Unknown = append(r.Unknown, Modifier{Name: strings.ToLower(name), Value: value})
	}
	return nil
}

// parseArgs parses what follows the mechanism name: rest is "" or starts
// with ':' or '/'.
func (m *Mechanism) parseArgs(term, rest string) error {
	kind := m.Kind
	switch kind {
	case KindAll:
		if rest != "" {
			return termError(term, "all takes no arguments")
		}
		return nil

	case KindIP4, KindIP6:
		if rest == "" || rest[0] != ':' || len(rest) == 1 {
			return termError(term, "%s needs an address (%s:<network>[/<length>])", kind, kind)
		}
		p, err := parseNetwork(kind, rest[1:])
		if err != nil {
			return termError(term, "%s", err.Error())
		}
		m.Prefix = p
		return nil

	case KindInclude, KindExists, KindPTR:
		if rest == "" {
			if kind == KindPTR {
				return nil
			}
			return termError(term, "%s needs a domain (%s:<domain>)", kind, kind)
		}
		if rest[0] == '/' {
			return termError(term, "%s takes no CIDR length", kind)
		}
		m.Domain = rest[1:]
		if m.Domain == "" {
			return termError(term, "empty domain after %q", kind.String()+":")
		}
		if err := checkDomainSpec(m.Domain); err != nil {
			return termError(term, "%s", err.Error())
		}
		return nil
	}

	// a and mx: [ ":" domain-spec ] [ dual-cidr-length ]
	cidrs := rest
	if rest != "" && rest[0] == ':' {
		dom, c := splitDualCIDR(rest[1:])
		if dom == "" {
			return termError(term, "empty domain after %q", kind.String()+":")
		}
		if err := checkDomainSpec(dom); err != nil {
			return termError(term, "%s", err.Error())
		}
		m.Domain, cidrs = dom, c
	}
	if err := m.parseDualCIDR(cidrs); err != nil {
		return termError(term, "%s", err.Error())
	}
	return nil
}

// splitDualCIDR splits "domain/24//64" into "domain" and "/24//64". A
// domain-spec may itself contain "/", so only a trailing "/digits" and
// "//digits" are taken as lengths.
func splitDualCIDR(s string) (domain, cidrs string) {
	end := len(s)
	cut := func(from int) (int, bool) { // index of the '/' of a trailing "/digits" ending at from
		i := from
		for i > 0 && isDigit(s[i-1]) {
			i--
		}
		if i == from || i == 0 || s[i-1] != '/' {
			return from, false
		}
		return i - 1, true
	}
	if i, ok := cut(end); ok {
		if i > 0 && s[i-1] == '/' { // "//digits": IPv6 length
			end = i - 1
			if j, ok := cut(end); ok {
				end = j
			}
		} else {
			end = i
		}
	}
	return s[:end], s[end:]
}

// parseDualCIDR parses "", "/24", "//64" or "/24//64".
func (m *Mechanism) parseDualCIDR(s string) error {
	if s == "" {
		return nil
	}
	v4, v6, hasV6 := s, "", false
	if i := strings.Index(s, "//"); i >= 0 {
		v4, v6, hasV6 = s[:i], s[i+2:], true
	}
	if v4 != "" {
		if v4[0] != '/' {
			return fmt.Errorf("invalid CIDR length %q", s)
		}
		n, err := parseCIDR(v4[1:], 32)
		if err != nil {
			return err
		}
		m.CIDR4, m.CIDR4Set = n, true
	}
	if hasV6 {
		n, err := parseCIDR(v6, 128)
		if err != nil {
			return err
		}
		m.CIDR6, m.CIDR6Set = n, true
	}
	return nil
}

// parseCIDR parses a prefix length without leading zeros (RFC 7208 §12:
// ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT)).
func parseCIDR(s string, max int) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("missing CIDR length after \"/\"")
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("invalid CIDR length %q", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("CIDR length %q has a leading zero", s)
	}
	if len(s) > 3 {
		return 0, fmt.Errorf("CIDR length %s is out of range 0-%d", s, max)
	}
	n, _ := strconv.Atoi(s)
	if n > max {
		return 0, fmt.Errorf("CIDR length %d is out of range 0-%d", n, max)
	}
	return n, nil
}

// parseNetwork parses the argument of ip4 and ip6: an address and an
// optional prefix length.
func parseNetwork(kind Kind, s string) (netip.Prefix, error) {
	addrText, length := s, ""
	hasLength := false
	if i := strings.IndexByte(s, '/'); i >= 0 {
		addrText, length, hasLength = s[:i], s[i+1:], true
	}
	addr, err := netip.ParseAddr(addrText)
	max := 32
	if kind == KindIP6 {
		max = 128
	}
	switch {
	case err != nil || addr.Zone() != "":
		return netip.Prefix{}, fmt.Errorf("%q is not a valid %s address", addrText, ipVersion(kind))
	case kind == KindIP4 && !addr.Is4():
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address (use ip6: for IPv6)", addrText)
	case kind == KindIP6 && !addr.Is6():
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv6 address (use ip4: for IPv4)", addrText)
	}
	bits := max
	if hasLength {
		if bits, err = parseCIDR(length, max); err != nil {
			return netip.Prefix{}, err
		}
	}
	return netip.PrefixFrom(addr, bits), nil
}

func ipVersion(k Kind) string {
	if k == KindIP4 {
		return "IPv4"
	}
	return "IPv6"
}

// Validate checks a Record built in code with the rules Parse applies, so
// that a record composed with [Record.String] parses again.
func (r *Record) Validate() error {
	for _, m := range r.Mechanisms {
		if err := m.validate(); err != nil {
			return err
		}
	}
	for _, mod := range []struct{ name, value string }{{"redirect", r.Redirect}, {"exp", r.Exp}} {
		if mod.value == "" {
			continue
		}
		if err := checkDomainSpec(mod.value); err != nil {
			return termError(mod.name+"="+mod.value, "%s", err.Error())
		}
	}
	for _, u := range r.Unknown {
		term := u.Name + "=" + u.Value
		if u.Name == "" || !isAlpha(u.Name[0]) || strings.ToLower(u.Name) != u.Name {
			return termError(term, "modifier name must start with a letter and be in lowercase")
		}
		for i := 0; i < len(u.Name); i++ {
			if !isNameChar(u.Name[i]) {
				return termError(term, "invalid character %s in modifier name", quoteByte(u.Name[i]))
			}
		}
		if u.Name == "redirect" || u.Name == "exp" {
			return termError(term, "%s= belongs in the Redirect or Exp field, not in Unknown", u.Name)
		}
		if err := checkMacroString(u.Value, macroModifier); err != nil {
			return termError(term, "%s", err.Error())
		}
	}
	return nil
}

func (m Mechanism) validate() error {
	term := m.String()
	if !m.Qualifier.valid() {
		return termError(term, "invalid qualifier %s", quoteByte(byte(m.Qualifier)))
	}
	if m.Kind == 0 || int(m.Kind) >= len(kindNames) {
		return termError(term, "unknown mechanism kind %d", m.Kind)
	}
	if (m.Kind == KindIP4 || m.Kind == KindIP6) != m.Prefix.IsValid() {
		return termError(term, "Prefix is set on a mechanism other than ip4 or ip6, or missing")
	}
	if m.Prefix.IsValid() {
		if _, err := parseNetwork(m.Kind, m.Prefix.String()); err != nil {
			return termError(term, "%s", err.Error())
		}
	}
	dual := m.Kind == KindA || m.Kind == KindMX
	if !dual && (m.CIDR4Set || m.CIDR6Set) {
		return termError(term, "%s takes no CIDR length", m.Kind)
	}
	if m.CIDR4Set && (m.CIDR4 < 0 || m.CIDR4 > 32) || m.CIDR6Set && (m.CIDR6 < 0 || m.CIDR6 > 128) {
		return termError(term, "CIDR length out of range")
	}
	switch m.Kind {
	case KindAll, KindIP4, KindIP6:
		if m.Domain != "" {
			return termError(term, "%s takes no domain", m.Kind)
		}
	case KindInclude, KindExists:
		if m.Domain == "" {
			return termError(term, "%s needs a domain", m.Kind)
		}
	}
	if m.Domain != "" {
		if err := checkDomainSpec(m.Domain); err != nil {
			return termError(term, "%s", err.Error())
		}
		if dual {
			// The domain must not end in something that reads as a length.
			if d, c := splitDualCIDR(m.Domain); c != "" || d != m.Domain {
				return termError(term, "domain %q ends in a CIDR length", m.Domain)
			}
		}
	}
	return nil
}
