-- name: SenderVolumes :many
-- A domain's mail in the window, per class and service of its sources
-- (as the authentication report counts them, see migration 00025: a
-- source without a class yet, classified within a minute of ingest,
-- counts as unidentified). first_seen is the first day in the window.
SELECT rs.class::text AS class,
       rs.service::text AS service,
       sum(rs.messages)::bigint AS messages,
       sum(rs.dmarc_pass)::bigint AS passed,
       min(rs.day)::date AS first_seen
FROM report_sources_daily rs
WHERE rs.domain_id = @domain_id AND rs.day BETWEEN @since::date AND @until::date
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: ReportDays :one
-- The days in the window with reports.
SELECT count(DISTINCT day)::int FROM report_sources_daily
WHERE domain_id = @domain_id AND day BETWEEN @since::date AND @until::date;

-- name: Thresholds :one
SELECT readiness_threshold FROM domains WHERE id = @domain_id;

-- name: Services :many
-- The domain's enabled senders and every service named in slugs, with
-- the enabled ones' own thresholds.
SELECT s.slug, s.name, (ds.service IS NOT NULL)::boolean AS enabled, ds.pass_threshold
FROM sender_services s
LEFT JOIN domain_senders ds ON ds.service = s.slug AND ds.domain_id = @domain_id
WHERE ds.domain_id IS NOT NULL OR s.slug = ANY(@slugs::text[])
ORDER BY s.slug;

-- name: PolicyChanges :many
-- A domain's recorded tightenings, newest first, with who made them.
SELECT c.at, c.from_policy, c.to_policy, c.verdict, c.forced, c.reasons,
       u.email AS user_email, t.name AS token_name
FROM policy_changes c
LEFT JOIN users u ON u.id = c.actor_user_id
LEFT JOIN api_tokens t ON t.id = c.actor_token_id
WHERE c.domain_id = @domain_id
ORDER BY c.at DESC, c.id DESC
LIMIT @lim;
