-- What names a mail blob for its owner and the operator: its From,
-- Subject and Message-ID headers (internal/ingest, MailHeaders), since a
-- mail has no file name. And the refusals of reports that match no hosted
-- domain, which only the instance operator lists (`unmatchedReports`).

-- +goose Up
ALTER TABLE report_blobs
    ADD COLUMN mail_from       text NOT NULL DEFAULT '',
    ADD COLUMN mail_subject    text NOT NULL DEFAULT '',
    ADD COLUMN mail_message_id text NOT NULL DEFAULT '';
CREATE INDEX report_blobs_not_hosted_idx ON report_blobs (received_at) WHERE refusal_reason = 'not_hosted';

-- +goose Down
DROP INDEX report_blobs_not_hosted_idx;
ALTER TABLE report_blobs
    DROP COLUMN mail_message_id,
    DROP COLUMN mail_subject,
    DROP COLUMN mail_from;
