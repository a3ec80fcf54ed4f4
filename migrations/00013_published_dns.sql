-- What Rampart last saw of a domain's own DNS: the SPF record at the apex
-- (classified against the form Rampart asks for, internal/domain
-- ClassifySPF) and whether _dmarc and _domainkey point at the edge. A
-- periodic job (domain.check_published) looks again about hourly, sooner
-- after a lookup that got no answer; checkDnsSetup looks at once.

-- +goose Up
ALTER TABLE domains
    -- unknown until a lookup of the apex TXT records got an answer.
    ADD COLUMN spf_published        text NOT NULL DEFAULT 'unknown'
        CHECK (spf_published IN ('unknown', 'current', 'legacy', 'other', 'missing', 'multiple')),
    -- The SPF record seen (the first, when there were several); NULL when
    -- none was seen.
    ADD COLUMN spf_published_record text,
    -- NULL: not known (never looked up, or no answer yet).
    ADD COLUMN dmarc_delegated      boolean,
    ADD COLUMN dkim_delegated       boolean,
    -- When the last check ran, what it could not look up ('' when every
    -- lookup got an answer; the values above then keep the last answer),
    -- how many checks in a row missed an answer (the backoff) and when the
    -- job checks next.
    ADD COLUMN dns_checked_at       timestamptz,
    ADD COLUMN dns_check_problem    text NOT NULL DEFAULT '',
    ADD COLUMN dns_check_failures   integer NOT NULL DEFAULT 0,
    ADD COLUMN dns_check_next_at    timestamptz NOT NULL DEFAULT now();
CREATE INDEX domains_dns_check_due_idx ON domains (dns_check_next_at) WHERE verified_at IS NOT NULL;

-- +goose Down
DROP INDEX domains_dns_check_due_idx;
ALTER TABLE domains
    DROP COLUMN dns_check_next_at,
    DROP COLUMN dns_check_failures,
    DROP COLUMN dns_check_problem,
    DROP COLUMN dns_checked_at,
    DROP COLUMN dkim_delegated,
    DROP COLUMN dmarc_delegated,
    DROP COLUMN spf_published_record,
    DROP COLUMN spf_published;
