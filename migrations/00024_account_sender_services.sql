-- Account services (issue 10): each account may add its own sending
-- services beside the shipped catalog. A catalog row has no account
-- (account_id NULL); an account's row is keyed by a slug that cannot be a
-- catalog slug or another account's: the label the account chose, a dot
-- and the account's id in hex ("acme-mailer.0f3c...") - catalog slugs have
-- no dot, and the id part is checked against account_id. domain_senders,
-- dkim_keys, source_classes and the edge's edge_service rows keep keying
-- services by slug.
--
-- An account's service reclassifies that account's verified domains when
-- it is added, changed or removed; a catalog service's reclassifies every
-- verified domain, as before.

-- +goose Up
ALTER TABLE sender_services
    ADD COLUMN account_id uuid REFERENCES accounts (id) ON DELETE CASCADE,
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE sender_services DROP CONSTRAINT sender_services_slug_check;
ALTER TABLE sender_services ADD CONSTRAINT sender_services_slug_check CHECK (
    CASE WHEN account_id IS NULL THEN slug ~ '^[a-z0-9][a-z0-9-]*$'
         ELSE slug ~ '^[a-z0-9][a-z0-9-]{0,39}\.[0-9a-f]{32}$'
              AND split_part(slug, '.', 2) = replace(account_id::text, '-', '')
    END);
-- The bounds an account's service is held to (the API checks them first,
-- with clearer errors).
ALTER TABLE sender_services ADD CONSTRAINT sender_services_account_bounds CHECK (
    account_id IS NULL OR (
        length(name) BETWEEN 1 AND 100 AND length(category) BETWEEN 1 AND 40
        AND cardinality(static_ranges) <= 200 AND cardinality(dkim_domains) <= 20
        AND cardinality(dkim_selectors) <= 20 AND cardinality(helo_suffixes) <= 20
        AND length(spf_include) <= 253 AND length(setup_url) <= 2000
    ));
CREATE INDEX sender_services_account_idx ON sender_services (account_id, slug) WHERE account_id IS NOT NULL;

-- +goose StatementBegin
-- Statement triggers on insert and delete: the changed rows' accounts'
-- verified domains, or every verified domain for a catalog row. An upsert
-- that changed nothing has no rows and queues nothing.
CREATE FUNCTION classify_queue_service_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO classify_domains (domain_id)
    SELECT d.id FROM domains d
    WHERE d.verified_at IS NOT NULL
      AND EXISTS (SELECT 1 FROM changed_rows r WHERE r.account_id IS NULL OR r.account_id = d.account_id)
    ORDER BY d.id
    ON CONFLICT (domain_id) DO UPDATE SET queued_at = now();
    RETURN NULL;
END
$$;
-- The row trigger on update (when a fact the classification reads changed).
CREATE FUNCTION classify_queue_service_domains() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO classify_domains (domain_id)
    SELECT d.id FROM domains d
    WHERE d.verified_at IS NOT NULL AND (NEW.account_id IS NULL OR d.account_id = NEW.account_id)
    ORDER BY d.id
    ON CONFLICT (domain_id) DO UPDATE SET queued_at = now();
    RETURN NULL;
END
$$;
-- +goose StatementEnd
DROP TRIGGER sender_services_classify_insert ON sender_services;
DROP TRIGGER sender_services_classify_update ON sender_services;
CREATE TRIGGER sender_services_classify_insert AFTER INSERT ON sender_services
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_service_rows();
CREATE TRIGGER sender_services_classify_update AFTER UPDATE ON sender_services
    FOR EACH ROW WHEN ((OLD.resolved_ranges, OLD.static_ranges, OLD.dkim_domains, OLD.helo_suffixes, OLD.dkim_selectors)
                       IS DISTINCT FROM (NEW.resolved_ranges, NEW.static_ranges, NEW.dkim_domains, NEW.helo_suffixes, NEW.dkim_selectors))
    EXECUTE FUNCTION classify_queue_service_domains();
-- A removed service's sources are classified again (without it).
CREATE TRIGGER sender_services_classify_delete AFTER DELETE ON sender_services
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_service_rows();

-- +goose Down
DROP TRIGGER sender_services_classify_delete ON sender_services;
DROP TRIGGER sender_services_classify_update ON sender_services;
DROP TRIGGER sender_services_classify_insert ON sender_services;
CREATE TRIGGER sender_services_classify_insert AFTER INSERT ON sender_services
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_all_domains_if_new();
CREATE TRIGGER sender_services_classify_update AFTER UPDATE ON sender_services
    FOR EACH ROW WHEN ((OLD.resolved_ranges, OLD.static_ranges, OLD.dkim_domains, OLD.helo_suffixes, OLD.dkim_selectors)
                       IS DISTINCT FROM (NEW.resolved_ranges, NEW.static_ranges, NEW.dkim_domains, NEW.helo_suffixes, NEW.dkim_selectors))
    EXECUTE FUNCTION classify_queue_all_domains();
DROP FUNCTION classify_queue_service_domains();
DROP FUNCTION classify_queue_service_rows();
-- Account services cannot be kept without their accounts' keys.
DELETE FROM domain_senders WHERE service IN (SELECT slug FROM sender_services WHERE account_id IS NOT NULL);
UPDATE dkim_keys SET service = NULL WHERE service IN (SELECT slug FROM sender_services WHERE account_id IS NOT NULL);
UPDATE edge_service SET deleted = true, serial = nextval('edge_serial_seq'), updated_at = now()
WHERE name IN (SELECT slug FROM sender_services WHERE account_id IS NOT NULL) AND NOT deleted;
DELETE FROM sender_services WHERE account_id IS NOT NULL;
DROP INDEX sender_services_account_idx;
ALTER TABLE sender_services DROP CONSTRAINT sender_services_account_bounds;
ALTER TABLE sender_services DROP CONSTRAINT sender_services_slug_check;
ALTER TABLE sender_services ADD CONSTRAINT sender_services_slug_check CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$');
ALTER TABLE sender_services DROP COLUMN created_at, DROP COLUMN account_id;
