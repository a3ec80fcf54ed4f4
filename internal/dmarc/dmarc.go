package dmarc

import (
	"fmt"
	"strconv"
	"strings"
)

// Policy is the handling a domain owner asks receivers to apply to mail that
// fails DMARC (tags p, sp and np).
type Policy string

// The policies defined by RFC 7489 §6.3.
const (
	None       Policy = "none"       // monitor only: deliver as usual
	Quarantine Policy = "quarantine" // treat as suspicious, e.g. file as spam
	Reject     Policy = "reject"     // refuse the message
)

// ParsePolicy parses a policy name. Input is case-insensitive; the result is
// one of the lowercase constants None, Quarantine or Reject.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(lowerASCII(s)); p {
	case None, Quarantine, Reject:
		return p, nil
	}
	return "", valueError(s, "is not none, quarantine or reject")
}

// Alignment is an identifier alignment mode (tags adkim and aspf).
type Alignment string

// The alignment modes defined by RFC 7489 §3.1.
const (
	Relaxed Alignment = "r" // organizational domains must match (the default)
	Strict  Alignment = "s" // domains must match exactly
)

func parseAlignment(s string) (Alignment, error) {
	switch a := Alignment(lowerASCII(s)); a {
	case Relaxed, Strict:
		return a, nil
	}
	return "", valueError(s, "is not r (relaxed) or s (strict)")
}

// Tag is a tag the package does not know, kept verbatim (name lowercased) so
// that a record round-trips. Receivers ignore such tags (RFC 7489 §6.3).
type Tag struct {
	Name, Value string
}

// Record is a parsed DMARC record. The zero value of each optional field means
// "tag not present", so that String reproduces exactly the tags that were
// parsed; use the Effective methods for the values a receiver would apply.
type Record struct {
	// Policy is p, the policy for the domain itself. Required.
	Policy Policy
	// SubdomainPolicy is sp; "" means not set (subdomains inherit Policy).
	SubdomainPolicy Policy
	// NonExistentPolicy is np (DMARCbis), the policy for subdomains that do
	// not exist in DNS; "" means not set (falls back to sp, then p).
	NonExistentPolicy Policy
	// Percent is pct, 0 to 100; nil means not set, which means 100.
	// DMARCbis drops pct in favour of t but it is still widely published.
	Percent *int
	// ADKIM is adkim, DKIM alignment; "" means not set, which means relaxed.
	ADKIM Alignment
	// ASPF is aspf, SPF alignment; "" means not set, which means relaxed.
	ASPF Alignment
	// RUA is rua, where aggregate reports go; nil means not set.
	RUA []URI
	// RUF is ruf, where failure reports go; nil means not set.
	RUF []URI
	// FailureOptions is fo: a colon-separated list of 0, 1, d and s, in
	// canonical form (lowercase, no spaces); "" means not set, which means 0.
	FailureOptions string
	// ReportFormat is rf: a colon-separated list of report format names in
	// canonical form; "" means not set, which means afrf.
	ReportFormat string
	// ReportInterval is ri, the aggregate report interval in seconds; nil
	// means not set, which means 86400.
	ReportInterval *uint32
	// PSD is psd (DMARCbis): "y" for a public suffix domain, "n" for an
	// organizational domain, "u" for unknown; "" means not set.
	PSD string
	// Testing is t (DMARCbis): "y" if the policy is being tested and should
	// not be fully applied, "n" otherwise; "" means not set.
	Testing string
	// Unknown holds the tags this package does not know, in record order.
	Unknown []Tag
}

// knownTags are the tag names with a Record field. An unknown tag may not use
// one of these names, or it would be parsed into the field instead.
var knownTags = map[string]bool{
	"v": true, "p": true, "sp": true, "np": true, "pct": true,
	"adkim": true, "aspf": true, "rua": true, "ruf": true, "fo": true,
	"rf": true, "ri": true, "psd": true, "t": true,
}

// Parse parses the text of a DMARC TXT record (the character-strings of the
// record already concatenated).
//
// The record must start with exactly v=DMARC1. Tag names are matched
// case-insensitively and values are canonicalised (lowercase keywords, no
// spaces in lists). A record without p is rejected with ErrMissingPolicy,
// even though RFC 7489 §6.6.3 lets a receiver treat it as p=none when rua is
// present: we compose and validate records, so we insist on the explicit tag.
// All errors are *SyntaxError.
func Parse(txt string) (Record, error) {
	specs := strings.Split(txt, ";")
	if err := checkVersion(specs[0]); err != nil {
		return Record{}, err
	}
	var r Record
	seen := map[string]bool{"v": true}
	for _, spec := range specs[1:] {
		if trimWSP(spec) == "" {
			continue // ";;" and a trailing ";" are harmless
		}
		name, value, err := splitTag(spec)
		if err != nil {
			return Record{}, err
		}
		if seen[name] {
			return Record{}, &SyntaxError{Tag: name, Reason: "appears more than once", Err: ErrDuplicateTag}
		}
		seen[name] = true
		if err := r.set(name, value); err != nil {
			return Record{}, withTag(name, err)
		}
	}
	if !seen["p"] {
		return Record{}, errMissingPolicy()
	}
	return r, nil
}

func errMissingPolicy() error {
	return &SyntaxError{Tag: "p", Reason: "required tag is missing", Err: ErrMissingPolicy}
}

// checkVersion checks the first tag-spec. The name and value are compared
// case-sensitively (RFC 7489 §6.4 spells out DMARC1 byte by byte), but
// whitespace around them is allowed, as most receivers allow it.
func checkVersion(spec string) error {
	name, value, ok := strings.Cut(spec, "=")
	if !ok || trimWSP(name) != "v" {
		reason := "not a DMARC record: it must start with v=DMARC1"
		if s := trimWSP(spec); s != "" {
			reason += ", not " + strconv.Quote(s)
		}
		return &SyntaxError{Reason: reason, Err: ErrNotDMARC}
	}
	if value = trimWSP(value); value != "DMARC1" {
		e := valueError(value, "is not DMARC1, so this is not a DMARC record")
		e.Tag, e.Err = "v", ErrNotDMARC
		return e
	}
	return nil
}

// splitTag splits a non-empty tag-spec into its lowercase name and its value,
// trimming the whitespace around both.
func splitTag(spec string) (name, value string, err error) {
	name, value, ok := strings.Cut(spec, "=")
	name = trimWSP(name)
	switch {
	case !ok:
		return "", "", &SyntaxError{Value: trimWSP(spec), Reason: "is not a tag (want name=value)"}
	case name == "":
		return "", "", &SyntaxError{Value: trimWSP(spec), Reason: "has an empty tag name"}
	case !isTagName(name):
		return "", "", &SyntaxError{Value: name, Reason: "is not a valid tag name (want a letter, then letters, digits or _)"}
	}
	return lowerASCII(name), trimWSP(value), nil
}

// set stores one tag, which Parse has already checked is not a duplicate.
func (r *Record) set(name, value string) error {
	if value == "" && knownTags[name] {
		return &SyntaxError{Reason: "value is empty"}
	}
	var err error
	switch name {
	case "p":
		r.Policy, err = ParsePolicy(value)
	case "sp":
		r.SubdomainPolicy, err = ParsePolicy(value)
	case "np":
		r.NonExistentPolicy, err = ParsePolicy(value)
	case "pct":
		var n int
		if n, err = parsePercent(value); err == nil {
			r.Percent = new(n)
		}
	case "adkim":
		r.ADKIM, err = parseAlignment(value)
	case "aspf":
		r.ASPF, err = parseAlignment(value)
	case "rua":
		r.RUA, err = parseURIList(value)
	case "ruf":
		r.RUF, err = parseURIList(value)
	case "fo":
		r.FailureOptions, err = parseFailureOptions(value)
	case "rf":
		r.ReportFormat, err = parseReportFormat(value)
	case "ri":
		var n uint32
		if n, err = parseInterval(value); err == nil {
			r.ReportInterval = new(n)
		}
	case "psd":
		r.PSD, err = parseFlag(value, "y", "n", "u")
	case "t":
		r.Testing, err = parseFlag(value, "y", "n")
	default:
		if err = checkTagValue(value); err == nil {
			r.Unknown = append(r.Unknown, Tag{Name: name, Value: value})
		}
	}
	return err
}

// String composes the canonical text of the record: v=DMARC1, p, then the
// tags that are set in the order sp, np, pct, adkim, aspf, rua, ruf, fo, rf,
// ri, psd, t, then the unknown tags in their order, separated by "; ".
//
// String assumes r is valid (see Validate). For a valid r, Parse(r.String())
// returns a Record equal to r, except that empty but non-nil RUA, RUF and
// Unknown slices come back nil. The DNS layer must split the result into
// character-strings of at most 255 bytes if it is longer.
func (r Record) String() string {
	var b strings.Builder
	b.WriteString("v=DMARC1; p=" + string(r.Policy))
	add := func(name, value string) {
		if value != "" {
			b.WriteString("; " + name + "=" + value)
		}
	}
	add("sp", string(r.SubdomainPolicy))
	add("np", string(r.NonExistentPolicy))
	if r.Percent != nil {
		add("pct", strconv.Itoa(*r.Percent))
	}
	add("adkim", string(r.ADKIM))
	add("aspf", string(r.ASPF))
	add("rua", joinURIs(r.RUA))
	add("ruf", joinURIs(r.RUF))
	add("fo", r.FailureOptions)
	add("rf", r.ReportFormat)
	if r.ReportInterval != nil {
		add("ri", strconv.FormatUint(uint64(*r.ReportInterval), 10))
	}
	add("psd", r.PSD)
	add("t", r.Testing)
	for _, t := range r.Unknown {
		// Not add: an unknown tag with an empty value is still a tag.
		b.WriteString("; " + t.Name + "=" + t.Value)
	}
	return b.String()
}

// Validate checks a Record built in code, such as from user input, by the
// rules Parse applies. In addition every value must already be in the
// canonical form Parse produces ("reject", not "Reject"; "1:d", not "1 : D"),
// so that what is stored is exactly what String will publish and Parse will
// read back. It returns the first problem found, as a *SyntaxError.
func (r Record) Validate() error {
	if r.Policy == "" {
		return errMissingPolicy()
	}
	errs := []error{
		checkCanonical("p", r.Policy, ParsePolicy),
		checkCanonical("sp", r.SubdomainPolicy, ParsePolicy),
		checkCanonical("np", r.NonExistentPolicy, ParsePolicy),
		checkPercent(r.Percent),
		checkCanonical("adkim", r.ADKIM, parseAlignment),
		checkCanonical("aspf", r.ASPF, parseAlignment),
		checkURIs("rua", r.RUA),
		checkURIs("ruf", r.RUF),
		checkCanonical("fo", r.FailureOptions, parseFailureOptions),
		checkCanonical("rf", r.ReportFormat, parseReportFormat),
		// Every uint32 is a valid ri.
		checkCanonical("psd", r.PSD, func(s string) (string, error) { return parseFlag(s, "y", "n", "u") }),
		checkCanonical("t", r.Testing, func(s string) (string, error) { return parseFlag(s, "y", "n") }),
		checkUnknown(r.Unknown),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkCanonical checks an optional value: "" (not set) is fine, anything else
// must parse and already be in canonical form.
func checkCanonical[T ~string](tag string, v T, parse func(string) (T, error)) error {
	if v == "" {
		return nil
	}
	c, err := parse(string(v))
	if err != nil {
		return withTag(tag, err)
	}
	return notCanonical(tag, string(v), string(c))
}

func notCanonical(tag, got, want string) error {
	if got == want {
		return nil
	}
	return &SyntaxError{Tag: tag, Value: got, Reason: "is not in canonical form; use " + strconv.Quote(want)}
}

func checkPercent(p *int) error {
	if p == nil || (*p >= 0 && *p <= 100) {
		return nil
	}
	return &SyntaxError{Tag: "pct", Value: strconv.Itoa(*p), Reason: percentReason}
}

func checkUnknown(tags []Tag) error {
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		switch {
		case t.Name == "":
			return &SyntaxError{Reason: "unknown tag has an empty name"}
		case !isTagName(t.Name):
			return &SyntaxError{Value: t.Name, Reason: "is not a valid tag name (want a letter, then letters, digits or _)"}
		case t.Name != lowerASCII(t.Name):
			return &SyntaxError{Value: t.Name, Reason: "is not in canonical form; use " + strconv.Quote(lowerASCII(t.Name))}
		case knownTags[t.Name]:
			return &SyntaxError{Tag: t.Name, Reason: "is a known tag; set its Record field instead of listing it in Unknown"}
		case seen[t.Name]:
			return &SyntaxError{Tag: t.Name, Reason: "appears more than once", Err: ErrDuplicateTag}
		}
		seen[t.Name] = true
		if err := checkTagValue(t.Value); err != nil {
			return withTag(t.Name, err)
		}
	}
	return nil
}

// EffectivePercent returns pct, or 100 when it is not set.
func (r Record) EffectivePercent() int {
	if r.Percent == nil {
		return 100
	}
	return *r.Percent
}

// EffectiveSubdomainPolicy returns the policy for existing subdomains: sp, or
// p when sp is not set.
func (r Record) EffectiveSubdomainPolicy() Policy {
	if r.SubdomainPolicy != "" {
		return r.SubdomainPolicy
	}
	return r.Policy
}

// EffectiveNonExistentPolicy returns the policy for non-existent subdomains:
// np, or else sp, or else p (DMARCbis).
func (r Record) EffectiveNonExistentPolicy() Policy {
	if r.NonExistentPolicy != "" {
		return r.NonExistentPolicy
	}
	return r.EffectiveSubdomainPolicy()
}

// Reasons shared by Parse and Validate.
const (
	percentReason  = "is not an integer between 0 and 100"
	intervalReason = "is not a number of seconds between 0 and 4294967295"
)

func parsePercent(s string) (int, error) {
	// isDigits first: Atoi would accept a sign.
	if n, err := strconv.Atoi(s); isDigits(s) && err == nil && n <= 100 {
		return n, nil
	}
	return 0, valueError(s, percentReason)
}

func parseInterval(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); isDigits(s) && err == nil {
		return uint32(n), nil
	}
	return 0, valueError(s, intervalReason)
}

// parseFailureOptions parses fo, which RFC 7489 §6.4 lets have whitespace
// around the colons.
func parseFailureOptions(s string) (string, error) {
	return parseList(s, ":", func(o string) bool {
		return o == "0" || o == "1" || o == "d" || o == "s"
	}, "is not a colon-separated list of 0, 1, d and s")
}

// parseReportFormat parses rf, a colon-separated list of report format
// keywords (RFC 5321 Keyword). Only afrf is registered, but the registry may
// grow, so any keyword is accepted.
func parseReportFormat(s string) (string, error) {
	return parseList(s, ":", isKeyword, "is not a colon-separated list of report formats such as afrf")
}

// parseList splits s at sep, trims whitespace and lowercases each item, checks
// it with ok and joins the items in canonical form.
func parseList(s, sep string, ok func(string) bool, reason string) (string, error) {
	items := strings.Split(s, sep)
	for i, item := range items {
		items[i] = lowerASCII(trimWSP(item))
		if !ok(items[i]) {
			return "", valueError(s, reason)
		}
	}
	return strings.Join(items, sep), nil
}

func parseFlag(s string, allowed ...string) (string, error) {
	f := lowerASCII(s)
	for _, a := range allowed {
		if f == a {
			return f, nil
		}
	}
	return "", valueError(s, "is not "+orList(allowed))
}

// orList formats {"y", "n", "u"} as "y, n or u".
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// checkTagValue checks a value against RFC 6376 §3.2 tag-value: printable
// ASCII other than ";", with spaces or tabs only inside.
func checkTagValue(v string) error {
	if trimWSP(v) != v {
		return &SyntaxError{Value: v, Reason: "has leading or trailing whitespace"}
	}
	for _, c := range v {
		if (c < 0x21 || c > 0x7e || c == ';') && c != ' ' && c != '\t' {
			return &SyntaxError{Value: v, Reason: fmt.Sprintf("contains %q, but a tag value may only contain printable ASCII other than \";\"", c)}
		}
	}
	return nil
}

// isTagName reports whether s is an RFC 6376 tag-name: ALPHA *(ALPHA/DIGIT/"_").
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

// isKeyword reports whether s is an RFC 5321 Keyword (letters, digits and
// inner hyphens).
func isKeyword(s string) bool {
	if s == "" || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && (c != '-' || i == 0) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// trimWSP trims the whitespace DMARC allows around tags and values: spaces
// and tabs (WSP), not the wider Unicode set strings.TrimSpace knows.
func trimWSP(s string) string { return strings.Trim(s, " \t") }

// lowerASCII lowercases ASCII letters only. strings.ToLower would also map
// some non-ASCII letters onto ASCII ones (the Kelvin sign to "k"), which
// would let look-alike input through.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
