-- The account's report at the speed of a domain's (issue 10): summaries
-- per account and day, and the distinct source addresses of every summary
-- as a mergeable sketch.
--
-- report_daily.sources is a HyperLogLog sketch (internal/sketch) of the
-- group's source addresses that day, so that the distinct addresses of a
-- sender over a range are the merge of its days' sketches rather than a
-- count over every source row: exact while a sketch is sparse (a few
-- thousand addresses), within about 1% beyond. The index of
-- source_classes that served that count goes.
--
-- account_daily holds the same per account, day, class and service: the
-- sums of its domains' report_daily rows and the merge of their sketches.
-- The classifier rebuilds an account's day (internal/sources) once none of
-- the account's domains has that day queued for classification. Until
-- then the day waits in account_days, and the reads take it through its
-- domains' summaries (report_accounts_daily below), so every read stays
-- exact. What queues an account's day is in the database, so that no
-- writer can forget it: a day of one of its domains queued for
-- classification (the only days whose summaries the classifier writes),
-- a domain deleted. A bulk build of the summaries (report_summarize)
-- queues the account days itself. Writing a summary does not queue its
-- account's day again: ingest may classify a new day in a transaction of
-- its own beside the one that queued it (internal/ingest), which must not
-- wait on that one's queue rows.
--
-- Every day with data is classified once after the migration, which
-- fills the sketches and the account summaries; meanwhile the reads are
-- exact through the queue.

-- +goose Up
ALTER TABLE report_daily ADD COLUMN sources bytea;

CREATE TABLE account_daily (
    account_id             uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    day                    date NOT NULL,
    class                  text NOT NULL,
    service                text NOT NULL,
    messages               bigint NOT NULL,
    dmarc_pass             bigint NOT NULL,
    spf_pass               bigint NOT NULL,
    spf_aligned            bigint NOT NULL,
    dkim_pass              bigint NOT NULL,
    dkim_aligned           bigint NOT NULL,
    disposition_none       bigint NOT NULL,
    disposition_quarantine bigint NOT NULL,
    disposition_reject     bigint NOT NULL,
    -- The reporters, sorted, without ''.
    reporters              text[] NOT NULL,
    -- The merge of the domains' sketches (NULL: one of them had none).
    sources                bytea,
    PRIMARY KEY (account_id, day, class, service)
);

CREATE TABLE account_days (
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    day        date NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, day)
);

-- +goose StatementBegin
CREATE FUNCTION account_days_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_days (account_id, day)
    SELECT DISTINCT d.account_id, r.day FROM changed_rows r JOIN domains d ON d.id = r.domain_id
    ORDER BY 1, 2
    ON CONFLICT (account_id, day) DO UPDATE SET queued_at = clock_timestamp();
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER classify_days_account_insert AFTER INSERT ON classify_days
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION account_days_queue();
CREATE TRIGGER classify_days_account_update AFTER UPDATE ON classify_days
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION account_days_queue();

-- A deleted domain's days leave its account's summaries: queued before its
-- report_daily rows go (triggers fire in the order of their names) and
-- while the domain's row still says its account.
-- +goose StatementBegin
CREATE FUNCTION account_days_domains_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_days (account_id, day)
    SELECT DISTINCT d.account_id, r.day FROM report_daily r JOIN deleted_domains d ON d.id = r.domain_id
    WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.id = d.account_id)
    ORDER BY 1, 2
    ON CONFLICT (account_id, day) DO UPDATE SET queued_at = clock_timestamp();
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER account_days_domains_deleted AFTER DELETE ON domains
    REFERENCING OLD TABLE AS deleted_domains
    FOR EACH STATEMENT EXECUTE FUNCTION account_days_domains_deleted();

-- The senders' distinct addresses are merged sketches now.
DROP INDEX source_classes_sender_idx;

-- report_sources_daily with each row's addresses: a sketch (summaries), or
-- the addresses themselves (days read live); a summary without a sketch
-- (written before this migration, its day queued again below) gives its
-- addresses from source_classes. report_sources_daily becomes its
-- projection, so that the rule (a day's summaries while it is not queued,
-- its rollups live while it is) is written once.
CREATE VIEW report_sources_daily_ips AS
SELECT d.domain_id, d.day, d.class, d.service, d.messages, d.dmarc_pass, d.spf_pass, d.spf_aligned, d.dkim_pass, d.dkim_aligned,
       d.disposition_none, d.disposition_quarantine, d.disposition_reject, d.reporters, d.sources,
       (CASE WHEN d.sources IS NULL THEN
            (SELECT array_agg(c.source_ip) FROM source_classes c WHERE c.domain_id = d.domain_id AND c.day = d.day
               AND c.class = d.class AND (CASE WHEN c.class = 'service' THEN c.service ELSE '' END) = d.service)
        END)::inet[] AS ips
FROM report_daily d
WHERE NOT EXISTS (SELECT 1 FROM classify_days q WHERE q.domain_id = d.domain_id AND q.day = d.day)
UNION ALL
SELECT q.domain_id, q.day, l.class, l.service, l.messages, l.dmarc_pass, l.spf_pass, l.spf_aligned, l.dkim_pass, l.dkim_aligned,
       l.disposition_none, l.disposition_quarantine, l.disposition_reject, l.reporters, NULL::bytea,
       (SELECT array_agg(DISTINCT o.source_ip) FROM report_sources_classified o
        WHERE o.domain_id = q.domain_id AND o.day = q.day AND o.class = l.class AND o.service = l.service)::inet[]
FROM classify_days q
CROSS JOIN LATERAL (SELECT * FROM report_daily_live l WHERE l.domain_id = q.domain_id AND l.day = q.day OFFSET 0) l;

CREATE OR REPLACE VIEW report_sources_daily AS
SELECT domain_id, day, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
       disposition_none, disposition_quarantine, disposition_reject, reporters
FROM report_sources_daily_ips;

-- What an account's report reads for the accounts it covers whole: their
-- summaries of the days not queued, and the queued days through their
-- domains' (report_sources_daily_ips, which the report reads for the
-- domains it covers one by one).
CREATE VIEW report_accounts_daily AS
SELECT a.account_id, a.day, a.class, a.service, a.messages, a.dmarc_pass, a.spf_pass, a.spf_aligned,
       a.dkim_pass, a.dkim_aligned, a.disposition_none, a.disposition_quarantine, a.disposition_reject, a.reporters,
       a.sources, NULL::inet[] AS ips
FROM account_daily a
WHERE NOT EXISTS (SELECT 1 FROM account_days q WHERE q.account_id = a.account_id AND q.day = a.day)
UNION ALL
SELECT q.account_id, q.day, l.class, l.service, l.messages, l.dmarc_pass, l.spf_pass, l.spf_aligned,
       l.dkim_pass, l.dkim_aligned, l.disposition_none, l.disposition_quarantine, l.disposition_reject, l.reporters,
       l.sources, l.ips
FROM account_days q
JOIN domains d ON d.account_id = q.account_id
CROSS JOIN LATERAL (SELECT * FROM report_sources_daily_ips l WHERE l.domain_id = d.id AND l.day = q.day OFFSET 0) l;

-- What the report reads over the preset ranges (the last 7, 30 and 90
-- days), per domain and per account's report: the top unidentified
-- sources, and each sender's distinct addresses (the merge of 90 days of
-- sketches of an account's busiest senders is most of its report's
-- time), kept by the classify job and read only while still exact:
-- computed for the same last day, over the same members (the domain, or
-- the accounts an account's report reads whole), none of whose
-- generations has moved since, and none of whose days in the range is
-- queued. A generation counts the rebuilds of a domain's days (the
-- classifier's, each day it classifies) or of an account's (each account
-- day it summarises).
CREATE TABLE report_generations (
    -- A domain's id or an account's.
    scope_id   uuid PRIMARY KEY,
    generation bigint NOT NULL
);

CREATE TABLE report_presets (
    domain_id   uuid REFERENCES domains (id) ON DELETE CASCADE,
    account_id  uuid REFERENCES accounts (id) ON DELETE CASCADE,
    days        int NOT NULL CHECK (days > 0),
    to_day      date NOT NULL,
    -- The domain, or the accounts read whole, and their generations.
    members     uuid[] NOT NULL,
    generations bigint[] NOT NULL,
    -- The top unidentified sources, most messages first, with their sums:
    -- a JSON array of {ip, messages, dmarc_pass, ..., reporters}.
    top         jsonb NOT NULL,
    -- Every sender's distinct addresses: [{class, service, sources}].
    senders     jsonb NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((domain_id IS NULL) <> (account_id IS NULL)),
    CHECK (cardinality(members) = cardinality(generations))
);
CREATE UNIQUE INDEX report_presets_key ON report_presets ((coalesce(domain_id, account_id)), days);

-- The members' generations, in their order (0 for none yet).
-- +goose StatementBegin
CREATE FUNCTION report_generations_of(members uuid[]) RETURNS bigint[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(coalesce(g.generation, 0) ORDER BY m.n), '{}')
    FROM unnest(members) WITH ORDINALITY AS m (id, n)
    LEFT JOIN report_generations g ON g.scope_id = m.id
$$;
-- +goose StatementEnd

-- Whether a preset computed at these generations is exact for a range:
-- the generations have not moved, and no day of the range is queued (a
-- domain's for classification, an account's for its summary).
-- +goose StatementBegin
CREATE FUNCTION report_preset_valid(members uuid[], generations bigint[], from_day date, to_day date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT generations = report_generations_of(members)
       AND NOT EXISTS (SELECT 1 FROM classify_days c WHERE c.domain_id = ANY(members) AND c.day BETWEEN from_day AND to_day)
       AND NOT EXISTS (SELECT 1 FROM account_days q WHERE q.account_id = ANY(members) AND q.day BETWEEN from_day AND to_day)
$$;
-- +goose StatementEnd

-- Every domain with data is classified again, which writes its sketches;
-- every account day with data waits for its summary.
INSERT INTO classify_domains (domain_id) SELECT DISTINCT domain_id FROM report_daily
ON CONFLICT (domain_id) DO UPDATE SET queued_at = now();
INSERT INTO account_days (account_id, day)
SELECT DISTINCT d.account_id, r.day FROM report_daily r JOIN domains d ON d.id = r.domain_id
ON CONFLICT DO NOTHING;

-- +goose Down
DROP FUNCTION report_preset_valid(uuid[], bigint[], date, date), report_generations_of(uuid[]);
DROP TABLE report_presets, report_generations;
DROP VIEW report_accounts_daily;
CREATE OR REPLACE VIEW report_sources_daily AS
SELECT d.domain_id, d.day, d.class, d.service, d.messages, d.dmarc_pass, d.spf_pass, d.spf_aligned, d.dkim_pass, d.dkim_aligned,
       d.disposition_none, d.disposition_quarantine, d.disposition_reject, d.reporters
FROM report_daily d
WHERE NOT EXISTS (SELECT 1 FROM classify_days q WHERE q.domain_id = d.domain_id AND q.day = d.day)
UNION ALL
SELECT q.domain_id, q.day, l.class, l.service, l.messages, l.dmarc_pass, l.spf_pass, l.spf_aligned, l.dkim_pass, l.dkim_aligned,
       l.disposition_none, l.disposition_quarantine, l.disposition_reject, l.reporters
FROM classify_days q
CROSS JOIN LATERAL (SELECT * FROM report_daily_live l WHERE l.domain_id = q.domain_id AND l.day = q.day OFFSET 0) l;
DROP VIEW report_sources_daily_ips;
CREATE INDEX source_classes_sender_idx ON source_classes (domain_id, day, class, service) INCLUDE (source_ip);
DROP TRIGGER account_days_domains_deleted ON domains;
DROP FUNCTION account_days_domains_deleted();
DROP TRIGGER classify_days_account_update ON classify_days;
DROP TRIGGER classify_days_account_insert ON classify_days;
DROP FUNCTION account_days_queue();
DROP TABLE account_days, account_daily;
ALTER TABLE report_daily DROP COLUMN sources;
