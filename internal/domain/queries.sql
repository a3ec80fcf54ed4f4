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
INSERT INTO edge_domain (name, serial, mode, dmarc, deleted, updated_at)
VALUES (@name, nextval('edge_serial_seq'), @mode, @dmarc, false, now())
ON CONFLICT (name) DO UPDATE SET
    serial = EXCLUDED.serial, mode = EXCLUDED.mode, dmarc = EXCLUDED.dmarc,
    deleted = false, updated_at = now()
RETURNING serial;

-- name: TombstoneEdgeDomain :one
UPDATE edge_domain SET serial = nextval('edge_serial_seq'), deleted = true, dmarc = '', updated_at = now()
WHERE name = @name
RETURNING serial;

-- name: NotifyEdge :exec
SELECT pg_notify('rampart_edge', sqlc.arg(serial)::text);
