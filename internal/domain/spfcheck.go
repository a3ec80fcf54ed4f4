package domain

import (
	"strconv"
	"strings"

	"github.com/rampartmail/rampart/internal/spfanswer"
)

// SPFStatus says how the SPF record a domain publishes at its apex stands
// against the record Rampart asks for ([SPFRecord]).
type SPFStatus string

// The statuses, as stored in domains.spf_published.
const (
	// SPFUnknown: no lookup of the apex TXT records has got an answer yet.
	SPFUnknown SPFStatus = "unknown"
	// SPFCurrent: one SPF record, with the edge's address include and the
	// redirect to the domain's _rspf name (the edge decides the result).
	SPFCurrent SPFStatus = "current"
	// SPFLegacy: one SPF record with the old HELO macro include
	// ([LegacySPFRecord]); it still works, but a bad HELO can make it an
	// error and a blocked domain only softfails with it.
	SPFLegacy SPFStatus = "legacy"
	// SPFOther: one SPF record that is neither form (typically without the
	// edge, or with an all term that makes receivers ignore the redirect).
	SPFOther SPFStatus = "other"
	// SPFMissing: no SPF record at the apex.
	SPFMissing SPFStatus = "missing"
	// SPFMultiple: more than one SPF record, a permerror at every receiver
	// (RFC 7208 §4.5).
	SPFMultiple SPFStatus = "multiple"
)

// SPFRecord is the apex SPF record a domain publishes (the current form):
// the per-query address include, answered by the edge from the domain's
// netblocks and enabled senders' ranges without the HELO, then a redirect
// to the domain's _rspf name, where the edge decides what is left (pinned
// includes, the HELO-based vendor step, ~all; -all for a blocked domain;
// ?all for a removed one during the removal grace).
func SPFRecord(name, edgeZone string) string {
	zone := strings.TrimSuffix(edgeZone, ".")
	return "v=spf1 include:" + spfanswer.CurrentTarget(name, zone) + " redirect=" + spfanswer.RSPFName(name, zone)
}

// LegacySPFRecord is the form published before the current one: the HELO
// macro include, then _nspf, then a soft fail. The edge still answers it,
// so that records already published keep working; dnsSetup asks for the
// current form instead.
func LegacySPFRecord(name, edgeZone string) string {
	zone := strings.TrimSuffix(edgeZone, ".")
	return "v=spf1 include:" + spfanswer.LegacyTarget(zone) + " include:" + spfanswer.NSPFName(name, zone, 1) + " ~all"
}

// SPFRecords returns the SPF records among the TXT strings of a name: those
// starting with the version "v=spf1", ended by a space or the end of the
// text (RFC 7208 §4.5; the version is matched without regard to case).
func SPFRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		if len(t) >= 6 && strings.EqualFold(t[:6], "v=spf1") && (len(t) == 6 || t[6] == ' ') {
			out = append(out, t)
		}
	}
	return out
}

// spfShape is what one SPF record says about the edge.
type spfShape struct {
	// current: a pass-qualified include of the domain's address name.
	current bool
	// legacy: an include of the old HELO macro name.
	legacy bool
	// redirects counts redirect= modifiers; rspf says one of them names
	// the domain's _rspf name.
	redirects int
	rspf      bool
	// all: an all mechanism, with which receivers ignore redirect=.
	all bool
	// edge: some term names a domain in the edge zone.
	edge bool
	// onlyFail: the record is "v=spf1 -all" (a non-sending domain's).
	onlyFail bool
}

// shapeOf reads the terms of one SPF record (without its version). Names
// are compared without regard to case and a trailing dot; terms are
// separated by any run of white space.
func shapeOf(record, name, zone string) spfShape {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	var sh spfShape
	terms := strings.Fields(strings.ToLower(record))
	if len(terms) > 0 {
		terms = terms[1:] // v=spf1
	}
	sh.onlyFail = len(terms) == 1 && terms[0] == "-all"
	for _, term := range terms {
		if rest, ok := strings.CutPrefix(term, "redirect="); ok {
			sh.redirects++
			target := strings.TrimSuffix(rest, ".")
			sh.rspf = sh.rspf || target == spfanswer.RSPFName(name, zone)
			sh.edge = sh.edge || inZone(target, zone)
			continue
		}
		qualifier := byte('+')
		if term != "" && strings.IndexByte("+-~?", term[0]) >= 0 {
			qualifier, term = term[0], term[1:]
		}
		if term == "all" {
			sh.all = true
			continue
		}
		// include:, exists:, a:, mx:, ptr: and the exp= modifier carry a
		// domain-spec after the first ':' or '='; a / mx may end in a CIDR
		// length.
		i := strings.IndexAny(term, ":=")
		if i < 0 {
			continue
		}
		mech, spec := term[:i], term[i+1:]
		if slash := strings.IndexByte(spec, '/'); slash >= 0 && (mech == "a" || mech == "mx") {
			spec = spec[:slash]
		}
		spec = strings.TrimSuffix(spec, ".")
		sh.edge = sh.edge || inZone(spec, zone)
		if mech != "include" {
			continue
		}
		switch spec {
		case spfanswer.CurrentTarget(name, zone):
			sh.current = sh.current || qualifier == '+'
		case spfanswer.LegacyTarget(zone), spfanswer.HELOStepLegacyTarget(name, zone):
			sh.legacy = true
		}
	}
	return sh
}

// inZone reports whether a name (or domain-spec) is in the zone.
func inZone(name, zone string) bool {
	return zone != "" && (name == zone || strings.HasSuffix(name, "."+zone))
}

// ClassifySPF classifies the TXT strings found at a domain's apex against
// the records Rampart asks for, for the domain name (A-label) and the edge
// zone:
//
//   - [SPFMissing] without an SPF record, [SPFMultiple] with more than one;
//   - [SPFLegacy] when the one record includes the old HELO macro name
//     (even if it also has the new terms: the HELO can still make it an
//     error);
//   - [SPFCurrent] when it includes %{i}._ip.<name>._spf.<zone> (no
//     qualifier or "+") and has exactly one redirect=, to
//     <name>._rspf.<zone>, and no all mechanism (with which receivers
//     ignore the redirect, RFC 7208 §6.1). Other mechanisms may stand
//     anywhere: the customer's own, tried before the redirect;
//   - [SPFOther] otherwise.
//
// The strings are untrusted: anything may come back from DNS.
func ClassifySPF(name, edgeZone string, txts []string) SPFStatus {
	records := SPFRecords(txts)
	switch len(records) {
	case 0:
		return SPFMissing
	case 1:
	default:
		return SPFMultiple
	}
	sh := shapeOf(records[0], name, edgeZone)
	switch {
	case sh.legacy:
		return SPFLegacy
	case sh.current && sh.redirects == 1 && sh.rspf && !sh.all:
		return SPFCurrent
	}
	return SPFOther
}

// maxRecordShown bounds the SPF text kept and shown for a domain.
const maxRecordShown = 2048

// printable renders DNS text for storage and display: printable ASCII as
// is, a backslash and every other octet escaped as \DDD (the presentation
// form of RFC 1035 §5.1), so that no control character, NUL or invalid
// UTF-8 reaches the database or the API; cut at maxRecordShown octets.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if b.Len() >= maxRecordShown {
			b.WriteString("...")
			break
		}
		if c >= 0x20 && c < 0x7f && c != '\\' {
			b.WriteByte(c)
			continue
		}
		b.WriteString(`\` + leftPad(strconv.Itoa(int(c))))
	}
	return b.String()
}

func leftPad(s string) string { return strings.Repeat("0", 3-len(s)) + s }
