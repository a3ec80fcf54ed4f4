-- name: InsertNetblock :one
INSERT INTO domain_netblocks (domain_id, cidr, label) VALUES (@domain_id, @cidr, @label)
ON CONFLICT (domain_id, cidr) DO UPDATE SET label = EXCLUDED.label
RETURNING *;

-- name: DeleteNetblock :execrows
DELETE FROM domain_netblocks WHERE domain_id = @domain_id AND cidr = @cidr;

-- name: Netblocks :many
SELECT * FROM domain_netblocks WHERE domain_id = @domain_id ORDER BY cidr;

-- name: ServiceBySlug :one
SELECT * FROM sender_services WHERE slug = @slug;

-- name: ServiceByInclude :one
-- The catalog's or the account's service with this include.
SELECT * FROM sender_services
WHERE @include::text = ANY(spf_includes) AND (account_id IS NULL OR account_id = sqlc.arg(account_id)::uuid)
ORDER BY account_id NULLS FIRST, slug LIMIT 1;

-- name: Services :many
-- Every service: the catalog's and every account's.
SELECT * FROM sender_services ORDER BY name, slug;

-- name: VisibleServices :many
-- The catalog and the given accounts' services.
SELECT * FROM sender_services WHERE account_id IS NULL OR account_id = ANY(@accounts::uuid[])
ORDER BY name, slug;

-- name: LockAccountServices :exec
-- Serialises changes to one account's services (the count limit).
SELECT pg_advisory_xact_lock(hashtextextended('sender_services:' || sqlc.arg(account_id)::uuid::text, 0));

-- name: CountAccountServices :one
SELECT count(*)::int FROM sender_services WHERE account_id = @account_id;

-- name: InsertAccountService :one
-- An account's own service; its cost is unknown (NULL) until its includes
-- resolve, nothing of its own (0) without any.
INSERT INTO sender_services (slug, account_id, name, category, spf_includes, helo_suffixes, dkim_domains, dkim_selectors,
                             static_ranges, setup_url, spf_lookups, updated_at)
VALUES (@slug, @account_id, @name, @category, @spf_includes, @helo_suffixes, @dkim_domains, @dkim_selectors,
        @static_ranges, @setup_url, CASE WHEN cardinality(@spf_includes::text[]) = 0 THEN 0 END, now())
ON CONFLICT (slug) DO NOTHING
RETURNING *;

-- name: UpdateAccountService :one
-- An account's service edited; as in the catalog sync, changed includes
-- forget the old ones' ranges and cost.
UPDATE sender_services SET
    name = @name, category = @category, spf_includes = @spf_includes,
    resolved_ranges = CASE WHEN spf_includes = @spf_includes THEN resolved_ranges ELSE '{}' END,
    spf_lookups = CASE WHEN spf_includes = @spf_includes THEN spf_lookups WHEN cardinality(@spf_includes::text[]) = 0 THEN 0 END,
    resolved_at = CASE WHEN spf_includes = @spf_includes THEN resolved_at END,
    resolve_error = CASE WHEN spf_includes = @spf_includes THEN resolve_error ELSE '' END,
    resolve_failed_at = CASE WHEN spf_includes = @spf_includes THEN resolve_failed_at END,
    resolve_attempted_at = CASE WHEN spf_includes = @spf_includes THEN resolve_attempted_at END,
    helo_suffixes = @helo_suffixes, dkim_domains = @dkim_domains, dkim_selectors = @dkim_selectors,
    static_ranges = @static_ranges, setup_url = @setup_url, updated_at = now()
WHERE slug = @slug AND account_id = @account_id
RETURNING *;

-- name: DeleteAccountService :execrows
DELETE FROM sender_services WHERE slug = @slug AND account_id = @account_id;

-- name: ServiceDomains :many
-- The domains that enable a service, by name.
SELECT d.id, d.name FROM domain_senders ds JOIN domains d ON d.id = ds.domain_id
WHERE ds.service = @service ORDER BY d.name;

-- name: UnpublishService :one
-- A removed service's edge row becomes a tombstone, with a new serial.
UPDATE edge_service SET serial = nextval('edge_serial_seq'), ranges = '{}', helo_suffixes = '{}', includes = '{}',
    deleted = true, updated_at = now()
WHERE name = @name AND NOT deleted
RETURNING serial;

-- name: EnableSender :exec
INSERT INTO domain_senders (domain_id, service) VALUES (@domain_id, @service)
ON CONFLICT DO NOTHING;

-- name: DisableSender :execrows
DELETE FROM domain_senders WHERE domain_id = @domain_id AND service = @service;

-- name: EnabledServices :many
SELECT s.* FROM domain_senders ds JOIN sender_services s ON s.slug = ds.service
WHERE ds.domain_id = @domain_id ORDER BY ds.created_at, s.slug;

-- name: UpsertPin :exec
INSERT INTO spf_pins (domain_id, include, lookups, expires_at) VALUES (@domain_id, @include, @lookups, @expires_at)
ON CONFLICT (domain_id, include) DO UPDATE SET lookups = EXCLUDED.lookups, expires_at = EXCLUDED.expires_at;

-- name: DeletePin :execrows
DELETE FROM spf_pins WHERE domain_id = @domain_id AND include = @include;

-- name: Pins :many
SELECT * FROM spf_pins WHERE domain_id = @domain_id AND expires_at > now() ORDER BY created_at, include;

-- name: DomainsWithExpiredPins :many
SELECT DISTINCT d.id, d.name FROM spf_pins p JOIN domains d ON d.id = p.domain_id WHERE p.expires_at <= now();

-- name: DeleteExpiredPins :execrows
DELETE FROM spf_pins WHERE domain_id = @domain_id AND expires_at <= now();

-- name: UpsertService :exec
-- Catalog sync (never touching an account's service): the shipped facts; resolved ranges are left alone unless
-- the includes changed: they and their cost were the old includes', so the
-- cost is unknown again (NULL) until the new includes resolve. A service
-- without an include costs nothing of its own.
INSERT INTO sender_services (slug, name, category, spf_includes, helo_suffixes, dkim_domains, dkim_selectors, static_ranges, setup_url, source_url, spf_lookups, updated_at)
VALUES (@slug, @name, @category, @spf_includes, @helo_suffixes, @dkim_domains, @dkim_selectors, @static_ranges, @setup_url, @source_url,
        CASE WHEN cardinality(@spf_includes::text[]) = 0 THEN 0 END, now())
ON CONFLICT (slug) DO UPDATE SET
    name = EXCLUDED.name, category = EXCLUDED.category, spf_includes = EXCLUDED.spf_includes,
    resolved_ranges = CASE WHEN sender_services.spf_includes = EXCLUDED.spf_includes THEN sender_services.resolved_ranges ELSE '{}' END,
    spf_lookups = CASE WHEN sender_services.spf_includes = EXCLUDED.spf_includes THEN sender_services.spf_lookups ELSE EXCLUDED.spf_lookups END,
    resolved_at = CASE WHEN sender_services.spf_includes = EXCLUDED.spf_includes THEN sender_services.resolved_at END,
    resolve_error = CASE WHEN sender_services.spf_includes = EXCLUDED.spf_includes THEN sender_services.resolve_error ELSE '' END,
    resolve_failed_at = CASE WHEN sender_services.spf_includes = EXCLUDED.spf_includes THEN sender_services.resolve_failed_at END,
    helo_suffixes = EXCLUDED.helo_suffixes, dkim_domains = EXCLUDED.dkim_domains, dkim_selectors = EXCLUDED.dkim_selectors,
    static_ranges = EXCLUDED.static_ranges, setup_url = EXCLUDED.setup_url, source_url = EXCLUDED.source_url,
    updated_at = now()
WHERE (sender_services.name, sender_services.category, sender_services.spf_includes, sender_services.helo_suffixes,
       sender_services.dkim_domains, sender_services.dkim_selectors, sender_services.static_ranges, sender_services.setup_url,
       sender_services.source_url)
   IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.category, EXCLUDED.spf_includes, EXCLUDED.helo_suffixes,
       EXCLUDED.dkim_domains, EXCLUDED.dkim_selectors, EXCLUDED.static_ranges, EXCLUDED.setup_url, EXCLUDED.source_url)
  -- Never an account's service (their slugs cannot be a catalog slug anyway).
  AND sender_services.account_id IS NULL;

-- name: SetResolved :exec
UPDATE sender_services SET resolved_ranges = @ranges, spf_lookups = @lookups, resolved_at = now(), resolve_error = '',
    resolve_failed_at = NULL, resolve_attempted_at = now()
WHERE slug = @slug;

-- name: SetResolveError :exec
-- A failed resolution: the last good ranges and cost stay.
UPDATE sender_services SET resolve_error = @error, resolve_failed_at = now(), resolve_attempted_at = now()
WHERE slug = @slug;

-- name: ClaimResolveAttempt :one
-- Take the right to look a service's include up now, at most once per
-- interval (on-demand refreshes); no row when it was looked up more
-- recently.
UPDATE sender_services SET resolve_attempted_at = now()
WHERE slug = @slug AND cardinality(spf_includes) > 0
  AND (resolve_attempted_at IS NULL OR resolve_attempted_at <= now() - make_interval(secs => sqlc.arg(every_seconds)::float8))
RETURNING *;

-- name: EnabledServiceSlugs :many
-- The services with an include that at least one domain enables, in the
-- domains of a reach (access.Reach; every domain when all is set).
SELECT DISTINCT s.slug FROM sender_services s
JOIN domain_senders ds ON ds.service = s.slug
JOIN domains d ON d.id = ds.domain_id
WHERE cardinality(s.spf_includes) > 0 AND (sqlc.arg(all_accounts)::boolean
                               OR d.account_id = ANY(sqlc.arg(accounts)::uuid[])
                               OR d.id = ANY(sqlc.arg(reach_domains)::uuid[]))
ORDER BY s.slug;

-- name: PublishService :one
-- Compile a service into its edge row when it changed, with a new serial.
INSERT INTO edge_service (name, serial, ranges, helo_suffixes, includes, deleted, updated_at)
SELECT s.slug, nextval('edge_serial_seq'),
       ARRAY(SELECT DISTINCT unnest(s.static_ranges || s.resolved_ranges) ORDER BY 1),
       s.helo_suffixes, s.spf_includes, false, now()
FROM sender_services s WHERE s.slug = @slug
ON CONFLICT (name) DO UPDATE SET
    serial = EXCLUDED.serial, ranges = EXCLUDED.ranges, helo_suffixes = EXCLUDED.helo_suffixes,
    includes = EXCLUDED.includes, deleted = false, updated_at = now()
WHERE (edge_service.ranges, edge_service.helo_suffixes, edge_service.includes, edge_service.deleted)
   IS DISTINCT FROM (EXCLUDED.ranges, EXCLUDED.helo_suffixes, EXCLUDED.includes, false)
RETURNING serial;

-- name: NotifyEdge :exec
SELECT pg_notify('rampart_edge', sqlc.arg(serial)::text);
