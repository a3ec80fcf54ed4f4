-- DMARC aggregate reports: the raw blobs as they arrived, the reports decoded
-- from them, their records (partitioned by month) and the daily rollups the
-- API reads. See internal/ingest for the pipeline that writes them.

-- +goose Up

-- The local part of the domain's rua address, <report_token>@<reports domain>.
-- A volatile default is evaluated per row, so existing domains each get their
-- own token when the column is added.
ALTER TABLE domains
    ADD COLUMN report_token text NOT NULL UNIQUE
        DEFAULT substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)
        CHECK (report_token ~ '^[0-9a-z]{8,64}$');

-- Every input as it arrived: a mail to a domain's rua address, an upload, a
-- mailbox pull or an import. The raw bytes stay in this row (TOAST keeps
-- them out of line, so status updates do not rewrite them, and skips
-- compressing gzip and zip data after its first kilobyte) until retention
-- deletes the row.
CREATE TABLE report_blobs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sha256         bytea NOT NULL CHECK (length(sha256) = 32),
    raw            bytea NOT NULL,
    size           integer NOT NULL CHECK (size >= 0),
    source         text NOT NULL CHECK (source IN ('smtp', 'upload', 'imap', 'import')),
    -- The uploader's account (upload, imap) and the domain whose rua
    -- address received the mail (smtp). They bound which hosted domains the
    -- blob's reports may be stored for.
    account_id     uuid REFERENCES accounts (id) ON DELETE CASCADE,
    domain_id      uuid REFERENCES domains (id) ON DELETE CASCADE,
    -- The SMTP client or HTTP client address, and the uploaded file's name.
    remote         text NOT NULL DEFAULT '',
    filename       text NOT NULL DEFAULT '',
    received_at    timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'stored', 'duplicate', 'refused', 'failed')),
    -- Why the blob was refused or failed: a stable code (report.Reason or
    -- one of internal/ingest's) and a sentence for the owner.
    refusal_reason text,
    refusal_detail text,
    -- Quirks accepted while decoding: [{"code", "element", "detail", "count"}].
    warnings       jsonb NOT NULL DEFAULT '[]',
    processed_at   timestamptz,
    -- The (first) report stored from the blob, or for a duplicate the
    -- report it repeats.
    report_id      uuid,
    CHECK ((status IN ('refused', 'failed')) = (refusal_reason IS NOT NULL))
);
-- The same bytes arriving twice in the same scope (recipient domain for
-- mail, account for uploads, neither for imports) are one blob. The scope is
-- part of the key so that one tenant's upload never stands in for
-- another's.
CREATE UNIQUE INDEX report_blobs_sha256_key ON report_blobs (sha256,
    coalesce(account_id, '00000000-0000-0000-0000-000000000000'),
    coalesce(domain_id, '00000000-0000-0000-0000-000000000000'));
CREATE INDEX report_blobs_received_idx ON report_blobs (received_at);
CREATE INDEX report_blobs_account_idx ON report_blobs (account_id, received_at) WHERE account_id IS NOT NULL;
CREATE INDEX report_blobs_domain_idx ON report_blobs (domain_id, received_at) WHERE domain_id IS NOT NULL;

CREATE TABLE reports (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The hosted domain the report is about: the policy domain itself or
    -- its nearest hosted parent.
    domain_id          uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    blob_id            uuid REFERENCES report_blobs (id) ON DELETE SET NULL,
    org_name           text NOT NULL,
    email              text NOT NULL DEFAULT '',
    extra_contact_info text NOT NULL DEFAULT '',
    report_id          text NOT NULL,
    policy_domain      text NOT NULL,
    begin_at           timestamptz NOT NULL,
    end_at             timestamptz NOT NULL,
    -- The UTC date of begin_at: the day its records and rollups are filed
    -- under (and the partition key of its records).
    day                date NOT NULL,
    version            text NOT NULL DEFAULT '',
    namespace          text NOT NULL DEFAULT '',
    generator          text NOT NULL DEFAULT '',
    errors             text[] NOT NULL DEFAULT '{}',
    -- policy_published, as the reporter found it.
    policy_adkim       text NOT NULL DEFAULT '',
    policy_aspf        text NOT NULL DEFAULT '',
    policy_p           text NOT NULL DEFAULT '',
    policy_sp          text NOT NULL DEFAULT '',
    policy_np          text NOT NULL DEFAULT '',
    policy_pct         integer,
    policy_fo          text NOT NULL DEFAULT '',
    policy_testing     text NOT NULL DEFAULT '',
    policy_discovery   text NOT NULL DEFAULT '',
    record_count       integer NOT NULL DEFAULT 0,
    message_count      bigint NOT NULL DEFAULT 0,
    received_at        timestamptz NOT NULL,
    stored_at          timestamptz NOT NULL DEFAULT now(),
    -- The dedupe key: one report, however many times and ways it arrives.
    UNIQUE (org_name, report_id, policy_domain, begin_at, end_at)
);
CREATE INDEX reports_domain_idx ON reports (domain_id, begin_at);
CREATE INDEX reports_blob_idx ON reports (blob_id);

ALTER TABLE report_blobs
    ADD FOREIGN KEY (report_id) REFERENCES reports (id) ON DELETE SET NULL;

-- A blob that carried a report already stored: recorded, counted nowhere.
CREATE TABLE report_duplicates (
    blob_id     uuid NOT NULL REFERENCES report_blobs (id) ON DELETE CASCADE,
    report_id   uuid NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (blob_id, report_id)
);
CREATE INDEX report_duplicates_report_idx ON report_duplicates (report_id);

-- One row per report record, in monthly partitions (report_records_yYYYYmMM)
-- that the ingest creates on demand and retention drops whole. COPY writes
-- them, so the table carries as little as it can: no foreign keys (a check
-- per row; rows go with their partition, and a removed domain's rows are
-- unreachable once its reports are gone), one index (a report's records),
-- and json rather than jsonb for the lists (checked, not parsed into a
-- tree: a quarter of the cost of COPY).
CREATE TABLE report_records (
    report_id     uuid NOT NULL,
    -- The record's position in its report, from 1.
    seq           integer NOT NULL,
    domain_id     uuid NOT NULL,
    day           date NOT NULL,
    source_ip     inet NOT NULL,
    count         bigint NOT NULL,
    -- policy_evaluated; '' where the reporter left a value out.
    disposition   text NOT NULL,
    dkim          text NOT NULL,
    spf           text NOT NULL,
    -- [{"type", "comment"}], NULL when none.
    reasons       json,
    header_from   text NOT NULL,
    envelope_from text NOT NULL,
    envelope_to   text NOT NULL,
    -- auth_results: [{"domain", "selector", "result", "human_result"}] and
    -- [{"domain", "scope", "result", "human_result"}], NULL when none;
    -- fields with empty values are left out.
    dkim_results  json,
    spf_results   json
) PARTITION BY RANGE (day);
CREATE INDEX report_records_report_idx ON report_records (report_id, seq);

-- Messages per hosted domain, day, source and outcome, summed over every
-- report stored; kept when retention drops the records.
CREATE TABLE report_rollups (
    -- No foreign key: checking one for each of a large report's rows
    -- doubled the cost of the upsert. The trigger below removes a deleted
    -- domain's rows instead.
    domain_id    uuid NOT NULL,
    day          date NOT NULL,
    source_ip    inet NOT NULL,
    header_from  text NOT NULL,
    disposition  text NOT NULL,
    -- policy_evaluated spf and dkim: pass means aligned and passing.
    spf_aligned  boolean NOT NULL,
    dkim_aligned boolean NOT NULL,
    messages     bigint NOT NULL,
    -- How many reports contributed.
    reports      integer NOT NULL,
    PRIMARY KEY (domain_id, day, source_ip, header_from, disposition, spf_aligned, dkim_aligned)
);

-- +goose StatementBegin
CREATE FUNCTION report_rollups_domains_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_rollups r USING deleted_domains d WHERE r.domain_id = d.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- A report being stored holds a key-share lock on its domain (the reports
-- foreign key), so a domain deleted meanwhile waits for it, and this trigger
-- then removes its rollups too.
CREATE TRIGGER report_rollups_domains_deleted AFTER DELETE ON domains
    REFERENCING OLD TABLE AS deleted_domains
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_domains_deleted();

-- +goose Down
DROP TRIGGER report_rollups_domains_deleted ON domains;
DROP FUNCTION report_rollups_domains_deleted();
DROP TABLE report_rollups;
DROP TABLE report_records;
DROP TABLE report_duplicates;
DROP TABLE report_blobs, reports;
ALTER TABLE domains DROP COLUMN report_token;
