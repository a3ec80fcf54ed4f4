// Package ingest stores DMARC aggregate reports: it takes raw inputs (rua
// mail, uploads, mailbox pulls, imports) and turns them, as River jobs, into
// report rows, records and daily rollups.
//
// # Intake
//
// [Store.Accept] stores the raw bytes in report_blobs and enqueues a
// report.ingest job for them in the same transaction (River InsertTx), so
// that a blob is never stored without its job nor a job enqueued for a blob
// that was not stored. The same bytes arriving again in the same scope (the
// account for uploads and pulls; mail, whatever its recipients; imports)
// are one blob and one job; [Accepted.Duplicate] says so. If that blob was
// refused (say, it was uploaded before its domain was added) or failed, it
// is put back in line instead ([Accepted.Retried]). Uploads for a principal
// go through [Store.BeginUpload], which authorises the principal in the
// account and records on each blob the accounts whose domains its reports
// may be stored for: those below the account in which the principal may
// manage domains. [Store.RecipientDomain] maps the local part of a rua
// address, the domain's report token, to the domain.
//
// A mail is one blob however many rua addresses it names, of however many
// accounts: its recipient domains are report_blob_recipients rows (with
// when and from where each received it), and its reports may be filed
// under any of them or their subdomains, in that recipient's account. The
// same bytes mailed later to a further address add that recipient and put
// the blob back in line, so that the reports refused for the first
// recipients are stored for the new one. Each time a blob is put back in
// line its round goes up, with a job of its own ([IngestArgs.Round]); a job
// finishes a blob only in the round it read, so one still working an
// earlier round writes nothing, and reports the blob stored in an earlier
// round are kept as they are. A mail blob is deleted with its last
// recipient domain.
//
// # The ingest job
//
// The report.ingest worker (see [AddWorkers]) loads the blob and unwraps it
// with [report.Extract]. Each attachment is read twice: once up to its first
// record, to learn its metadata, and once in full. Between the two, the
// policy domain is mapped to a hosted domain (the domain itself or its
// nearest hosted parent, within the blob's scope; only domains whose
// account has proven it controls them count, see internal/domain) and the
// monthly partition
// of report_records that will hold the records is created if missing, in a
// short transaction of its own so that its lock on the parent table is not
// held while the report is written.
//
// Then, in one transaction per blob:
//
//  1. the reports row is inserted with ON CONFLICT on the dedupe key
//     (hosted domain, reporter org, report id, policy domain, date range;
//     the domain keeps a report stored for one account's domain from making
//     another domain's copy a duplicate). A transaction
//     that holds the same key makes the insert wait until it ends; if it
//     committed, the report is a duplicate: a report_duplicates row records
//     it, nothing is counted, and its records are not even read;
//  2. the records stream from the decoder to PostgreSQL through COPY into
//     the month's partition, never all in memory: a goroutine decodes into
//     small batches that the COPY source drains, encoding them in
//     PostgreSQL's binary COPY format as the connection reads them
//     (pgcopy.go), so decoding, encoding and PostgreSQL's work overlap.
//     The COPY source also sums the records by the source rollups' keys
//     (report_sources: per domain, day, source, reporter, header_from, SPF
//     domain, disposition and outcome; report_source_dkim: the DKIM
//     signatures seen), sorting and merging the rows in rounds as they
//     come;
//  3. in one round trip, the report's counts and the blob's status are set
//     (only if the blob is still pending: a rerun of a finished job, or a
//     second worker on the same blob, changes nothing), an advisory lock
//     on each domain's day of rollups is taken (held until commit, in key
//     order), and a small report's rollups are upserted from arrays;
//  4. a large report's rollups (more than 512 rows) follow: COPYed into a
//     table where none of them can exist yet (the first report of its
//     reporter for the day in report_sources, the first of anyone in
//     report_source_dkim: the lock keeps it so), upserted otherwise. The
//     rollup tables' statement triggers queue the day for classification
//     (package sources);
//  5. the transaction commits.
//
// When such a large report is the first of its day in both rollup tables
// and [Options.Classifier] is set, its sources are classified from the
// sums the worker holds instead of by the sources.classify job reading
// them back (classify.go): in a transaction of its own on a second
// connection, while the rollups are copied, committed after the ingest
// and only if the day is still queued as the ingest queued it (else the
// job classifies it); with no connection free, in the ingest transaction.
// A failure there leaves the day to the job, never the report unstored.
//
// A report is therefore stored whole or not at all: a worker killed at any
// point leaves nothing, and the rerun stores it once.
//
// # Queue and capacity
//
// The jobs run in their own River queue, [Queue], configured with
// [QueueConfig]. A worker holds one database connection while it works
// (and a second one, if the pool has it free, while it classifies a large
// report's new day), and memory for the raw blob and a few MB more (a 100,000-record report
// raised the benchmark's peak RSS by less than 20 MB). docs/benchmarks.md has the throughput measured.
//
// # Failures
//
// Input that cannot be a report, or a report for a domain outside the
// blob's scope, is refused: the reason ([report.Reason], or one of this
// package's reasons such as [NotHosted]) and a sentence for the owner are
// stored on the blob, and the job is cancelled with [river.JobCancel], never
// retried. When a blob holds several attachments, a refused one is recorded
// as a warning as long as another is stored. Database faults are returned
// to River, which retries; after the last attempt the blob is marked
// failed.
//
// # Retention
//
// The report.retention periodic job ([RetentionPeriodicJob]) drops the
// report_records partitions that lie wholly before the retention period
// (default 13 months) and deletes the raw blobs received before it. Reports
// rows (small, and the memory of which reports were seen) and rollups are
// kept. It also deletes the bytes of blobs not stored (refused, failed,
// cancelled or discarded) more than [RefusedBytesRetention] (30 days) ago, keeping their rows (size, hash,
// reason, dates; purged_at says when); if the same bytes arrive again they
// are put back.
package ingest
