// Package edgeconf holds the settings that `rampart serve` and the dnsedge
// binary must agree on: the edge zone, the edge's name servers and the
// reports domain. Serve writes them into every customer's records (the SPF
// include, the DMARC CNAME target, the rua address); the edge answers for
// them. Each setting has one flag and one environment variable, read by both
// binaries, and one default, so that a pair started from one environment
// serves what the API tells customers to publish.
//
// The defaults are development names under .test, which no resolver on the
// internet answers for (RFC 6761): a customer's SPF record including a name
// under them is a permerror everywhere. Outside `rampart dev` both binaries
// refuse them, and any name under another special-use suffix, unless the
// operator allows them explicitly ([AllowDevZone]) for a lab or a test.
//
// The package uses the standard library only: cmd/dnsedge links it and
// must not link the API's code.
package edgeconf

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The development defaults, served by `rampart dev` and the tests.
const (
	DevZone          = "edge.rampart.test"
	DevReportsDomain = "reports.rampart.test"
)

// Setting is one setting shared by `rampart serve` and dnsedge.
type Setting struct {
	// Flag is the flag's name without the dash; Env the environment
	// variable that is its default.
	Flag, Env string
	// Default is the value when neither is set.
	Default string
	// Usage is the flag's help text.
	Usage string
	// OldFlag and OldEnv are dnsedge's former names of the setting, still
	// read by dnsedge with a warning ("" when there is none).
	OldFlag, OldEnv string
}

// Names is how errors name the setting: "-edge-zone (RAMPART_EDGE_ZONE)".
func (s Setting) Names() string { return "-" + s.Flag + " (" + s.Env + ")" }

// The shared settings.
var (
	Zone = Setting{
		Flag: "edge-zone", Env: "RAMPART_EDGE_ZONE", Default: DevZone,
		Usage:   "the DNS edge's own `zone`, delegated to the edge's name servers; the same for rampart serve and dnsedge (env RAMPART_EDGE_ZONE)",
		OldFlag: "zone", OldEnv: "DNSEDGE_ZONE",
	}
	NameServers = Setting{
		Flag: "edge-ns", Env: "RAMPART_EDGE_NS",
		Usage:   "the edge's name servers, `name[=address],...`; the same for rampart serve and dnsedge (env RAMPART_EDGE_NS; default ns1.<zone>,ns2.<zone>)",
		OldFlag: "ns", OldEnv: "DNSEDGE_NS",
	}
	ReportsDomain = Setting{
		Flag: "reports-domain", Env: "RAMPART_REPORTS_DOMAIN", Default: DevReportsDomain,
		Usage:  "the `domain` of the report addresses, whose _report._dmarc records the edge serves; the same for rampart serve and dnsedge (env RAMPART_REPORTS_DOMAIN)",
		OldEnv: "DNSEDGE_REPORTS_DOMAIN",
	}
	// AllowDevZone lets the binaries start on names that no resolver on
	// the internet answers for: the development defaults, or a zone under
	// .test, .example, .invalid, .localhost, .local and the like.
	AllowDevZone = Setting{
		Flag: "allow-dev-zone", Env: "RAMPART_ALLOW_DEV_ZONE",
		Usage: "start even though the edge zone, name servers or reports domain are development names no resolver on the internet answers for (under .test, .example, ...): for a lab or a test only (env RAMPART_ALLOW_DEV_ZONE=true)",
	}
)

// Values are the shared settings' values.
type Values struct {
	Zone          string
	NameServers   string // "name[=address],..."; empty for ns1.<zone>,ns2.<zone>
	ReportsDomain string
	AllowDevZone  bool
}

// special are the suffixes that no resolver on the internet answers for
// with anything but NXDOMAIN (or that never reach the DNS at all): the
// special-use names of RFC 6761, RFC 6762 (.local), RFC 7686 (.onion),
// RFC 8375 (home.arpa) and RFC 9476 (.alt), and the documentation domains
// of RFC 2606.
var special = []string{
	"test", "example", "invalid", "localhost", "local", "onion", "alt", "home.arpa",
	"example.com", "example.net", "example.org",
}

// specialSuffix returns the special-use suffix name is or is under, or "".
func specialSuffix(name string) string {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	for _, s := range special {
		if n == s || strings.HasSuffix(n, "."+s) {
			return s
		}
	}
	return ""
}

// Check refuses a zone or reports domain that is missing, and names (the
// zone, a name server or the reports domain) that no resolver on the
// internet answers for, unless v.AllowDevZone. With v.AllowDevZone it
// returns what it would have refused as a warning for the log instead.
func (v Values) Check() (warning string, err error) {
	if strings.TrimSpace(v.Zone) == "" {
		return "", fmt.Errorf("%s is empty: set it to the edge's own zone, delegated to the edge's name servers, the same for rampart serve and dnsedge", Zone.Names())
	}
	if strings.TrimSpace(v.ReportsDomain) == "" {
		return "", fmt.Errorf("%s is empty: set it to the domain of the report addresses, the same for rampart serve and dnsedge, which serves its _report._dmarc records", ReportsDomain.Names())
	}
	var problems []string
	zoneSuffix := specialSuffix(v.Zone)
	if s := zoneSuffix; s != "" {
		problems = append(problems, fmt.Sprintf("%s is %q%s: resolvers answer NXDOMAIN under .%s, so every customer's SPF record including it would be a permerror and their DMARC records would not be found; set %s to a zone delegated to the edge's name servers",
			Zone.Names(), v.Zone, devDefault(v.Zone, DevZone), s, Zone.Env))
	}
	zone := "." + strings.ToLower(strings.TrimSuffix(strings.TrimSpace(v.Zone), "."))
	for _, ns := range nameServerNames(v.NameServers) {
		if zoneSuffix != "" && strings.HasSuffix("."+ns, zone) {
			continue // said of the zone already
		}
		if s := specialSuffix(ns); s != "" {
			problems = append(problems, fmt.Sprintf("%s names %q: resolvers answer NXDOMAIN under .%s, so no zone can be delegated to it; set %s to the edge's real name servers",
				NameServers.Names(), ns, s, NameServers.Env))
		}
	}
	if s := specialSuffix(v.ReportsDomain); s != "" {
		problems = append(problems, fmt.Sprintf("%s is %q%s: resolvers answer NXDOMAIN under .%s, so no report sent to an address at it would arrive; set %s to the domain receiving DMARC reports",
			ReportsDomain.Names(), v.ReportsDomain, devDefault(v.ReportsDomain, DevReportsDomain), s, ReportsDomain.Env))
	}
	if len(problems) == 0 {
		return "", nil
	}
	text := strings.Join(problems, "; ")
	if v.AllowDevZone {
		return "serving development names, allowed by " + AllowDevZone.Names() + " for a lab or a test: " + text, nil
	}
	return "", errors.New(text + " (or set " + AllowDevZone.Env + "=true for a lab or a test)")
}

func devDefault(v, def string) string {
	if strings.EqualFold(strings.TrimSuffix(v, "."), def) {
		return ", the development default"
	}
	return ""
}

// nameServerNames returns the names in a "name[=address],..." list, each
// once, lower case and without a trailing dot.
func nameServerNames(spec string) []string {
	var out []string
	for item := range strings.SplitSeq(spec, ",") {
		name, _, _ := strings.Cut(item, "=")
		name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// Flags are the shared settings defined on a standard [flag.FlagSet], as
// the dnsedge binary reads them: each setting's flag, its deprecated flag
// and [AllowDevZone]. Read them with [Flags.Values] after parsing.
type Flags struct {
	fs    *flag.FlagSet
	vals  map[string]*string // flag name, new or old → value
	allow *bool
}

var shared = []*Setting{&Zone, &NameServers, &ReportsDomain}

// Define defines the shared settings on fs.
func Define(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, vals: map[string]*string{}}
	for _, s := range shared {
		f.vals[s.Flag] = fs.String(s.Flag, s.Default, s.Usage)
		if s.OldFlag != "" {
			f.vals[s.OldFlag] = fs.String(s.OldFlag, "", "deprecated: use -"+s.Flag)
		}
	}
	f.allow = fs.Bool(AllowDevZone.Flag, false, AllowDevZone.Usage)
	return f
}

// Values reads the parsed flags, then the environment (getenv is
// os.LookupEnv outside tests) for the settings no flag set: the flag wins,
// then the variable, then the default. A former name still works, with a
// warning; a former and a current name both given different values is an
// error, whichever wins.
func (f *Flags) Values(getenv func(string) (string, bool)) (Values, []string, error) {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var (
		v        Values
		warnings []string
		errs     []error
	)
	out := map[string]*string{Zone.Flag: &v.Zone, NameServers.Flag: &v.NameServers, ReportsDomain.Flag: &v.ReportsDomain}
	for _, s := range shared {
		val := s.Default
		newEnv, hasNewEnv := getenv(s.Env)
		oldEnv, hasOldEnv := "", false
		if s.OldEnv != "" {
			oldEnv, hasOldEnv = getenv(s.OldEnv)
		}
		switch {
		case hasNewEnv && hasOldEnv && newEnv != oldEnv:
			errs = append(errs, fmt.Errorf("%s=%q and the deprecated %s=%q disagree: set only %s", s.Env, newEnv, s.OldEnv, oldEnv, s.Env))
		case hasOldEnv:
			warnings = append(warnings, fmt.Sprintf("%s is deprecated: set %s instead (the same for rampart serve and dnsedge)", s.OldEnv, s.Env))
		}
		switch {
		case hasNewEnv:
			val = newEnv
		case hasOldEnv:
			val = oldEnv
		}
		newFlag, oldFlag := *f.vals[s.Flag], ""
		hasOldFlag := s.OldFlag != "" && set[s.OldFlag]
		if hasOldFlag {
			oldFlag = *f.vals[s.OldFlag]
		}
		switch {
		case set[s.Flag] && hasOldFlag && newFlag != oldFlag:
			errs = append(errs, fmt.Errorf("-%s=%q and the deprecated -%s=%q disagree: give only -%s", s.Flag, newFlag, s.OldFlag, oldFlag, s.Flag))
		case hasOldFlag:
			warnings = append(warnings, fmt.Sprintf("-%s is deprecated: use -%s instead (the same for rampart serve and dnsedge)", s.OldFlag, s.Flag))
		}
		switch {
		case set[s.Flag]:
			val = newFlag
		case hasOldFlag:
			val = oldFlag
		}
		*out[s.Flag] = val
	}
	v.AllowDevZone = *f.allow
	if !set[AllowDevZone.Flag] {
		if s, ok := getenv(AllowDevZone.Env); ok && s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid boolean value %q for -%s: want true or false", AllowDevZone.Env, s, AllowDevZone.Flag))
			}
			v.AllowDevZone = b
		}
	}
	return v, warnings, errors.Join(errs...)
}
