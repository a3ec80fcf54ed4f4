package catalog_test

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rampartmail/rampart/internal/catalog"
)

// firstDozen are the services of the first release, with the facts the
// issue names; the test pins them so that a change to them is deliberate.
var firstDozen = []struct {
	slug, include string
	suffixes      []string
}{
	{"google-workspace", "_spf.google.com", []string{".google.com"}},
	{"microsoft-365", "spf.protection.outlook.com", []string{".outbound.protection.outlook.com"}},
	{"amazon-ses", "amazonses.com", []string{".amazonses.com"}},
	{"sendgrid", "sendgrid.net", []string{".sendgrid.net"}},
	{"mailchimp", "servers.mcsv.net", []string{".mcsv.net", ".rsgsv.net", ".mcdlv.net"}},
	{"mandrill", "spf.mandrillapp.com", []string{".mandrillapp.com"}},
	{"mailgun", "mailgun.org", []string{".mailgun.net", ".mailgun.info", ".mailgun.us"}},
	{"postmark", "spf.mtasv.net", []string{".mtasv.net"}},
	{"sparkpost", "sparkpostmail.com", []string{".sparkpostmail.com"}},
	{"salesforce", "_spf.salesforce.com", []string{".salesforce.com"}},
	{"zendesk", "mail.zendesk.com", []string{".zdsys.com"}},
	{"mailjet", "spf.mailjet.com", []string{".mailjet.com"}},
}

// shippedCount is the number of services in services.json; README.md
// lists the research's verified rows left out and why.
const shippedCount = 31

// categories are the categories an entry may have.
var categories = map[string]bool{
	"workspace": true, "transactional": true, "marketing": true, "crm": true, "helpdesk": true,
	"saas-notifications": true, "security-gateway": true, "security-awareness": true,
}

func TestLoad(t *testing.T) {
	t.Parallel()
	services, err := catalog.Load()
	require.NoError(t, err)
	require.Len(t, services, shippedCount)

	slugs := make(map[string]bool)
	for _, s := range services {
		require.NoError(t, s.Validate())
		require.False(t, slugs[s.Slug], "duplicate %s", s.Slug)
		slugs[s.Slug] = true
		require.NotEmpty(t, s.Notes, s.Slug)
	}
	for _, want := range firstDozen {
		s, ok := catalog.Lookup(want.slug)
		require.True(t, ok, want.slug)
		require.Equal(t, []string{want.include}, s.SPFIncludes, want.slug)
		require.Equal(t, want.suffixes, s.HELOSuffixes, want.slug)
	}
}

// TestEntries checks what Validate cannot see in one entry: categories
// from a fixed set, and no include, HELO suffix or DKIM domain claimed by
// two services, so that a match names one service.
func TestEntries(t *testing.T) {
	t.Parallel()
	services, err := catalog.Load()
	require.NoError(t, err)
	includes := make(map[string]string)
	suffixes := make(map[string]string)
	dkimDomains := make(map[string]string)
	claim := func(seen map[string]string, what, value, slug string) {
		t.Helper()
		other, dup := seen[value]
		require.False(t, dup, "%s %q is claimed by %s and %s", what, value, other, slug)
		seen[value] = slug
	}
	for _, s := range services {
		require.True(t, categories[s.Category], "%s: category %q", s.Slug, s.Category)
		require.True(t, len(s.SPFIncludes) > 0 || len(s.HELOSuffixes) > 0, "%s: nothing to recognise it by", s.Slug)
		for _, inc := range s.SPFIncludes {
			claim(includes, "include", inc, s.Slug)
		}
		for _, suffix := range s.HELOSuffixes {
			claim(suffixes, "helo suffix", suffix, s.Slug)
		}
		for _, d := range s.DKIMDomains {
			claim(dkimDomains, "dkim domain", d, s.Slug)
		}
		// A suffix below another service's suffix would make one host
		// name match two services.
		for _, other := range services {
			if other.Slug == s.Slug {
				continue
			}
			for _, a := range s.HELOSuffixes {
				for _, b := range other.HELOSuffixes {
					require.False(t, strings.HasSuffix(a, b), "%s suffix %s is below %s suffix %s", s.Slug, a, other.Slug, b)
				}
			}
		}
	}
}

// TestSources checks that every entry says where its facts come from.
func TestSources(t *testing.T) {
	t.Parallel()
	services, err := catalog.Load()
	require.NoError(t, err)
	for _, s := range services {
		require.NotEmpty(t, s.SourceURL, s.Slug)
		require.NotContains(t, s.SourceURL, "find_string", s.Slug)
		require.GreaterOrEqual(t, len(s.Notes), 40, "%s: notes say what the entry rests on", s.Slug)
		u, err := url.Parse(s.SourceURL)
		require.NoError(t, err, s.Slug)
		require.Equal(t, "https", u.Scheme, s.Slug)
		require.NotEmpty(t, u.Host, s.Slug)
		if s.SetupURL != "" {
			u, err := url.Parse(s.SetupURL)
			require.NoError(t, err, s.Slug)
			require.Equal(t, "https", u.Scheme, s.Slug)
		}
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	s, ok := catalog.Lookup("microsoft-365")
	require.True(t, ok)
	require.Equal(t, "Microsoft 365 / Exchange Online", s.Name)
	require.Equal(t, []string{"onmicrosoft.com"}, s.DKIMDomains)
	require.Equal(t, []string{"selector1", "selector2"}, s.DKIMSelectors)

	s, ok = catalog.Lookup("pardot")
	require.True(t, ok)
	require.Equal(t, []string{"200608"}, s.DKIMSelectors)

	_, ok = catalog.Lookup("no-such-service")
	require.False(t, ok)
	_, ok = catalog.Lookup("")
	require.False(t, ok)
}

// TestLoadReturnsCopies checks that callers cannot change the shipped data.
func TestLoadReturnsCopies(t *testing.T) {
	t.Parallel()
	first, err := catalog.Load()
	require.NoError(t, err)
	first[0].Slug = "changed"
	first[0].HELOSuffixes[0] = ".changed.example"
	first[0].DKIMSelectors[0] = "changed"
	s, ok := catalog.Lookup("google-workspace")
	require.True(t, ok)
	s.HELOSuffixes[0] = ".changed.example"

	again, err := catalog.Load()
	require.NoError(t, err)
	require.Equal(t, "google-workspace", again[0].Slug)
	require.Equal(t, []string{".google.com"}, again[0].HELOSuffixes)
	require.Equal(t, []string{"google"}, again[0].DKIMSelectors)
}

func TestMatchesHELO(t *testing.T) {
	t.Parallel()
	google, ok := catalog.Lookup("google-workspace")
	require.True(t, ok)
	microsoft, ok := catalog.Lookup("microsoft-365")
	require.True(t, ok)
	mailchimp, ok := catalog.Lookup("mailchimp")
	require.True(t, ok)

	cases := []struct {
		service catalog.Service
		helo    string
		want    bool
	}{
		{google, "mail-yw1-f170.google.com", true},
		{google, "MAIL-YW1-F170.Google.COM", true},
		{google, "mail-yw1-f170.google.com.", true},
		{google, " mail-yw1-f170.google.com ", true},
		{google, "a.b.c.google.com", true},
		{google, "google.com", false},
		{google, ".google.com", false},
		{google, "x..google.com", false},
		{google, "evilgoogle.com", false},
		{google, "mail.google.com.evil.example", false},
		{google, "google.com.evil.example", false},
		{google, "mail.googlemail.com", false},
		{google, "", false},
		{google, ".", false},
		{google, "[192.0.2.1]", false},
		{microsoft, "mail-db8eur05on2071.outbound.protection.outlook.com", true},
		{microsoft, "EUR05-VI1-obe.outbound.protection.outlook.com", true},
		{microsoft, "am6pr01mb1234.eurprd01.prod.outlook.com", false},
		{microsoft, "outbound.protection.outlook.com", false},
		{mailchimp, "mail135.atl221.rsgsv.net", true},
		{mailchimp, "mail12.suw21.mcdlv.net", true},
		{mailchimp, "mail1.mcsv.net", true},
		{mailchimp, "mcsv.net.example", false},
		{catalog.Service{}, "mail.example.com", false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, tc.service.MatchesHELO(tc.helo), "%s %q", tc.service.Slug, tc.helo)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	valid := catalog.Service{
		Slug:          "example",
		Name:          "Example Mail",
		Category:      "transactional",
		SPFIncludes:   []string{"_spf.example.com", "_spf2.example.com"},
		HELOSuffixes:  []string{".mta.example.com"},
		DKIMDomains:   []string{"example.net"},
		DKIMSelectors: []string{"s1", "200608", "k_1.example"},
		StaticRanges:  []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
		SetupURL:      "https://example.com/docs/spf",
		SourceURL:     "https://example.com/docs",
	}
	require.NoError(t, valid.Validate())

	cases := []struct {
		name     string
		change   func(*catalog.Service)
		contains string
	}{
		{"empty slug", func(s *catalog.Service) { s.Slug = "" }, "slug"},
		{"upper-case slug", func(s *catalog.Service) { s.Slug = "Example" }, "slug"},
		{"slug with underscore", func(s *catalog.Service) { s.Slug = "ex_ample" }, "slug"},
		{"slug starting with hyphen", func(s *catalog.Service) { s.Slug = "-example" }, "slug"},
		{"long slug", func(s *catalog.Service) { s.Slug = strings.Repeat("a", 64) }, "slug"},
		{"no name", func(s *catalog.Service) { s.Name = " " }, "name is empty"},
		{"bad category", func(s *catalog.Service) { s.Category = "Mail Tools" }, "category"},
		{"include with trailing dot", func(s *catalog.Service) { s.SPFIncludes = []string{"_spf.example.com."} }, "spf_includes"},
		{"include upper case", func(s *catalog.Service) { s.SPFIncludes = []string{"_spf.example.com", "_SPF.example.net"} }, "spf_includes"},
		{"include single label", func(s *catalog.Service) { s.SPFIncludes = []string{"localhost"} }, "two labels"},
		{"include with mechanism", func(s *catalog.Service) { s.SPFIncludes = []string{"include:_spf.example.com"} }, "spf_includes"},
		{"include is an address", func(s *catalog.Service) { s.SPFIncludes = []string{"192.0.2.1"} }, "number"},
		{"include twice", func(s *catalog.Service) { s.SPFIncludes = []string{"_spf.example.com", "_spf.example.com"} }, "twice"},
		{"too many includes", func(s *catalog.Service) {
			s.SPFIncludes = nil
			for i := range catalog.MaxSPFIncludes + 1 {
				s.SPFIncludes = append(s.SPFIncludes, fmt.Sprintf("_spf%d.example.com", i))
			}
		}, "more than the 10"},
		{"includes too long together", func(s *catalog.Service) {
			s.SPFIncludes = []string{strings.Repeat("a", 45) + "." + strings.Repeat("a", 44) + ".example", strings.Repeat("b", 45) + "." + strings.Repeat("b", 44) + ".example"}
		}, "hand-over"},
		{"suffix without dot", func(s *catalog.Service) { s.HELOSuffixes = []string{"mta.example.com"} }, "must start with '.'"},
		{"suffix is a TLD", func(s *catalog.Service) { s.HELOSuffixes = []string{".com"} }, "two labels"},
		{"suffix with wildcard", func(s *catalog.Service) { s.HELOSuffixes = []string{"*.example.com"} }, "must start with '.'"},
		{"suffix twice", func(s *catalog.Service) { s.HELOSuffixes = []string{".a.example", ".a.example"} }, "twice"},
		{"bad DKIM domain", func(s *catalog.Service) { s.DKIMDomains = []string{"Example.NET"} }, "dkim domain"},
		{"DKIM domain twice", func(s *catalog.Service) { s.DKIMDomains = []string{"example.net", "example.net"} }, "twice"},
		{"empty DKIM selector", func(s *catalog.Service) { s.DKIMSelectors = []string{""} }, "dkim selector"},
		{"DKIM selector upper case", func(s *catalog.Service) { s.DKIMSelectors = []string{"Selector1"} }, "dkim selector"},
		{"DKIM selector with _domainkey", func(s *catalog.Service) { s.DKIMSelectors = []string{"s1._domainkey"} }, "without"},
		{"DKIM selector empty label", func(s *catalog.Service) { s.DKIMSelectors = []string{"s1..x"} }, "1 to 63"},
		{"DKIM selector hyphen", func(s *catalog.Service) { s.DKIMSelectors = []string{"-s1"} }, "hyphen"},
		{"DKIM selector long", func(s *catalog.Service) { s.DKIMSelectors = []string{strings.Repeat("a.", 121) + "a"} }, "too long"},
		{"DKIM selector twice", func(s *catalog.Service) { s.DKIMSelectors = []string{"s1", "s1"} }, "twice"},
		{"range with host bits", func(s *catalog.Service) { s.StaticRanges = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")} }, "write 192.0.2.0/24"},
		{"zero range", func(s *catalog.Service) { s.StaticRanges = []netip.Prefix{{}} }, "not a valid prefix"},
		{"range twice", func(s *catalog.Service) {
			s.StaticRanges = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("192.0.2.0/24")}
		}, "twice"},
		{"nothing to recognise", func(s *catalog.Service) { s.SPFIncludes, s.HELOSuffixes, s.StaticRanges = nil, nil, nil }, "no spf_includes"},
		{"no source", func(s *catalog.Service) { s.SourceURL = "" }, "source_url is empty"},
		{"relative source", func(s *catalog.Service) { s.SourceURL = "example.com/docs" }, "absolute"},
		{"search-index source", func(s *catalog.Service) { s.SourceURL = "find_string:17675399732" }, "source_url"},
		{"bad setup URL", func(s *catalog.Service) { s.SetupURL = "ftp://example.com/" }, "setup_url"},
	}
	for _, tc := range cases {
		s := valid
		s.HELOSuffixes = append([]string(nil), valid.HELOSuffixes...)
		tc.change(&s)
		err := s.Validate()
		require.Error(t, err, tc.name)
		require.Contains(t, err.Error(), tc.contains, tc.name)
		require.True(t, strings.HasPrefix(err.Error(), "catalog: service "), tc.name)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	entry := `{"slug": "example", "name": "Example", "category": "transactional", "spf_includes": ["_spf.example.com"],
		"helo_suffixes": [".example.com"], "dkim_domains": [], "dkim_selectors": ["s1"], "static_ranges": ["192.0.2.0/24"],
		"setup_url": "", "source_url": "https://example.com/", "notes": ""}`

	services, err := catalog.Parse([]byte("[" + entry + "]"))
	require.NoError(t, err)
	require.Len(t, services, 1)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, services[0].StaticRanges)

	cases := []struct {
		name, data, contains string
	}{
		{"duplicate slug", "[" + entry + "," + entry + "]", `"example" is listed twice`},
		{"unknown field", `[{"slug": "example", "spf_include": "x.example"}]`, "unknown field"},
		{"bad range", `[{"slug": "example", "static_ranges": ["192.0.2.0/33"]}]`, "decode"},
		{"not an array", `{"slug": "example"}`, "decode"},
		{"trailing data", "[" + entry + "] []", "after the array"},
		{"invalid entry", `[{"slug": "Example"}]`, "slug"},
	}
	for _, tc := range cases {
		_, err := catalog.Parse([]byte(tc.data))
		require.Error(t, err, tc.name)
		require.Contains(t, err.Error(), tc.contains, tc.name)
	}
}
