-- The authentication report's summaries (issue 10): what its reads sum,
-- summed once per domain and day by the classifier rather than on every
-- read from report_sources, and the one definition of a source's class
-- and of a DMARC pass that the report, the readiness verdict and the
-- summaries all use.
--
-- A day's summaries are rebuilt by the classifier (report_summarize) in the
-- transaction that classifies the day: after a report adds to it, and
-- after every reclassification, so they follow the classes. A day queued
-- for classification (classify_days) is read live from report_sources
-- until then: the views below take a day's summaries only while it is not
-- queued, so every read stays exact. A report adding to existing rollup
-- rows (a sum that grows) queues its day too, as new rows always did.

-- +goose Up

-- The one definition: each rollup row with its source's class (a source
-- not classified yet counts as unidentified), its service (for class
-- service), and whether it passed DMARC (SPF or DKIM passed aligned).
CREATE VIEW report_sources_classified AS
SELECT s.domain_id, s.day, s.source_ip, s.reporter, s.header_from, s.spf_domain, s.disposition,
       s.spf_pass, s.dkim_pass, s.spf_aligned, s.dkim_aligned, s.forwarded, s.messages, s.reports,
       coalesce(c.class, 'unidentified') AS class,
       (CASE WHEN c.class = 'service' THEN c.service ELSE '' END) AS service,
       coalesce(c.evidence, '') AS evidence,
       (s.spf_aligned OR s.dkim_aligned) AS dmarc_pass
FROM report_sources s
LEFT JOIN source_classes c ON c.domain_id = s.domain_id AND c.day = s.day AND c.source_ip = s.source_ip;

-- Per domain, day, class and service: the sums the report's totals,
-- categories, senders and daily series read, and the verdict's volumes.
CREATE TABLE report_daily (
    -- No foreign key (see report_sources): the trigger below removes a
    -- deleted domain's rows.
    domain_id              uuid NOT NULL,
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
    PRIMARY KEY (domain_id, day, class, service)
);

-- Per domain, day and source address (next to its class): the same sums,
-- for the top unidentified sources and the senders' distinct addresses.
ALTER TABLE source_classes
    ADD COLUMN messages               bigint NOT NULL DEFAULT 0,
    ADD COLUMN dmarc_pass             bigint NOT NULL DEFAULT 0,
    ADD COLUMN spf_pass               bigint NOT NULL DEFAULT 0,
    ADD COLUMN spf_aligned            bigint NOT NULL DEFAULT 0,
    ADD COLUMN dkim_pass              bigint NOT NULL DEFAULT 0,
    ADD COLUMN dkim_aligned           bigint NOT NULL DEFAULT 0,
    ADD COLUMN disposition_none       bigint NOT NULL DEFAULT 0,
    ADD COLUMN disposition_quarantine bigint NOT NULL DEFAULT 0,
    ADD COLUMN disposition_reject     bigint NOT NULL DEFAULT 0,
    ADD COLUMN reporters              text[] NOT NULL DEFAULT '{}';

-- Index-only scans of a domain's sources: the senders' distinct
-- addresses, and the unidentified ones by their messages.
CREATE INDEX source_classes_sender_idx ON source_classes (domain_id, day, class, service) INCLUDE (source_ip);
CREATE INDEX source_classes_unidentified_idx ON source_classes (domain_id, day) INCLUDE (source_ip, messages)
    WHERE class = 'unidentified';

-- The sums of report_sources_classified per domain, day, class and service, and per
-- domain, day and source, computed live.
CREATE VIEW report_daily_live AS
SELECT o.domain_id, o.day, o.class, o.service,
       sum(o.messages)::bigint AS messages,
       coalesce(sum(o.messages) FILTER (WHERE o.dmarc_pass), 0)::bigint AS dmarc_pass,
       coalesce(sum(o.messages) FILTER (WHERE o.spf_pass), 0)::bigint AS spf_pass,
       coalesce(sum(o.messages) FILTER (WHERE o.spf_aligned), 0)::bigint AS spf_aligned,
       coalesce(sum(o.messages) FILTER (WHERE o.dkim_pass), 0)::bigint AS dkim_pass,
       coalesce(sum(o.messages) FILTER (WHERE o.dkim_aligned), 0)::bigint AS dkim_aligned,
       coalesce(sum(o.messages) FILTER (WHERE o.disposition = 'none'), 0)::bigint AS disposition_none,
       coalesce(sum(o.messages) FILTER (WHERE o.disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
       coalesce(sum(o.messages) FILTER (WHERE o.disposition = 'reject'), 0)::bigint AS disposition_reject,
       array_remove(array_agg(DISTINCT o.reporter ORDER BY o.reporter), '') AS reporters
FROM report_sources_classified o
GROUP BY o.domain_id, o.day, o.class, o.service;

CREATE VIEW report_sources_ips_live AS
SELECT o.domain_id, o.day, o.source_ip, o.class, o.service,
       sum(o.messages)::bigint AS messages,
       coalesce(sum(o.messages) FILTER (WHERE o.dmarc_pass), 0)::bigint AS dmarc_pass,
       coalesce(sum(o.messages) FILTER (WHERE o.spf_pass), 0)::bigint AS spf_pass,
       coalesce(sum(o.messages) FILTER (WHERE o.spf_aligned), 0)::bigint AS spf_aligned,
       coalesce(sum(o.messages) FILTER (WHERE o.dkim_pass), 0)::bigint AS dkim_pass,
       coalesce(sum(o.messages) FILTER (WHERE o.dkim_aligned), 0)::bigint AS dkim_aligned,
       coalesce(sum(o.messages) FILTER (WHERE o.disposition = 'none'), 0)::bigint AS disposition_none,
       coalesce(sum(o.messages) FILTER (WHERE o.disposition = 'quarantine'), 0)::bigint AS disposition_quarantine,
       coalesce(sum(o.messages) FILTER (WHERE o.disposition = 'reject'), 0)::bigint AS disposition_reject,
       array_remove(array_agg(DISTINCT o.reporter ORDER BY o.reporter), '') AS reporters
FROM report_sources_classified o
GROUP BY o.domain_id, o.day, o.source_ip, o.class, o.service;

-- What the reads read: the summaries of the days not queued for
-- classification, and the queued days live. The live part starts from
-- the queue (few rows, and the scope's filters apply to them) and sums
-- each queued day's rollups through its key (OFFSET 0 keeps the planner
-- from joining the queue to the sums of every day instead).
CREATE VIEW report_sources_daily AS
SELECT d.domain_id, d.day, d.class, d.service, d.messages, d.dmarc_pass, d.spf_pass, d.spf_aligned, d.dkim_pass, d.dkim_aligned,
       d.disposition_none, d.disposition_quarantine, d.disposition_reject, d.reporters
FROM report_daily d
WHERE NOT EXISTS (SELECT 1 FROM classify_days q WHERE q.domain_id = d.domain_id AND q.day = d.day)
UNION ALL
SELECT q.domain_id, q.day, l.class, l.service, l.messages, l.dmarc_pass, l.spf_pass, l.spf_aligned, l.dkim_pass, l.dkim_aligned,
       l.disposition_none, l.disposition_quarantine, l.disposition_reject, l.reporters
FROM classify_days q
CROSS JOIN LATERAL (SELECT * FROM report_daily_live l WHERE l.domain_id = q.domain_id AND l.day = q.day OFFSET 0) l;

CREATE VIEW report_sources_ips AS
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

-- Rebuild the summaries of the domains' days in a range from their
-- rollups and classes: the classifier's step after it classified a day,
-- and the build below.
-- +goose StatementBegin
CREATE FUNCTION report_summarize(p_domains uuid[], p_from date, p_to date) RETURNS void LANGUAGE sql AS $$
    DELETE FROM report_daily WHERE domain_id = ANY(p_domains) AND day BETWEEN p_from AND p_to;
    INSERT INTO report_daily (domain_id, day, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
                              disposition_none, disposition_quarantine, disposition_reject, reporters)
    SELECT domain_id, day, class, service, messages, dmarc_pass, spf_pass, spf_aligned, dkim_pass, dkim_aligned,
           disposition_none, disposition_quarantine, disposition_reject, reporters
    FROM report_daily_live WHERE domain_id = ANY(p_domains) AND day BETWEEN p_from AND p_to
    ORDER BY domain_id, day, class, service;
    UPDATE source_classes c
    SET messages = l.messages, dmarc_pass = l.dmarc_pass, spf_pass = l.spf_pass, spf_aligned = l.spf_aligned,
        dkim_pass = l.dkim_pass, dkim_aligned = l.dkim_aligned, disposition_none = l.disposition_none,
        disposition_quarantine = l.disposition_quarantine, disposition_reject = l.disposition_reject, reporters = l.reporters
    FROM report_sources_ips_live l
    WHERE l.domain_id = ANY(p_domains) AND l.day BETWEEN p_from AND p_to
      AND c.domain_id = l.domain_id AND c.day = l.day AND c.source_ip = l.source_ip;
$$;
-- +goose StatementEnd

SELECT report_summarize(coalesce((SELECT array_agg(DISTINCT domain_id) FROM report_sources), '{}'), '-infinity', 'infinity');

-- A report that only grows existing rollup rows queues its day as well:
-- its summaries must be rebuilt, though its classes cannot change.
CREATE TRIGGER report_sources_summarize AFTER UPDATE ON report_sources
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION classify_queue_new_days();

-- +goose StatementBegin
CREATE FUNCTION report_daily_domains_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_daily r USING deleted_domains d WHERE r.domain_id = d.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER report_daily_domains_deleted AFTER DELETE ON domains
    REFERENCING OLD TABLE AS deleted_domains
    FOR EACH STATEMENT EXECUTE FUNCTION report_daily_domains_deleted();

-- +goose Down
DROP TRIGGER report_daily_domains_deleted ON domains;
DROP FUNCTION report_daily_domains_deleted();
DROP TRIGGER report_sources_summarize ON report_sources;
DROP FUNCTION report_summarize(uuid[], date, date);
DROP VIEW report_sources_ips, report_sources_daily, report_sources_ips_live, report_daily_live;
DROP INDEX source_classes_unidentified_idx, source_classes_sender_idx;
ALTER TABLE source_classes
    DROP COLUMN messages, DROP COLUMN dmarc_pass, DROP COLUMN spf_pass, DROP COLUMN spf_aligned, DROP COLUMN dkim_pass,
    DROP COLUMN dkim_aligned, DROP COLUMN disposition_none, DROP COLUMN disposition_quarantine,
    DROP COLUMN disposition_reject, DROP COLUMN reporters;
DROP TABLE report_daily;
DROP VIEW report_sources_classified;
