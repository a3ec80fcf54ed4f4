-- name: InsertKey :one
INSERT INTO dkim_keys (domain_id, selector, key_type, key_bits, public_key, record, cname_target, service)
VALUES (@domain_id, @selector, sqlc.narg(key_type), sqlc.narg(key_bits), sqlc.narg(public_key), sqlc.narg(record), sqlc.narg(cname_target), sqlc.narg(service))
ON CONFLICT (domain_id, selector) DO NOTHING
RETURNING *;

-- name: RevokeKey :one
UPDATE dkim_keys SET revoked_at = coalesce(revoked_at, now())
WHERE domain_id = @domain_id AND selector = @selector
RETURNING *;

-- name: DeleteKey :execrows
DELETE FROM dkim_keys WHERE domain_id = @domain_id AND selector = @selector;

-- name: Keys :many
SELECT * FROM dkim_keys WHERE domain_id = @domain_id ORDER BY selector;

-- name: ServiceExists :one
-- A catalog service, or one of the domain's account's own.
SELECT EXISTS (SELECT 1 FROM sender_services WHERE slug = @slug AND (account_id IS NULL OR account_id = @account_id::uuid));

-- name: DiscoveredSelectors :many
-- The DKIM selectors of signatures whose d= is the domain or a subdomain of
-- it (aligned, relaxed), seen in the domain's reports since a day: the
-- messages they signed and of those the ones whose signature passed, the
-- first and last day seen, the d= domains, and whether the domain hosts a
-- key for the selector. Those it hosts only when asked.
SELECT s.selector,
       sum(s.messages)::bigint AS messages,
       coalesce(sum(s.messages) FILTER (WHERE s.result = 'pass'), 0)::bigint AS passing,
       min(s.day)::date AS first_day,
       max(s.day)::date AS last_day,
       array_agg(DISTINCT s.dkim_domain ORDER BY s.dkim_domain)::text[] AS dkim_domains,
       EXISTS (SELECT 1 FROM dkim_keys k WHERE k.domain_id = @domain_id AND k.selector = s.selector) AS hosted
FROM report_source_dkim s
WHERE s.domain_id = @domain_id AND s.day >= @since::date AND s.selector <> ''
  AND (s.dkim_domain = @name::text OR right(s.dkim_domain, length(@name::text) + 1) = '.' || @name::text)
GROUP BY s.selector
HAVING @include_hosted::boolean
    OR NOT EXISTS (SELECT 1 FROM dkim_keys k WHERE k.domain_id = @domain_id AND k.selector = s.selector)
ORDER BY messages DESC, s.selector
LIMIT @max_selectors;

-- name: HasKey :one
SELECT EXISTS (SELECT 1 FROM dkim_keys WHERE domain_id = @domain_id AND selector = @selector);
