-- name: MaxSerial :one
-- The highest serial in edge_domain, tombstones included.
SELECT coalesce(max(serial), 0)::bigint AS serial FROM edge_domain;

-- name: LiveDomains :many
-- Every domain that is served, for a full load.
SELECT name, serial, mode, dmarc FROM edge_domain WHERE NOT deleted;

-- name: ChangedSince :many
-- Rows changed after a serial, plus the rows still at the given earlier
-- serials (committed out of serial order), tombstones included, oldest first.
SELECT name, serial, mode, dmarc, deleted
FROM edge_domain
WHERE serial > @after::bigint OR serial = ANY(@late::bigint[])
ORDER BY serial;
