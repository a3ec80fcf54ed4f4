package spfanswer

import (
	"net/netip"
	"strconv"
)

// The fixed SPF records the edge answers and the API composes.
const (
	// NeutralRecord matches nothing and lets the record that included it
	// go on: the per-query answer when the address is none of the
	// domain's, and the redirect target's fallback.
	NeutralRecord = "v=spf1 ~all"
	// FailRecord is a blocked domain's: no address may send as it.
	FailRecord = "v=spf1 -all"
	// RemovedRecord is a removed domain's during its grace period: it
	// authorises nothing and is no error.
	RemovedRecord = "v=spf1 ?all"
)

// AppendAddressRecord appends the SPF answer authorising ip alone,
// "v=spf1 ip4:<ip> -all" (ip6: and the RFC 5952 form for IPv6), to b.
func AppendAddressRecord(b []byte, ip netip.Addr) []byte {
	if ip.Is4() {
		b = append(b, "v=spf1 ip4:"...)
	} else {
		b = append(b, "v=spf1 ip6:"...)
	}
	b = ip.AppendTo(b)
	return append(b, " -all"...)
}

// CurrentTarget is the current form's first include for domain:
// %{i}._ip.<domain>._spf.<zone>.
func CurrentTarget(domain, zone string) string {
	return "%{i}." + IPLabel + "." + domain + "." + SPFLabel + "." + zone
}

// LegacyTarget is the legacy form's first include:
// %{i}._ip.%{h}._ehlo.%{d}._spf.<zone>.
func LegacyTarget(zone string) string {
	return "%{i}." + IPLabel + ".%{h}." + EHLOLabel + ".%{d}." + SPFLabel + "." + zone
}

// RSPFName is the current form's redirect target for domain.
func RSPFName(domain, zone string) string {
	return domain + "." + RSPFLabel + "." + zone
}

// NSPFName is the name of the k-th (from 1) legacy _nspf record of domain:
// <domain>._nspf.<zone>, then _<k>.<domain>._nspf.<zone>.
func NSPFName(domain, zone string, k int) string {
	if k <= 1 {
		return domain + "." + NSPFLabel + "." + zone
	}
	return "_" + strconv.Itoa(k) + "." + domain + "." + NSPFLabel + "." + zone
}

// HELOStepLegacyTarget is the legacy form's first include with the domain
// written out instead of %{d}: %{i}._ip.%{h}._ehlo.<domain>._spf.<zone>.
func HELOStepLegacyTarget(domain, zone string) string {
	return "%{i}." + IPLabel + ".%{h}." + EHLOLabel + "." + domain + "." + SPFLabel + "." + zone
}
