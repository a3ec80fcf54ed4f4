// Package dmarc parses, validates and composes DMARC policy records, the TXT
// records published at _dmarc.<domain>.
//
// Two parts of Rampart use it. The DNS edge serves the record composed by
// [Record.String]; the GraphQL API turns owner input into a [Record] and calls
// [Record.Validate] before saving it, or calls [Parse] on a record the owner
// pasted. Errors are therefore meant for people: every error is a
// [*SyntaxError] naming the tag and the offending value, for example
//
//	dmarc: tag "pct": "abc" is not an integer between 0 and 100
//
// and the failures a caller may want to branch on wrap the sentinels
// [ErrNotDMARC], [ErrMissingPolicy] and [ErrDuplicateTag] (use errors.Is).
//
// # Standards
//
// The record syntax is that of RFC 7489 §6.3 and §6.4, which reuses the
// tag-list syntax of DKIM (RFC 6376 §3.2). On top of it the package supports
// the tags added by DMARCbis (RFC 9989 in this project's references): np, the
// policy for non-existent subdomains; psd, whether the domain is a public
// suffix domain (y, n or u); and t, testing mode (y or n). The tags DMARCbis
// retires (pct, rf, ri) are still parsed and composed, because they are still
// widely published and receivers that implement RFC 7489 use them.
//
// The package deals with record text only. It does not look anything up in
// DNS, find the organizational domain, or send or read reports.
//
// # Parsing and leniency
//
// [Parse] follows the grammar, with the leniency real receivers show, and
// canonicalises what it accepts:
//
//   - The record must start with the tag v=DMARC1, written exactly so: tag
//     name "v" in lowercase and value "DMARC1" in uppercase, as RFC 7489 §6.4
//     spells the value byte by byte and requires the tag to come first.
//     Anything else is [ErrNotDMARC], so a caller can tell a foreign TXT
//     record (say an SPF record) from a broken DMARC record.
//   - Spaces and tabs around tag names, "=", values and ";" are ignored. Other
//     whitespace, such as CR or LF, is not: DNS TXT data is never folded.
//   - Empty tags (";;") and a trailing ";" are ignored.
//   - Tags after v may come in any order.
//   - Other tag names are case-insensitive and stored in lowercase; so are
//     keyword values (p=REJECT becomes reject, fo=1:D becomes 1:d). Lists may
//     have whitespace around their separators (fo=1 : d, rua=a , b) and are
//     stored without it.
//   - A tag that occurs twice makes the record invalid ([ErrDuplicateTag]),
//     as RFC 6376 §3.2 requires, whatever its case.
//   - A record without p is rejected with [ErrMissingPolicy]. RFC 7489
//     §6.6.3 lets a receiver treat such a record as p=none when it has a rua
//     tag, but a record we publish or store should say what it means.
//   - Unknown tags are accepted, because receivers must ignore them (RFC 7489
//     §6.3), and kept in order in [Record.Unknown] so that they survive a
//     round trip. Their names and values must still fit the tag-list syntax.
//   - Reporting URIs must be mailto: URIs with a plausible local@domain
//     address. RFC 7489 allows any URI, but report senders only send mail, so
//     any other scheme would be published and then silently ignored. As RFC
//     7489 §6.2 requires, "," and "!" inside a URI must be percent-encoded: a
//     bare "," separates URIs and a bare "!" starts the size limit.
//
// # Composition and round trips
//
// [Record.String] writes the canonical form: "v=DMARC1; p=...", then each tag
// that is set in a fixed order, then the unknown tags, separated by "; " and
// with no trailing ";". Optional fields use a zero value (or nil pointer) for
// "not set", so that String writes exactly the tags that were parsed and
// Parse(r.String()) gives r back. Defaults are applied only by the Effective
// methods, such as [Record.EffectivePercent]. A record in canonical form is
// reproduced byte for byte by Parse followed by String.
//
// # Validation
//
// [Record.Validate] checks a Record built in code with the same rules as
// Parse, and also requires each value to be in canonical form, so that the
// record that is stored is the record that is served. Build policies with
// [ParsePolicy] and URIs with [ParseURI] to get canonical values from user
// input.
package dmarc
