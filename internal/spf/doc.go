// Package spf parses, evaluates and flattens Sender Policy Framework
// records (RFC 7208), the "v=spf1" TXT records that list the hosts allowed
// to send mail for a domain.
//
// Three parts of Rampart use it:
//
//   - the GraphQL API validates the records customers publish with [Parse],
//     shows them in canonical form with [Record.String], and warns about the
//     DNS lookup limit with [Record.LookupTerms];
//   - explainSpf and the end-to-end tests evaluate a customer's published
//     record with a [Checker] that queries Rampart's DNS edge through a
//     [DNSResolver] on loopback, and show [Outcome.Trace], the list of what
//     was looked up and which term matched;
//   - the catalog job resolves a vendor's include into its address ranges
//     with [Flatten].
//
// # Parsing
//
// [Parse] implements the grammar of RFC 7208 §4.5, §4.6, §5, §6, §7.1 and
// §12 strictly, because a record that a receiver rejects is worse than no
// record: any syntax error anywhere makes the record a permerror (§4.6), so
// the API must refuse what receivers refuse. In particular:
//
//   - the record starts with "v=spf1", in any case, followed by a space or
//     the end; "v=spf10" and "v=spf1mx" are not SPF records at all and give
//     [ErrNotSPF] (§4.5), so that other TXT records can be told apart;
//   - terms are separated by spaces only; tabs, CR, LF, NUL and octets
//     outside printable ASCII are errors (§3.1, §4.6.1);
//   - ip4 takes a dotted quad without leading zeros, ip6 any RFC 4291 text
//     form; lengths are "/0" to "/32" and "/0" to "/128" without leading
//     zeros (§5.6); a and mx take a dual-cidr-length such as "/24//64"
//     (§5.3, §5.4), all and include and exists and ptr take none;
//   - a domain-spec must end in a macro or in "." and a top label that is
//     not all digits and has no leading or trailing hyphen (§7.1), so
//     "a:192.0.2.1", "a:museum" and "include:example.com/24" are errors;
//   - macros are checked as they are written (§7.1): "%" must be followed
//     by "{", "%", "_" or "-"; the letters c, r and t are allowed only in
//     explanation text, so "exp=%{r}.example.com" is an error; a digit
//     transformer must not be zero;
//   - redirect= and exp= may occur once each ([ErrDuplicateModifier]) and
//     need a valid domain-spec; "exp=" with nothing after it is an error, as
//     the grammar of §12 says, although §6.2 speaks of an empty
//     domain-spec; unknown modifiers need a name that starts with a letter
//     and a valid macro-string, and are kept in [Record.Unknown] so that
//     they survive a round trip (§6).
//
// Errors are [*SyntaxError] values that name the term and say what is
// wrong, meant to be shown to the owner of the record as they are:
//
//	spf: term "ip4:192.0.2.1/33": CIDR length 33 is out of range 0-32
//
// [Record.String] composes canonical text: mechanisms in their order, then
// redirect=, exp= and the unknown modifiers (modifiers may appear anywhere,
// §4.6.3, so moving them does not change the meaning). A "+" qualifier and
// an ip4 or ip6 length that covers one address are left out, mechanism and
// modifier names are lowercased, domain-specs and addresses are kept as
// written. For a record returned by Parse, Parse(r.String()) gives r back;
// the fuzz target FuzzParse checks it.
//
// [Record.LookupTerms] counts the terms of one record that cost a DNS
// lookup at evaluation (include, a, mx, ptr, exists and redirect, §4.6.4);
// [Flatten] counts a whole chain.
//
// # Macros
//
// [ExpandDomainSpec] and [ExpandExplanation] implement §7: the letters s,
// l, o, d, i, p, h, v and, in explanations, c, r and t (§7.2); the digit and "r"
// transformers and the delimiters ".-+,/_="; "%%", "%_" and "%-"; and URL
// escaping for uppercase letters. %{i} of an IPv6 address is its 32 nibbles
// separated by dots. A domain name longer than 253 octets after expansion
// loses labels from the left until it fits (§7.3). An expansion longer
// than 4096 octets is an error rather than megabytes of garbage; §7 sets no
// bound, but no domain name or SMTP reply can use such a result.
//
// # Evaluation
//
// [Checker.CheckHost] is check_host() of §4: it takes the client address,
// the domain, the sender and the HELO name, and returns an [Outcome] with
// the [Result], the mechanism that matched, the explanation of a fail (from
// exp=, §6.2), the error behind a temperror or permerror, the number of
// lookups, and optionally a trace. [Checker.Check] derives the domain and
// sender from MAIL FROM, or from HELO for bounces (§2.4).
//
// DNS goes through the [Resolver] interface. [DNSResolver] implements it
// with github.com/miekg/dns against one server (UDP, then TCP when the
// answer is truncated, with a timeout per exchange), which is what the
// end-to-end tests and the flattening job use against a DNS server on
// loopback. Other implementations, such as in-memory zones in tests, must
// classify their errors: [ErrNotFound] for NXDOMAIN and NODATA, anything
// else for a failure (§4.4, §5): a not-found answer counts as a void
// lookup, a failure gives temperror.
//
// Choices where RFC 7208 leaves room, or where implementations differ:
//
//   - only TXT records are queried; the SPF RR type (99) is obsolete
//     (§3.1, §14.1);
//   - the limits of §4.6.4 are enforced during evaluation, not counted in
//     advance: at most 10 DNS-querying terms (include, a, mx, ptr, exists,
//     redirect) over the whole check, the 11th gives permerror
//     ([ErrTooManyLookups]); at most 2 void lookups, the 3rd gives permerror
//     ([ErrTooManyVoidLookups]); an mx with more than 10 MX records gives
//     permerror ([ErrTooManyMX]); ptr and %{p} look at the first 10 PTR
//     names only. Both main limits can be raised in [Checker], not removed;
//   - the lookups of the explanation and of %{p} do not count as terms or
//     void lookups: §4.6.4 lists the terms that count, and exp is looked up
//     once after the result is known;
//   - a target name that cannot be queried (an empty label, a label over
//     63 octets), which §4.8 leaves undefined, is treated as non-existent:
//     the mechanism does not match, and include and redirect give
//     permerror, as for any target without a record;
//   - ptr checks the suffix of each PTR name before validating it with an
//     address lookup, which gives the same result as §5.5 with fewer
//     queries; DNS errors during ptr make it not match (§5.5) rather than
//     temperror; %{p} prefers the domain itself, then its subdomains, then
//     any validated name (§7.3);
//   - IPv4-mapped IPv6 client addresses are evaluated as IPv4 (§5), so they
//     match ip4 and A records only;
//   - a check is bounded by [Checker.Timeout], 20 seconds by default as §4.6.4
//     suggests; running out of time gives temperror.
//
// # Flattening
//
// [Flatten] walks the chain of records from a domain, following include
// and redirect and resolving a and mx, and returns the address ranges it
// authorises with the number of lookups it costs. Chains that depend on the
// message (exists, ptr, macros) or use qualifiers other than "+" cannot be
// flattened and give [ErrNotFlattenable].
//
// # Conformance
//
// The tests run the OpenSPF test suites for RFC 7208 (203 cases) and RFC
// 4408 (191 cases) from testdata, BSD-3-Clause licensed, against an
// in-memory zone. Fuzz targets cover parsing (FuzzParse), macro expansion
// (FuzzExpandMacro) and evaluation of arbitrary records (FuzzCheckHost).
package spf
