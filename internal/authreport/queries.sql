-- name: Summaries :many
-- Per scope and class, for many scopes at once: the report's totals and
-- categories for every report a request asks for over the same range. A
-- scope is accounts it covers whole (account_ids, each with its scope in
-- account_scopes) and domains it covers one by one (domain_ids and
-- domain_scopes).
WITH ka AS (
    SELECT unnest(@account_ids::uuid[]) AS account_id, unnest(@account_scopes::bigint[]) AS scope
), kd AS (
    SELECT unnest(@domain_ids::uuid[]) AS domain_id, unnest(@domain_scopes::bigint[]) AS scope
), d AS (
    SELECT ka.scope, s.class, s.messages, s.dmarc_pass, s.spf_pass, s.spf_aligned, s.dkim_pass, s.dkim_aligned,
           s.disposition_none, s.disposition_quarantine, s.disposition_reject, s.reporters
    FROM ka JOIN report_accounts_daily s ON s.account_id = ka.account_id
    WHERE s.account_id = ANY(@account_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
    UNION ALL
    SELECT kd.scope, s.class, s.messages, s.dmarc_pass, s.spf_pass, s.spf_aligned, s.dkim_pass, s.dkim_aligned,
           s.disposition_none, s.disposition_quarantine, s.disposition_reject, s.reporters
    FROM kd JOIN report_sources_daily_ips s ON s.domain_id = kd.domain_id
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
), r AS (
    SELECT x.scope, x.class, array_agg(x.reporter ORDER BY x.reporter) AS reporters
    FROM (SELECT DISTINCT d.scope, d.class, unnest(d.reporters) AS reporter FROM d) x
    GROUP BY 1, 2
)
SELECT d.scope::bigint AS scope, d.class::text AS class,
       sum(d.messages)::bigint AS messages,
       sum(d.dmarc_pass)::bigint AS dmarc_pass,
       sum(d.spf_pass)::bigint AS spf_pass,
       sum(d.spf_aligned)::bigint AS spf_aligned,
       sum(d.dkim_pass)::bigint AS dkim_pass,
       sum(d.dkim_aligned)::bigint AS dkim_aligned,
       sum(d.disposition_none)::bigint AS disposition_none,
       sum(d.disposition_quarantine)::bigint AS disposition_quarantine,
       sum(d.disposition_reject)::bigint AS disposition_reject,
       coalesce(min(r.reporters), '{}')::text[] AS reporters
FROM d LEFT JOIN r ON r.scope = d.scope AND r.class = d.class
GROUP BY 1, 2;

-- name: Senders :many
-- A page of senders: a service each, else the class; with each one's
-- distinct addresses from the scope's preset while it is exact (as in
-- TopUnidentified), else the sketches of its addresses per day and, for
-- the days without one, its addresses, which Go merges into its count.
WITH valid AS (
    SELECT t.senders FROM report_presets t
    WHERE coalesce(t.domain_id, t.account_id) = sqlc.narg(preset_id)::uuid AND t.days = @preset_days::int
      AND t.to_day = @to_day::date AND t.members = @members::uuid[]
      AND report_preset_valid(t.members, t.generations, @from_day::date, @to_day::date)
), pc AS (
    SELECT e->>'class' AS class, e->>'service' AS service, (e->>'sources')::bigint AS sources
    FROM valid, jsonb_array_elements(valid.senders) AS e
), d AS (
    SELECT s.class, s.service, s.messages, s.dmarc_pass, s.spf_pass, s.spf_aligned, s.dkim_pass, s.dkim_aligned,
           s.disposition_none, s.disposition_quarantine, s.disposition_reject, s.reporters, s.sources, s.ips
    FROM report_accounts_daily s
    WHERE s.account_id = ANY(@account_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND (sqlc.narg(class)::text IS NULL OR s.class = sqlc.narg(class)::text)
    UNION ALL
    SELECT s.class, s.service, s.messages, s.dmarc_pass, s.spf_pass, s.spf_aligned, s.dkim_pass, s.dkim_aligned,
           s.disposition_none, s.disposition_quarantine, s.disposition_reject, s.reporters, s.sources, s.ips
    FROM report_sources_daily_ips s
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND (sqlc.narg(class)::text IS NULL OR s.class = sqlc.narg(class)::text)
), r AS (
    SELECT x.class, x.service, array_agg(x.reporter ORDER BY x.reporter) AS reporters
    FROM (SELECT DISTINCT d.class, d.service, unnest(d.reporters) AS reporter FROM d) x
    GROUP BY 1, 2
), g AS (
    SELECT d.class::text AS class, d.service::text AS service,
           sum(d.messages)::bigint AS messages,
           sum(d.dmarc_pass)::bigint AS dmarc_pass,
           sum(d.spf_pass)::bigint AS spf_pass,
           sum(d.spf_aligned)::bigint AS spf_aligned,
           sum(d.dkim_pass)::bigint AS dkim_pass,
           sum(d.dkim_aligned)::bigint AS dkim_aligned,
           sum(d.disposition_none)::bigint AS disposition_none,
           sum(d.disposition_quarantine)::bigint AS disposition_quarantine,
           sum(d.disposition_reject)::bigint AS disposition_reject
    FROM d
    GROUP BY 1, 2
), n AS (
    SELECT g.*, coalesce(r.reporters, '{}')::text[] AS reporters,
           (CASE g.class WHEN 'service' THEN coalesce(ss.name, g.service) WHEN 'internal' THEN 'Internal'
                         WHEN 'forwarded' THEN 'Forwarded' ELSE 'Unidentified' END)::text AS name,
           coalesce(ss.category, '')::text AS service_category,
           (g.dmarc_pass::float8 / g.messages::float8)::float8 AS rate
    FROM g
    LEFT JOIN r ON r.class = g.class AND r.service = g.service
    LEFT JOIN sender_services ss ON g.service <> '' AND ss.slug = g.service
), p AS (
    SELECT n.*, count(*) OVER ()::bigint AS total
    FROM n
    ORDER BY
        CASE WHEN @sort::text = 'messages' THEN n.messages END DESC,
        CASE WHEN @sort::text = 'rate_asc' THEN n.rate END ASC,
        CASE WHEN @sort::text = 'rate_desc' THEN n.rate END DESC,
        n.name, n.class, n.service
    LIMIT @lim OFFSET @off
)
-- The page's senders' sketches and addresses only.
, k AS (
    SELECT d.class, d.service, array_remove(array_agg(d.sources), NULL)::bytea[] AS sketches
    FROM d WHERE (d.class, d.service) IN (SELECT p.class, p.service FROM p) AND NOT EXISTS (SELECT 1 FROM valid)
    GROUP BY 1, 2
), i AS (
    SELECT d.class, d.service, array_agg(DISTINCT ip) AS ips
    FROM d, unnest(d.ips) AS ip
    WHERE (d.class, d.service) IN (SELECT p.class, p.service FROM p) AND NOT EXISTS (SELECT 1 FROM valid)
    GROUP BY 1, 2
)
SELECT p.class, p.service,
       p.messages, p.dmarc_pass, p.spf_pass, p.spf_aligned, p.dkim_pass, p.dkim_aligned,
       p.disposition_none, p.disposition_quarantine, p.disposition_reject, p.reporters, p.name, p.service_category, p.total,
       coalesce(k.sketches, '{}')::bytea[] AS sketches, coalesce(i.ips, '{}')::inet[] AS ips,
       EXISTS (SELECT 1 FROM valid)::bool AS preset, coalesce(pc.sources, 0)::bigint AS preset_sources
FROM p
LEFT JOIN k ON k.class = p.class AND k.service = p.service
LEFT JOIN i ON i.class = p.class AND i.service = p.service
LEFT JOIN pc ON pc.class = p.class AND pc.service = p.service
ORDER BY
    CASE WHEN @sort::text = 'messages' THEN p.messages END DESC,
    CASE WHEN @sort::text = 'rate_asc' THEN p.rate END ASC,
    CASE WHEN @sort::text = 'rate_desc' THEN p.rate END DESC,
    p.name, p.class, p.service;

-- name: Daily :many
-- Every day of the range, days without reports at zero.
WITH d AS (
    SELECT s.day, s.messages, s.dmarc_pass, s.spf_pass, s.spf_aligned, s.dkim_pass, s.dkim_aligned,
           s.disposition_none, s.disposition_quarantine, s.disposition_reject, s.reporters
    FROM report_accounts_daily s
    WHERE s.account_id = ANY(@account_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND (sqlc.narg(class)::text IS NULL OR s.class = sqlc.narg(class)::text)
    UNION ALL
    SELECT s.day, s.messages, s.dmarc_pass, s.spf_pass, s.spf_aligned, s.dkim_pass, s.dkim_aligned,
           s.disposition_none, s.disposition_quarantine, s.disposition_reject, s.reporters
    FROM report_sources_daily_ips s
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND (sqlc.narg(class)::text IS NULL OR s.class = sqlc.narg(class)::text)
), r AS (
    SELECT x.day, array_agg(x.reporter ORDER BY x.reporter) AS reporters
    FROM (SELECT DISTINCT d.day, unnest(d.reporters) AS reporter FROM d) x
    GROUP BY 1
), x AS (
    SELECT d.day,
           sum(d.messages)::bigint AS messages,
           sum(d.dmarc_pass)::bigint AS dmarc_pass,
           sum(d.spf_pass)::bigint AS spf_pass,
           sum(d.spf_aligned)::bigint AS spf_aligned,
           sum(d.dkim_pass)::bigint AS dkim_pass,
           sum(d.dkim_aligned)::bigint AS dkim_aligned,
           sum(d.disposition_none)::bigint AS disposition_none,
           sum(d.disposition_quarantine)::bigint AS disposition_quarantine,
           sum(d.disposition_reject)::bigint AS disposition_reject
    FROM d
    GROUP BY d.day
)
SELECT g.day::date AS day,
       coalesce(x.messages, 0)::bigint AS messages,
       coalesce(x.dmarc_pass, 0)::bigint AS dmarc_pass,
       coalesce(x.spf_pass, 0)::bigint AS spf_pass,
       coalesce(x.spf_aligned, 0)::bigint AS spf_aligned,
       coalesce(x.dkim_pass, 0)::bigint AS dkim_pass,
       coalesce(x.dkim_aligned, 0)::bigint AS dkim_aligned,
       coalesce(x.disposition_none, 0)::bigint AS disposition_none,
       coalesce(x.disposition_quarantine, 0)::bigint AS disposition_quarantine,
       coalesce(x.disposition_reject, 0)::bigint AS disposition_reject,
       coalesce(r.reporters, '{}')::text[] AS reporters
FROM generate_series(@from_day::date, @to_day::date, interval '1 day') AS g (day)
LEFT JOIN x ON x.day = g.day::date
LEFT JOIN r ON r.day = g.day::date
ORDER BY 1;

-- name: TopUnidentified :many
-- The unidentified sources with the most messages, with what is known of
-- their addresses: from the scope's preset (report_presets,
-- migration 00032) while it is exact, else the top ones by their messages
-- alone (an index-only scan), then their other sums. preset_id is the
-- domain or account whose preset may serve (NULL: none may), members its
-- domain or whole accounts, sorted.
WITH valid AS (
    SELECT t.top FROM report_presets t
    WHERE coalesce(t.domain_id, t.account_id) = sqlc.narg(preset_id)::uuid AND t.days = @preset_days::int
      AND t.to_day = @to_day::date AND t.members = @members::uuid[]
      AND report_preset_valid(t.members, t.generations, @from_day::date, @to_day::date)
), preset AS (
    SELECT (e->>'ip')::inet AS source_ip, (e->>'messages')::bigint AS messages, (e->>'dmarc_pass')::bigint AS dmarc_pass,
           (e->>'spf_pass')::bigint AS spf_pass, (e->>'spf_aligned')::bigint AS spf_aligned, (e->>'dkim_pass')::bigint AS dkim_pass,
           (e->>'dkim_aligned')::bigint AS dkim_aligned, (e->>'disposition_none')::bigint AS disposition_none,
           (e->>'disposition_quarantine')::bigint AS disposition_quarantine, (e->>'disposition_reject')::bigint AS disposition_reject,
           ARRAY(SELECT jsonb_array_elements_text(e->'reporters'))::text[] AS reporters
    FROM valid, jsonb_array_elements(valid.top) AS e
), top AS (
    SELECT s.source_ip, sum(s.messages)::bigint AS messages
    FROM report_sources_ips s
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND s.class = 'unidentified' AND NOT EXISTS (SELECT 1 FROM valid)
    GROUP BY s.source_ip
    ORDER BY 2 DESC, 1
    LIMIT @lim
), keys AS (
    -- The top sources' rows, found by their keys alone (an index-only
    -- scan, as top's), then read whole one by one: reading every
    -- unidentified row of the range whole to keep those of ten addresses
    -- took a second over 1,000 domains.
    SELECT s.domain_id, s.day, s.source_ip
    FROM report_sources_ips s
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND s.class = 'unidentified' AND s.source_ip IN (SELECT top.source_ip FROM top) AND NOT EXISTS (SELECT 1 FROM valid)
), d AS (
    SELECT s.source_ip, s.messages, s.dmarc_pass, s.spf_pass, s.spf_aligned, s.dkim_pass, s.dkim_aligned,
           s.disposition_none, s.disposition_quarantine, s.disposition_reject, s.reporters
    FROM keys k
    CROSS JOIN LATERAL (SELECT * FROM report_sources_ips s
                        WHERE s.domain_id = k.domain_id AND s.day = k.day AND s.source_ip = k.source_ip
                          AND s.class = 'unidentified' OFFSET 0) s
), t AS (
    SELECT d.source_ip,
           sum(d.messages)::bigint AS messages,
           sum(d.dmarc_pass)::bigint AS dmarc_pass,
           sum(d.spf_pass)::bigint AS spf_pass,
           sum(d.spf_aligned)::bigint AS spf_aligned,
           sum(d.dkim_pass)::bigint AS dkim_pass,
           sum(d.dkim_aligned)::bigint AS dkim_aligned,
           sum(d.disposition_none)::bigint AS disposition_none,
           sum(d.disposition_quarantine)::bigint AS disposition_quarantine,
           sum(d.disposition_reject)::bigint AS disposition_reject
    FROM d
    GROUP BY d.source_ip
), x AS (
    SELECT t.*, coalesce((SELECT array_agg(DISTINCT r ORDER BY r) FROM d, unnest(d.reporters) r WHERE d.source_ip = t.source_ip), '{}')::text[] AS reporters
    FROM t
    UNION ALL
    SELECT * FROM preset
    ORDER BY messages DESC, source_ip
    LIMIT @lim
)
SELECT host(x.source_ip)::text AS ip, x.messages::bigint AS messages, x.dmarc_pass::bigint AS dmarc_pass, x.spf_pass::bigint AS spf_pass,
       x.spf_aligned::bigint AS spf_aligned, x.dkim_pass::bigint AS dkim_pass, x.dkim_aligned::bigint AS dkim_aligned,
       x.disposition_none::bigint AS disposition_none, x.disposition_quarantine::bigint AS disposition_quarantine,
       x.disposition_reject::bigint AS disposition_reject, x.reporters::text[] AS reporters,
       e.ptr, coalesce(e.ptr_confirmed, false)::bool AS ptr_confirmed, e.asn, e.as_org, e.country
FROM x
LEFT JOIN ip_enrichment e ON e.ip = x.source_ip
ORDER BY x.messages DESC, x.source_ip;

-- name: Source :one
-- One source address in the range: its sums, its latest class, what is
-- known of the address, its From domains and DKIM signatures (as JSON).
WITH r AS (
    SELECT s.day, s.reporter, s.header_from, s.disposition, s.spf_pass, s.dkim_pass, s.spf_aligned, s.dkim_aligned, s.messages,
           s.dmarc_pass, s.class, s.service, s.evidence
    FROM report_sources_classified s
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND s.source_ip = @ip::inet
), a AS (
    SELECT count(*)::bigint AS n,
           coalesce(sum(r.messages), 0)::bigint AS messages,
           coalesce(sum(r.messages) FILTER (WHERE r.dmarc_pass), 0)::bigint AS dmarc_pass,
           coalesce(sum(r.messages) FILTER (WHERE r.spf_pass), 0)::bigint AS spf_pass,
           coalesce(sum(r.messages) FILTER (WHERE r.spf_aligned), 0)::bigint AS spf_aligned,
           coalesce(sum(r.messages) FILTER (WHERE r.dkim_pass), 0)::bigint AS dkim_pass,
           coalesce(sum(r.messages) FILTER (WHERE r.dkim_aligned), 0)::bigint AS dkim_aligned,
           coalesce(sum(r.messages) FILTER (WHERE r.disposition = 'none'), 0)::bigint AS disposition_none,
           coalesce(sum(r.messages) FILTER (WHERE r.disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
           coalesce(sum(r.messages) FILTER (WHERE r.disposition = 'reject'), 0)::bigint AS disposition_reject,
           coalesce(array_remove(array_agg(DISTINCT r.reporter ORDER BY r.reporter), ''), '{}')::text[] AS reporters
    FROM r
), h AS (
    SELECT r.header_from, sum(r.messages)::bigint AS messages,
           coalesce(sum(r.messages) FILTER (WHERE r.dmarc_pass), 0)::bigint AS dmarc_pass
    FROM r GROUP BY 1
), k AS (
    SELECT d.dkim_domain, d.selector, d.result, sum(d.messages)::bigint AS messages
    FROM report_source_dkim d
    WHERE d.domain_id = ANY(@domain_ids::uuid[]) AND d.day BETWEEN @from_day::date AND @to_day::date
      AND d.source_ip = @ip::inet
    GROUP BY 1, 2, 3
)
SELECT a.n, a.messages, a.dmarc_pass, a.spf_pass, a.spf_aligned, a.dkim_pass, a.dkim_aligned,
       a.disposition_none, a.disposition_quarantine, a.disposition_reject, a.reporters,
       coalesce(l.class, 'unidentified')::text AS class, coalesce(l.service, '')::text AS service,
       coalesce(l.evidence, '')::text AS evidence,
       e.ptr, coalesce(e.ptr_confirmed, false)::bool AS ptr_confirmed, e.asn, e.as_org, e.country,
       (SELECT coalesce(json_agg(json_build_object('headerFrom', h.header_from, 'messages', h.messages, 'dmarcPass', h.dmarc_pass)
                                 ORDER BY h.messages DESC, h.header_from), '[]')
        FROM h)::text AS header_from,
       (SELECT coalesce(json_agg(json_build_object('domain', k.dkim_domain, 'selector', k.selector, 'result', k.result, 'messages', k.messages)
                                 ORDER BY k.messages DESC, k.dkim_domain, k.selector, k.result), '[]')
        FROM k)::text AS dkim
FROM a
LEFT JOIN LATERAL (SELECT r.class, r.service, r.evidence FROM r ORDER BY r.day DESC LIMIT 1) l ON true
LEFT JOIN ip_enrichment e ON e.ip = @ip::inet;

-- name: ReportDomains :many
-- The domains of a reach (access.Reach), for an account's report.
SELECT id, account_id FROM domains
WHERE account_id = ANY(@reach_accounts::uuid[]) OR id = ANY(@reach_domains::uuid[])
ORDER BY id;

-- name: ChildAccounts :many
-- An account's customer accounts.
SELECT id FROM accounts WHERE parent_id = @parent_id::uuid ORDER BY id;

-- name: StalePresets :many
-- The presets (the top unidentified sources, the senders' addresses) that
-- are not current: for
-- every domain with summaries since a day, and every account with domains
-- (an account's report as its owner reads it: over the account and its
-- customer accounts, all whole), each preset range whose preset was not
-- computed for to_day over the same members (sorted), or whose members'
-- generations have moved since.
WITH c AS (
    SELECT d.id AS scope_id, false AS is_account, ARRAY[d.id]::uuid[] AS members, ARRAY[d.id]::uuid[] AS domains
    FROM domains d
    WHERE EXISTS (SELECT 1 FROM report_daily r WHERE r.domain_id = d.id AND r.day >= @since::date)
    UNION ALL
    SELECT a.id, true, m.members, m.domains
    FROM accounts a
    CROSS JOIN LATERAL (
        SELECT ARRAY(SELECT c.id FROM accounts c WHERE c.id = a.id OR c.parent_id = a.id ORDER BY c.id)::uuid[] AS members,
               ARRAY(SELECT d.id FROM accounts c JOIN domains d ON d.account_id = c.id
                     WHERE c.id = a.id OR c.parent_id = a.id ORDER BY d.id)::uuid[] AS domains
    ) m
    WHERE cardinality(m.domains) > 0
)
SELECT c.scope_id, c.is_account, c.members, c.domains, w.days::int AS days
FROM c CROSS JOIN unnest(@days::int[]) AS w (days)
WHERE NOT EXISTS (
    SELECT 1 FROM report_presets t
    WHERE coalesce(t.domain_id, t.account_id) = c.scope_id AND t.days = w.days AND t.to_day = @to_day::date
      AND t.members = c.members AND t.generations = report_generations_of(t.members)
)
ORDER BY 2, 1, 5;

-- name: PresetInputs :one
-- The members' generations, and whether a preset computed at them now
-- would serve (report_preset_valid: no day of the range queued).
SELECT g.generations::bigint[] AS generations,
       (NOT report_preset_valid(@members::uuid[], g.generations, @from_day::date, @to_day::date))::bool AS queued
FROM (SELECT report_generations_of(@members::uuid[]) AS generations) g;

-- name: ScopeSketches :many
-- Every sender's sketches of addresses per day (or, for a day without
-- one, its addresses) over a range: a preset's distinct addresses.
WITH d AS (
    SELECT s.class, s.service, s.sources, s.ips
    FROM report_accounts_daily s
    WHERE s.account_id = ANY(@account_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
    UNION ALL
    SELECT s.class, s.service, s.sources, s.ips
    FROM report_sources_daily_ips s
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
), i AS (
    SELECT d.class, d.service, array_agg(DISTINCT ip) AS ips
    FROM d, unnest(d.ips) AS ip
    GROUP BY 1, 2
)
SELECT d.class::text AS class, d.service::text AS service, array_remove(array_agg(d.sources), NULL)::bytea[] AS sketches,
       coalesce(min(i.ips), '{}')::inet[] AS ips
FROM d LEFT JOIN i ON i.class = d.class AND i.service = d.service
GROUP BY 1, 2;

-- name: StorePreset :exec
INSERT INTO report_presets (domain_id, account_id, days, to_day, members, generations, top, senders)
VALUES (sqlc.narg(domain_id)::uuid, sqlc.narg(account_id)::uuid, @days::int, @to_day::date, @members::uuid[], @generations::bigint[],
        @top::jsonb, @senders::jsonb)
ON CONFLICT ((coalesce(domain_id, account_id)), days) DO UPDATE
SET to_day = EXCLUDED.to_day, members = EXCLUDED.members, generations = EXCLUDED.generations, top = EXCLUDED.top,
    senders = EXCLUDED.senders, computed_at = now();
