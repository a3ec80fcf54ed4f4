-- name: InsertDomain :one
INSERT INTO domains (account_id, name) VALUES (@account_id, @name)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: DomainByName :one
SELECT * FROM domains WHERE name = @name;

-- name: DomainByID :one
SELECT * FROM domains WHERE id = @id;

-- name: DomainForUpdate :one
SELECT * FROM domains WHERE name = @name FOR UPDATE;

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
-- One page of domains in the given accounts, ordered by name, after a cursor.
SELECT * FROM domains
WHERE account_id = ANY(@account_ids::uuid[])
  AND name > @after
  AND (sqlc.narg(prefix)::text IS NULL OR starts_with(name, sqlc.narg(prefix)::text))
  AND (sqlc.narg(mode)::text IS NULL OR mode = sqlc.narg(mode)::text)
ORDER BY name
LIMIT @lim;

-- name: CountDomains :one
SELECT count(*) FROM domains
WHERE account_id = ANY(@account_ids::uuid[])
  AND (sqlc.narg(prefix)::text IS NULL OR starts_with(name, sqlc.narg(prefix)::text))
  AND (sqlc.narg(mode)::text IS NULL OR mode = sqlc.narg(mode)::text);

-- name: UpsertEdgeDomain :one
-- Compile a domain into the edge contract row; the serial orders changes for
-- edges that follow incrementally.
INSERT INTO edge_domain (name, serial, mode, dmarc, netblocks, services, nspf, dkim, bimi, deleted, updated_at)
VALUES (@name, nextval('edge_serial_seq'), @mode, @dmarc, @netblocks, @services, @nspf, @dkim, @bimi, false, now())
ON CONFLICT (name) DO UPDATE SET
    serial = EXCLUDED.serial, mode = EXCLUDED.mode, dmarc = EXCLUDED.dmarc,
    netblocks = EXCLUDED.netblocks, services = EXCLUDED.services, nspf = EXCLUDED.nspf,
    dkim = EXCLUDED.dkim, bimi = EXCLUDED.bimi, deleted = false, updated_at = now()
RETURNING serial;

-- name: TombstoneEdgeDomain :one
UPDATE edge_domain SET serial = nextval('edge_serial_seq'), deleted = true, dmarc = '',
    netblocks = '{}', services = '{}', nspf = '', dkim = '[]', bimi = '', updated_at = now()
WHERE name = @name
RETURNING serial;

-- name: NotifyEdge :exec
SELECT pg_notify('rampart_edge', sqlc.arg(serial)::text);

-- name: DomainNetblocks :many
SELECT * FROM domain_netblocks WHERE domain_id = @domain_id ORDER BY cidr;

-- name: DomainSenders :many
-- Enabled senders in the order they were enabled, which is the order the
-- edge tries their HELO suffixes in.
SELECT s.slug, s.name, s.spf_include, s.spf_lookups, ds.created_at
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
