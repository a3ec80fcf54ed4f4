-- Enrichment of report sources (issue 10): what the reverse DNS and the
-- operator's MaxMind-format files say about each source IP, cached with an
-- expiry (internal/enrich).

-- +goose Up
-- One row per source IP seen in a stored report. The row is created when
-- the report's sources are queued (due at once) and filled by a lookup;
-- expires_at is when it is due again.
CREATE TABLE ip_enrichment (
    ip            inet PRIMARY KEY,
    -- The last reverse lookup's outcome: found (a PTR name), none (NXDOMAIN
    -- or no PTR record) or failed (no answer; error says why); NULL until
    -- looked up, or when no resolver is configured.
    outcome       text CHECK (outcome IN ('found', 'none', 'failed')),
    -- The forward-confirmed PTR name, or else the first one; lower case,
    -- no trailing dot. A failed lookup keeps the last name found.
    ptr           text,
    ptr_confirmed boolean NOT NULL DEFAULT false,
    -- From the operator's MaxMind-format files; NULL when not configured
    -- or not listed there.
    asn           bigint,
    as_org        text,
    -- ISO 3166-1 alpha-2.
    country       text,
    -- The latest report day the IP was a source on; an IP not seen within
    -- the refresh window is not looked up again (expires_at 'infinity')
    -- until it is seen again.
    last_seen     date NOT NULL,
    looked_up_at  timestamptz,
    expires_at    timestamptz NOT NULL,
    -- Consecutive failed lookups: the backoff of the next.
    failures      integer NOT NULL DEFAULT 0,
    error         text
);
CREATE INDEX ip_enrichment_due_idx ON ip_enrichment (expires_at);

-- Whether the report's source IPs were queued for enrichment. New reports
-- are not; the partial index finds them without reading the others.
ALTER TABLE reports ADD COLUMN sources_queued boolean NOT NULL DEFAULT false;
-- Reports older than the refresh window (30 days) are not enriched.
UPDATE reports SET sources_queued = true WHERE day < current_date - 30;
CREATE INDEX reports_sources_pending_idx ON reports (stored_at) WHERE NOT sources_queued;

-- +goose Down
DROP INDEX reports_sources_pending_idx;
ALTER TABLE reports DROP COLUMN sources_queued;
DROP TABLE ip_enrichment;
