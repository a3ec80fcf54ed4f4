-- Who sent each report source (issue 10): every (domain, day, source
-- address) of report_sources gets a class and its evidence, kept current by
-- the job sources.classify. A day is queued when a report adds to it; a
-- whole domain when its netblocks, keys or senders change, or the senders'
-- ranges do.

-- +goose Up
CREATE TABLE source_classes (
    domain_id     uuid NOT NULL,
    day           date NOT NULL,
    source_ip     inet NOT NULL,
    class         text NOT NULL CHECK (class IN ('internal', 'service', 'forwarded', 'unidentified')),
    -- The service's slug for class 'service', else ''.
    service       text NOT NULL DEFAULT '',
    evidence      text NOT NULL,
    classified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, day, source_ip)
);

-- Days to classify (again), and domains whose every day is.
CREATE TABLE classify_days (
    domain_id uuid NOT NULL,
    day       date NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now(),
    -- A day is classified again once its sources' reverse names are known
    -- (enrich.sources), up to an hour after it was first queued: not
    -- before then.
    first_queued_at timestamptz NOT NULL DEFAULT now(),
    not_before      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, day)
);
CREATE INDEX classify_days_queued_idx ON classify_days (not_before, queued_at);
CREATE TABLE classify_domains (
    domain_id uuid PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now()
);

-- What queues work, in the database itself so that no writer can forget
-- it. A report adding a new row to the rollups (a new source, outcome or
-- DKIM signature of a day: the only changes that can change a class; a sum
-- that grows cannot) queues its day; a domain's netblocks or keys queue the
-- domain; a sender's ranges, DKIM domains or host suffixes queue every
-- verified domain.
-- +goose StatementBegin
CREATE FUNCTION classify_queue_new_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO classify_days (domain_id, day)
    SELECT DISTINCT domain_id, day FROM new_rows
    ORDER BY 1, 2
    ON CONFLICT (domain_id, day) DO UPDATE SET queued_at = now(), not_before = now();
    RETURN NULL;
END
$$;
CREATE FUNCTION classify_queue_new_domains() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO classify_domains (domain_id) SELECT DISTINCT domain_id FROM changed_rows
    ON CONFLICT (domain_id) DO UPDATE SET queued_at = now();
    RETURN NULL;
END
$$;
CREATE FUNCTION classify_queue_all_domains() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO classify_domains (domain_id) SELECT id FROM domains WHERE verified_at IS NOT NULL
    ON CONFLICT (domain_id) DO UPDATE SET queued_at = now();
    RETURN NULL;
END
$$;
-- A statement trigger fires for an INSERT that inserted nothing (an upsert
-- that found its row): only new rows count.
CREATE FUNCTION classify_queue_all_domains_if_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        INSERT INTO classify_domains (domain_id) SELECT id FROM domains WHERE verified_at IS NOT NULL
        ON CONFLICT (domain_id) DO UPDATE SET queued_at = now();
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER report_sources_classify AFTER INSERT ON report_sources
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_days();
CREATE TRIGGER report_source_dkim_classify AFTER INSERT ON report_source_dkim
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_days();
CREATE TRIGGER domain_netblocks_classify_insert AFTER INSERT ON domain_netblocks
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_domains();
CREATE TRIGGER domain_netblocks_classify_update AFTER UPDATE ON domain_netblocks
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_domains();
CREATE TRIGGER domain_netblocks_classify_delete AFTER DELETE ON domain_netblocks
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_domains();
CREATE TRIGGER dkim_keys_classify_insert AFTER INSERT ON dkim_keys
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_domains();
CREATE TRIGGER dkim_keys_classify_update AFTER UPDATE ON dkim_keys
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_domains();
CREATE TRIGGER dkim_keys_classify_delete AFTER DELETE ON dkim_keys
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_domains();
CREATE TRIGGER sender_services_classify_insert AFTER INSERT ON sender_services
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_all_domains_if_new();
CREATE TRIGGER sender_services_classify_update AFTER UPDATE ON sender_services
    FOR EACH ROW WHEN ((OLD.resolved_ranges, OLD.static_ranges, OLD.dkim_domains, OLD.helo_suffixes)
                       IS DISTINCT FROM (NEW.resolved_ranges, NEW.static_ranges, NEW.dkim_domains, NEW.helo_suffixes))
    EXECUTE FUNCTION classify_queue_all_domains();

-- Every day with data is classified once after the migration.
INSERT INTO classify_domains (domain_id) SELECT DISTINCT domain_id FROM report_sources;

-- +goose StatementBegin
CREATE FUNCTION source_classes_domains_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM source_classes r USING deleted_domains d WHERE r.domain_id = d.id;
    DELETE FROM classify_days r USING deleted_domains d WHERE r.domain_id = d.id;
    DELETE FROM classify_domains r USING deleted_domains d WHERE r.domain_id = d.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER source_classes_domains_deleted AFTER DELETE ON domains
    REFERENCING OLD TABLE AS deleted_domains
    FOR EACH STATEMENT EXECUTE FUNCTION source_classes_domains_deleted();

-- +goose Down
DROP TRIGGER sender_services_classify_update ON sender_services;
DROP TRIGGER sender_services_classify_insert ON sender_services;
DROP TRIGGER dkim_keys_classify_delete ON dkim_keys;
DROP TRIGGER dkim_keys_classify_update ON dkim_keys;
DROP TRIGGER dkim_keys_classify_insert ON dkim_keys;
DROP TRIGGER domain_netblocks_classify_delete ON domain_netblocks;
DROP TRIGGER domain_netblocks_classify_update ON domain_netblocks;
DROP TRIGGER domain_netblocks_classify_insert ON domain_netblocks;
DROP TRIGGER report_source_dkim_classify ON report_source_dkim;
DROP TRIGGER report_sources_classify ON report_sources;
DROP FUNCTION classify_queue_all_domains_if_new();
DROP FUNCTION classify_queue_all_domains();
DROP FUNCTION classify_queue_new_domains();
DROP FUNCTION classify_queue_new_days();
DROP TRIGGER source_classes_domains_deleted ON domains;
DROP FUNCTION source_classes_domains_deleted();
DROP TABLE classify_domains;
DROP TABLE classify_days;
DROP TABLE source_classes;
