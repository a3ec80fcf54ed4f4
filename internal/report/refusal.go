package report

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Reason names why an input was refused. The values are stable strings, fit
// for logs, metrics labels and a database column.
type Reason string

// Refusal reasons. The first group is raised while unwrapping (see [Extract]
// and [Attachment.Open]), the second while decoding (see [DecodeStream]).
const (
	// TooLarge: the raw input exceeds [Limits.MaxInput], or an archive
	// nested inside another exceeds it once unpacked.
	TooLarge Reason = "too_large"
	// InflatedTooLarge: a decompressed stream exceeds [Limits.MaxInflated].
	InflatedTooLarge Reason = "inflated_too_large"
	// RatioTooHigh: a decompressed stream grew more than [Limits.MaxRatio]
	// times the compressed bytes read, past [Limits.RatioGrace].
	RatioTooHigh Reason = "ratio_too_high"
	// TooManyEntries: a zip archive has more than [Limits.MaxEntries] entries.
	TooManyEntries Reason = "too_many_entries"
	// TooDeep: archives, MIME parts or XML elements nest too deeply.
	TooDeep Reason = "too_deep"
	// TooManyParts: a MIME message has more than [Limits.MaxParts] parts.
	TooManyParts Reason = "too_many_parts"
	// NoReport: the input holds nothing that could be a report (empty input,
	// a message without a report attachment, XML whose root is not feedback).
	NoReport Reason = "no_report"
	// Malformed: broken MIME, gzip, zip, or XML that is not well-formed.
	Malformed Reason = "malformed"
	// Unsupported: well-formed but in a form this package does not read
	// (encrypted or exotic zip compression, UTF-16 XML).
	Unsupported Reason = "unsupported"
	// TLSReport: the input is an SMTP TLS report (RFC 8460: JSON, sent as
	// application/tlsrpt+gzip or +json), not a DMARC aggregate report.
	// Rampart does not store TLS reports yet; this names them rather than
	// calling them malformed.
	TLSReport Reason = "tls_report"

	// Doctype: the XML has a document type declaration. Reports never need
	// one and it is how entity-expansion bombs are delivered.
	Doctype Reason = "doctype"
	// TooManyRecords: the report has more than [Limits.MaxRecords] records.
	TooManyRecords Reason = "too_many_records"
	// ValueTooLong: a text value or a tag exceeds [Limits.MaxValueBytes].
	ValueTooLong Reason = "value_too_long"
	// Invalid: well-formed XML that breaks a rule a report cannot do without
	// (report_id, policy domain, date range, source_ip, count).
	Invalid Reason = "invalid"
)

// Refusal is the error returned when an input is refused. Every error that
// [Extract], [Attachment.Open] readers, [Decode] and [DecodeStream] produce
// for bad input is a *Refusal; other errors come from the caller's reader or
// callbacks.
type Refusal struct {
	Reason Reason
	// Element is the path of the XML element at fault, such as
	// "feedback/record/row/source_ip", when the refusal is about one.
	Element string
	// Detail says what was wrong, for a person.
	Detail string
}

func (r *Refusal) Error() string {
	var b strings.Builder
	b.WriteString("report refused: ")
	b.WriteString(string(r.Reason))
	if r.Element != "" {
		b.WriteString(": ")
		b.WriteString(r.Element)
	}
	if r.Detail != "" {
		b.WriteString(": ")
		b.WriteString(r.Detail)
	}
	return b.String()
}

// Is reports whether target is a *Refusal with the same Reason, so that
// errors.Is(err, &Refusal{Reason: TooDeep}) works.
func (r *Refusal) Is(target error) bool {
	t, ok := target.(*Refusal)
	return ok && t.Reason == r.Reason
}

// ReasonOf returns the Reason of the first *Refusal in err's chain.
func ReasonOf(err error) (Reason, bool) {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason, true
	}
	return "", false
}

// refuse builds a Refusal whose detail is safe to log and store: details
// quote names and errors that come from the input.
func refuse(reason Reason, detail string) *Refusal {
	return &Refusal{Reason: reason, Detail: cleanString(detail, 1024)}
}

// cleanString returns s as valid UTF-8 without control characters, at most
// about max bytes long.
func cleanString(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return utf8.RuneError
		}
		return r
	}, s)
}
