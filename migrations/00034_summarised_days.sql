-- A day waiting only for its sources' reverse names reads its summaries.
--
-- Where reverse names are looked up, the classifier classifies a day with
-- sources not looked up yet at once, writes its summaries, and leaves it
-- queued in classify_days to classify it again once the names are known
-- (up to an hour). The reads took every queued day live from the rollups,
-- and a preset whose range held one was not served: for up to an hour
-- after each new day of reports a domain's report summed that day's
-- rollups on every read, and an account's report, over any domain with
-- such a day, summed all of them. Yet such a day's summaries are exact:
-- they were written from the rollups as they are, with the classes they
-- have.
--
-- classify_days.summarised says so. The classifier sets it when it leaves
-- a classified day queued for its reverse names (PostponeDay, in the
-- transaction that wrote the summaries); whatever queues the day again (a
-- report adding to it, a reclassification of its domain) clears it, so
-- that the day is read live until the classifier has been through it.
-- The reads, the presets' validity and the account summaries treat a
-- summarised day as not queued.
--
-- A day's queue row is deleted when it is done, which now also queues its
-- account's day: the account day may have been summarised while the
-- domain's day waited for its names, and the last classification can
-- still change its classes.

-- +goose Up
ALTER TABLE classify_days ADD COLUMN summarised boolean NOT NULL DEFAULT false;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION classify_queue_new_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO classify_days (domain_id, day)
    SELECT DISTINCT domain_id, day FROM new_rows
    ORDER BY 1, 2
    ON CONFLICT (domain_id, day) DO UPDATE SET queued_at = now(), not_before = now(), summarised = false;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER classify_days_account_delete AFTER DELETE ON classify_days
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION account_days_queue();

CREATE OR REPLACE VIEW report_sources_ips AS
SELECT c.domain_id, c.day, c.source_ip, c.class, (CASE WHEN c.class = 'service' THEN c.service ELSE '' END) AS service,
       c.messages, c.dmarc_pass, c.spf_pass, c.spf_aligned, c.dkim_pass, c.dkim_aligned,
       c.disposition_none, c.disposition_quarantine, c.disposition_reject, c.reporters
FROM source_classes c
WHERE NOT EXISTS (SELECT 1 FROM classify_days q WHERE q.domain_id = c.domain_id AND q.day = c.day AND NOT q.summarised)
UNION ALL
SELECT q.domain_id, q.day, l.source_ip, l.class, l.service, l.messages, l.dmarc_pass, l.spf_pass, l.spf_aligned, l.dkim_pass, l.dkim_aligned,
       l.disposition_none, l.disposition_quarantine, l.disposition_reject, l.reporters
FROM classify_days q
CROSS JOIN LATERAL (SELECT * FROM report_sources_ips_live l WHERE l.domain_id = q.domain_id AND l.day = q.day OFFSET 0) l
WHERE NOT q.summarised;

CREATE OR REPLACE VIEW report_sources_daily_ips AS
SELECT d.domain_id, d.day, d.class, d.service, d.messages, d.dmarc_pass, d.spf_pass, d.spf_aligned, d.dkim_pass, d.dkim_aligned,
       d.disposition_none, d.disposition_quarantine, d.disposition_reject, d.reporters, d.sources,
       (CASE WHEN d.sources IS NULL THEN
            (SELECT array_agg(c.source_ip) FROM source_classes c WHERE c.domain_id = d.domain_id AND c.day = d.day
               AND c.class = d.class AND (CASE WHEN c.class = 'service' THEN c.service ELSE '' END) = d.service)
        END)::inet[] AS ips
FROM report_daily d
WHERE NOT EXISTS (SELECT 1 FROM classify_days q WHERE q.domain_id = d.domain_id AND q.day = d.day AND NOT q.summarised)
UNION ALL
SELECT q.domain_id, q.day, l.class, l.service, l.messages, l.dmarc_pass, l.spf_pass, l.spf_aligned, l.dkim_pass, l.dkim_aligned,
       l.disposition_none, l.disposition_quarantine, l.disposition_reject, l.reporters, NULL::bytea,
       (SELECT array_agg(DISTINCT o.source_ip) FROM report_sources_classified o
        WHERE o.domain_id = q.domain_id AND o.day = q.day AND o.class = l.class AND o.service = l.service)::inet[]
FROM classify_days q
CROSS JOIN LATERAL (SELECT * FROM report_daily_live l WHERE l.domain_id = q.domain_id AND l.day = q.day OFFSET 0) l
WHERE NOT q.summarised;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION report_preset_valid(members uuid[], generations bigint[], from_day date, to_day date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT generations = report_generations_of(members)
       AND NOT EXISTS (SELECT 1 FROM classify_days c WHERE c.domain_id = ANY(members) AND c.day BETWEEN from_day AND to_day
                       AND NOT c.summarised)
       AND NOT EXISTS (SELECT 1 FROM account_days q WHERE q.account_id = ANY(members) AND q.day BETWEEN from_day AND to_day)
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION report_preset_valid(members uuid[], generations bigint[], from_day date, to_day date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT generations = report_generations_of(members)
       AND NOT EXISTS (SELECT 1 FROM classify_days c WHERE c.domain_id = ANY(members) AND c.day BETWEEN from_day AND to_day)
       AND NOT EXISTS (SELECT 1 FROM account_days q WHERE q.account_id = ANY(members) AND q.day BETWEEN from_day AND to_day)
$$;
-- +goose StatementEnd

CREATE OR REPLACE VIEW report_sources_daily_ips AS
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

CREATE OR REPLACE VIEW report_sources_ips AS
SELECT c.domain_id, c.day, c.source_ip, c.class, (CASE WHEN c.class = 'service' THEN c.service ELSE '' END) AS service,
       c.messages, c.dmarc_pass, c.spf_pass, c.spf_aligned, c.dkim_pass, c.dkim_aligned,
       c.disposition_none, c.disposition_quarantine, c.disposition_reject, c.reporters
FROM source_classes c
WHERE NOT EXISTS (SELECT 1 FROM classify_days q WHERE q.domain_id = c.domain_id AND q.day = c.day)
UNION ALL
SELECT q.domain_id, q.day, l.source_ip, l.class, l.service, l.messages, l.dmarc_pass, l.spf_pass, l.spf_aligned, l.dkim_pass, l.dkim_aligned,
       l.disposition_none, l.disposition_quarantine, l.disposition_reject, l.reporters
FROM classify_days q
CROSS JOIN LATERAL (SELECT * FROM report_sources_ips_live l WHERE l.domain_id = q.domain_id AND l.day = q.day OFFSET 0) l;

DROP TRIGGER classify_days_account_delete ON classify_days;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION classify_queue_new_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO classify_days (domain_id, day)
    SELECT DISTINCT domain_id, day FROM new_rows
    ORDER BY 1, 2
    ON CONFLICT (domain_id, day) DO UPDATE SET queued_at = now(), not_before = now();
    RETURN NULL;
END
$$;
-- +goose StatementEnd

ALTER TABLE classify_days DROP COLUMN summarised;
