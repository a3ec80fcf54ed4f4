-- name: InsertBlob :one
-- Store a raw input, unless the same bytes are already stored in the same
-- scope (see report_blobs_sha256_key).
INSERT INTO report_blobs (sha256, raw, size, source, account_id, domain_id, remote, filename, received_at)
VALUES (@sha256, @raw, @size, @source, sqlc.narg(account_id), sqlc.narg(domain_id), @remote, @filename, @received_at)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: BlobInScope :one
SELECT id, status FROM report_blobs
WHERE sha256 = @sha256
  AND coalesce(account_id, '00000000-0000-0000-0000-000000000000') = coalesce(sqlc.narg(account_id)::uuid, '00000000-0000-0000-0000-000000000000')
  AND coalesce(domain_id, '00000000-0000-0000-0000-000000000000') = coalesce(sqlc.narg(domain_id)::uuid, '00000000-0000-0000-0000-000000000000');

-- name: RetryBlob :execrows
-- Put a refused or failed blob back in line, when its bytes arrive again.
UPDATE report_blobs
SET status = 'pending', refusal_reason = NULL, refusal_detail = NULL, warnings = '[]', processed_at = NULL
WHERE id = @id AND status IN ('refused', 'failed');

-- name: DomainByReportToken :one
-- Only a verified domain receives reports: mail for an unverified claim's
-- address is refused at RCPT.
SELECT id, name FROM domains WHERE report_token = @report_token AND verified_at IS NOT NULL;

-- name: BlobForIngest :one
-- A blob with its recipient domain, if it came by mail and the domain is
-- (still) verified.
SELECT b.id, b.raw, b.source, b.account_id, b.domain_id, b.received_at, b.status,
    r.name AS recipient_name, r.account_id AS recipient_account
FROM report_blobs b LEFT JOIN domains r ON r.id = b.domain_id AND r.verified_at IS NOT NULL
WHERE b.id = @id;

-- name: HostedDomains :many
-- Verified hosted domains among the names (a policy domain and its
-- parents), in the account and the accounts below it when account_id is
-- given. An unverified claim never receives reports.
WITH RECURSIVE tree (id) AS (
    SELECT a.id FROM accounts a WHERE a.id = sqlc.narg(account_id)::uuid
    UNION
    SELECT c.id FROM accounts c JOIN tree t ON c.parent_id = t.id
)
SELECT d.id, d.name, d.account_id FROM domains d
WHERE d.name = ANY(@names::text[]) AND d.verified_at IS NOT NULL
  AND (sqlc.narg(account_id)::uuid IS NULL OR d.account_id IN (SELECT tree.id FROM tree));

-- name: InsertReport :one
-- Claim the dedupe key: the domain and the report's identity, so that a
-- report stored for one domain never makes another's a duplicate. A
-- concurrent transaction holding the same key makes this wait until it
-- ends; if it committed, nothing is inserted.
INSERT INTO reports (
    domain_id, blob_id, org_name, email, extra_contact_info, report_id, policy_domain,
    begin_at, end_at, day, version, namespace, generator, errors,
    policy_adkim, policy_aspf, policy_p, policy_sp, policy_np, policy_pct, policy_fo,
    policy_testing, policy_discovery, received_at
) VALUES (
    @domain_id, @blob_id, @org_name, @email, @extra_contact_info, @report_id, @policy_domain,
    @begin_at, @end_at, @day, @version, @namespace, @generator, @errors,
    @policy_adkim, @policy_aspf, @policy_p, @policy_sp, @policy_np, sqlc.narg(policy_pct), @policy_fo,
    @policy_testing, @policy_discovery, @received_at
)
ON CONFLICT (domain_id, org_name, report_id, policy_domain, begin_at, end_at) DO NOTHING
RETURNING id;

-- name: ReportByKey :one
SELECT id FROM reports
WHERE domain_id = @domain_id AND org_name = @org_name AND report_id = @report_id AND policy_domain = @policy_domain
  AND begin_at = @begin_at AND end_at = @end_at;

-- name: InsertDuplicate :exec
INSERT INTO report_duplicates (blob_id, report_id, received_at)
VALUES (@blob_id, @report_id, @received_at)
ON CONFLICT DO NOTHING;

-- name: SetReportCounts :exec
UPDATE reports SET record_count = @record_count, message_count = @message_count WHERE id = @id;

-- name: AddRollups :exec
-- Add one report's records to the daily rollups, aggregated here from the
-- rows just copied (still in shared buffers) rather than in the worker's
-- memory. Rows are upserted in key order so that concurrent reports lock
-- shared rows in the same order and cannot deadlock.
INSERT INTO report_rollups AS r (domain_id, day, source_ip, header_from, disposition, spf_aligned, dkim_aligned, messages, reports)
SELECT rr.domain_id, rr.day, rr.source_ip, rr.header_from, rr.disposition, rr.spf = 'pass', rr.dkim = 'pass', sum(rr.count), 1
FROM report_records rr
WHERE rr.report_id = @report_id AND rr.domain_id = @domain_id AND rr.day = @day
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (domain_id, day, source_ip, header_from, disposition, spf_aligned, dkim_aligned)
DO UPDATE SET messages = r.messages + EXCLUDED.messages, reports = r.reports + EXCLUDED.reports;

-- name: FinishBlob :exec
-- Record what became of a blob. It matches no row when another worker
-- finished the blob first, which the caller checks.
UPDATE report_blobs
SET status = @status, report_id = sqlc.narg(report_id), warnings = @warnings, processed_at = now()
WHERE id = @id AND status = 'pending';

-- name: RefuseBlob :execrows
-- Record why a blob was not stored; a blob already stored keeps its status.
UPDATE report_blobs
SET status = @status, refusal_reason = @refusal_reason, refusal_detail = @refusal_detail,
    warnings = @warnings, processed_at = now()
WHERE id = @id AND status = 'pending';

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

-- name: PartitionExists :one
SELECT (to_regclass(@name::text) IS NOT NULL)::boolean AS exists;
