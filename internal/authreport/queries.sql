-- name: Summaries :many
-- Per scope and class, for many scopes (each a set of domains) at once:
-- the report's totals and categories for every report a request asks for
-- over the same range.
SELECT k.scope::bigint AS scope,
       coalesce(c.class, 'unidentified')::text AS class,
       sum(s.messages)::bigint AS messages,
       coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned OR s.dkim_aligned), 0)::bigint AS dmarc_pass,
       coalesce(sum(s.messages) FILTER (WHERE s.spf_pass), 0)::bigint AS spf_pass,
       coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned), 0)::bigint AS spf_aligned,
       coalesce(sum(s.messages) FILTER (WHERE s.dkim_pass), 0)::bigint AS dkim_pass,
       coalesce(sum(s.messages) FILTER (WHERE s.dkim_aligned), 0)::bigint AS dkim_aligned,
       coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'none'), 0)::bigint AS disposition_none,
       coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
       coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'reject'), 0)::bigint AS disposition_reject,
       array_remove(array_agg(DISTINCT s.reporter ORDER BY s.reporter), '')::text[] AS reporters
FROM (SELECT unnest(@domain_ids::uuid[]) AS domain_id, unnest(@scopes::bigint[]) AS scope) AS k
JOIN report_sources s ON s.domain_id = k.domain_id
LEFT JOIN source_classes c ON c.domain_id = s.domain_id AND c.day = s.day AND c.source_ip = s.source_ip
WHERE s.day BETWEEN @from_day::date AND @to_day::date
GROUP BY 1, 2;

-- name: Senders :many
-- A page of senders: a service each, else the class.
WITH g AS (
    SELECT coalesce(c.class, 'unidentified')::text AS class,
           (CASE WHEN c.class = 'service' THEN c.service ELSE '' END)::text AS service,
           count(DISTINCT s.source_ip)::bigint AS sources,
           sum(s.messages)::bigint AS messages,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned OR s.dkim_aligned), 0)::bigint AS dmarc_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_pass), 0)::bigint AS spf_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned), 0)::bigint AS spf_aligned,
           coalesce(sum(s.messages) FILTER (WHERE s.dkim_pass), 0)::bigint AS dkim_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.dkim_aligned), 0)::bigint AS dkim_aligned,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'none'), 0)::bigint AS disposition_none,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'reject'), 0)::bigint AS disposition_reject,
           array_remove(array_agg(DISTINCT s.reporter ORDER BY s.reporter), '')::text[] AS reporters
    FROM report_sources s
    LEFT JOIN source_classes c ON c.domain_id = s.domain_id AND c.day = s.day AND c.source_ip = s.source_ip
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND (sqlc.narg(class)::text IS NULL OR coalesce(c.class, 'unidentified') = sqlc.narg(class)::text)
    GROUP BY 1, 2
), n AS (
    SELECT g.*,
           (CASE g.class WHEN 'service' THEN coalesce(ss.name, g.service) WHEN 'internal' THEN 'Internal'
                         WHEN 'forwarded' THEN 'Forwarded' ELSE 'Unidentified' END)::text AS name,
           coalesce(ss.category, '')::text AS service_category,
           (g.dmarc_pass::float8 / g.messages::float8)::float8 AS rate
    FROM g
    LEFT JOIN sender_services ss ON g.service <> '' AND ss.slug = g.service
)
SELECT n.class, n.service, n.sources, n.messages, n.dmarc_pass, n.spf_pass, n.spf_aligned, n.dkim_pass, n.dkim_aligned,
       n.disposition_none, n.disposition_quarantine, n.disposition_reject, n.reporters, n.name, n.service_category,
       count(*) OVER ()::bigint AS total
FROM n
ORDER BY
    CASE WHEN @sort::text = 'messages' THEN n.messages END DESC,
    CASE WHEN @sort::text = 'rate_asc' THEN n.rate END ASC,
    CASE WHEN @sort::text = 'rate_desc' THEN n.rate END DESC,
    n.name, n.class, n.service
LIMIT @lim OFFSET @off;

-- name: Daily :many
-- Every day of the range, days without reports at zero.
WITH x AS (
    SELECT s.day,
           sum(s.messages)::bigint AS messages,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned OR s.dkim_aligned), 0)::bigint AS dmarc_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_pass), 0)::bigint AS spf_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned), 0)::bigint AS spf_aligned,
           coalesce(sum(s.messages) FILTER (WHERE s.dkim_pass), 0)::bigint AS dkim_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.dkim_aligned), 0)::bigint AS dkim_aligned,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'none'), 0)::bigint AS disposition_none,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'reject'), 0)::bigint AS disposition_reject,
           array_remove(array_agg(DISTINCT s.reporter ORDER BY s.reporter), '')::text[] AS reporters
    FROM report_sources s
    LEFT JOIN source_classes c ON c.domain_id = s.domain_id AND c.day = s.day AND c.source_ip = s.source_ip
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND (sqlc.narg(class)::text IS NULL OR coalesce(c.class, 'unidentified') = sqlc.narg(class)::text)
    GROUP BY s.day
)
SELECT d.day::date AS day,
       coalesce(x.messages, 0)::bigint AS messages,
       coalesce(x.dmarc_pass, 0)::bigint AS dmarc_pass,
       coalesce(x.spf_pass, 0)::bigint AS spf_pass,
       coalesce(x.spf_aligned, 0)::bigint AS spf_aligned,
       coalesce(x.dkim_pass, 0)::bigint AS dkim_pass,
       coalesce(x.dkim_aligned, 0)::bigint AS dkim_aligned,
       coalesce(x.disposition_none, 0)::bigint AS disposition_none,
       coalesce(x.disposition_quarantine, 0)::bigint AS disposition_quarantine,
       coalesce(x.disposition_reject, 0)::bigint AS disposition_reject,
       coalesce(x.reporters, '{}')::text[] AS reporters
FROM generate_series(@from_day::date, @to_day::date, interval '1 day') AS d (day)
LEFT JOIN x ON x.day = d.day::date
ORDER BY 1;

-- name: TopUnidentified :many
-- The unidentified sources with the most messages, with what is known of
-- their addresses.
WITH t AS (
    SELECT s.source_ip,
           sum(s.messages)::bigint AS messages,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned OR s.dkim_aligned), 0)::bigint AS dmarc_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_pass), 0)::bigint AS spf_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.spf_aligned), 0)::bigint AS spf_aligned,
           coalesce(sum(s.messages) FILTER (WHERE s.dkim_pass), 0)::bigint AS dkim_pass,
           coalesce(sum(s.messages) FILTER (WHERE s.dkim_aligned), 0)::bigint AS dkim_aligned,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'none'), 0)::bigint AS disposition_none,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
           coalesce(sum(s.messages) FILTER (WHERE s.disposition = 'reject'), 0)::bigint AS disposition_reject,
           array_remove(array_agg(DISTINCT s.reporter ORDER BY s.reporter), '')::text[] AS reporters
    FROM report_sources s
    LEFT JOIN source_classes c ON c.domain_id = s.domain_id AND c.day = s.day AND c.source_ip = s.source_ip
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND coalesce(c.class, 'unidentified') = 'unidentified'
    GROUP BY s.source_ip
    ORDER BY 2 DESC, 1
    LIMIT @lim
)
SELECT host(t.source_ip)::text AS ip, t.messages, t.dmarc_pass, t.spf_pass, t.spf_aligned, t.dkim_pass, t.dkim_aligned,
       t.disposition_none, t.disposition_quarantine, t.disposition_reject, t.reporters,
       e.ptr, coalesce(e.ptr_confirmed, false)::bool AS ptr_confirmed, e.asn, e.as_org, e.country
FROM t
LEFT JOIN ip_enrichment e ON e.ip = t.source_ip
ORDER BY t.messages DESC, t.source_ip;

-- name: Source :one
-- One source address in the range: its sums, its latest class, what is
-- known of the address, its From domains and DKIM signatures (as JSON).
WITH r AS (
    SELECT s.day, s.reporter, s.header_from, s.disposition, s.spf_pass, s.dkim_pass, s.spf_aligned, s.dkim_aligned, s.messages,
           coalesce(c.class, 'unidentified') AS class, coalesce(c.service, '') AS service, coalesce(c.evidence, '') AS evidence
    FROM report_sources s
    LEFT JOIN source_classes c ON c.domain_id = s.domain_id AND c.day = s.day AND c.source_ip = s.source_ip
    WHERE s.domain_id = ANY(@domain_ids::uuid[]) AND s.day BETWEEN @from_day::date AND @to_day::date
      AND s.source_ip = @ip::inet
), a AS (
    SELECT count(*)::bigint AS n,
           coalesce(sum(r.messages), 0)::bigint AS messages,
           coalesce(sum(r.messages) FILTER (WHERE r.spf_aligned OR r.dkim_aligned), 0)::bigint AS dmarc_pass,
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
           coalesce(sum(r.messages) FILTER (WHERE r.spf_aligned OR r.dkim_aligned), 0)::bigint AS dmarc_pass
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
SELECT id FROM domains
WHERE account_id = ANY(@reach_accounts::uuid[]) OR id = ANY(@reach_domains::uuid[])
ORDER BY id;

-- name: ChildAccounts :many
-- An account's customer accounts.
SELECT id FROM accounts WHERE parent_id = @parent_id::uuid ORDER BY id;
