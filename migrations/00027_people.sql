-- Accounts and people (internal/account, internal/auth): invitations by
-- e-mail, password resets by e-mailed token, and sessions that can be
-- listed, revoked one by one and that end at an absolute lifetime.

-- +goose Up

-- An invitation to join an account. The token is e-mailed to the address
-- and stored only as its SHA-256 hash; resending replaces the hash, so the
-- old token is dead. Accepting or revoking ends it.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email       text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    role        text NOT NULL CHECK (role IN ('owner', 'member')),
    token_hash  bytea NOT NULL UNIQUE,
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    sent_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  timestamptz
);
-- One open invitation per address and account.
CREATE UNIQUE INDEX invitations_open_idx ON invitations (account_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

-- A password reset token, e-mailed and stored as its SHA-256 hash; usable
-- once, within its lifetime.
CREATE TABLE password_resets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);

-- A session (refresh token family) remembers when it started, for its
-- absolute lifetime, and which client started it, for the list of
-- sessions. Every row of a family carries the same values.
ALTER TABLE refresh_tokens ADD COLUMN session_started_at timestamptz;
ALTER TABLE refresh_tokens ADD COLUMN client text NOT NULL DEFAULT ''
    CHECK (length(client) <= 300);
UPDATE refresh_tokens rt SET session_started_at = f.started
FROM (SELECT family_id, min(created_at) AS started FROM refresh_tokens GROUP BY family_id) f
WHERE f.family_id = rt.family_id;
ALTER TABLE refresh_tokens ALTER COLUMN session_started_at SET NOT NULL;
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id, family_id);

-- Throttled actions besides logins (password reset requests, sign-ups) are
-- counted in the same table, each purpose in buckets of its own.
ALTER TABLE login_failures ADD COLUMN purpose text NOT NULL DEFAULT 'login'
    CHECK (purpose IN ('login', 'reset', 'signup'));

-- +goose Down
ALTER TABLE login_failures DROP COLUMN purpose;
DROP INDEX refresh_tokens_user_idx;
ALTER TABLE refresh_tokens DROP COLUMN client;
ALTER TABLE refresh_tokens DROP COLUMN session_started_at;
DROP TABLE password_resets;
DROP TABLE invitations;
