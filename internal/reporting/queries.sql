-- name: DomainReports :many
-- One page of a domain's stored reports, newest period first.
SELECT r.id, r.org_name, r.email, r.report_id, r.policy_domain, r.begin_at, r.end_at,
       r.record_count, r.message_count, r.received_at,
       (SELECT count(*) FROM report_duplicates d WHERE d.report_id = r.id)::int AS duplicates,
       coalesce((SELECT jsonb_array_length(b.warnings) FROM report_blobs b WHERE b.id = r.blob_id), 0)::int AS warnings
FROM reports r
WHERE r.domain_id = @domain_id
  AND (sqlc.narg(after_begin)::timestamptz IS NULL
       OR (r.begin_at, r.id) < (sqlc.narg(after_begin)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY r.begin_at DESC, r.id DESC
LIMIT @lim;

-- name: CountDomainReports :one
SELECT count(*) FROM reports WHERE domain_id = @domain_id;

-- name: DomainProblems :many
-- Inputs for a domain that were not stored (refused, failed, their job
-- cancelled or discarded) or stored with warnings: mail to the domain's
-- report address (dated and placed as it reached that address), and reports
-- filed under it.
SELECT b.id, b.source, b.filename, coalesce(r.remote, b.remote)::text AS remote,
       coalesce(r.received_at, b.received_at)::timestamptz AS received_at,
       b.status, b.refusal_reason, b.refusal_detail, b.warnings, b.size, b.purged_at,
       b.mail_from, b.mail_subject, b.mail_message_id
FROM report_blobs b
LEFT JOIN report_blob_recipients r ON r.blob_id = b.id AND r.domain_id = @domain_id
WHERE (r.domain_id IS NOT NULL OR b.report_id IN (SELECT id FROM reports WHERE domain_id = @domain_id))
  AND (b.status IN ('refused', 'failed', 'cancelled', 'discarded') OR jsonb_array_length(b.warnings) > 0)
ORDER BY coalesce(r.received_at, b.received_at) DESC, b.id DESC
LIMIT @lim;

-- name: AccountProblems :many
-- Uploaded or pulled inputs of an account that were not stored (refused,
-- failed, their job cancelled or discarded) or stored with warnings.
SELECT b.id, b.source, b.filename, b.remote, b.received_at, b.status, b.refusal_reason, b.refusal_detail, b.warnings,
       b.size, b.purged_at, b.mail_from, b.mail_subject, b.mail_message_id
FROM report_blobs b
WHERE b.account_id = @account_id
  AND (b.status IN ('refused', 'failed', 'cancelled', 'discarded') OR jsonb_array_length(b.warnings) > 0)
ORDER BY b.received_at DESC, b.id DESC
LIMIT @lim;

-- name: UnmatchedProblems :many
-- Inputs from any source refused because a report in them matches no
-- hosted domain within their scope (reason not_hosted), newest first: for
-- the instance operator, who alone sees across tenants.
SELECT b.id, b.source, b.filename, b.remote, b.received_at, b.status, b.refusal_reason, b.refusal_detail, b.warnings,
       b.size, b.purged_at, b.mail_from, b.mail_subject, b.mail_message_id
FROM report_blobs b
WHERE b.refusal_reason = 'not_hosted'
ORDER BY b.received_at DESC, b.id DESC
LIMIT @lim;
