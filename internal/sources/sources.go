// Package sources says who sent a domain's mail, as its DMARC aggregate
// reports show it: each report source (a domain, day and source address) is
// internal, a known sending service, forwarded, or unidentified, with the
// evidence. Classify is the one decision, pure, over the facts the caller
// gathers; the job that keeps the classes current calls it.
package sources

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"
)

// Class is what a source is.
type Class string

// The classes.
const (
	// Internal: one of the domain's netblocks, or aligned DKIM with one of
	// the domain's own keys that no service holds.
	Internal Class = "internal"
	// Service: a known sending service: the address in its ranges, its
	// DKIM d= domain, or a forward-confirmed PTR name under its suffixes.
	Service Class = "service"
	// Forwarded: mail that passed through someone else: DKIM passes with
	// an unaligned domain, or the reporter gave a forwarding reason.
	Forwarded Class = "forwarded"
	// Unidentified: none of the above.
	Unidentified Class = "unidentified"
)

// Signature is a DKIM signature a report lists for the source.
type Signature struct {
	Domain, Selector string // lower case
	Pass             bool
}

// Sender is a known sending service as the classification reads it.
type Sender struct {
	Slug   string
	Ranges []netip.Prefix
	// DKIMDomains are d= domains the service signs with; a signature
	// domain matches one equal to it or above it.
	DKIMDomains []string
	// HostSuffixes are the suffixes of its servers' host names (PTR and
	// HELO), normalised: lower case, no leading or trailing dot.
	HostSuffixes []string
	// Selectors are the DKIM selectors the service uses when it signs as
	// the customer's own domain.
	Selectors []string
}

// Key is one of the domain's DKIM keys: a hosted key (Service "") or a
// key the domain delegates to a service (a CNAME to its record).
type Key struct {
	Selector string
	Service  string
}

// Facts are what a source is classified by.
type Facts struct {
	IP netip.Addr
	// Domain is the hosted domain (lower case); HeaderFrom the From
	// domains the reports give for the source.
	Domain string
	// Netblocks are the domain's own.
	Netblocks []netip.Prefix
	Senders   []Sender
	Keys      []Key
	// Signatures are the DKIM signatures the reports list for the source.
	Signatures []Signature
	// PTR is the source's forward-confirmed reverse name ("" when none).
	PTR string
	// ForwardReason: a reporter said the mail was forwarded (forwarded,
	// mailing_list, trusted_forwarder).
	ForwardReason bool
}

// Result is a classification and its evidence.
type Result struct {
	Class Class
	// Service is the service's slug for Service, else "".
	Service string
	// Evidence says what decided, in words.
	Evidence string
}

// Classify decides what the source is. The order is the strength of the
// evidence: the domain's own netblocks, then a service's ranges, its DKIM
// domain, its confirmed PTR name, then the domain's own keys, then
// forwarding.
func Classify(f Facts) Result {
	for _, n := range f.Netblocks {
		if n.Contains(f.IP) {
			return Result{Class: Internal, Evidence: "in the domain's netblock " + n.String()}
		}
	}
	for _, s := range f.Senders {
		for _, r := range s.Ranges {
			if r.Contains(f.IP) {
				return Result{Class: Service, Service: s.Slug, Evidence: "in " + s.Slug + "'s range " + r.String()}
			}
		}
	}
	for _, sig := range f.Signatures {
		if !sig.Pass {
			continue
		}
		for _, s := range f.Senders {
			for _, d := range s.DKIMDomains {
				if under(sig.Domain, d) {
					return Result{Class: Service, Service: s.Slug, Evidence: "DKIM signature d=" + sig.Domain + " passes (" + s.Slug + " signs as " + d + ")"}
				}
			}
		}
	}
	if f.PTR != "" {
		ptr := strings.TrimSuffix(strings.ToLower(f.PTR), ".")
		for _, s := range f.Senders {
			for _, suf := range s.HostSuffixes {
				if under(ptr, suf) {
					return Result{Class: Service, Service: s.Slug, Evidence: "confirmed PTR name " + ptr + " is under " + s.Slug + "'s " + suf}
				}
			}
		}
	}
	unaligned := ""
	for _, sig := range f.Signatures {
		if !sig.Pass {
			continue
		}
		if !aligned(sig.Domain, f.Domain) {
			if unaligned == "" {
				unaligned = sig.Domain
			}
			continue
		}
		if r, ok := ownSignature(f, sig); ok {
			return r
		}
	}
	if unaligned != "" {
		return Result{Class: Forwarded, Evidence: "DKIM passes for " + unaligned + ", not aligned with " + f.Domain + ": mail passed through another party"}
	}
	if f.ForwardReason {
		return Result{Class: Forwarded, Evidence: "a reporter said the mail was forwarded"}
	}
	return Result{Class: Unidentified, Evidence: "in no netblock or known range, with no known DKIM domain or host name"}
}

// ownSignature classifies a passing signature aligned with the domain: by
// the domain's key at its selector (hosted, or delegated to a service), by
// a service's known selector, else as the domain's own key.
func ownSignature(f Facts, sig Signature) (Result, bool) {
	what := "DKIM signature s=" + sig.Selector + " d=" + sig.Domain + " passes"
	for _, k := range f.Keys {
		if k.Selector != sig.Selector {
			continue
		}
		if k.Service != "" {
			return Result{Class: Service, Service: k.Service, Evidence: what + " with the key the domain delegates to " + k.Service}, true
		}
		return Result{Class: Internal, Evidence: what + " with a key the domain hosts on the edge"}, true
	}
	for _, s := range f.Senders {
		for _, sel := range s.Selectors {
			if sel == sig.Selector {
				return Result{Class: Service, Service: s.Slug, Evidence: what + ": " + sig.Selector + " is " + s.Slug + "'s selector"}, true
			}
		}
	}
	return Result{Class: Internal, Evidence: what + " with a key of the domain's own"}, true
}

// under reports whether name is suffix or below it, by whole labels
// (either may end in a dot); an empty suffix holds nothing.
func under(name, suffix string) bool {
	suffix = strings.Trim(suffix, ".")
	return suffix != "" && dns.IsSubDomain(dns.Fqdn(suffix), dns.Fqdn(name))
}

// aligned reports whether a signing domain is aligned with the domain in
// DMARC's relaxed mode: both have the same organizational domain (RFC 7489
// §3.2, with the public suffix list).
func aligned(sig, domain string) bool {
	if under(sig, domain) || under(domain, sig) {
		return true
	}
	a, err1 := publicsuffix.EffectiveTLDPlusOne(strings.TrimSuffix(sig, "."))
	b, err2 := publicsuffix.EffectiveTLDPlusOne(strings.TrimSuffix(domain, "."))
	return err1 == nil && err2 == nil && a == b
}
