-- name: MaxSerial :one
-- The highest serial of the edge tables, tombstones included. Both tables
-- take their serials from edge_serial_seq.
SELECT greatest(
    (SELECT coalesce(max(serial), 0) FROM edge_domain),
    (SELECT coalesce(max(serial), 0) FROM edge_service)
)::bigint AS serial;

-- name: LiveDomainsPage :many
-- The domains that are served, a page at a time: up to page_size of them in
-- name order after the name given (empty for the first page). A full load
-- reads the pages in one transaction, a resync each by itself; both apply
-- the rows as they come, so that neither holds more than a page of rows
-- beside the index.
SELECT sqlc.embed(edge_domain)
FROM edge_domain
WHERE NOT deleted AND name > @after::text
ORDER BY name
LIMIT @page_size::integer;

-- name: LiveServices :many
-- Every sender service that is served, for a full load.
SELECT sqlc.embed(edge_service) FROM edge_service WHERE NOT deleted;

-- name: ChangedSince :many
-- Domains changed after a serial, plus the rows still at the given earlier
-- serials (committed out of serial order), tombstones included, oldest first.
SELECT sqlc.embed(edge_domain)
FROM edge_domain
WHERE serial > @after::bigint OR serial = ANY(@late::bigint[])
ORDER BY serial;

-- name: ServicesChangedSince :many
-- Sender services changed after a serial or still at one of the given
-- earlier serials, as ChangedSince for domains.
SELECT sqlc.embed(edge_service)
FROM edge_service
WHERE serial > @after::bigint OR serial = ANY(@late::bigint[])
ORDER BY serial;
