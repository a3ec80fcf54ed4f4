-- name: InsertDomain :one
-- A new, unverified claim; nothing when the account already claims the name.
INSERT INTO domains (account_id, name) VALUES (@account_id, @name)
ON CONFLICT (account_id, name) DO NOTHING
RETURNING *;

-- name: ClaimsByName :many
-- Every account's claim on a name: the verified one first, then the oldest.
SELECT * FROM domains WHERE name = @name ORDER BY (verified_at IS NULL), created_at, id;

-- name: DomainByID :one
SELECT * FROM domains WHERE id = @id;

-- name: DomainByIDForUpdate :one
SELECT * FROM domains WHERE id = @id FOR UPDATE;

-- name: DeleteDomain :exec
DELETE FROM domains WHERE id = @id;

-- name: SetDomainMode :one
UPDATE domains SET mode = @mode, updated_at = now() WHERE id = @id RETURNING *;

-- name: UpdateDmarcPolicy :one
UPDATE domains SET
    dmarc_p = @p, dmarc_sp = @sp, dmarc_np = @np, dmarc_pct = @pct,
    dmarc_adkim = @adkim, dmarc_aspf = @aspf, dmarc_rua = @rua, dmarc_ruf = @ruf,
    dmarc_fo = @fo, dmarc_t = @t, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: ListDomains :many
-- One page of the domains of a reach (access.Reach), ordered by name, after a cursor.
SELECT * FROM domains
WHERE (account_id = ANY(@reach_accounts::uuid[]) OR id = ANY(@reach_domains::uuid[]))
  AND name > @after
  AND (sqlc.narg(prefix)::text IS NULL OR starts_with(name, sqlc.narg(prefix)::text))
  AND (sqlc.narg(mode)::text IS NULL OR mode = sqlc.narg(mode)::text)
ORDER BY name
LIMIT @lim;

-- name: CountDomains :one
SELECT count(*) FROM domains
WHERE (account_id = ANY(@reach_accounts::uuid[]) OR id = ANY(@reach_domains::uuid[]))
  AND (sqlc.narg(prefix)::text IS NULL OR starts_with(name, sqlc.narg(prefix)::text))
  AND (sqlc.narg(mode)::text IS NULL OR mode = sqlc.narg(mode)::text);

-- name: UpsertEdgeDomain :one
-- Compile a domain into the edge contract row; the serial orders changes for
-- edges that follow incrementally.
INSERT INTO edge_domain (name, serial, mode, dmarc, netblocks, services, nspf, rspf, dkim, bimi, deleted, removed_at, updated_at)
VALUES (@name, nextval('edge_serial_seq'), @mode, @dmarc, @netblocks, @services, @nspf, @rspf, @dkim, @bimi, false, NULL, now())
ON CONFLICT (name) DO UPDATE SET
    serial = EXCLUDED.serial, mode = EXCLUDED.mode, dmarc = EXCLUDED.dmarc,
    netblocks = EXCLUDED.netblocks, services = EXCLUDED.services, nspf = EXCLUDED.nspf,
    rspf = EXCLUDED.rspf, dkim = EXCLUDED.dkim, bimi = EXCLUDED.bimi, deleted = false,
    removed_at = NULL, updated_at = now()
RETURNING serial;

-- name: RemoveEdgeDomain :one
-- A removed domain's row for its grace period: its SPF names authorise
-- nothing (@spf at _nspf and _rspf, "v=spf1 ?all"), without making the
-- record of a customer who still points at the edge an error; no DMARC,
-- DKIM or BIMI record, and no report authorisation.
UPDATE edge_domain SET serial = nextval('edge_serial_seq'), mode = 'removed', removed_at = now(),
    dmarc = '', netblocks = '{}', services = '{}', nspf = @spf::text, rspf = @spf::text,
    dkim = '[]', bimi = '', updated_at = now()
WHERE name = @name AND NOT deleted
RETURNING serial;

-- name: ExpiredRemovedEdgeDomains :many
-- Removed domains whose grace period is over.
SELECT name FROM edge_domain
WHERE removed_at IS NOT NULL AND NOT deleted AND removed_at <= @before::timestamptz
ORDER BY name
LIMIT @max::integer;

-- name: TombstoneEdgeDomain :one
UPDATE edge_domain SET serial = nextval('edge_serial_seq'), deleted = true, mode = 'sending', removed_at = NULL,
    dmarc = '', netblocks = '{}', services = '{}', nspf = '', rspf = '', dkim = '[]', bimi = '', updated_at = now()
WHERE name = @name
RETURNING serial;

-- name: TombstoneRemovedEdgeDomain :one
-- Ends a removed domain's grace period, unless it was hosted again since.
UPDATE edge_domain SET serial = nextval('edge_serial_seq'), deleted = true, mode = 'sending', removed_at = NULL,
    dmarc = '', netblocks = '{}', services = '{}', nspf = '', rspf = '', dkim = '[]', bimi = '', updated_at = now()
WHERE name = @name AND removed_at IS NOT NULL AND NOT deleted
RETURNING serial;

-- name: UncompiledEdgeDomains :many
-- Served rows compiled before the rspf column existed.
SELECT d.id FROM edge_domain e JOIN domains d ON d.name = e.name AND d.verified_at IS NOT NULL
WHERE NOT e.deleted AND e.mode <> 'removed' AND e.rspf = ''
ORDER BY e.name
LIMIT @max::integer;

-- name: NotifyEdge :exec
SELECT pg_notify('rampart_edge', sqlc.arg(serial)::text);

-- name: DomainNetblocks :many
SELECT * FROM domain_netblocks WHERE domain_id = @domain_id ORDER BY cidr;

-- name: DomainSenders :many
-- Enabled senders in the order they were enabled, which is the order the
-- edge tries their HELO suffixes in.
SELECT s.slug, s.name, s.spf_includes, s.spf_lookups, s.resolve_error, s.helo_suffixes, ds.created_at
FROM domain_senders ds JOIN sender_services s ON s.slug = ds.service
WHERE ds.domain_id = @domain_id
ORDER BY ds.created_at, s.slug;

-- name: DomainPins :many
SELECT * FROM spf_pins WHERE domain_id = @domain_id AND expires_at > now() ORDER BY created_at, include;

-- name: DomainDKIMKeys :many
SELECT * FROM dkim_keys WHERE domain_id = @domain_id ORDER BY selector;

-- name: SetBIMI :one
UPDATE domains SET bimi_logo_url = sqlc.narg(logo_url), bimi_evidence_url = sqlc.narg(evidence_url), updated_at = now()
WHERE id = @id RETURNING *;

-- name: ProofToken :one
-- The account's proof token, made on first use (no write when it exists;
-- no row in the rare case of a concurrent first use, which the caller
-- retries).
WITH made AS (
    INSERT INTO domain_proof_tokens (account_id) VALUES (@account_id)
    ON CONFLICT (account_id) DO NOTHING
    RETURNING token
)
SELECT token FROM made
UNION ALL
SELECT t.token FROM domain_proof_tokens t WHERE t.account_id = @account_id
LIMIT 1;

-- name: LockName :exec
-- Serialises the changes that decide which claim on a name is verified.
SELECT pg_advisory_xact_lock(hashtextextended('domain-name:' || @name::text, 0));

-- name: VerifiedClaim :one
SELECT * FROM domains WHERE name = @name AND verified_at IS NOT NULL;

-- name: DeleteOtherUnverified :many
-- Verifying a claim deletes the other accounts' unverified claims.
DELETE FROM domains WHERE name = @name AND id <> @keep AND verified_at IS NULL
RETURNING id, account_id;

-- name: DemoteVerified :many
-- Verifying a claim takes the name from another account's verified claim,
-- which becomes unverified and expires like any unverified claim.
UPDATE domains SET verified_at = NULL, verified_how = NULL, displaced_at = now(),
    claim_expires_at = now() + make_interval(secs => @claim_ttl_seconds::bigint), check_next_at = now(),
    check_attempts = 0, check_result = '', updated_at = now()
WHERE name = @name AND id <> @keep AND verified_at IS NOT NULL
RETURNING id, account_id;

-- name: MarkVerified :one
UPDATE domains SET verified_at = now(), verified_how = @how, claim_expires_at = NULL,
    displaced_at = NULL, check_next_at = NULL, checked_at = coalesce(sqlc.narg(checked_at), checked_at),
    check_result = @check_result, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: RecordCheck :one
-- A failed proof check: when the job checks again (sqlc.narg(next_at) NULL:
-- not before another claim on the name is verified away) and why it failed.
UPDATE domains SET checked_at = now(), check_result = @check_result,
    check_attempts = check_attempts + 1, check_next_at = sqlc.narg(next_at)
WHERE id = @id AND verified_at IS NULL
RETURNING *;

-- name: DueClaims :many
-- Unverified claims whose next proof check is due, on names no account has
-- verified (a verified claim is displaced only on request, so that a stale
-- proof left in DNS cannot take a domain back by itself).
SELECT d.* FROM domains d
WHERE d.verified_at IS NULL AND d.check_next_at <= now() AND d.claim_expires_at > now()
  AND NOT EXISTS (SELECT 1 FROM domains v WHERE v.name = d.name AND v.verified_at IS NOT NULL)
ORDER BY d.check_next_at
LIMIT @lim;

-- name: DeleteExpiredClaims :many
DELETE FROM domains WHERE verified_at IS NULL AND claim_expires_at <= now()
RETURNING id, account_id, name;

-- name: RecordDNSCheck :one
-- A look at the domain's own DNS (published.go): each value is replaced
-- only when its lookup got an answer (its _known flag), so that a
-- timeout keeps what an earlier check found.
UPDATE domains SET
    spf_published = CASE WHEN @spf_known::boolean THEN @spf_published ELSE spf_published END,
    spf_published_record = CASE WHEN @spf_known::boolean THEN sqlc.narg(spf_published_record) ELSE spf_published_record END,
    dmarc_delegated = CASE WHEN @dmarc_known::boolean THEN sqlc.narg(dmarc_delegated) ELSE dmarc_delegated END,
    dkim_delegated = CASE WHEN @dkim_known::boolean THEN sqlc.narg(dkim_delegated) ELSE dkim_delegated END,
    dns_checked_at = @checked_at, dns_check_problem = @problem,
    dns_check_failures = CASE WHEN @problem = '' THEN 0 ELSE dns_check_failures + 1 END,
    dns_check_next_at = @next_at
WHERE id = @id
RETURNING *;

-- name: DueDNSChecks :many
-- Verified domains whose own DNS is due for another look.
SELECT * FROM domains
WHERE verified_at IS NOT NULL AND dns_check_next_at <= now()
ORDER BY dns_check_next_at
LIMIT @lim;

-- name: UnhostedSelectors :many
-- The selectors of signatures with d= the domain itself seen in its reports
-- since a day for which it has no key (hosted or CNAME), with the messages
-- they signed: those a _domainkey delegation to the edge would make
-- unresolvable.
SELECT s.selector, sum(s.messages)::bigint AS messages
FROM report_source_dkim s
WHERE s.domain_id = @domain_id AND s.day >= @since::date AND s.selector <> '' AND s.dkim_domain = @name::text
  AND NOT EXISTS (SELECT 1 FROM dkim_keys k WHERE k.domain_id = @domain_id AND k.selector = s.selector)
GROUP BY s.selector
ORDER BY messages DESC, s.selector
LIMIT @max_selectors;

-- name: SetReadinessThreshold :exec
UPDATE domains SET readiness_threshold = @threshold, updated_at = now() WHERE id = @id;

-- name: SetSenderPassThreshold :execrows
UPDATE domain_senders SET pass_threshold = @threshold WHERE domain_id = @domain_id AND service = @service;

-- name: RecordPolicyChange :exec
INSERT INTO policy_changes (domain_id, actor_user_id, actor_token_id, from_policy, to_policy, verdict, forced, reasons)
VALUES (@domain_id, @actor_user_id, @actor_token_id, @from_policy, @to_policy, @verdict, @forced, @reasons);

-- name: SetDomainLabels :one
UPDATE domains SET labels = @labels::text[], updated_at = now() WHERE id = @id RETURNING *;
