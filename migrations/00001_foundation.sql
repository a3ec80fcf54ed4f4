-- Accounts, users, sessions, API tokens, domains with their DMARC policy,
-- and the edge contract tables that dnsedge reads.

-- +goose Up
CREATE TABLE accounts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- An MSP account is the parent of its customer accounts; a parent's
    -- owners act in its child accounts.
    parent_id  uuid REFERENCES accounts (id) ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);
CREATE INDEX accounts_parent_idx ON accounts (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

CREATE TABLE account_members (
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX account_members_user_idx ON account_members (user_id);

-- Refresh tokens rotate on every use. All tokens issued from one login share
-- a family; presenting a token that was already used revokes the family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The first characters of the secret, kept to help an owner tell tokens apart.
    hint         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_account_idx ON api_tokens (account_id);

-- Failed logins, counted per e-mail address and per client address to
-- throttle password guessing across every API replica.
CREATE TABLE login_failures (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL,
    client     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email_idx ON login_failures (email, created_at);
CREATE INDEX login_failures_client_idx ON login_failures (client, created_at);
CREATE INDEX login_failures_created_idx ON login_failures (created_at);

CREATE TABLE domains (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- ASCII (A-label) form, lower case, no trailing dot.
    name        text NOT NULL UNIQUE CHECK (name = lower(name)),
    mode        text NOT NULL DEFAULT 'sending' CHECK (mode IN ('sending', 'blocked')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The DMARC policy the owner set. NULL means "not set" (the tag is
    -- omitted and receivers apply the RFC default).
    dmarc_p     text NOT NULL DEFAULT 'none' CHECK (dmarc_p IN ('none', 'quarantine', 'reject')),
    dmarc_sp    text CHECK (dmarc_sp IN ('none', 'quarantine', 'reject')),
    dmarc_np    text CHECK (dmarc_np IN ('none', 'quarantine', 'reject')),
    dmarc_pct   integer NOT NULL DEFAULT 100 CHECK (dmarc_pct BETWEEN 0 AND 100),
    dmarc_adkim text NOT NULL DEFAULT 'r' CHECK (dmarc_adkim IN ('r', 's')),
    dmarc_aspf  text NOT NULL DEFAULT 'r' CHECK (dmarc_aspf IN ('r', 's')),
    dmarc_rua   text[] NOT NULL DEFAULT '{}',
    dmarc_ruf   text[] NOT NULL DEFAULT '{}',
    dmarc_fo    text,
    dmarc_t     boolean
);
CREATE INDEX domains_account_name_idx ON domains (account_id, name);

-- The edge contract. The API compiles each hosted domain into one row in the
-- same transaction as the change and sends NOTIFY rampart_edge with the new
-- serial. dnsedge reads only these tables. A removed domain stays as a
-- tombstone (deleted = true) so that edges following by serial learn of it.
CREATE SEQUENCE edge_serial_seq;

CREATE TABLE edge_domain (
    name       text PRIMARY KEY,
    serial     bigint NOT NULL,
    mode       text NOT NULL CHECK (mode IN ('sending', 'blocked')),
    -- The TXT value served at _dmarc.<name>.
    dmarc      text NOT NULL DEFAULT '',
    deleted    boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX edge_domain_serial_idx ON edge_domain (serial);

-- +goose Down
DROP TABLE edge_domain;
DROP SEQUENCE edge_serial_seq;
DROP TABLE domains;
DROP TABLE login_failures;
DROP TABLE api_tokens;
DROP TABLE refresh_tokens;
DROP TABLE account_members;
DROP TABLE users;
DROP TABLE accounts;
