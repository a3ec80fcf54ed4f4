// Package dnsedge is Rampart's authoritative DNS edge: it serves the DNS
// records Rampart hosts for its customers' domains, answering mail receivers'
// resolvers from an in-memory snapshot of PostgreSQL's edge tables.
//
// # Zones
//
// An edge is authoritative for its own zone (Config.Zone, for example
// edge.rampart.example); for every hosted domain D, for the zones _dmarc.D,
// _domainkey.D and _bimi.D, which the customer delegates to the edge with NS
// records; and, when Config.ReportsDomain is set, for the report
// authorisation zone _report._dmarc.<reports domain>:
//
//	_dmarc.D.                          SOA, NS, TXT "v=DMARC1; ..."     (zone _dmarc.D)
//	_domainkey.D.                      SOA, NS                          (zone _domainkey.D)
//	<selector>._domainkey.D.           TXT (hosted key) or CNAME (vendor key)
//	_bimi.D.                           SOA, NS                          (zone _bimi.D)
//	default._bimi.D.                   TXT "v=BIMI1; ..."
//	<edge zone>.                       SOA, NS                          (edge zone)
//	D._dmarc.<edge zone>.              TXT "v=DMARC1; ..."
//	D._nspf.<edge zone>.               TXT "v=spf1 ..."
//	<ip>._ip.<helo>._ehlo.D._spf.<edge zone>.   TXT, per query (see SPF)
//	nsN.<edge zone>.                   A, AAAA when configured
//	_report._dmarc.<reports domain>.   SOA, NS                          (report zone)
//	D._report._dmarc.<reports domain>. TXT "v=DMARC1"
//
// D._dmarc.<edge zone> is what a customer may CNAME _dmarc.D to instead of
// delegating it. D._nspf.<edge zone> holds the domain's own netblocks and
// pinned includes as a plain SPF record (the nspf column); it does not exist
// when that column is empty. D._report._dmarc.<reports domain> is the
// external report authorisation of RFC 7489 §7.1, which receivers check
// before they send D's aggregate reports to an rua address at the reports
// domain; it exists for every hosted domain.
//
// A name belongs to the longest zone apex that is a suffix of it, so
// foo._dmarc.D is a name in _dmarc.D (which does not exist: NXDOMAIN), and a
// name in no zone is REFUSED. A hosted domain inside the edge zone cannot
// take names out of it: the edge zone's own names win. Answers in a zone
// carry the AA bit; NXDOMAIN and NODATA carry the zone's SOA with the TTL RFC
// 2308 asks for. RD and CD are copied from the query and RA is never set.
// A type the edge has no records of, TYPE666 included, is NODATA at a name
// that exists. Empty non-terminals, such as _dmarc.<edge zone>,
// com._dmarc.<edge zone> when example.com is hosted, or b._domainkey.D when
// D has the selector a.b, answer NODATA, because resolvers that minimise
// query names (RFC 9156) walk through them and stop at an NXDOMAIN (RFC
// 8020). The SOA serial of the zones of D is the serial of D's row; that of
// the edge zone and of the report zone is the snapshot's highest serial.
//
// Lookups return a result (success, noData, nameError, refused) that
// Edge.respond maps to the rcode, the AA bit and the authority section, in
// the manner of CoreDNS. The UDP fast path (wire.go) mirrors that mapping
// for the common query and writes the reply straight into the socket's
// buffer; a differential test and FuzzHandler require its replies to be
// byte-identical to Edge.respond's, and anything unusual (several questions,
// other classes or opcodes, escaped names, replies that need truncation,
// NS with glue, SERVFAIL before the first snapshot) goes to Edge.respond.
//
// # Sockets
//
// On Linux the edge opens one UDP socket per processor with SO_REUSEPORT;
// one goroutine per socket reads up to 32 packets with recvmmsg and sends
// the replies with one sendmmsg, without allocating. Other systems, and
// TCP, use the miekg/dns server.
//
// # SPF
//
// A customer publishes at D
//
//	v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.<edge zone> ~all
//
// so a receiver checking mail from 192.0.2.10 (HELO mta1.mailer.example) for
// D asks for TXT at 192.0.2.10._ip.mta1.mailer.example._ehlo.D._spf.<edge
// zone>; for IPv6, %{i} is 32 dot-separated nibbles. Every name below
// _spf.<edge zone> answers exactly one TXT record, since an empty answer or
// NXDOMAIN would make the customer's record a permerror. The answer is
// decided by spfanswer.Decide, which explainSpf calls too:
//
//   - the address is in one of D's netblocks, or in the current ranges of one
//     of D's enabled sender services: "v=spf1 ip4:192.0.2.10 -all" (ip6: in
//     RFC 5952 form), which costs the receiver no further lookup;
//   - the address is unknown or in none of them, but the HELO is, by whole
//     labels and in any case, at or below a HELO suffix of an enabled
//     service: "v=spf1 include:<each of that service's includes> -all", so that the
//     vendor's live record decides (the first such service in D's order);
//   - anything else, an unknown domain, a name that does not parse or one cut
//     short: "v=spf1 ~all";
//   - D is blocked: "v=spf1 -all", whatever the address.
//
// The HELO is chosen by the sender and may hold anything (escaped bytes,
// address literals such as [192.0.2.1], labels named _ip or _ehlo), so the
// name is read from both ends: D is what follows the rightmost _ehlo label,
// the address what precedes the first _ip label, the HELO what lies between.
// RFC 7208 §7.3 has a receiver cut a name longer than 253 octets by dropping
// labels from the left, the address first: the address counts only when
// exactly 4 decimal labels (0-255, no leading zeros) or 32 hexadecimal nibble
// labels precede the first _ip. A wrong parse cannot help a forger: an
// address answer authorises only the address parsed, which the receiver
// compares with the address actually connecting, and an include answer hands
// the decision to a service D has enabled.
//
// Netblocks and ranges are looked up in prefix tables
// (github.com/gaissmai/bart), not scanned: a small one per domain, and one
// per service shared by every domain enabling it, built when the service's
// row changes. A domain names its services and a query looks them up in the
// snapshot, so a changed service changes the answers of every domain enabling
// it at once. SPF answers have their own short TTL (Config.SPFTTL, default 1
// minute): receivers cache them per connecting address, so a short TTL costs
// few queries, and enabling a sender or a vendor's moved ranges then take
// effect within a minute.
//
// # DKIM and BIMI
//
// <selector>._domainkey.D is a TXT record for a hosted key, cut into
// character-strings of at most 255 bytes, or a CNAME for a vendor-rotated
// key, answered for every query type (RFC 1034 §3.6.2) and not followed,
// since its target is outside the edge's zones. For a blocked domain every
// name below _domainkey.D, whatever the selector, answers the revoked key
// "v=DKIM1; p=" (NODATA for other types). default._bimi.D is the bimi column,
// and NODATA while it is empty (withheld: the API decides when the domain's
// enforcement qualifies); other BIMI selectors do not exist.
//
// # Protocol
//
// The edge answers over UDP and TCP. It replies with an OPT record (UDP size
// 1232) only when the query had one, sizes UDP replies to the client's
// buffer clamped to 512..1232 bytes and, when an answer does not fit, sends
// the question alone with TC set so that the client retries over TCP.
// Questions are matched case-insensitively and echoed as sent, which keeps
// the 0x20 case randomisation resolvers use. Responses (QR set) are dropped,
// a message without exactly one question gets FORMERR and an opcode other
// than QUERY gets NOTIMP. Until a snapshot is loaded every query gets
// SERVFAIL: a negative answer then would be cached as a lie.
//
// TCP connections may carry any number of queries, pipelined (RFC 7766);
// they are answered in turn. A connection must send its first query within
// Config.TCPReadTimeout (default 5s) and is closed when idle for
// Config.TCPIdleTimeout (default 10s); each write must complete within the
// read timeout, so that a client that does not read cannot hold the edge.
// At most Config.TCPMaxConns connections (default 1024) are open at once,
// and Config.TCPMaxConnsPerSource (default 64) from one IPv4 address or IPv6
// /64; a connection over a cap is reset as soon as it is accepted. The total
// is shared fairly: when it is reached, a connection from a source holding
// at least two fewer connections than the source holding the most is let
// in, and that source's least recently active connection (the longest since
// it carried a query or an answer) is reset instead. Sources are thus
// levelled towards equal shares, so 16 sources at the per-source cap cannot
// starve everyone else, and a source at its fair share cannot take another
// source's place, so sources never evict each other back and forth. The
// evicted client loses at most an idle connection and reconnects; a flood
// needs as many real addresses as the clients it means to push out (TCP
// cannot be spoofed). Evicting the oldest connection overall would let one
// source cycle everyone out; refusing newcomers is what let a few sources
// starve the rest.
//
// Response rate limiting is on by default, as in NSD: each client network
// (IPv4 /24, IPv6 /56) gets a token bucket of Config.RRLRate responses
// (default 200 per second, NSD's rrl-ratelimit) refilled at RRLRate per
// second. Over it, every Config.RRLSlip-th response (default 2) is
// "slipped" (sent with TC set and no records, so that a real resolver
// behind a spoofed network retries over TCP) and the others are dropped.
// This bounds the edge's use as a reflector: 5,000 spoofed ANY queries for
// a 4096-bit DKIM key from one /24 get 11.8 bytes back per byte sent
// without the limit and under 1 with it (TestBoundedAmplification). Only
// UDP responses built by the edge are limited; TCP proves its source, and
// the FORMERR and NOTIMP replies that miekg/dns sends before the edge sees a
// message are no larger than the query. RRLOff turns the limit off, which
// only a benchmark measuring throughput from one address should want (make
// bench-dns does).
//
// # Snapshots
//
// The edge serves from an index: an immutable snapshot of the edge tables,
// domains and sender services. A new index is built with no lock held, from
// scratch for a full load or from the previous index plus the changed rows,
// and published with one atomic pointer store; a published index is never
// written, so one query reads one consistent snapshot without locking. An
// index changed by a few rows shares all but the touched shards of its maps,
// and every unchanged domain and service with their prefix tables, with its
// predecessor.
//
// # Following PostgreSQL
//
// The API writes each change as an upsert of an edge_domain or edge_service
// row (a removed one stays as a tombstone with deleted = true) with a serial
// from edge_serial_seq, which both tables share, and calls
// pg_notify('rampart_edge', serial) in the same transaction. The edge holds
// one connection that:
//
//  1. runs LISTEN rampart_edge, before anything else, so that no change
//     committed during the next step goes unnoticed;
//  2. loads both tables in one REPEATABLE READ READ ONLY transaction, with
//     the highest serial of both read in the same transaction, reading
//     edge_domain in pages of 2,000 rows and keeping the built form of every
//     domain whose row has not changed since the index being served;
//  3. on notifications (collected for 20 ms so a burst costs one query)
//     fetches, again in one transaction, the rows of both tables whose serial
//     is above the index's, plus the rows at any notified serial below it
//     (transactions commit out of serial order when they run concurrently),
//     and publishes the index with those rows applied;
//  4. checks the highest serial every 15 s when idle, which both proves the
//     connection alive and confirms the index current, and every
//     Config.ResyncInterval compares the whole tables with the index, page
//     by page, handling notifications between pages so that a change never
//     waits for a resync; what the resync corrects (rows changed without a
//     new serial, lost notifications) is logged.
//
// A row that fails validation (a malformed name, netblock, DKIM entry, HELO
// suffix...) is logged and left out, as if deleted: the domain or service it
// describes is not served until a valid row replaces it.
//
// When PostgreSQL is unreachable or the connection drops, the edge keeps
// serving its last index and reconnects with backoff (at most 30 s), then
// starts again at step 1. The dnsedge_snapshot_age_seconds metric tells how
// long ago the index was last confirmed current.
//
// The index is also written to Config.SnapshotPath (checksummed, streamed,
// replaced atomically) after every full load and resync, a second after
// incremental changes, and when the edge stops. On start a valid file is served at once, before
// PostgreSQL is reached; a file that fails its checks, or was written in
// another format version (version 2 added services and the SPF, DKIM and
// BIMI columns), is refused with an error in the log and the edge loads from
// PostgreSQL instead.
//
// # Metrics
//
// dnsedge_queries_total{qtype,rcode}, dnsedge_queries_dropped_total,
// dnsedge_snapshot_serial, dnsedge_snapshot_domains,
// dnsedge_snapshot_services, dnsedge_snapshot_age_seconds,
// dnsedge_db_connected, dnsedge_rrl_dropped_total, dnsedge_rrl_slipped_total,
// dnsedge_tcp_connections, dnsedge_tcp_connections_refused_total{reason}
// and dnsedge_tcp_connections_evicted_total
// are registered in the registry given to [New], and served at /metrics when
// Config.MetricsListen is set.
//
// # Use
//
// cmd/dnsedge runs an edge as its own process; rampart dev runs one in
// process:
//
//	edge, err := dnsedge.New(dnsedge.Config{
//		Zone:          "edge.rampart.test",
//		ReportsDomain: "reports.rampart.test",
//		DatabaseURL:   os.Getenv("DATABASE_URL"),
//	}, logger, prometheus.NewRegistry())
//	if err != nil {
//		return err
//	}
//	return edge.Run(ctx) // until ctx is cancelled
package dnsedge
