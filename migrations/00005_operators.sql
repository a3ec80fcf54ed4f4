-- The instance operator role and the job dashboard's browser sessions; and
-- report blobs whose ingest job was cancelled, discarded or deleted without
-- the worker deciding their fate.

-- +goose Up

-- Instance operators see and steer every tenant's jobs (the River UI). The
-- role is granted only by `rampart admin grant-operator`; owning an account,
-- however high, never implies it, and API tokens never hold it.
CREATE TABLE instance_operators (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT now()
);

-- A browser's session on the job dashboard: an opaque id ("rds_" and 256
-- random bits) kept only as its SHA-256, expiring, and bound to the login
-- session (refresh-token family) it was started from, so that logging out
-- ends it too.
CREATE TABLE dashboard_sessions (
    id_hash     bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);

-- cancelled: the blob's report.ingest job was cancelled (from the job
-- dashboard, say) or deleted before it stored anything; discarded: River gave
-- up on the job (attempts exhausted, or rescued too often). Both carry a
-- reason like refused and failed blobs, so ingestProblems shows them.
ALTER TABLE report_blobs DROP CONSTRAINT report_blobs_status_check;
ALTER TABLE report_blobs DROP CONSTRAINT report_blobs_check;
ALTER TABLE report_blobs ADD CONSTRAINT report_blobs_status_check
    CHECK (status IN ('pending', 'stored', 'duplicate', 'refused', 'failed', 'cancelled', 'discarded'));
ALTER TABLE report_blobs ADD CONSTRAINT report_blobs_check
    CHECK ((status IN ('refused', 'failed', 'cancelled', 'discarded')) = (refusal_reason IS NOT NULL));

-- The blob follows its job. River finalises a job without running the worker
-- when it is cancelled or deleted while waiting, or discarded by the
-- rescuer, so no worker code can see it happen; a trigger on River's job
-- table sees every path (any process, any replica, the dashboard, River's
-- own maintenance) in the same transaction as the change. It touches only
-- report.ingest jobs whose blob is still pending, and never raises: an
-- error here would fail River's own update.
-- +goose StatementBegin
CREATE FUNCTION report_blob_follow_job() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER report_blob_job_finalized
    AFTER UPDATE OF state ON river_job
    FOR EACH ROW
    WHEN (NEW.kind = 'report.ingest' AND OLD.state IS DISTINCT FROM NEW.state
          AND (NEW.state IN ('cancelled', 'discarded')
               OR (OLD.state IN ('cancelled', 'discarded') AND NEW.state IN ('available', 'scheduled'))))
    EXECUTE FUNCTION report_blob_follow_job();

CREATE TRIGGER report_blob_job_deleted
    AFTER DELETE ON river_job
    FOR EACH ROW
    WHEN (OLD.kind = 'report.ingest' AND OLD.state NOT IN ('completed', 'cancelled', 'discarded'))
    EXECUTE FUNCTION report_blob_follow_job();

-- +goose Down
DROP TRIGGER report_blob_job_deleted ON river_job;
DROP TRIGGER report_blob_job_finalized ON river_job;
DROP FUNCTION report_blob_follow_job();
UPDATE report_blobs SET status = 'failed' WHERE status IN ('cancelled', 'discarded');
ALTER TABLE report_blobs DROP CONSTRAINT report_blobs_check;
ALTER TABLE report_blobs DROP CONSTRAINT report_blobs_status_check;
ALTER TABLE report_blobs ADD CONSTRAINT report_blobs_status_check
    CHECK (status IN ('pending', 'stored', 'duplicate', 'refused', 'failed'));
ALTER TABLE report_blobs ADD CONSTRAINT report_blobs_check
    CHECK ((status IN ('refused', 'failed')) = (refusal_reason IS NOT NULL));
DROP TABLE dashboard_sessions;
DROP TABLE instance_operators;
