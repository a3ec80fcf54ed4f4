package catalog

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// MaxSPFIncludes is how many SPF includes one service may have: each is a
// DNS-querying term of its own, and a record evaluates at most 10 (RFC 7208
// §4.6.4). sender_services holds the same bound.
const MaxSPFIncludes = 10

// servicesJSON is the catalog shipped with Rampart.
//
//go:embed services.json
var servicesJSON []byte

// Service is a sending service: what a customer's SPF record includes to
// authorise it, and how its mail servers and signatures can be recognised.
// The JSON names of the fields are those of services.json.
type Service struct {
	// Slug identifies the service: lowercase letters, digits and hyphens,
	// starting with a letter or digit, at most 63 characters.
	Slug string `json:"slug"`
	// Name is the service's name for people.
	Name string `json:"name"`
	// Category groups services for people, such as "workspace",
	// "transactional" or "marketing".
	Category string `json:"category"`
	// SPFIncludes are the domains a customer's SPF record names in
	// include: to authorise the service, such as "_spf.google.com"; empty
	// if the service has none. A vendor that publishes several (one per
	// sending platform) lists each: the service's ranges are their union.
	SPFIncludes []string `json:"spf_includes"`
	// HELOSuffixes are the suffixes, each starting with ".", of the host
	// names the service's outbound servers give in EHLO and in their PTR
	// records. See [Service.MatchesHELO].
	HELOSuffixes []string `json:"helo_suffixes"`
	// DKIMDomains are the d= domains the service signs with when the
	// customer has not set up DKIM for their own domain. A signature
	// domain matches an entry equal to it or above it: "onmicrosoft.com"
	// covers "contoso.onmicrosoft.com".
	DKIMDomains []string `json:"dkim_domains"`
	// DKIMSelectors are the DKIM selectors (the s= tag, the label before
	// "._domainkey") the vendor has its customers publish, such as
	// "google" or "selector1"; empty where the customer or the vendor
	// picks a name per account. A selector alone does not identify a
	// service (customers may reuse the names), so these serve as evidence
	// alongside other facts and for naming the keys a domain should host.
	DKIMSelectors []string `json:"dkim_selectors"`
	// StaticRanges are address ranges the vendor documents as fixed; empty
	// for services whose ranges are known only through their SPF include.
	StaticRanges []netip.Prefix `json:"static_ranges"`
	// SetupURL is the vendor's page on setting up authentication; "" if
	// none is known.
	SetupURL string `json:"setup_url"`
	// SourceURL is where the facts of the entry were checked.
	SourceURL string `json:"source_url"`
	// Notes say what the entry rests on and what it leaves out.
	Notes string `json:"notes"`
}

// MatchesHELO reports whether helo, an EHLO name or a PTR name, is a host
// name strictly below one of the service's HELO suffixes: with the suffix
// ".google.com", "mail-yw1-f170.google.com" matches but "google.com" and
// "evilgoogle.com" do not. The comparison ignores ASCII case and a trailing
// dot on helo.
func (s Service) MatchesHELO(helo string) bool {
	h := strings.TrimSuffix(strings.TrimSpace(helo), ".")
	for _, suffix := range s.HELOSuffixes {
		if len(h) <= len(suffix) || !strings.EqualFold(h[len(h)-len(suffix):], suffix) {
			continue
		}
		// The suffix starts with ".", so the match is on a label
		// boundary; the part before it must be a non-empty label.
		if host := h[:len(h)-len(suffix)]; !strings.HasSuffix(host, ".") {
			return true
		}
	}
	return false
}

// Validate checks that s is a well-formed catalog entry in canonical form:
//
//   - Slug, Name, Category and SourceURL are set; the slug and category
//     have the allowed syntax;
//   - each of at most [MaxSPFIncludes] SPF includes and each DKIM domain
//     are lowercase host names of at least two labels (underscores allowed,
//     as in _spf.google.com), with no trailing dot, and the edge's hand-over
//     answer to all the includes fits one UDP answer;
//   - each DKIM selector is one or more labels of lowercase letters,
//     digits, hyphens and underscores (RFC 6376 §3.1), which may be all
//     digits, as in "200608";
//   - each HELO suffix is "." followed by such a host name, so that no
//     suffix covers a whole top-level domain;
//   - static ranges are valid prefixes with no host bits set;
//   - no list has duplicates;
//   - the URLs are absolute http or https URLs;
//   - the service can be recognised at all: it has an include, a HELO
//     suffix or a static range.
func (s Service) Validate() error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("catalog: service %q: %w", s.Slug, err)
	}
	return nil
}

func (s Service) validate() error {
	if !isSlug(s.Slug) {
		return errors.New("slug must be 1 to 63 lowercase letters, digits and hyphens, starting with a letter or digit")
	}
	if strings.TrimSpace(s.Name) == "" {
		return errors.New("name is empty")
	}
	if !isSlug(s.Category) {
		return fmt.Errorf("category %q must be lowercase letters, digits and hyphens", s.Category)
	}
	if len(s.SPFIncludes) > MaxSPFIncludes {
		return fmt.Errorf("spf_includes: %d includes, more than the %d a service may have", len(s.SPFIncludes), MaxSPFIncludes)
	}
	for i, inc := range s.SPFIncludes {
		if err := checkHostName(inc); err != nil {
			return fmt.Errorf("spf_includes %q: %w", inc, err)
		}
		if slices.Contains(s.SPFIncludes[:i], inc) {
			return fmt.Errorf("spf_includes %q is listed twice", inc)
		}
	}
	if !spfanswer.HandoverFits(s.SPFIncludes...) {
		return fmt.Errorf("spf_includes: too long together for the edge's hand-over answer to fit %d octets (RFC 7208 §3.4)", spfanswer.MaxResponse)
	}
	for i, suffix := range s.HELOSuffixes {
		rest, ok := strings.CutPrefix(suffix, ".")
		if !ok {
			return fmt.Errorf("helo suffix %q must start with '.'", suffix)
		}
		if err := checkHostName(rest); err != nil {
			return fmt.Errorf("helo suffix %q: %w", suffix, err)
		}
		if slices.Contains(s.HELOSuffixes[:i], suffix) {
			return fmt.Errorf("helo suffix %q is listed twice", suffix)
		}
	}
	for i, d := range s.DKIMDomains {
		if err := checkHostName(d); err != nil {
			return fmt.Errorf("dkim domain %q: %w", d, err)
		}
		if slices.Contains(s.DKIMDomains[:i], d) {
			return fmt.Errorf("dkim domain %q is listed twice", d)
		}
	}
	for i, sel := range s.DKIMSelectors {
		if err := checkSelector(sel); err != nil {
			return fmt.Errorf("dkim selector %q: %w", sel, err)
		}
		if slices.Contains(s.DKIMSelectors[:i], sel) {
			return fmt.Errorf("dkim selector %q is listed twice", sel)
		}
	}
	for i, p := range s.StaticRanges {
		if !p.IsValid() {
			return errors.New("static range is not a valid prefix")
		}
		if p != p.Masked() {
			return fmt.Errorf("static range %s has host bits set; write %s", p, p.Masked())
		}
		if slices.Contains(s.StaticRanges[:i], p) {
			return fmt.Errorf("static range %s is listed twice", p)
		}
	}
	if len(s.SPFIncludes) == 0 && len(s.HELOSuffixes) == 0 && len(s.StaticRanges) == 0 {
		return errors.New("it has no spf_includes, helo suffix or static range to recognise it by")
	}
	if s.SourceURL == "" {
		return errors.New("source_url is empty")
	}
	if err := checkURL(s.SourceURL); err != nil {
		return fmt.Errorf("source_url: %w", err)
	}
	if s.SetupURL != "" {
		if err := checkURL(s.SetupURL); err != nil {
			return fmt.Errorf("setup_url: %w", err)
		}
	}
	return nil
}

// Parse reads a catalog in the format of services.json, a JSON array of
// services, and validates each entry. Unknown fields and duplicate slugs
// are errors.
func Parse(data []byte) ([]Service, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var services []Service
	if err := dec.Decode(&services); err != nil {
		return nil, fmt.Errorf("catalog: decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("catalog: decode: data after the array")
	}
	seen := make(map[string]bool, len(services))
	for _, s := range services {
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if seen[s.Slug] {
			return nil, fmt.Errorf("catalog: service %q is listed twice", s.Slug)
		}
		seen[s.Slug] = true
	}
	return services, nil
}

// shipped is the embedded catalog, parsed once. Callers get copies, so it
// is never changed after parsing.
var shipped = sync.OnceValues(func() ([]Service, error) {
	return Parse(servicesJSON)
})

// Load returns the catalog shipped with Rampart, in file order. The slice
// and its entries are the caller's to change.
func Load() ([]Service, error) {
	services, err := shipped()
	if err != nil {
		return nil, fmt.Errorf("load sender catalog: %w", err)
	}
	out := make([]Service, len(services))
	for i, s := range services {
		out[i] = s.clone()
	}
	return out, nil
}

// Lookup returns the shipped service with the given slug. It reports false
// for unknown slugs, and for all slugs if the shipped catalog does not load,
// which the package's tests rule out.
func Lookup(slug string) (Service, bool) {
	services, err := shipped()
	if err != nil {
		return Service{}, false
	}
	for _, s := range services {
		if s.Slug == slug {
			return s.clone(), true
		}
	}
	return Service{}, false
}

func (s Service) clone() Service {
	s.HELOSuffixes = slices.Clone(s.HELOSuffixes)
	s.DKIMDomains = slices.Clone(s.DKIMDomains)
	s.DKIMSelectors = slices.Clone(s.DKIMSelectors)
	s.StaticRanges = slices.Clone(s.StaticRanges)
	return s
}

// isSlug reports whether s is 1 to 63 of [a-z0-9-], not starting with a
// hyphen, as the sender_services table requires.
func isSlug(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkSelector checks that sel is a DKIM selector in canonical form: one
// or more dot-separated labels of 1 to 63 lowercase letters, digits,
// hyphens and underscores, not starting or ending with a hyphen and none
// of them "_domainkey", at most 253 octets with "._domainkey" appended. Unlike a host name, the
// last label may be all digits.
func checkSelector(sel string) error {
	if sel == "" {
		return errors.New("is empty")
	}
	if len(sel)+len("._domainkey") > 253 {
		return errors.New("too long to be a name under _domainkey")
	}
	for label := range strings.SplitSeq(sel, ".") {
		if label == "_domainkey" {
			return errors.New(`give the selector alone, without "._domainkey"`)
		}
		if label == "" || len(label) > 63 {
			return errors.New("labels must be 1 to 63 octets")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("label %q must be lowercase letters, digits, hyphens and underscores", label)
			}
		}
	}
	return nil
}

// checkHostName checks that name is a lowercase host name of at least two
// labels, with no trailing dot, whose labels are letters, digits, hyphens
// and underscores and whose last label is not all digits.
func checkHostName(name string) error {
	if len(name) > 253 {
		return errors.New("longer than 253 octets")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return errors.New("must have at least two labels")
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 {
			return errors.New("labels must be 1 to 63 octets")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("label %q must be lowercase letters, digits, hyphens and underscores", label)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("the last label is a number")
	}
	return nil
}

// checkURL checks that raw is an absolute http or https URL with a host.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	return nil
}

// The checks a service's fields are held to, for services that do not come
// from the shipped file (an account's own, see package sender).

// IsSlug reports whether s is 1 to 63 of [a-z0-9-], not starting with a
// hyphen: the form of a slug and a category.
func IsSlug(s string) bool { return isSlug(s) }

// CheckHostName checks that name is a lowercase host name of at least two
// labels, as an SPF include, a DKIM domain or a HELO suffix (without its
// leading dot) must be.
func CheckHostName(name string) error { return checkHostName(name) }

// CheckSelector checks that sel is a DKIM selector in canonical form.
func CheckSelector(sel string) error { return checkSelector(sel) }
