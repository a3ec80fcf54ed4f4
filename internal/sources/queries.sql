-- name: ExpandQueuedDomain :one
-- Turn one queued domain into its days with data, oldest queued first.
WITH d AS (
    DELETE FROM classify_domains
    WHERE domain_id = (SELECT domain_id FROM classify_domains ORDER BY queued_at LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING domain_id
), days AS (
    INSERT INTO classify_days (domain_id, day)
    SELECT DISTINCT s.domain_id, s.day FROM report_sources s JOIN d ON d.domain_id = s.domain_id
    ON CONFLICT (domain_id, day) DO UPDATE SET queued_at = now(), not_before = now(), summarised = false
    RETURNING 1
)
SELECT (SELECT count(*) FROM d)::int AS domains, (SELECT count(*) FROM days)::int AS days;

-- name: NextDay :one
-- The day queued longest that is due, locked for this worker.
SELECT c.domain_id, c.day, c.queued_at, c.first_queued_at, d.name, d.account_id
FROM classify_days c JOIN domains d ON d.id = c.domain_id
WHERE c.not_before <= now()
ORDER BY c.not_before, c.queued_at
LIMIT 1
FOR UPDATE OF c SKIP LOCKED;

-- name: DoneDay :exec
-- The day is classified; the worker held its row since NextDay, so a
-- report adding to it meanwhile waited and queues it again.
DELETE FROM classify_days WHERE domain_id = @domain_id AND day = @day AND queued_at = @queued_at;

-- name: PostponeDay :exec
-- Classify the day again later: some of its sources' reverse names are
-- not known yet. Its summaries, written in this transaction, are read
-- meanwhile (summarised; migration 00034).
UPDATE classify_days SET not_before = now() + make_interval(secs => @after_seconds::float8), summarised = true
WHERE domain_id = @domain_id AND day = @day AND queued_at = @queued_at;

-- name: DaySources :many
-- The day's sources with their sums: the same sums as
-- report_sources_ips_live (migration 00025), which the classifier stores
-- next to each source's class.
SELECT source_ip, bool_or(forwarded)::boolean AS forwarded,
       sum(messages)::bigint AS messages,
       coalesce(sum(messages) FILTER (WHERE spf_aligned OR dkim_aligned), 0)::bigint AS dmarc_pass,
       coalesce(sum(messages) FILTER (WHERE spf_pass), 0)::bigint AS spf_pass,
       coalesce(sum(messages) FILTER (WHERE spf_aligned), 0)::bigint AS spf_aligned,
       coalesce(sum(messages) FILTER (WHERE dkim_pass), 0)::bigint AS dkim_pass,
       coalesce(sum(messages) FILTER (WHERE dkim_aligned), 0)::bigint AS dkim_aligned,
       coalesce(sum(messages) FILTER (WHERE disposition = 'none'), 0)::bigint AS disposition_none,
       coalesce(sum(messages) FILTER (WHERE disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
       coalesce(sum(messages) FILTER (WHERE disposition = 'reject'), 0)::bigint AS disposition_reject,
       array_remove(array_agg(DISTINCT reporter ORDER BY reporter), '')::text[] AS reporters
FROM report_sources
WHERE domain_id = @domain_id AND day = @day
GROUP BY source_ip
ORDER BY source_ip;

-- name: DaySignatures :many
-- In key order, so that which signature decides a source, and its
-- evidence, do not depend on the order rows were written in.
SELECT source_ip, dkim_domain, selector, result = 'pass' AS pass
FROM report_source_dkim
WHERE domain_id = @domain_id AND day = @day
ORDER BY source_ip, dkim_domain, selector, result;

-- name: DomainNetblocks :many
SELECT cidr FROM domain_netblocks WHERE domain_id = @domain_id;

-- name: DomainKeys :many
SELECT selector, coalesce(service, '') AS service FROM dkim_keys WHERE domain_id = @domain_id AND revoked_at IS NULL;

-- name: Senders :many
-- Every service; an account's (account_id set) classifies that account's
-- domains only.
SELECT slug, account_id, resolved_ranges, static_ranges, dkim_domains, helo_suffixes, dkim_selectors FROM sender_services ORDER BY slug;

-- name: ClearDay :exec
-- Remove the day's classes and summaries, which the classifier then
-- copies in anew (see classifier.go).
WITH gone AS (
    DELETE FROM source_classes c WHERE c.domain_id = @domain_id::uuid AND c.day = @day::date
)
DELETE FROM report_daily d WHERE d.domain_id = @domain_id::uuid AND d.day = @day::date;

-- name: NextAccountDay :one
-- The account day queued longest whose domains have none of their days
-- queued for classification (but for days summarised, which only await
-- their reverse names), nor a domain queued whole, locked for this worker:
-- its summary is rebuilt from theirs.
SELECT q.account_id, q.day, q.queued_at
FROM account_days q
WHERE NOT EXISTS (SELECT 1 FROM classify_days c JOIN domains d ON d.id = c.domain_id
                  WHERE d.account_id = q.account_id AND c.day = q.day AND NOT c.summarised)
  AND NOT EXISTS (SELECT 1 FROM classify_domains c JOIN domains d ON d.id = c.domain_id
                  WHERE d.account_id = q.account_id)
ORDER BY q.queued_at
LIMIT 1
FOR UPDATE OF q SKIP LOCKED;

-- name: AccountDayGroups :many
-- The summaries of an account's domains for a day, each with its sketch
-- of addresses or, for one written without a sketch, its addresses.
SELECT r.class, r.service, r.messages, r.dmarc_pass, r.spf_pass, r.spf_aligned, r.dkim_pass, r.dkim_aligned,
       r.disposition_none, r.disposition_quarantine, r.disposition_reject, r.reporters, r.sources, r.ips
FROM domains d
JOIN report_sources_daily_ips r ON r.domain_id = d.id
WHERE d.account_id = @account_id::uuid AND r.day = @day::date;

-- name: ClearAccountDay :exec
DELETE FROM account_daily WHERE account_id = @account_id::uuid AND day = @day::date;

-- name: DoneAccountDay :exec
-- The account day is summarised; queued again meanwhile, it stays.
DELETE FROM account_days WHERE account_id = @account_id AND day = @day AND queued_at = @queued_at;

-- name: BumpGeneration :exec
-- A domain's or an account's summaries changed: what was computed from
-- them before (report_presets) is stale.
INSERT INTO report_generations (scope_id, generation) VALUES (@scope_id::uuid, 1)
ON CONFLICT (scope_id) DO UPDATE SET generation = report_generations.generation + 1;

-- name: DayDomain :one
-- The domain a day is classified for, as NextDay gives it.
SELECT name, account_id FROM domains WHERE id = @id;

-- name: QueuedDay :one
-- A day's queue row as it was queued at queued_at, locked, unless someone
-- else holds it (see NewDay.Dequeue).
SELECT queued_at, first_queued_at FROM classify_days WHERE domain_id = @domain_id AND day = @day AND queued_at = @queued_at
FOR UPDATE SKIP LOCKED;

-- name: SourceLookups :many
-- What the enrichment knows of the addresses: whether it looked them up,
-- and their confirmed PTR names ('' for none). Addresses it knows nothing
-- of are left out.
SELECT ip, coalesce(CASE WHEN ptr_confirmed THEN ptr END, '')::text AS ptr, (looked_up_at IS NOT NULL)::boolean AS looked_up
FROM ip_enrichment
WHERE ip = ANY(@ips::inet[]) AND (looked_up_at IS NOT NULL OR (ptr_confirmed AND ptr IS NOT NULL));
