-- name: InsertBlob :one
-- Store a raw input, unless the same bytes are already stored in the same
-- scope (see report_blobs_sha256_key).
INSERT INTO report_blobs (sha256, raw, size, source, account_id, scope_accounts, remote, filename, received_at,
    mail_from, mail_subject, mail_message_id)
VALUES (@sha256, @raw, @size, @source, sqlc.narg(account_id), sqlc.narg(scope_accounts)::uuid[],
    @remote, @filename, @received_at, @mail_from, @mail_subject, @mail_message_id)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: BlobInScope :one
-- The blob holding these bytes in the scope, locked so that concurrent
-- arrivals of the same bytes add their recipients and retry it in turn.
SELECT id, status, (purged_at IS NOT NULL)::boolean AS purged FROM report_blobs
WHERE sha256 = @sha256
  AND coalesce(account_id, '00000000-0000-0000-0000-000000000000') = coalesce(sqlc.narg(account_id)::uuid, '00000000-0000-0000-0000-000000000000')
  AND (source = 'smtp') = @mail::boolean
FOR UPDATE;

-- name: AddRecipients :execrows
-- Add the hosted domains a mail blob was sent to; it counts those it did
-- not have. A domain removed since its RCPT TO is left out.
INSERT INTO report_blob_recipients (blob_id, domain_id, remote, received_at)
SELECT @blob_id, d.id, @remote, @received_at
FROM domains d WHERE d.id = ANY(@domain_ids::uuid[])
ORDER BY d.id
ON CONFLICT DO NOTHING;

-- name: RestoreRaw :exec
-- Put back the bytes of a purged blob that arrived again.
UPDATE report_blobs SET raw = @raw, purged_at = NULL
WHERE id = @id AND purged_at IS NOT NULL;

-- name: RetryBlob :one
-- Put a blob back in line in a new round: one that was not stored
-- (refused, failed, or its job cancelled or discarded) whose bytes arrived
-- again, or any one whose scope grew. An upload's new arrival brings its
-- own scope (another uploader may manage more). A job still working the
-- previous round then finishes nothing.
UPDATE report_blobs
SET status = 'pending', refusal_reason = NULL, refusal_detail = NULL, warnings = '[]', processed_at = NULL,
    scope_accounts = sqlc.narg(scope_accounts)::uuid[], round = round + 1
WHERE id = @id AND (status IN ('refused', 'failed', 'cancelled', 'discarded') OR @scope_grew::boolean)
RETURNING round;

-- name: DomainByReportToken :one
-- Only a verified domain receives reports: mail for an unverified claim's
-- address is refused at RCPT.
SELECT id, name FROM domains WHERE report_token = @report_token AND verified_at IS NOT NULL;

-- name: BlobForIngest :one
SELECT id, raw, source, account_id, scope_accounts, received_at, status, round
FROM report_blobs
WHERE id = @id;

-- name: BlobRecipients :many
-- The hosted domains a mail blob was sent to that are (still) verified.
SELECT d.id, d.name, d.account_id
FROM report_blob_recipients r JOIN domains d ON d.id = r.domain_id
WHERE r.blob_id = @blob_id AND d.verified_at IS NOT NULL
ORDER BY d.name;

-- name: HostedDomains :many
-- Verified hosted domains among the names (a policy domain and its
-- parents), in the account and the accounts below it when account_id is
-- given, and among those in scope_accounts when it is given. An unverified
-- claim never receives reports.
WITH RECURSIVE tree (id) AS (
    SELECT a.id FROM accounts a WHERE a.id = sqlc.narg(account_id)::uuid
    UNION
    SELECT c.id FROM accounts c JOIN tree t ON c.parent_id = t.id
)
SELECT d.id, d.name, d.account_id FROM domains d
WHERE d.name = ANY(@names::text[]) AND d.verified_at IS NOT NULL
  AND (sqlc.narg(account_id)::uuid IS NULL OR d.account_id IN (SELECT tree.id FROM tree))
  AND (sqlc.narg(scope_accounts)::uuid[] IS NULL OR d.account_id = ANY(sqlc.narg(scope_accounts)::uuid[]));

-- name: AccountTree :many
-- An account and every account below it.
WITH RECURSIVE tree (id) AS (
    SELECT a.id FROM accounts a WHERE a.id = @account_id
    UNION
    SELECT c.id FROM accounts c JOIN tree t ON c.parent_id = t.id
)
SELECT tree.id FROM tree;

-- name: InsertReport :one
-- Claim the dedupe key: the domain and the report's identity, so that a
-- report stored for one domain never makes another's a duplicate. A
-- concurrent transaction holding the same key makes this wait until it
-- ends; if it committed, nothing is inserted.
INSERT INTO reports (
    domain_id, blob_id, reporter, org_name, email, extra_contact_info, report_id, policy_domain,
    begin_at, end_at, day, version, namespace, generator, errors,
    policy_adkim, policy_aspf, policy_p, policy_sp, policy_np, policy_pct, policy_fo,
    policy_testing, policy_discovery, received_at
) VALUES (
    @domain_id, @blob_id, @reporter, @org_name, @email, @extra_contact_info, @report_id, @policy_domain,
    @begin_at, @end_at, @day, @version, @namespace, @generator, @errors,
    @policy_adkim, @policy_aspf, @policy_p, @policy_sp, @policy_np, sqlc.narg(policy_pct), @policy_fo,
    @policy_testing, @policy_discovery, @received_at
)
ON CONFLICT (domain_id, reporter, report_id, policy_domain, begin_at, end_at) DO NOTHING
RETURNING id;

-- name: ReportByKey :one
SELECT id, blob_id FROM reports
WHERE domain_id = @domain_id AND reporter = @reporter AND report_id = @report_id AND policy_domain = @policy_domain
  AND begin_at = @begin_at AND end_at = @end_at;

-- name: InsertDuplicate :exec
INSERT INTO report_duplicates (blob_id, report_id, received_at)
VALUES (@blob_id, @report_id, @received_at)
ON CONFLICT DO NOTHING;

-- name: SetReportCounts :exec
UPDATE reports SET record_count = @record_count, message_count = @message_count WHERE id = @id;

-- name: LockSourceDay :exec
-- Serialises the writers of one domain's day of source rollups until
-- commit, so that a report may COPY rows it found missing (see ingest's
-- rollup.go). Keys are taken in order, so two blobs cannot deadlock.
SELECT pg_advisory_xact_lock(@space::integer, @key::integer);

-- name: SourceRollupsExist :one
-- Whether the source rollups hold rows that one report's could meet: its
-- reporter's in report_sources, anyone's in report_source_dkim; and
-- whether anyone's are in report_sources for the day.
SELECT EXISTS (SELECT 1 FROM report_sources s
               WHERE s.domain_id = @domain_id AND s.day = @day AND s.reporter = @reporter)::boolean AS sources,
       EXISTS (SELECT 1 FROM report_source_dkim k WHERE k.domain_id = @domain_id AND k.day = @day)::boolean AS dkim,
       EXISTS (SELECT 1 FROM report_sources s WHERE s.domain_id = @domain_id AND s.day = @day)::boolean AS day_sources;

-- name: AddSources :exec
-- Add one report's source rollups, summed by the worker, to
-- report_sources. Rows are upserted in key order.
INSERT INTO report_sources AS s (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
                                 spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
SELECT @domain_id::uuid, @day::date, u.source_ip, @reporter::text, u.header_from, u.spf_domain, u.disposition,
       u.spf_pass, u.dkim_pass, u.spf_aligned, u.dkim_aligned, u.forwarded, u.messages, 1
FROM (SELECT unnest(@source_ips::inet[]) AS source_ip, unnest(@header_froms::text[]) AS header_from,
             unnest(@spf_domains::text[]) AS spf_domain, unnest(@dispositions::text[]) AS disposition,
             unnest(@spf_passes::boolean[]) AS spf_pass, unnest(@dkim_passes::boolean[]) AS dkim_pass,
             unnest(@spf_aligneds::boolean[]) AS spf_aligned, unnest(@dkim_aligneds::boolean[]) AS dkim_aligned,
             unnest(@forwardeds::boolean[]) AS forwarded, unnest(@messages::bigint[]) AS messages) u
ORDER BY 3, 5, 6, 7, 8, 9, 10, 11, 12
ON CONFLICT (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
             spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded)
DO UPDATE SET messages = s.messages + EXCLUDED.messages, reports = s.reports + EXCLUDED.reports;

-- name: AddSourceDKIM :exec
-- Add one report's DKIM signatures to report_source_dkim, as AddSources.
INSERT INTO report_source_dkim AS s (domain_id, day, source_ip, dkim_domain, selector, result, messages, reports)
SELECT @domain_id::uuid, @day::date, u.source_ip, u.dkim_domain, u.selector, u.result, u.messages, 1
FROM (SELECT unnest(@source_ips::inet[]) AS source_ip, unnest(@dkim_domains::text[]) AS dkim_domain,
             unnest(@selectors::text[]) AS selector, unnest(@results::text[]) AS result,
             unnest(@messages::bigint[]) AS messages) u
ORDER BY 3, 4, 5, 6
ON CONFLICT (domain_id, day, source_ip, dkim_domain, selector, result)
DO UPDATE SET messages = s.messages + EXCLUDED.messages, reports = s.reports + EXCLUDED.reports;

-- name: FinishBlob :exec
-- Record what became of a blob. It matches no row when another worker
-- finished the blob first, which the caller checks.
UPDATE report_blobs
SET status = @status, report_id = sqlc.narg(report_id), warnings = @warnings, processed_at = now()
WHERE id = @id AND status = 'pending' AND round = @round;

-- name: RefuseBlob :execrows
-- Record why a blob was not stored; a blob already stored, or put back in
-- line in a round after the given one (if given), keeps its status.
UPDATE report_blobs
SET status = @status, refusal_reason = @refusal_reason, refusal_detail = @refusal_detail,
    warnings = @warnings, processed_at = now()
WHERE id = @id AND status = 'pending' AND round = coalesce(sqlc.narg(round)::integer, round);

-- name: LockPartitions :exec
-- Serialises creating and dropping report_records partitions.
SELECT pg_advisory_xact_lock(@key::bigint);

-- name: RecordPartitions :many
SELECT c.relname::text AS name
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'report_records'::regclass
ORDER BY 1;

-- name: DeleteBlobsBefore :execrows
-- Delete up to lim blobs received before cutoff; called until none is left.
DELETE FROM report_blobs
WHERE id IN (SELECT b.id FROM report_blobs b WHERE b.received_at < @cutoff ORDER BY b.received_at LIMIT @lim);

-- name: PurgeRefusedBlobs :execrows
-- Delete the bytes of up to lim blobs not stored (refused, failed, their
-- job cancelled or discarded) before cutoff, keeping their rows; called
-- until none is left. The status is checked again on the row itself, in
-- case the blob was put back in line meanwhile.
UPDATE report_blobs
SET raw = NULL, purged_at = @now::timestamptz
WHERE id IN (SELECT b.id FROM report_blobs b
             WHERE b.raw IS NOT NULL AND b.status IN ('refused', 'failed', 'cancelled', 'discarded')
               AND b.processed_at < @cutoff::timestamptz
             ORDER BY b.processed_at LIMIT @lim)
  AND raw IS NOT NULL AND status IN ('refused', 'failed', 'cancelled', 'discarded');

-- name: PartitionExists :one
SELECT (to_regclass(@name::text) IS NOT NULL)::boolean AS exists;

-- name: BlobOutcomes :many
-- What became of blobs: their status, why they were not stored, and how
-- many reports were stored from them (for rampart import -wait).
SELECT b.id, b.status, b.refusal_reason, b.refusal_detail,
       (SELECT count(*) FROM reports r WHERE r.blob_id = b.id)::int AS reports
FROM report_blobs b
WHERE b.id = ANY(@ids::uuid[]);

-- name: DayQueuedAt :one
-- When a day was queued for classification: by this transaction's
-- rollups, its now().
SELECT queued_at FROM classify_days WHERE domain_id = @domain_id AND day = @day;
