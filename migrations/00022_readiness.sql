-- Readiness for enforcement (issue 10): the DMARC pass rate each of a
-- domain's senders must reach before its policy may be tightened, and the
-- record of every tightening, forced or not.

-- +goose Up
-- The DMARC pass rate (percent) a domain's own servers and known services
-- must reach; an enabled service's own threshold overrides it.
ALTER TABLE domains ADD COLUMN readiness_threshold double precision NOT NULL DEFAULT 95
    CHECK (readiness_threshold BETWEEN 50 AND 100);
ALTER TABLE domain_senders ADD COLUMN pass_threshold double precision
    CHECK (pass_threshold BETWEEN 50 AND 100);

-- A change to a domain's DMARC policy that tightened it (p, sp or np to a
-- stricter disposition, or a larger pct): who made it, from what to what,
-- whether readiness allowed it or the caller forced it, and the reasons the
-- verdict gave then.
CREATE TABLE policy_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id    uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    -- The signed-in user, or the API token, that made the change.
    actor_user_id  uuid,
    actor_token_id uuid,
    -- The policies as DMARC tag lists (p=...; sp=...; np=...; pct=...).
    from_policy  text NOT NULL,
    to_policy    text NOT NULL,
    -- The readiness verdict when the change was made.
    verdict      text NOT NULL,
    forced       boolean NOT NULL,
    reasons      jsonb NOT NULL DEFAULT '[]',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX policy_changes_domain_idx ON policy_changes (domain_id, at);

-- +goose Down
DROP TABLE policy_changes;
ALTER TABLE domain_senders DROP COLUMN pass_threshold;
ALTER TABLE domains DROP COLUMN readiness_threshold;
