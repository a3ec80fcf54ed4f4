-- Several SPF includes per sender service: real vendors publish more than
-- one (Google Workspace _spf.google.com, Microsoft 365
-- spf.protection.outlook.com, others two or three of their own), so a
-- service carries a list. sender_services.spf_include becomes spf_includes
-- (an empty list for none) and edge_service.include becomes includes; the
-- edge hands a query over to every include of a service at once. The
-- resolved ranges are the union of the includes', and spf_lookups the sum
-- of their costs (each include is one term and its chain).
--
-- Every include is a host name of at most 253 octets (as the API and the
-- catalog check it, underscores allowed, at least two labels, the last not
-- a number); a service lists at most 10 of them, as many as one SPF record
-- could evaluate. The check holds for catalog rows too: the shipped catalog
-- is validated the same way.

-- +goose Up
-- +goose StatementBegin
-- Whether every element of includes is a host name as an SPF include
-- target is stored (lower case, no trailing dot), none twice.
CREATE FUNCTION sender_spf_includes_valid(includes text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT cardinality(includes) <= 10
       AND coalesce(bool_and(
               length(i) <= 253
               AND i ~ '^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$'
               AND i !~ '(^|\.)[0-9]+$'), true)
       AND count(DISTINCT i) = count(i)
    FROM unnest(includes) AS i
$$;
-- +goose StatementEnd

ALTER TABLE sender_services ADD COLUMN spf_includes text[] NOT NULL DEFAULT '{}';
UPDATE sender_services SET spf_includes = ARRAY[spf_include] WHERE spf_include <> '';
ALTER TABLE sender_services DROP CONSTRAINT sender_services_account_bounds;
ALTER TABLE sender_services DROP COLUMN spf_include;
ALTER TABLE sender_services ADD CONSTRAINT sender_services_spf_includes_check
    CHECK (sender_spf_includes_valid(spf_includes));
-- The bounds of 00024, the include's length now bounded by the check above.
ALTER TABLE sender_services ADD CONSTRAINT sender_services_account_bounds CHECK (
    account_id IS NULL OR (
        length(name) BETWEEN 1 AND 100 AND length(category) BETWEEN 1 AND 40
        AND cardinality(static_ranges) <= 200 AND cardinality(dkim_domains) <= 20
        AND cardinality(dkim_selectors) <= 20 AND cardinality(helo_suffixes) <= 20
        AND cardinality(spf_includes) <= 10 AND length(setup_url) <= 2000
    ));

ALTER TABLE edge_service ADD COLUMN includes text[] NOT NULL DEFAULT '{}';
UPDATE edge_service SET includes = ARRAY[include] WHERE include <> '';
ALTER TABLE edge_service DROP COLUMN include;

-- +goose StatementBegin
-- As in 00030, with the list.
CREATE OR REPLACE FUNCTION edge_service_tombstone_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    WITH gone AS (
        UPDATE edge_service e SET serial = nextval('edge_serial_seq'), ranges = '{}', helo_suffixes = '{}',
            includes = '{}', deleted = true, updated_at = now()
        WHERE e.name IN (SELECT slug FROM deleted_services) AND NOT e.deleted
        RETURNING e.serial)
    SELECT max(serial) INTO last FROM gone;
    IF last IS NOT NULL THEN
        PERFORM pg_notify('rampart_edge', last::text);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- A single include each: the first is kept, and the others' ranges and
-- cost are forgotten with them (the service is resolved again).
ALTER TABLE edge_service ADD COLUMN include text NOT NULL DEFAULT '';
UPDATE edge_service SET include = includes[1] WHERE cardinality(includes) > 0;
ALTER TABLE edge_service DROP COLUMN includes;

ALTER TABLE sender_services ADD COLUMN spf_include text NOT NULL DEFAULT '';
UPDATE sender_services SET spf_include = spf_includes[1] WHERE cardinality(spf_includes) > 0;
UPDATE sender_services SET resolved_ranges = '{}', spf_lookups = NULL, resolved_at = NULL, resolve_error = '',
    resolve_failed_at = NULL, resolve_attempted_at = NULL
WHERE cardinality(spf_includes) > 1;
ALTER TABLE sender_services DROP CONSTRAINT sender_services_account_bounds;
ALTER TABLE sender_services DROP CONSTRAINT sender_services_spf_includes_check;
ALTER TABLE sender_services DROP COLUMN spf_includes;
ALTER TABLE sender_services ADD CONSTRAINT sender_services_account_bounds CHECK (
    account_id IS NULL OR (
        length(name) BETWEEN 1 AND 100 AND length(category) BETWEEN 1 AND 40
        AND cardinality(static_ranges) <= 200 AND cardinality(dkim_domains) <= 20
        AND cardinality(dkim_selectors) <= 20 AND cardinality(helo_suffixes) <= 20
        AND length(spf_include) <= 253 AND length(setup_url) <= 2000
    ));
DROP FUNCTION sender_spf_includes_valid(text[]);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION edge_service_tombstone_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    WITH gone AS (
        UPDATE edge_service e SET serial = nextval('edge_serial_seq'), ranges = '{}', helo_suffixes = '{}',
            include = '', deleted = true, updated_at = now()
        WHERE e.name IN (SELECT slug FROM deleted_services) AND NOT e.deleted
        RETURNING e.serial)
    SELECT max(serial) INTO last FROM gone;
    IF last IS NOT NULL THEN
        PERFORM pg_notify('rampart_edge', last::text);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
