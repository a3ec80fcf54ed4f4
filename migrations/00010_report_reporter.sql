-- The reporter's identity in the dedupe key (internal/report,
-- Metadata.Reporter): the org_name, or, when a reporter leaves it empty,
-- the domain of its contact e-mail. Keyed on org_name alone, two reporters
-- without a name that happened to send the same report id for the same
-- dates collided, and the second one's report was counted as a duplicate.
-- org_name keeps what the reporter wrote.

-- +goose Up
ALTER TABLE reports ADD COLUMN reporter text;
-- Reports stored before keep the key they were stored under.
UPDATE reports SET reporter = org_name;
ALTER TABLE reports
    ALTER COLUMN reporter SET NOT NULL,
    DROP CONSTRAINT reports_dedupe_key,
    ADD CONSTRAINT reports_dedupe_key UNIQUE (domain_id, reporter, report_id, policy_domain, begin_at, end_at),
    -- Never empty from now on; older rows without an org_name may be.
    ADD CONSTRAINT reports_reporter_check CHECK (reporter <> '') NOT VALID;

-- +goose Down
-- Fails if two reports differ only in their reporter: they cannot both be
-- kept under the older key.
ALTER TABLE reports
    DROP CONSTRAINT reports_reporter_check,
    DROP CONSTRAINT reports_dedupe_key,
    ADD CONSTRAINT reports_dedupe_key UNIQUE (domain_id, org_name, report_id, policy_domain, begin_at, end_at);
ALTER TABLE reports DROP COLUMN reporter;
