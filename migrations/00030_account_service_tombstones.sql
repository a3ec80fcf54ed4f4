-- A sender service that goes without deleteSenderService (its account
-- deleted, the rows cascading) still leaves the edge: its edge_service row
-- becomes a tombstone with a new serial, and the edges are told, as
-- deleteSenderService does (which then finds nothing left to do).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION edge_service_tombstone_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER sender_services_edge_tombstone AFTER DELETE ON sender_services
    REFERENCING OLD TABLE AS deleted_services FOR EACH STATEMENT EXECUTE FUNCTION edge_service_tombstone_deleted();

-- +goose Down
DROP TRIGGER sender_services_edge_tombstone ON sender_services;
DROP FUNCTION edge_service_tombstone_deleted();
