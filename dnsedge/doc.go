// Package dnsedge is Rampart's authoritative DNS edge: it serves the DNS
// records Rampart hosts for its customers' domains, answering mail receivers'
// resolvers from an in-memory snapshot of PostgreSQL's edge tables.
//
// # Zones
//
// An edge is authoritative for its own zone (Config.Zone, for example
// edge.rampart.example) and, for every hosted domain D, for the zone
// _dmarc.D, which the customer delegates to the edge with NS records (or
// replaces by a CNAME to D._dmarc.<edge zone>):
//
//	_dmarc.D.                    SOA, NS, TXT "v=DMARC1; ..."   (zone _dmarc.D)
//	<edge zone>.                 SOA, NS                        (edge zone)
//	D._dmarc.<edge zone>.        TXT "v=DMARC1; ..."            (edge zone)
//	nsN.<edge zone>.             A, AAAA when configured         (edge zone)
//
// A name belongs to the longest zone apex that is a suffix of it, so
// foo._dmarc.D is a name in _dmarc.D (which does not exist: NXDOMAIN) and a
// name in no zone is REFUSED. Answers in a zone carry the AA bit; NXDOMAIN
// and NODATA carry the zone's SOA with the TTL RFC 2308 asks for. Empty
// non-terminals, such as _dmarc.<edge zone> or com._dmarc.<edge zone> when
// example.com is hosted, answer NODATA, because resolvers that minimise
// query names (RFC 9156) walk through them and stop at an NXDOMAIN
// (RFC 8020). The SOA serial of _dmarc.D is the serial of D's row; that of
// the edge zone is the snapshot's highest serial.
//
// Lookups return a result (success, noData, nameError, refused) that one
// function, Edge.respond, maps to the rcode, the AA bit and the authority
// section, in the manner of CoreDNS.
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
// # Snapshots
//
// The edge serves from an index: an immutable snapshot of the edge tables.
// A new index is built with no lock held, from scratch for a full load or
// from the previous index plus the changed rows, and published with one
// atomic pointer store; a published index is never written, so one query
// reads one consistent snapshot without locking. An index changed by a few
// rows shares all but the touched shards of its maps with its predecessor.
//
// # Following PostgreSQL
//
// The API writes each change as an upsert of an edge_domain row (a removed
// domain stays as a tombstone with deleted = true) with a serial from
// edge_serial_seq, and calls pg_notify('rampart_edge', serial) in the same
// transaction. The edge holds one connection that:
//
//  1. runs LISTEN rampart_edge, before anything else, so that no change
//     committed during the next step goes unnoticed;
//  2. loads the whole table in one REPEATABLE READ READ ONLY transaction,
//     with the highest serial read in the same transaction;
//  3. on notifications (collected for 20 ms so a burst costs one query)
//     fetches the rows whose serial is above the index's, plus the rows at
//     any notified serial below it (transactions commit out of serial order
//     when they run concurrently), and publishes the index with those rows
//     applied;
//  4. checks the highest serial every 15 s when idle, which both proves the
//     connection alive and confirms the index current, and reloads in full
//     every Config.ResyncInterval.
//
// When PostgreSQL is unreachable or the connection drops, the edge keeps
// serving its last index and reconnects with backoff (at most 30 s), then
// starts again at step 1. The dnsedge_snapshot_age_seconds metric tells how
// long ago the index was last confirmed current.
//
// The index is also written to Config.SnapshotPath (checksummed, replaced
// atomically) after every full load, a second after incremental changes,
// and when the edge stops. On start a valid file is served at once, before
// PostgreSQL is reached; a file that fails its checks is refused with an
// error in the log.
//
// # Metrics
//
// dnsedge_queries_total{qtype,rcode}, dnsedge_queries_dropped_total,
// dnsedge_snapshot_serial, dnsedge_snapshot_domains,
// dnsedge_snapshot_age_seconds and dnsedge_db_connected are registered in the
// registry given to [New], and served at /metrics when
// Config.MetricsListen is set.
//
// # Use
//
// cmd/dnsedge runs an edge as its own process; rampart dev runs one in
// process:
//
//	edge, err := dnsedge.New(dnsedge.Config{
//		Zone:        "edge.rampart.test",
//		DatabaseURL: os.Getenv("DATABASE_URL"),
//	}, logger, prometheus.NewRegistry())
//	if err != nil {
//		return err
//	}
//	return edge.Run(ctx) // until ctx is cancelled
package dnsedge
