-- The authentication report's rollups (issue 10): messages per hosted
-- domain, day, source and everything the report groups or filters by,
-- replacing report_rollups, which no read used. Rebuilt here from the raw
-- records still kept; a day whose records retention already dropped keeps
-- the old rollups' dimensions, with no reporter or SPF domain, and a pass
-- counted only where it was aligned (a lower bound).

-- +goose Up
-- What the source rollups group by, derived from auth_results and the
-- reasons when ingest copies a record (NULL for records stored before):
-- cheap to group in SQL, where parsing the JSON lists of every record made
-- ingest four times as costly. dkim_sigs holds each signature as
-- "<d=> <s=> <result>", lower case ('' for a missing part).
ALTER TABLE report_records
    ADD COLUMN spf_domain text,
    ADD COLUMN spf_pass boolean,
    ADD COLUMN dkim_pass boolean,
    ADD COLUMN forwarded boolean,
    ADD COLUMN dkim_sigs text[];

CREATE TABLE report_sources (
    -- No foreign key (see report_rollups in 00003): the trigger below
    -- removes a deleted domain's rows.
    domain_id    uuid NOT NULL,
    day          date NOT NULL,
    source_ip    inet NOT NULL,
    -- The reporting organisation (reports.reporter).
    reporter     text NOT NULL,
    header_from  text NOT NULL,
    -- The domain auth_results says SPF checked (the envelope sender's, or
    -- the HELO's), lower case; '' when the reporter gave none.
    spf_domain   text NOT NULL,
    disposition  text NOT NULL,
    -- auth_results: SPF passed for spf_domain; a DKIM signature passed.
    spf_pass     boolean NOT NULL,
    dkim_pass    boolean NOT NULL,
    -- policy_evaluated: SPF and DKIM passed aligned with header_from;
    -- DMARC passed when either is true.
    spf_aligned  boolean NOT NULL,
    dkim_aligned boolean NOT NULL,
    -- The reporter gave a reason that the message was forwarded
    -- (forwarded, mailing_list, trusted_forwarder).
    forwarded    boolean NOT NULL,
    messages     bigint NOT NULL,
    -- How many reports contributed.
    reports      integer NOT NULL,
    PRIMARY KEY (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
                 spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded)
);

-- The DKIM signatures of auth_results per domain, day and source: the
-- signing domains and selectors seen, for the per-IP drill-down, the
-- classification by d= and the discovery of selectors.
CREATE TABLE report_source_dkim (
    domain_id uuid NOT NULL,
    day       date NOT NULL,
    source_ip inet NOT NULL,
    -- d= and s=, lower case; selector '' when the reporter gave none.
    dkim_domain text NOT NULL,
    selector    text NOT NULL,
    -- The signature's result: pass, fail, neutral, none, policy,
    -- temperror, permerror, or '' when absent.
    result      text NOT NULL,
    messages    bigint NOT NULL,
    reports     integer NOT NULL,
    PRIMARY KEY (domain_id, day, source_ip, dkim_domain, selector, result)
);
CREATE INDEX report_source_dkim_selector_idx ON report_source_dkim (domain_id, selector, day);

-- The same expressions as ingest's AddSources: SPF is the mfrom result
-- (the first result not of the helo scope, else the first).
INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
                            spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
SELECT rr.domain_id, rr.day, rr.source_ip, r.reporter, rr.header_from,
       lower(coalesce(spf.domain, '')), rr.disposition,
       coalesce(spf.result = 'pass', false),
       EXISTS (SELECT 1 FROM json_array_elements(rr.dkim_results) e WHERE e ->> 'result' = 'pass'),
       rr.spf = 'pass', rr.dkim = 'pass',
       EXISTS (SELECT 1 FROM json_array_elements(rr.reasons) e WHERE e ->> 'type' IN ('forwarded', 'mailing_list', 'trusted_forwarder')),
       sum(rr.count), count(DISTINCT rr.report_id)
FROM report_records rr
JOIN reports r ON r.id = rr.report_id
LEFT JOIN LATERAL (
    SELECT e ->> 'domain' AS domain, e ->> 'result' AS result
    FROM json_array_elements(rr.spf_results) e
    ORDER BY coalesce(e ->> 'scope', '') = 'helo'
    LIMIT 1
) spf ON true
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;

INSERT INTO report_sources (domain_id, day, source_ip, reporter, header_from, spf_domain, disposition,
                            spf_pass, dkim_pass, spf_aligned, dkim_aligned, forwarded, messages, reports)
SELECT o.domain_id, o.day, o.source_ip, '', o.header_from, '', o.disposition,
       o.spf_aligned, o.dkim_aligned, o.spf_aligned, o.dkim_aligned, false, o.messages, o.reports
FROM report_rollups o
WHERE NOT EXISTS (SELECT 1 FROM report_records rr WHERE rr.domain_id = o.domain_id AND rr.day = o.day);

INSERT INTO report_source_dkim (domain_id, day, source_ip, dkim_domain, selector, result, messages, reports)
SELECT rr.domain_id, rr.day, rr.source_ip, lower(coalesce(s ->> 'domain', '')), lower(coalesce(s ->> 'selector', '')),
       coalesce(s ->> 'result', ''), sum(rr.count), count(DISTINCT rr.report_id)
FROM report_records rr, json_array_elements(rr.dkim_results) s
WHERE rr.dkim_results IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6;

-- +goose StatementBegin
CREATE FUNCTION report_sources_domains_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_sources r USING deleted_domains d WHERE r.domain_id = d.id;
    DELETE FROM report_source_dkim r USING deleted_domains d WHERE r.domain_id = d.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER report_sources_domains_deleted AFTER DELETE ON domains
    REFERENCING OLD TABLE AS deleted_domains
    FOR EACH STATEMENT EXECUTE FUNCTION report_sources_domains_deleted();

DROP TRIGGER report_rollups_domains_deleted ON domains;
DROP FUNCTION report_rollups_domains_deleted();
DROP TABLE report_rollups;

-- +goose Down
CREATE TABLE report_rollups (
    domain_id    uuid NOT NULL,
    day          date NOT NULL,
    source_ip    inet NOT NULL,
    header_from  text NOT NULL,
    disposition  text NOT NULL,
    spf_aligned  boolean NOT NULL,
    dkim_aligned boolean NOT NULL,
    messages     bigint NOT NULL,
    reports      integer NOT NULL,
    PRIMARY KEY (domain_id, day, source_ip, header_from, disposition, spf_aligned, dkim_aligned)
);
INSERT INTO report_rollups (domain_id, day, source_ip, header_from, disposition, spf_aligned, dkim_aligned, messages, reports)
SELECT domain_id, day, source_ip, header_from, disposition, spf_aligned, dkim_aligned, sum(messages), max(reports)
FROM report_sources GROUP BY 1, 2, 3, 4, 5, 6, 7;
-- +goose StatementBegin
CREATE FUNCTION report_rollups_domains_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_rollups r USING deleted_domains d WHERE r.domain_id = d.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER report_rollups_domains_deleted AFTER DELETE ON domains
    REFERENCING OLD TABLE AS deleted_domains
    FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_domains_deleted();
DROP TRIGGER report_sources_domains_deleted ON domains;
DROP FUNCTION report_sources_domains_deleted();
DROP TABLE report_source_dkim;
DROP TABLE report_sources;
ALTER TABLE report_records
    DROP COLUMN spf_domain, DROP COLUMN spf_pass, DROP COLUMN dkim_pass,
    DROP COLUMN forwarded, DROP COLUMN dkim_sigs;
