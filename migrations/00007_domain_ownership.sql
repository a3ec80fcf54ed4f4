-- Domain ownership. A row of domains is an account's claim on a name. A
-- claim is served by the edge and receives reports only once the account
-- has proven it controls the name (verified_at): a TXT record
-- "rampart-verify=<the account's token>" at _rampart.<name>, or the
-- operator's `rampart admin verify-domain`. Several accounts may claim a
-- name; at most one claim is verified, and verifying displaces the others.
-- An unverified claim expires (claim_expires_at).

-- +goose Up

-- Each account's proof token, made when first asked for. One TXT record
-- with it proves every claim of the account on that name.
CREATE TABLE domain_proof_tokens (
    account_id uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    token      text NOT NULL UNIQUE
        DEFAULT replace(gen_random_uuid()::text, '-', '')
        CHECK (token ~ '^[0-9a-z]{16,64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE domains
    -- NULL: an unverified claim, which the edge does not serve.
    ADD COLUMN verified_at      timestamptz,
    -- dns (the proof record), operator (rampart admin verify-domain) or
    -- migration (hosted before proofs existed).
    ADD COLUMN verified_how     text CHECK (verified_how IN ('dns', 'operator', 'migration')),
    -- When an unverified claim is deleted unless verified first.
    ADD COLUMN claim_expires_at timestamptz DEFAULT now() + interval '7 days',
    -- When another account's verification took the name from this claim.
    ADD COLUMN displaced_at     timestamptz,
    -- The proof checks of an unverified claim: when the job checks next,
    -- how many checks failed (the backoff), and what the last one found.
    ADD COLUMN check_next_at    timestamptz DEFAULT now() + interval '1 minute',
    ADD COLUMN check_attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN checked_at       timestamptz,
    ADD COLUMN check_result     text NOT NULL DEFAULT '';

-- Everything hosted before ownership proofs existed stays served.
UPDATE domains SET verified_at = created_at, verified_how = 'migration',
    claim_expires_at = NULL, check_next_at = NULL;

ALTER TABLE domains
    ADD CONSTRAINT domains_verified_check CHECK ((verified_at IS NULL) = (verified_how IS NULL)
        AND (verified_at IS NULL) = (claim_expires_at IS NOT NULL)),
    DROP CONSTRAINT domains_name_key;
-- One claim per account and name; one verified claim per name.
DROP INDEX domains_account_name_idx;
ALTER TABLE domains ADD CONSTRAINT domains_account_name_key UNIQUE (account_id, name);
CREATE UNIQUE INDEX domains_verified_name_key ON domains (name) WHERE verified_at IS NOT NULL;
CREATE INDEX domains_name_idx ON domains (name);
CREATE INDEX domains_claims_due_idx ON domains (check_next_at) WHERE verified_at IS NULL;
CREATE INDEX domains_claims_expiry_idx ON domains (claim_expires_at) WHERE verified_at IS NULL;

-- The report dedupe key gains the domain: a report stored for one
-- account's domain can never make another domain's copy a duplicate (a
-- forged upload for a name hosted elsewhere would otherwise swallow the
-- real owner's report).
ALTER TABLE reports
    DROP CONSTRAINT reports_org_name_report_id_policy_domain_begin_at_end_at_key,
    ADD CONSTRAINT reports_dedupe_key UNIQUE (domain_id, org_name, report_id, policy_domain, begin_at, end_at);

-- +goose Down
-- Unverified claims and reports that only the domain told apart cannot be
-- kept under the old keys.
ALTER TABLE reports DROP CONSTRAINT reports_dedupe_key;
DELETE FROM reports r USING reports o
WHERE r.org_name = o.org_name AND r.report_id = o.report_id AND r.policy_domain = o.policy_domain
  AND r.begin_at = o.begin_at AND r.end_at = o.end_at AND (r.stored_at, r.id) > (o.stored_at, o.id);
ALTER TABLE reports ADD CONSTRAINT reports_org_name_report_id_policy_domain_begin_at_end_at_key
    UNIQUE (org_name, report_id, policy_domain, begin_at, end_at);
DELETE FROM domains WHERE verified_at IS NULL;
DROP INDEX domains_claims_expiry_idx;
DROP INDEX domains_claims_due_idx;
DROP INDEX domains_name_idx;
DROP INDEX domains_verified_name_key;
ALTER TABLE domains DROP CONSTRAINT domains_account_name_key;
CREATE INDEX domains_account_name_idx ON domains (account_id, name);
ALTER TABLE domains
    ADD CONSTRAINT domains_name_key UNIQUE (name),
    DROP CONSTRAINT domains_verified_check,
    DROP COLUMN verified_at, DROP COLUMN verified_how, DROP COLUMN claim_expires_at,
    DROP COLUMN displaced_at, DROP COLUMN check_next_at, DROP COLUMN check_attempts,
    DROP COLUMN checked_at, DROP COLUMN check_result;
DROP TABLE domain_proof_tokens;
