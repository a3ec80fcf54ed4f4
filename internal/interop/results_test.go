//go:build interop

package interop_test

import (
	"fmt"
	"slices"
	"strings"
)

// deviation is a library's documented departure from the RFC 7208 result
// for a class of cases, with its cause. A deviation never covers an
// authorized address in the current form: the test fails if such an
// address gets anything but pass, whatever this table says.
type deviation struct {
	ID   string
	Libs []string
	Form string // "" for both
	// Classes are spfCase.Class values ("badhelo-long", ...); Authorized
	// limits the deviation to authorized (true) or other (false) addresses,
	// nil for both.
	Classes    []string
	Authorized *bool
	Got        []string
	Cause      string
}

// invalidHELO are the HELO classes whose expansion into the include is no
// domain name (RFC 7208 §4.8 leaves such a target undefined; the RFC 4408
// errata allow "no match" or an error).
var invalidHELO = []string{"badhelo-empty", "badhelo-dot", "badhelo-emptylabel", "badhelo-label64"}

// deviations is what the libraries were seen to do where it differs from
// the RFC 7208 result; each cause names the library's behaviour and where
// it comes from. Legacy deviations may cost authorized addresses their
// pass: that is issue 9's finding, and why the current form exists.
var deviations = []deviation{
	{ID: "D1", Libs: []string{"libspf2 (spfquery)"}, Classes: append([]string{"badhelo-long"}, invalidHELO...), Got: []string{"temperror"},
		Cause: "libspf2 never shortens a name longer than 253 octets (RFC 7208 §7.3) nor checks the expanded name: it hands it to the stub resolver (res_query), " +
			"which refuses a name with an empty or over-long label or over 255 octets, and libspf2 reports that as a DNS failure, temperror. " +
			"In the legacy form the HELO is expanded in the first include, before any authorized range is tried, so this fails the domain's own netblocks; " +
			"in the current form the HELO is expanded only in the last step, after every authorized range."},
	{ID: "D2", Libs: []string{"Mail::SPF"}, Classes: []string{"badhelo-dot", "badhelo-emptylabel"}, Got: []string{"exception"},
		Cause: "Net::DNS dies (\"empty label in ...\") building the query for the expanded name and Mail::SPF 2.9.0 does not catch it: " +
			"Mail::SPF::Server::process() throws instead of returning a result (a receiver gets no SPF result or a temporary error, depending on its glue)."},
	{ID: "D3", Libs: []string{"pyspf"}, Classes: []string{"badhelo-long"}, Got: []string{"exception"},
		Cause: "pyspf 2.0.14 shortens an expansion longer than 253 octets by one label only (spf.py, expand), not until it fits (RFC 7208 §7.3); " +
			"dnspython then raises NameTooLong, which check2() does not catch."},
	{ID: "D4", Libs: []string{"pyspf", "Rampart internal/spf"}, Classes: invalidHELO, Got: []string{"permerror"},
		Cause: "The HELO include expands to no domain name; these take its target as a domain for which check_host() returns none (RFC 7208 §4.3), " +
			"and an include of none is a permerror (§5.2), where the RFC column takes no match (§4.8 leaves the target undefined; the RFC 4408 errata allow no match). " +
			"In the legacy form that include comes first, so the domain's own netblocks get permerror; in the current form it is the last step, " +
			"after every authorized range, so only addresses nobody authorized get it."},
	{ID: "D5", Libs: []string{"mailauth"}, Classes: []string{"badhelo-dot", "badhelo-emptylabel"}, Got: []string{"permerror"},
		Cause: "mailauth checks every name before asking (\"Invalid domain\", lib/spf/index.js) and makes a name with an empty label a permerror; " +
			"as for D4, in the legacy form this costs the domain's own netblocks their pass, in the current form only addresses nobody authorized."},
}

func (d deviation) covers(lib, form string, c spfCase, got string) bool {
	return slices.Contains(d.Libs, lib) && (d.Form == "" || d.Form == form) && slices.Contains(d.Classes, c.Class) &&
		(d.Authorized == nil || *d.Authorized == c.Authorized) && slices.Contains(d.Got, got)
}

// results is everything the run found, for the judgement and the document.
type results struct {
	forms []string
	// spf: form -> library -> case id -> cell.
	spf      map[string]map[string]map[string]cell
	other    []*otherRow
	notRun   map[string]string
	versions [][2]string
	setups   map[string]dnsSetup
	used     map[string]bool // deviations that matched a cell
}

// verdict classifies one SPF cell: "ok", a deviation id, or "FAIL".
func (r *results) verdict(lib, form string, c spfCase, got string) string {
	if got == c.Want[form] {
		return "ok"
	}
	if c.Authorized && form == formCurrent {
		return "FAIL"
	}
	for _, d := range deviations {
		if d.covers(lib, form, c, got) {
			if r.used == nil {
				r.used = map[string]bool{}
			}
			r.used[d.ID] = true
			return d.ID
		}
	}
	return "FAIL"
}

// judge returns every cell that is neither the expected result nor a
// documented deviation.
func (r *results) judge() []string {
	var out []string
	for _, d := range []string{dSend, dCNAME} {
		if r.setupForm(d) == "" {
			out = append(out, fmt.Sprintf("dnsSetup asks %s to publish %q, neither form the matrix runs", d, r.setups[d].Spf.Value))
		}
	}
	for _, form := range r.forms {
		for _, lib := range r.libs(form) {
			for _, c := range spfCases() {
				cl, ok := r.spf[form][lib][c.ID]
				if !ok {
					out = append(out, fmt.Sprintf("%s, %s form, %s: no result", lib, form, c.ID))
					continue
				}
				if r.verdict(lib, form, c, cl.Got) == "FAIL" {
					out = append(out, fmt.Sprintf("%s, %s form, %s (%s, HELO %q): got %s, want %s (%s)",
						lib, form, c.ID, c.IP, c.HELO, cl.Got, c.Want[form], cl.Detail))
				}
			}
		}
	}
	for _, row := range r.other {
		for _, lib := range otherLibs {
			cl, ok := row.Cells[lib]
			if !ok || cl.Got == "not run" {
				continue
			}
			if cl.Got != row.want(lib) && otherDeviation(lib, row.ID, cl.Got) == nil {
				out = append(out, fmt.Sprintf("%s, %s: got %s, want %s (%s)", lib, row.ID, cl.Got, row.want(lib), cl.Detail))
			}
		}
	}
	return out
}

// otherDev is a documented deviation in the DKIM, DMARC and BIMI matrix.
type otherDev struct {
	ID, Lib string
	Rows    []string
	Got     string
	Cause   string
}

var otherDeviations = []otherDev{
	{ID: "K1", Lib: libOpendkim, Rows: []string{"dkim-ed"}, Got: "fail",
		Cause: "opendkim-testkey 2.11.0~beta2 reads the Ed25519 record (\"key not secure\": the lab's zones are unsigned) but compares only RSA keys " +
			"(EVP_PKEY_get1_RSA() fails: \"expecting an rsa key\"); dkimpy and mailauth verify Ed25519 signatures with the same record."},
}

func otherDeviation(lib, row, got string) *otherDev {
	for i, d := range otherDeviations {
		if d.Lib == lib && slices.Contains(d.Rows, row) && d.Got == got {
			return &otherDeviations[i]
		}
	}
	return nil
}

// setupForm is the form of the SPF record dnsSetup asks a domain to
// publish, "" if neither.
func (r *results) setupForm(d string) string {
	for _, f := range []string{formCurrent, formLegacy} {
		if r.setups[d].Spf.Value == record(f, d) {
			return f
		}
	}
	return ""
}

// tally counts a form's cells: as expected, documented deviations, FAIL,
// and the authorized cases' cells that are not pass.
type tally struct {
	ok, dev, fail   int
	authorizedNotOK []string
}

func (r *results) tally(form string) tally {
	var t tally
	for _, lib := range r.libs(form) {
		for _, c := range spfCases() {
			got := r.spf[form][lib][c.ID].Got
			switch r.verdict(lib, form, c, got) {
			case "ok":
				t.ok++
			case "FAIL":
				t.fail++
			default:
				t.dev++
			}
			if c.Authorized && got != "pass" {
				t.authorizedNotOK = append(t.authorizedNotOK, fmt.Sprintf("%s: %s", lib, c.ID))
			}
		}
	}
	return t
}

// libs lists the SPF libraries that ran for a form, in a fixed order.
func (r *results) libs(form string) []string {
	var out []string
	for _, name := range []string{"pyspf", "libspf2 (spfquery)", "Mail::SPF", "mailauth", "Rampart internal/spf"} {
		if _, ok := r.spf[form][name]; ok {
			out = append(out, name)
		}
	}
	return out
}

func versions() [][2]string {
	return [][2]string{
		{"Unbound", version(`^Version (\S+)`, "/usr/sbin/unbound", "-V") + " (Debian " + debVersion("unbound") + ")"},
		{"NSD", version(`^NSD version (\S+)`, "/usr/sbin/nsd", "-v") + " (Debian " + debVersion("nsd") + ")"},
		{"pyspf", version(`^(\S+)$`, "/usr/bin/python3", "-c", "import spf; print(spf.__version__)") + " (Debian python3-spf " + debVersion("python3-spf") + ")"},
		{"dnspython", version(`^(\S+)$`, "/usr/bin/python3", "-c", "import dns.version; print(dns.version.version)") + " (Debian python3-dnspython " + debVersion("python3-dnspython") + ")"},
		{"libspf2 (spfquery)", "Debian spfquery " + debVersion("spfquery") + ", libspf2-2 " + debVersion("libspf2-2")},
		{"Mail::SPF", version(`^(\S+)$`, "/usr/bin/perl", "-MMail::SPF", "-e", "print $Mail::SPF::VERSION") + " (Debian libmail-spf-perl " + debVersion("libmail-spf-perl") + "), Net::DNS " + version(`^(\S+)$`, "/usr/bin/perl", "-MNet::DNS", "-e", "print $Net::DNS::VERSION")},
		{"dkimpy", "Debian python3-dkim " + debVersion("python3-dkim") + ", PyNaCl " + debVersion("python3-nacl")},
		{"opendkim-testkey", "Debian opendkim-tools " + debVersion("opendkim-tools")},
		{"opendmarc-check", "Debian opendmarc " + debVersion("opendmarc")},
		{"mailauth", version(`"version": "([^"]+)"`, "/usr/bin/cat", repoRoot()+"/.data/interop/npm/node_modules/mailauth/package.json") + " (npm, pinned in scripts/interop/package-lock.json), Node.js " + version(`^v?(\S+)`, "/usr/bin/node", "--version")},
		{"checkdmarc", "not run: it is published on PyPI only, not as a Debian package"},
	}
}

func mark(v, got string) string {
	switch v {
	case "ok":
		return got
	case "FAIL":
		return "**FAIL: " + got + "**"
	}
	return "_" + got + "_ (" + v + ")"
}

func esc(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func code(s string) string {
	if s == "" {
		return "(empty)"
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

// markdown is docs/interop.md.
func (r *results) markdown() string {
	var b strings.Builder
	b.WriteString(docHead)
	b.WriteString("\n## Versions\n\nQueried when the matrix was made.\n\n| Software | Version |\n|---|---|\n")
	for _, v := range r.versions {
		fmt.Fprintf(&b, "| %s | %s |\n", v[0], esc(v[1]))
	}
	b.WriteString("\n## The published records\n\nThe lab's customers publish, for each domain, one of the two forms of the SPF record (the edge zone is `edge.rampart.test`):\n\n")
	fmt.Fprintf(&b, "- current: %s\n- legacy: %s\n\n", code(record(formCurrent, dSend)), code(record(formLegacy, dSend)))
	form := r.setupForm(dSend)
	if form == "" {
		form = "neither form"
	} else {
		form = "the " + form + " form"
	}
	fmt.Fprintf(&b, "`dnsSetup` asked %s to publish %s (%s).\n", dSend, code(r.setups[dSend].Spf.Value), form)
	fmt.Fprintf(&b, "`dnsSetup` asked the BLOCKED %s to publish %s; it kept the macro record (issue 9 point 8).\n", dBlock, code(r.setups[dBlock].Spf.Value))

	b.WriteString("\n## Summary\n\n| Form | Cells | RFC 7208 result | Documented deviation | FAIL | Authorized addresses without pass |\n|---|---|---|---|---|---|\n")
	for _, form := range r.forms {
		t := r.tally(form)
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", form, t.ok+t.dev+t.fail, t.ok, t.dev, t.fail, len(t.authorizedNotOK))
	}
	for _, form := range r.forms {
		if t := r.tally(form); len(t.authorizedNotOK) > 0 {
			fmt.Fprintf(&b, "\nAuthorized addresses without pass in the %s form (library: case): %s.\n", form, strings.Join(t.authorizedNotOK, "; "))
		}
	}
	for _, form := range r.forms {
		libs := r.libs(form)
		fmt.Fprintf(&b, "\n## SPF, %s form\n\n", form)
		b.WriteString("Each cell is the library's result; _italic_ with a note is a documented deviation, **FAIL** is neither the RFC 7208 result nor a documented deviation. ")
		b.WriteString("The RFC 7208 column takes an include whose target the HELO makes no domain name as no match (§4.8 leaves it undefined; the RFC 4408 errata allow no match), ")
		b.WriteString("and cuts an expansion longer than 253 octets from the left (§7.3). Rampart internal/spf is the project's own evaluator, asked through the same Unbound.\n\n")
		b.WriteString("| Case | Address | HELO | Authorized | RFC 7208 |")
		for _, l := range libs {
			b.WriteString(" " + l + " |")
		}
		b.WriteString("\n|---|---|---|---|---|" + strings.Repeat("---|", len(libs)) + "\n")
		for _, c := range spfCases() {
			helo := c.HELO
			if len(helo) > 40 {
				helo = helo[:20] + "…(" + fmt.Sprint(len(helo)) + " octets)"
			}
			auth := "no"
			if c.Authorized {
				auth = "yes"
			}
			fmt.Fprintf(&b, "| %s: %s | %s | %s | %s | %s |", c.ID, esc(c.What), c.IP, code(helo), auth, c.Want[form])
			for _, l := range libs {
				cl := r.spf[form][l][c.ID]
				fmt.Fprintf(&b, " %s |", mark(r.verdict(l, form, c, cl.Got), cl.Got))
			}
			b.WriteString("\n")
		}
	}

	b.WriteString("\n## DKIM, DMARC and BIMI\n\n")
	b.WriteString("| Case | Expected |")
	for _, l := range otherLibs {
		b.WriteString(" " + l + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(otherLibs)) + "\n")
	for _, row := range r.other {
		fmt.Fprintf(&b, "| %s: %s | %s |", row.ID, esc(row.What), row.Want)
		for _, l := range otherLibs {
			cl, ok := row.Cells[l]
			switch {
			case !ok:
				b.WriteString(" – |")
			case cl.Got == "not run":
				b.WriteString(" not run |")
			case cl.Got == row.want(l):
				b.WriteString(" " + cl.Got + " |")
			case otherDeviation(l, row.ID, cl.Got) != nil:
				fmt.Fprintf(&b, " _%s_ (%s) |", cl.Got, otherDeviation(l, row.ID, cl.Got).ID)
			default:
				fmt.Fprintf(&b, " **FAIL: %s** |", esc(cl.Got))
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Deviations\n\nA library's result that differs from the RFC 7208 one, and why. None fails an address the domain authorized in the current form: the test fails if one does.\n\n| Note | Library | Form | Cases | Result | Cause |\n|---|---|---|---|---|---|\n")
	for _, d := range deviations {
		if !r.used[d.ID] {
			continue
		}
		form := d.Form
		if form == "" {
			form = "both"
		}
		who := strings.Join(d.Classes, ", ")
		if d.Authorized != nil {
			if *d.Authorized {
				who += " (authorized address)"
			} else {
				who += " (other address)"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", d.ID, strings.Join(d.Libs, ", "), form, who, strings.Join(d.Got, ", "), esc(d.Cause))
	}
	for _, d := range otherDeviations {
		fmt.Fprintf(&b, "| %s | %s | – | %s | %s | %s |\n", d.ID, d.Lib, strings.Join(d.Rows, ", "), d.Got, esc(d.Cause))
	}
	b.WriteString("\n## Not run\n\n")
	{
		for _, lib := range []string{"pyspf", "libspf2 (spfquery)", "Mail::SPF", "mailauth"} {
			if why, ok := r.notRun[lib]; ok {
				fmt.Fprintf(&b, "- %s: %s\n", lib, why)
			}
		}
	}
	b.WriteString("- checkdmarc: published on PyPI only (no Debian package); the DMARC records are read by opendmarc-check and mailauth instead.\n")
	return b.String()
}

const docHead = `# Interoperability: Rampart's records in the receivers' software

Generated by ` + "`make interop`" + ` (internal/interop, build tag ` + "`interop`" + `); do not edit
by hand. It is not part of ` + "`make test`" + `.

## What runs

` + "`make interop`" + ` installs, with the distribution's packages when missing,
Unbound, NSD, pyspf, libspf2's ` + "`spfquery`" + `, Mail::SPF, dkimpy,
opendkim-tools and opendmarc, and mailauth from npm at the version pinned in
` + "`scripts/interop/package-lock.json`" + ` (scripts/interop-setup). Then, in a
network namespace of its own with only a loopback interface
(scripts/interop-run), it runs one test:

1. the built ` + "`rampart serve`" + ` on a throwaway PostgreSQL and the built
   ` + "`dnsedge`" + ` following it;
2. through the GraphQL API: an account with the domains
   ` + "`example.com`" + ` (netblocks 192.0.2.0/24 and 2001:db8:10::/48,
   the senders google-workspace and sendgrid, DKIM keys RSA 1024, 2048 and
   4096 and Ed25519 hosted by the edge and one CNAME to the vendor's record,
   DMARC p=reject and BIMI), ` + "`example.net`" + ` (a netblock, DMARC by
   the CNAME alternative), ` + "`example.org`" + ` (BLOCKED) and
   ` + "`gone.example.net`" + ` (removed); the vendors' includes are resolved
   against their records of that time;
3. NSD serves the customers' zone as ` + "`dnsSetup`" + ` tells them to publish it
   (the apex SPF record in the form under test, the NS delegations and the
   CNAME alternative) and the vendors' zones (google.com, sendgrid.net), whose
   live records have changed since: sendgrid added 203.0.113.0/24;
4. an unmodified Unbound (qname minimisation, 0x20 (` + "`use-caps-for-id`" + `),
   DNSSEC validation with the root trust anchor; the lab's unsigned zones are
   ` + "`domain-insecure`" + `) answers on 127.0.0.1:53, with NSD and the edge as
   stub zones (the delegated ` + "`_dmarc`" + `, ` + "`_domainkey`" + ` and ` + "`_bimi`" + `
   names too, as the edge listens on a port of its own); every other name goes
   to a root stub that refuses it, so nothing leaves the machine;
5. every library asks that Unbound: the ones that read ` + "`/etc/resolv.conf`" + `
   (spfquery, opendkim-testkey, opendmarc-check) through the namespace's
   own resolv.conf, the others through their resolver settings;
6. Unbound and NSD are restarted for each form, so no answer is cached from
   the other form.

Run it with ` + "`make interop`" + ` (as root, for the packages and the network
namespace). ` + "`RAMPART_INTEROP_FORMS=legacy make interop`" + ` runs one form.
`
