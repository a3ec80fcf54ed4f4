package report

import (
	"net/netip"
	"strings"
	"time"
)

// Namespace9990 is the XML namespace of RFC 9990 (DMARCbis) aggregate reports.
const Namespace9990 = "urn:ietf:params:xml:ns:dmarc-2.0"

// Report is one decoded aggregate report: its metadata and all its records.
// [DecodeStream] hands out the same data piecewise.
type Report struct {
	Metadata
	Records []Record
}

// Metadata is everything in a report but its records: report_metadata,
// policy_published and the document's version and namespace.
type Metadata struct {
	// Version is the feedback/version text ("1.0", "2.0"), empty when the
	// reporter left it out.
	Version string
	// Namespace is the root element's namespace, Namespace9990 for RFC 9990
	// reports, usually empty for RFC 7489 ones.
	Namespace string

	OrgName          string
	Email            string
	ExtraContactInfo string
	ReportID         string
	// Begin and End are the date_range, in UTC.
	Begin, End time.Time
	// Errors are the report_metadata/error texts.
	Errors []string
	// Generator is the RFC 9990 report_metadata/generator.
	Generator string

	Policy PolicyPublished
}

// Reporter names who sent the report, for telling one reporter's reports
// from another's (the dedupe key): the org_name; when that is empty, the
// domain of the contact e-mail, lower-cased; when the e-mail has no domain,
// the whole e-mail; when there is no e-mail, extra_contact_info. It is empty
// only when all three are, and [DecodeStream] refuses such a report: two
// reporters without a name could not be told apart, and the second one's
// report would be taken for a copy of the first's.
func (m *Metadata) Reporter() string {
	if m.OrgName != "" {
		return m.OrgName
	}
	if d := emailDomain(m.Email); d != "" {
		return d
	}
	if m.Email != "" {
		return m.Email
	}
	return m.ExtraContactInfo
}

// emailDomain returns the lower-cased domain of an address as reporters
// write it ("noreply@example.com", "mailto:dmarc@example.com",
// "DMARC <dmarc@Example.COM>"), or "" when it has none.
func emailDomain(email string) string {
	i := strings.LastIndexByte(email, '@')
	if i < 0 {
		return ""
	}
	d := email[i+1:]
	if j := strings.IndexAny(d, " \t>,;?"); j >= 0 {
		d = d[:j]
	}
	return strings.ToLower(strings.TrimRight(d, "."))
}

// PolicyPublished is the DMARC policy the reporter found for the domain.
// String fields hold the reporter's value trimmed and, for the enumerated
// ones, lower-cased.
type PolicyPublished struct {
	// Domain is lower-cased.
	Domain string
	ADKIM  Alignment
	ASPF   Alignment
	P      Disposition
	SP     Disposition
	NP     Disposition // RFC 9990
	// Pct is the RFC 7489 pct, nil when absent or not a number in 0..100.
	Pct *int
	FO  string
	// Testing is the RFC 9990 t tag: "y" or "n", empty when absent.
	Testing string
	// DiscoveryMethod is the RFC 9990 discovery_method: "psl" or "treewalk".
	DiscoveryMethod string
}

// Record is one row of a report: a source address, how many messages it
// sent, and how they fared.
type Record struct {
	SourceIP        netip.Addr
	Count           int64
	PolicyEvaluated PolicyEvaluated
	Identifiers     Identifiers
	AuthResults     AuthResults
}

// PolicyEvaluated is the outcome of DMARC for the record's messages.
type PolicyEvaluated struct {
	Disposition Disposition
	DKIM        DMARCResult
	SPF         DMARCResult
	Reasons     []PolicyOverrideReason
}

// PolicyOverrideReason says why the reporter applied a disposition other than
// the published policy.
type PolicyOverrideReason struct {
	Type    string // forwarded, sampled_out, trusted_forwarder, mailing_list, local_policy, other
	Comment string
}

// Identifiers are the record's domains, lower-cased.
type Identifiers struct {
	HeaderFrom   string
	EnvelopeFrom string
	EnvelopeTo   string
}

// AuthResults are the raw DKIM and SPF results behind the DMARC verdict.
type AuthResults struct {
	DKIM []DKIMAuth
	SPF  []SPFAuth
}

// DKIMAuth is one DKIM signature's result.
type DKIMAuth struct {
	Domain      string
	Selector    string
	Result      DKIMResult
	HumanResult string
}

// SPFAuth is one SPF check's result.
type SPFAuth struct {
	Domain      string
	Scope       string // "mfrom" or "helo"
	Result      SPFResult
	HumanResult string
}

// Alignment is an identifier alignment mode.
type Alignment string

// Alignment modes.
const (
	AlignmentRelaxed Alignment = "r"
	AlignmentStrict  Alignment = "s"
)

// Disposition is a policy or the action taken on a message.
type Disposition string

// Dispositions. DispositionPass is RFC 9990's disposition for messages that
// passed DMARC.
const (
	DispositionNone       Disposition = "none"
	DispositionQuarantine Disposition = "quarantine"
	DispositionReject     Disposition = "reject"
	DispositionPass       Disposition = "pass"
)

// DMARCResult is the aligned DKIM or SPF verdict in policy_evaluated.
type DMARCResult string

// DMARC results.
const (
	DMARCPass DMARCResult = "pass"
	DMARCFail DMARCResult = "fail"
)

// DKIMResult is a DKIM verification result (RFC 8601).
type DKIMResult string

// DKIM results.
const (
	DKIMNone      DKIMResult = "none"
	DKIMPass      DKIMResult = "pass"
	DKIMFail      DKIMResult = "fail"
	DKIMPolicy    DKIMResult = "policy"
	DKIMNeutral   DKIMResult = "neutral"
	DKIMTempError DKIMResult = "temperror"
	DKIMPermError DKIMResult = "permerror"
)

// SPFResult is an SPF result (RFC 7208).
type SPFResult string

// SPF results.
const (
	SPFNone      SPFResult = "none"
	SPFNeutral   SPFResult = "neutral"
	SPFPass      SPFResult = "pass"
	SPFFail      SPFResult = "fail"
	SPFSoftFail  SPFResult = "softfail"
	SPFTempError SPFResult = "temperror"
	SPFPermError SPFResult = "permerror"
)

// MessageCount returns the sum of the records' counts.
func (r *Report) MessageCount() int64 {
	var n int64
	for i := range r.Records {
		n += r.Records[i].Count
	}
	return n
}
