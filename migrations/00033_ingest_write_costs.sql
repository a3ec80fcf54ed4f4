-- What ingest pays for besides the rows it stores.
--
-- report_source_dkim loses its index on (domain_id, selector, day): no
-- query looks signatures up by selector. The selector reads (DKIM
-- discovery, the selectors a delegation would break) take a domain's days
-- since a date and group them by selector, which its primary key's
-- (domain_id, day) prefix serves; the per-address drill-down takes the
-- primary key's (domain_id, day, source_ip). Keeping the index up cost
-- ingest about 1 µs of the database's time per signature row (0.16 s for
-- the 150,000 rows of a 100,000-record report), the rows arriving in
-- address order and scattered over every selector's part of it.
--
-- report_blobs.raw is compressed with lz4 rather than pglz where the
-- server has it. Most blobs are gzip or zip already: pglz spent 50-70 ms
-- failing to compress the 2.9 MB of a 100,000-record report before
-- storing it as it was, in the upload's transaction; lz4 gives up in a few
-- milliseconds, and still compresses what compresses (plain XML, mail).
-- Blobs stored before keep pglz, which still reads.

-- +goose Up
DROP INDEX report_source_dkim_selector_idx;
-- +goose StatementBegin
DO $$
BEGIN
    -- A server built without lz4 keeps pglz.
    EXECUTE 'ALTER TABLE report_blobs ALTER COLUMN raw SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE report_blobs ALTER COLUMN raw SET COMPRESSION pglz';
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
-- +goose StatementEnd
CREATE INDEX report_source_dkim_selector_idx ON report_source_dkim (domain_id, selector, day);
