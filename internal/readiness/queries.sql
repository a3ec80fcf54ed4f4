-- name: SenderVolumes :many
-- The domains' mail in the window, per domain, class and service of its
-- sources (as the authentication report counts them, see migration 00025:
-- a source without a class yet, classified within a minute of ingest,
-- counts as unidentified). first_seen is the first day in the window.
SELECT rs.domain_id,
       rs.class::text AS class,
       rs.service::text AS service,
       sum(rs.messages)::bigint AS messages,
       sum(rs.dmarc_pass)::bigint AS passed,
       min(rs.day)::date AS first_seen
FROM report_sources_daily rs
WHERE rs.domain_id = ANY(@domain_ids::uuid[]) AND rs.day BETWEEN @since::date AND @until::date
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- name: ReportDays :many
-- The days in the window with reports, per domain (domains without any
-- are left out).
SELECT domain_id, count(DISTINCT day)::int AS days FROM report_sources_daily
WHERE domain_id = ANY(@domain_ids::uuid[]) AND day BETWEEN @since::date AND @until::date
GROUP BY domain_id;

-- name: Thresholds :many
SELECT id, account_id, readiness_threshold FROM domains WHERE id = ANY(@domain_ids::uuid[]);

-- name: Services :many
-- Per domain, its enabled senders and every service named in slugs, with
-- the enabled ones' own thresholds.
SELECT d.id AS domain_id, s.slug, s.name, (ds.service IS NOT NULL)::boolean AS enabled, ds.pass_threshold
FROM domains d
CROSS JOIN sender_services s
LEFT JOIN domain_senders ds ON ds.service = s.slug AND ds.domain_id = d.id
WHERE d.id = ANY(@domain_ids::uuid[])
  AND (ds.domain_id IS NOT NULL OR s.slug = ANY(@slugs::text[]))
ORDER BY d.id, s.slug;

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

-- name: SendingDomains :many
-- The sending (not blocked) domains of the accounts.
SELECT id, account_id FROM domains
WHERE account_id = ANY(@account_ids::uuid[]) AND mode = 'sending'
ORDER BY account_id, id;
