// Package report is the parsing half of DMARC aggregate report ingestion:
// raw bytes in, zero or more decoded reports out, or a refusal with a named
// reason. It touches no database and no network; storing blobs and running
// ingestion jobs is left to its callers.
//
// # Pipeline
//
// [Extract] takes what arrived (by SMTP, upload or IMAP) and finds the
// candidate reports in it; each [Attachment] is opened and handed to
// [DecodeStream] (or [Decode] for small reports):
//
//	atts, err := report.Extract(raw, limits)
//	if err != nil {
//		return err // a *Refusal: store it with the blob, don't retry
//	}
//	for _, a := range atts {
//		r, err := a.Open()
//		...
//		warnings, err := report.DecodeStream(r, limits, onMetadata, onRecord)
//		...
//	}
//
// Extract works on a byte slice rather than a reader: the raw blob is kept
// anyway, is bounded ([Limits.MaxInput]), and zip archives need random
// access. What it returns is lazy: decompression happens as an Attachment is
// read, so an inflated report is never held in memory, and a 100k-record
// report is decoded in a few megabytes when records are consumed through the
// DecodeStream callback.
//
// # Formats
//
// Extract recognises its input by content, not by name: a whole e-mail
// message (MIME, parsed with github.com/emersion/go-message, with base64 and
// quoted-printable bodies, nested multiparts, forwarded message/rfc822 parts
// and an mbox "From " line), a bare XML file, a gzip file or a zip file. In
// a message it takes the parts whose content type is one of the zip, gzip,
// XML or octet-stream types, or whose file name ends in .xml, .gz, .gzip or
// .zip, since reporters often label them wrongly. Each part is then sniffed:
// gzip layers are peeled (.xml.gz.gz), zip archives listed (.xml.zip, a zip
// whose entry is a .gz, a zip inside a gzip), anything else is a candidate.
//
// The decoder reads the RFC 7489 appendix C schema, the RFC 9990 (DMARCbis)
// schema in namespace [Namespace9990] with its generator, np, testing,
// discovery_method and human_result elements, and the older draft schema
// some reporters still send. Namespaces and prefixes are ignored for
// matching: elements are known by their local names in their place.
//
// # Limits
//
// Every input is untrusted. [Limits] bounds, while reading and never by
// trusting sizes declared in headers:
//
//   - the raw input and everything Extract holds in memory: 25 MB; a bare
//     XML file, not compressed, may be as large as an inflated report
//   - the bytes one decompressed stream yields: 100 MB
//   - the inflation ratio, 500:1 after the first 1 MB, measured against the
//     compressed bytes actually consumed, for every gzip layer and zip entry:
//     bombs made of runs of one byte inflate near 1000:1, while a report
//     whose records are all alike stays near 230:1 (see [Limits.MaxRatio])
//   - zip entries, and candidate reports per input: 10
//   - archive layers around a report: 3; MIME parts: 100; multipart nesting: 5
//   - XML element nesting: 32; records per report: 5,000,000; one text value
//     or tag: 64 KiB
//
// A document type declaration is refused outright ([Doctype]): reports never
// need one, and it is how entity-expansion bombs arrive. The tokenizer knows
// only the five predefined entities and character references.
//
// # Refusals and warnings
//
// Bad input is refused with a *[Refusal] whose [Reason] names the cause
// (TooLarge, InflatedTooLarge, RatioTooHigh, TooManyEntries, TooDeep,
// TooManyParts, NoReport, Malformed, Unsupported, Doctype, TooManyRecords,
// ValueTooLong, Invalid, TLSReport) and, for decoding errors, the element
// at fault. An SMTP TLS report (RFC 8460: a JSON object naming its
// top-level members, or a MIME part of type application/tlsrpt+gzip or
// +json) is recognised while unwrapping and, when nothing else in the input
// can be a report, refused as [TLSReport] rather than as Malformed. A
// report is refused as Invalid when it lacks what ingestion cannot do
// without: report_id, the policy domain, a sound date range, something that
// names the reporter ([Metadata.Reporter]), and at least one usable record.
// A record without a parsable source_ip or a non-negative integer count is
// dropped with a warning ([WarnBadRecord]); the rest of the report is kept.
//
// Real reporters deviate from the schema in harmless ways. These are accepted
// and reported as [Warning] values, aggregated per code and element: result
// values in any case ("Pass"), an empty org_name (the reporter is then named
// by the contact e-mail's domain), space-padded values, empty reason elements, invalid UTF-8 or control
// characters (replaced by U+FFFD, so values are safe to store in
// PostgreSQL), a byte-order mark, a Latin-1 or Windows-1252 declaration,
// unknown elements (skipped), stray text between elements, a bare '&',
// unknown enumerated values (kept), a date range longer than a day, content
// after the root element, and XML Schema markup around or inside the report
// (an <xs:schema> root, closed or not: its tags are passed over and the
// definitions beside the report skipped). A missing version is not even a
// warning: most reporters leave it out.
//
// # Why a custom tokenizer
//
// encoding/xml with DecodeElement per record is general and safe, but slow
// for this job: reflection and a few hundred allocations per record, which
// BenchmarkEncodingXMLBaseline shows at tens of thousands of records a
// second. Ingestion must sustain 100,000 records a second end to end on two
// cores. The tokenizer in scanner.go is specialised for reports: it scans
// its own buffer with bytes.IndexByte, hands out tokens as slices of that
// buffer, matches element names with switch statements, skips the white
// space between tags without returning it, and parses IPv4 addresses and
// counts from bytes. The only allocations are the output strings, and the
// domains, selectors and results repeated across records are interned, so
// BenchmarkDecode runs at several hundred thousand records a second with
// about one allocation per five records. It checks what safety and
// correctness need (balanced, well-formed tags; bounded depth and token
// size; no DOCTYPE; valid UTF-8 out) and does not check what reports never
// rely on, such as duplicate attributes. FuzzDecode checks it against
// itself fed one byte at a time, so that no buffer boundary changes a
// result.
//
// All functions are safe for concurrent use; each call has its own state.
package report
