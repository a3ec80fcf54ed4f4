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
SELECT EXISTS (SELECT 1 FROM sender_services WHERE slug = @slug);
