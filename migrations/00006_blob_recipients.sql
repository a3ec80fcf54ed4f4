-- One blob per mail message however many rua addresses it names, and refused
-- blobs without their bytes after a while.
--
-- Until now a message to several report addresses was stored once per
-- recipient domain (report_blobs.domain_id was the blob's scope): a 25 MB
-- message naming 50 tokens cost 1.25 GB. Now the recipients are rows of
-- report_blob_recipients and a mail blob is one row per distinct bytes; its
-- scope is the union of its recipient domains (see internal/ingest).

-- +goose Up

-- The hosted domains whose rua addresses a mail blob was sent to, with when
-- and from where each first received it.
CREATE TABLE report_blob_recipients (
    blob_id     uuid NOT NULL REFERENCES report_blobs (id) ON DELETE CASCADE,
    domain_id   uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    remote      text NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL,
    PRIMARY KEY (blob_id, domain_id)
);
CREATE INDEX report_blob_recipients_domain_idx ON report_blob_recipients (domain_id, received_at);

-- Mail blobs with the same bytes become one: the keeper is the blob whose
-- state carries furthest (pending first, so that its queued job works it
-- with every recipient; then stored, duplicate, and those not stored), and
-- the others' recipients, reports and duplicates move to it.
CREATE TEMP TABLE blob_merge ON COMMIT DROP AS
SELECT id, first_value(id) OVER (PARTITION BY sha256 ORDER BY
        CASE status WHEN 'pending' THEN 0 WHEN 'stored' THEN 1 WHEN 'duplicate' THEN 2 ELSE 3 END,
        received_at, id) AS keep
FROM report_blobs
WHERE source = 'smtp' AND domain_id IS NOT NULL;

INSERT INTO report_blob_recipients (blob_id, domain_id, remote, received_at)
SELECT m.keep, b.domain_id, b.remote, b.received_at
FROM blob_merge m JOIN report_blobs b ON b.id = m.id
ON CONFLICT DO NOTHING;

UPDATE reports r SET blob_id = m.keep FROM blob_merge m WHERE r.blob_id = m.id AND m.id <> m.keep;

INSERT INTO report_duplicates (blob_id, report_id, received_at)
SELECT m.keep, d.report_id, d.received_at
FROM report_duplicates d JOIN blob_merge m ON d.blob_id = m.id
WHERE m.id <> m.keep
ON CONFLICT DO NOTHING;

DELETE FROM report_blobs b USING blob_merge m WHERE b.id = m.id AND m.id <> m.keep;

DROP INDEX report_blobs_sha256_key;
ALTER TABLE report_blobs DROP COLUMN domain_id;
-- The same bytes are one blob per scope: per account for uploads and
-- pulls, one for every mail recipient, one for imports.
CREATE UNIQUE INDEX report_blobs_sha256_key ON report_blobs (sha256,
    coalesce(account_id, '00000000-0000-0000-0000-000000000000'), (source = 'smtp'));

ALTER TABLE report_blobs
    -- Bumped whenever the blob is put back in line (its bytes came again
    -- after it was not stored, or for a recipient it did not have). Each
    -- round has its own report.ingest job (args.round), and a job finishes
    -- the blob only in the round it read.
    ADD COLUMN round integer NOT NULL DEFAULT 0,
    -- When the bytes of a blob that was not stored were deleted; the row,
    -- with its size, hash, reason and dates, stays.
    ADD COLUMN purged_at timestamptz,
    ALTER COLUMN raw DROP NOT NULL,
    ADD CONSTRAINT report_blobs_purged_check CHECK ((raw IS NULL) = (purged_at IS NOT NULL)),
    ADD CONSTRAINT report_blobs_purged_status_check
        CHECK (purged_at IS NULL OR status IN ('refused', 'failed', 'cancelled', 'discarded'));
CREATE INDEX report_blobs_purge_idx ON report_blobs (processed_at)
    WHERE raw IS NOT NULL AND status IN ('refused', 'failed', 'cancelled', 'discarded');

-- A mail blob goes with its last recipient, as it went with its one
-- recipient domain before.
-- +goose StatementBegin
CREATE FUNCTION report_blob_recipients_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_blobs b
    WHERE b.id IN (SELECT DISTINCT o.blob_id FROM old_recipients o)
      AND b.source = 'smtp'
      AND NOT EXISTS (SELECT 1 FROM report_blob_recipients r WHERE r.blob_id = b.id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER report_blob_recipients_deleted AFTER DELETE ON report_blob_recipients
    REFERENCING OLD TABLE AS old_recipients
    FOR EACH STATEMENT EXECUTE FUNCTION report_blob_recipients_deleted();

-- The blob follows its job (00005), now only the job of its current round:
-- a job of an earlier round that is cancelled, discarded or deleted leaves
-- the blob to the newer round's job.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION report_blob_follow_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    job    river_job;
    blob   uuid;
    job_round  integer;
    new_status text;
    reason     text;
    detail     text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        job := OLD;
    ELSE
        job := NEW;
    END IF;
    IF job.kind <> 'report.ingest'
       OR coalesce(job.args ->> 'blob_id', '') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       OR coalesce(job.args ->> 'round', '0') !~ '^[0-9]{1,9}$' THEN
        RETURN NULL;
    END IF;
    blob := (job.args ->> 'blob_id')::uuid;
    job_round := coalesce(job.args ->> 'round', '0')::integer;
    IF TG_OP = 'UPDATE' AND NEW.state IN ('available', 'scheduled') THEN
        -- Retried from the dashboard: the blob is in line again. Its bytes
        -- are back only if they come again, so a purged blob stays as it is.
        UPDATE report_blobs
        SET status = 'pending', refusal_reason = NULL, refusal_detail = NULL, warnings = '[]', processed_at = NULL
        WHERE report_blobs.id = blob AND report_blobs.round = job_round AND report_blobs.purged_at IS NULL
          AND report_blobs.status IN ('refused', 'failed', 'cancelled', 'discarded');
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        new_status := 'cancelled';
        reason := 'job_deleted';
        detail := 'the report was not stored: its ingest job was deleted before it ran';
    ELSIF NEW.state = 'cancelled' THEN
        new_status := 'cancelled';
        reason := 'job_cancelled';
        detail := 'the report was not stored: its ingest job was cancelled';
    ELSE
        new_status := 'discarded';
        reason := 'job_discarded';
        detail := format('the report was not stored: its ingest job was given up after %s attempts', NEW.attempt);
    END IF;
    UPDATE report_blobs
    SET status = new_status, refusal_reason = reason, refusal_detail = detail, processed_at = now()
    WHERE report_blobs.id = blob AND report_blobs.status = 'pending' AND report_blobs.round = job_round;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- 00005's function, without rounds.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION report_blob_follow_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    job    river_job;
    blob   uuid;
    new_status text;
    reason     text;
    detail     text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        job := OLD;
    ELSE
        job := NEW;
    END IF;
    IF job.kind <> 'report.ingest'
       OR coalesce(job.args ->> 'blob_id', '') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RETURN NULL;
    END IF;
    blob := (job.args ->> 'blob_id')::uuid;
    IF TG_OP = 'UPDATE' AND NEW.state IN ('available', 'scheduled') THEN
        -- Retried from the dashboard: the blob is in line again.
        UPDATE report_blobs
        SET status = 'pending', refusal_reason = NULL, refusal_detail = NULL, warnings = '[]', processed_at = NULL
        WHERE report_blobs.id = blob AND report_blobs.status IN ('refused', 'failed', 'cancelled', 'discarded');
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        new_status := 'cancelled';
        reason := 'job_deleted';
        detail := 'the report was not stored: its ingest job was deleted before it ran';
    ELSIF NEW.state = 'cancelled' THEN
        new_status := 'cancelled';
        reason := 'job_cancelled';
        detail := 'the report was not stored: its ingest job was cancelled';
    ELSE
        new_status := 'discarded';
        reason := 'job_discarded';
        detail := format('the report was not stored: its ingest job was given up after %s attempts', NEW.attempt);
    END IF;
    UPDATE report_blobs
    SET status = new_status, refusal_reason = reason, refusal_detail = detail, processed_at = now()
    WHERE report_blobs.id = blob AND report_blobs.status = 'pending';
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
DROP TRIGGER report_blob_recipients_deleted ON report_blob_recipients;
DROP FUNCTION report_blob_recipients_deleted();
DROP INDEX report_blobs_purge_idx;
-- Purged bytes cannot come back; those rows keep an empty raw.
UPDATE report_blobs SET raw = '' WHERE raw IS NULL;
ALTER TABLE report_blobs
    DROP CONSTRAINT report_blobs_purged_status_check,
    DROP CONSTRAINT report_blobs_purged_check,
    ALTER COLUMN raw SET NOT NULL,
    DROP COLUMN purged_at,
    DROP COLUMN round,
    ADD COLUMN domain_id uuid REFERENCES domains (id) ON DELETE CASCADE;
DROP INDEX report_blobs_sha256_key;
-- Back to one blob per recipient domain: the first recipient keeps the
-- row, each other one gets a copy.
UPDATE report_blobs b SET domain_id = (SELECT min(r.domain_id::text)::uuid FROM report_blob_recipients r WHERE r.blob_id = b.id)
WHERE b.source = 'smtp';
INSERT INTO report_blobs (sha256, raw, size, source, domain_id, remote, filename, received_at, status,
    refusal_reason, refusal_detail, warnings, processed_at, report_id)
SELECT b.sha256, b.raw, b.size, b.source, r.domain_id, r.remote, b.filename, r.received_at, b.status,
    b.refusal_reason, b.refusal_detail, b.warnings, b.processed_at, b.report_id
FROM report_blobs b JOIN report_blob_recipients r ON r.blob_id = b.id
WHERE r.domain_id <> b.domain_id;
CREATE UNIQUE INDEX report_blobs_sha256_key ON report_blobs (sha256,
    coalesce(account_id, '00000000-0000-0000-0000-000000000000'),
    coalesce(domain_id, '00000000-0000-0000-0000-000000000000'));
CREATE INDEX report_blobs_domain_idx ON report_blobs (domain_id, received_at) WHERE domain_id IS NOT NULL;
DROP TABLE report_blob_recipients;
