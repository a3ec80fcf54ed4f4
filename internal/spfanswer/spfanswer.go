// Package spfanswer decides the per-query SPF answer of the DNS edge: the
// TXT record at a name under _spf.<edge zone>. The edge serves it and
// explainSpf predicts it, and both call Decide, so that they cannot
// disagree. Receive and ReceiveCurrent model the receiver's side: which
// name, if any, a receiver asks for one (address, HELO, domain).
//
// The package is pure and small: the edge imports it without linking any
// API code.
package spfanswer

import (
	"net/netip"
	"strings"
)

// Labels of the SPF names. The customer publishes, for example.com,
//
//	v=spf1 include:%{i}._ip.example.com._spf.<edge zone> redirect=example.com._rspf.<edge zone>
//
// so a receiver checking mail from 192.0.2.10 asks for TXT at
//
//	192.0.2.10._ip.example.com._spf.<edge zone>
//
// which authorises the address when it is the domain's, whatever the HELO.
// Only when it does not match does the receiver follow the redirect, whose
// record the API composes from the domain's state: "v=spf1 -all" for a
// blocked domain, or the pinned includes, the HELO step
// include:%{h2}._ehlo.example.com._spf.<edge zone> (the HELO's rightmost
// labels, as many as the enabled senders' HELO suffixes have at most; asked
// as mailer.example._ehlo.example.com._spf.<edge zone> for the HELO
// mta1.mailer.example, one name for every host of the sender) and "~all".
// The legacy form, which published
//
//	v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.<edge zone> include:example.com._nspf.<edge zone> ~all
//
// is still answered.
const (
	SPFLabel  = "_spf"
	IPLabel   = "_ip"
	EHLOLabel = "_ehlo"
	// NSPFLabel starts <domain>._nspf.<edge zone>: the legacy form's
	// netblocks and pinned includes, literally.
	NSPFLabel = "_nspf"
	// RSPFLabel starts <domain>._rspf.<edge zone>: the current form's
	// redirect target, where the edge decides the final result.
	RSPFLabel = "_rspf"
)

// Kind is the kind of answer.
type Kind uint8

// The answers.
const (
	// Neutral: nothing matched: "v=spf1 ~all".
	Neutral Kind = iota
	// Blocked: the domain sends no mail: "v=spf1 -all".
	Blocked
	// Address: the address is a netblock's or an enabled sender's:
	// "v=spf1 ip4:<ip> -all" (or ip6:).
	Address
	// Include: only the HELO names an enabled sender with an include:
	// "v=spf1 include:<its include> -all".
	Include
)

// Answer is the decision for one query.
type Answer struct {
	Kind Kind
	// Sender is the index of the sender whose range holds the address
	// (Address) or whose HELO suffix matched (Include); -1 when the address
	// is in a netblock, and for Neutral and Blocked.
	Sender int
}

// Domain is what the answer depends on: one known domain's data. Senders
// are the enabled ones, in the order their HELO suffixes are tried (the
// order they were enabled).
type Domain interface {
	Blocked() bool
	// InNetblocks reports whether ip is in one of the domain's netblocks.
	InNetblocks(ip netip.Addr) bool
	Senders() int
	// InRanges reports whether ip is in one of sender i's ranges.
	InRanges(i int, ip netip.Addr) bool
	// HELOSuffixes are sender i's HELO suffixes, each normalised by
	// NormalizeSuffix, and whether it has an SPF include to hand over to.
	HELOSuffixes(i int) (suffixes []string, include bool)
}

// Decide is the answer to q for a domain the edge knows (q.Domain is d's
// name); a name whose domain is unknown gets Neutral. It allocates nothing:
// a type parameter rather than an interface value keeps d off the heap.
func Decide[D Domain](q Query, d D) Answer {
	if d.Blocked() {
		return Answer{Kind: Blocked, Sender: -1}
	}
	if q.IP.IsValid() {
		if d.InNetblocks(q.IP) {
			return Answer{Kind: Address, Sender: -1}
		}
		for i := range d.Senders() {
			if d.InRanges(i, q.IP) {
				return Answer{Kind: Address, Sender: i}
			}
		}
	}
	if q.HELO != "" {
		// The address is unknown or in none of the ranges we hold, but the
		// server greeted as an enabled sender's: its ranges may have moved
		// since we last resolved them, so let its live record decide.
		for i := range d.Senders() {
			if suffixes, include := d.HELOSuffixes(i); include && MatchSuffix(q.HELO, suffixes) >= 0 {
				return Answer{Kind: Include, Sender: i}
			}
		}
	}
	return Answer{Kind: Neutral, Sender: -1}
}

// NormalizeSuffix is the form of a HELO suffix that MatchSuffix compares:
// lower case, without leading or trailing dots (the catalog writes
// ".google.com", which matches google.com itself and every name below it).
func NormalizeSuffix(s string) string {
	return strings.Trim(strings.ToLower(s), ".")
}

// MatchSuffix returns the index of the first of suffixes (normalised) that
// helo, a lower-case name in presentation form without a trailing dot, is or
// is below, or -1. The comparison is by whole labels: an escaped dot
// ("evil\.mailer.example") is no label boundary.
func MatchSuffix(helo string, suffixes []string) int {
	for i, suf := range suffixes {
		switch {
		case len(helo) == len(suf):
			if helo == suf {
				return i
			}
		case len(helo) > len(suf):
			dot := len(helo) - len(suf) - 1
			if helo[dot] == '.' && strings.HasSuffix(helo, suf) && !escapedAt(helo, dot) {
				return i
			}
		}
	}
	return -1
}

// escapedAt reports whether the byte at i of a presentation-form name is
// escaped: preceded by an odd number of backslashes.
func escapedAt(s string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}
