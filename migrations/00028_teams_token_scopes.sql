-- Who may do what below the owners: domain labels, teams with per-domain
-- grants, and scoped API tokens. A grant or a token scope names an account,
-- a domain set (every domain of it, named domains, or the domains carrying a
-- label) and a level; the levels are numbered so that a higher one holds
-- everything a lower one does (internal/access defines what each holds):
-- 1 read, 2 manage senders, 3 manage policy, 4 admin, and for tokens only
-- 5 owner (every permission, in the account and its customer accounts).

-- +goose Up
ALTER TABLE domains ADD COLUMN labels text[] NOT NULL DEFAULT '{}';
CREATE INDEX domains_labels_idx ON domains USING gin (labels);

CREATE TABLE teams (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name),
    UNIQUE (id, account_id)
);

-- A team's members are members of the team's account: removing someone from
-- the account removes them from its teams.
CREATE TABLE team_members (
    team_id    uuid NOT NULL,
    account_id uuid NOT NULL,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id),
    FOREIGN KEY (team_id, account_id) REFERENCES teams (id, account_id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, user_id) REFERENCES account_members (account_id, user_id) ON DELETE CASCADE
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

-- A grant's account is the team's own or one of its customer accounts (at
-- any depth); the service checks that when granting.
CREATE TABLE team_grants (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id    uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    level      smallint NOT NULL CHECK (level BETWEEN 1 AND 4),
    domain_set text NOT NULL CHECK (domain_set IN ('all', 'named', 'label')),
    domain_ids uuid[] NOT NULL DEFAULT '{}',
    label      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((domain_set = 'label') = (label IS NOT NULL)),
    CHECK (domain_set = 'named' OR cardinality(domain_ids) = 0)
);
CREATE INDEX team_grants_team_idx ON team_grants (team_id);
CREATE INDEX team_grants_account_idx ON team_grants (account_id);

-- A token's scope: it acts in its account (account_id: the account it was
-- made in, the creator's own or a customer account below it) with its level
-- on its domain set. Tokens made before scopes keep acting as an owner of
-- their account and its customer accounts (level 5, every domain), but no
-- longer mint tokens (can_create_tokens is false).
ALTER TABLE api_tokens
    ADD COLUMN level             smallint NOT NULL DEFAULT 5 CHECK (level BETWEEN 1 AND 5),
    ADD COLUMN read_only         boolean NOT NULL DEFAULT false,
    ADD COLUMN domain_set        text NOT NULL DEFAULT 'all' CHECK (domain_set IN ('all', 'named', 'label')),
    ADD COLUMN domain_ids        uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN label             text,
    ADD COLUMN can_create_tokens boolean NOT NULL DEFAULT false,
    ADD COLUMN expires_at        timestamptz,
    -- The token that created this one (created_by is the user, when a user did).
    ADD COLUMN created_by_token  uuid REFERENCES api_tokens (id) ON DELETE SET NULL,
    ADD CHECK ((domain_set = 'label') = (label IS NOT NULL)),
    ADD CHECK (domain_set = 'named' OR cardinality(domain_ids) = 0),
    ADD CHECK (level < 5 OR domain_set = 'all'),
    ADD CHECK (NOT read_only OR level = 1);
CREATE INDEX api_tokens_created_by_token_idx ON api_tokens (created_by_token) WHERE created_by_token IS NOT NULL;

-- +goose Down
DROP INDEX api_tokens_created_by_token_idx;
ALTER TABLE api_tokens
    DROP COLUMN created_by_token,
    DROP COLUMN expires_at,
    DROP COLUMN can_create_tokens,
    DROP COLUMN label,
    DROP COLUMN domain_ids,
    DROP COLUMN domain_set,
    DROP COLUMN read_only,
    DROP COLUMN level;
DROP TABLE team_grants;
DROP TABLE team_members;
DROP TABLE teams;
DROP INDEX domains_labels_idx;
ALTER TABLE domains DROP COLUMN labels;
