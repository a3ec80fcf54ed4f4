-- name: PendingReports :many
-- Reports whose source IPs are not queued yet, oldest first
-- (reports_sources_pending_idx).
SELECT id, day FROM reports WHERE NOT sources_queued ORDER BY stored_at LIMIT @max;

-- name: QueueSources :execrows
-- Adds the report's source IPs, due at once; an IP already there records
-- the later day it was seen, and one asleep (not seen within the refresh
-- window) wakes. Rows are taken in IP order so that two runs cannot
-- deadlock.
INSERT INTO ip_enrichment (ip, last_seen, expires_at)
SELECT DISTINCT r.source_ip, @day::date, @now::timestamptz
FROM report_records r
WHERE r.report_id = @report_id AND r.day = @day::date
ORDER BY r.source_ip
ON CONFLICT (ip) DO UPDATE SET
    last_seen = excluded.last_seen,
    expires_at = CASE WHEN ip_enrichment.expires_at = 'infinity' THEN excluded.expires_at ELSE ip_enrichment.expires_at END
WHERE ip_enrichment.last_seen < excluded.last_seen;

-- name: MarkQueued :exec
UPDATE reports SET sources_queued = true WHERE id = @id;

-- name: Sleep :execrows
-- Due IPs not seen since @seen_since are not looked up until seen again.
UPDATE ip_enrichment SET expires_at = 'infinity'
WHERE expires_at <= @now AND last_seen < @seen_since::date;

-- name: Due :many
SELECT ip, outcome, ptr, ptr_confirmed, failures
FROM ip_enrichment
WHERE expires_at <= @now
ORDER BY expires_at
LIMIT @max;

-- name: Save :exec
UPDATE ip_enrichment SET
    outcome = sqlc.narg(outcome), ptr = sqlc.narg(ptr), ptr_confirmed = @ptr_confirmed,
    asn = sqlc.narg(asn), as_org = sqlc.narg(as_org), country = sqlc.narg(country),
    looked_up_at = @now, expires_at = @expires_at, failures = @failures, error = sqlc.narg(error)
WHERE ip = @ip;

-- name: Get :many
SELECT ip, outcome, ptr, ptr_confirmed, asn, as_org, country, looked_up_at, expires_at, error
FROM ip_enrichment
WHERE ip = ANY(@ips::inet[]) AND looked_up_at IS NOT NULL;
