-- name: Standing :one
-- The principal's standing in one account (a user: user_id, token_id nil; a
-- token: token_id, user_id nil). owner: it owns the account or an ancestor at
-- most max_depth levels up, or is an owner-level token scoped to one of them.
-- member: the user's membership. granted: a team grant or the token's scope
-- names the account. account_level: the highest level granted on every
-- domain of the account; domain_level: the highest granted on the named
-- domain. No row when the account does not exist or the domain is not its.
-- Suspension: an account that is suspended, or below a suspended one
-- (blocked), gives nothing to a principal standing there through it: an
-- ownership, membership, team or token of a blocked account counts for
-- nothing; those of the accounts above the suspended one count as ever.
-- suspended: the account is blocked and the principal stood in it through
-- a blocked account (so it is refused as suspended, not as a stranger).
WITH RECURSIVE up (id, parent_id, dist) AS (
    SELECT a.id, a.parent_id, 0 FROM accounts a WHERE a.id = @account_id::uuid
    UNION ALL
    SELECT p.id, p.parent_id, up.dist + 1 FROM accounts p JOIN up ON p.id = up.parent_id
    WHERE up.dist < @max_depth::int
),
blocked (id, dist) AS (
    SELECT s.id, 0 FROM accounts s WHERE s.suspended_at IS NOT NULL
    UNION ALL
    SELECT c.id, b.dist + 1 FROM accounts c JOIN blocked b ON c.parent_id = b.id
    WHERE b.dist < @max_depth::int
),
grants AS (
    SELECT g.level, g.domain_set, g.domain_ids, g.label FROM team_grants g
    JOIN team_members tm ON tm.team_id = g.team_id
    JOIN teams tt ON tt.id = g.team_id
    WHERE g.account_id = @account_id::uuid AND tm.user_id = @user_id::uuid
      AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = tt.account_id)
    UNION ALL
    SELECT t.level, t.domain_set, t.domain_ids, t.label FROM api_tokens t
    WHERE t.id = @token_id::uuid AND t.account_id = @account_id::uuid AND t.level < 5
      AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = t.account_id)
),
dom AS (
    SELECT d.id, d.labels FROM domains d
    WHERE d.id = sqlc.narg(domain_id)::uuid AND d.account_id = @account_id::uuid
)
SELECT
    a.id,
    (EXISTS (SELECT 1 FROM account_members m JOIN up ON m.account_id = up.id
             WHERE m.user_id = @user_id::uuid AND m.role = 'owner'
               AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = m.account_id))
     OR EXISTS (SELECT 1 FROM api_tokens t JOIN up ON t.account_id = up.id
                WHERE t.id = @token_id::uuid AND t.level = 5
                  AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = t.account_id)))::bool AS owner,
    EXISTS (SELECT 1 FROM account_members m
            WHERE m.account_id = a.id AND m.user_id = @user_id::uuid
              AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = a.id))::bool AS member,
    EXISTS (SELECT 1 FROM grants)::bool AS granted,
    coalesce((SELECT max(g.level) FROM grants g WHERE g.domain_set = 'all'), 0)::int AS account_level,
    coalesce((SELECT max(g.level) FROM grants g, dom
              WHERE g.domain_set = 'all'
                 OR (g.domain_set = 'named' AND dom.id = ANY(g.domain_ids))
                 OR (g.domain_set = 'label' AND g.label = ANY(dom.labels))), 0)::int AS domain_level,
    (EXISTS (SELECT 1 FROM account_members m JOIN up ON m.account_id = up.id JOIN blocked b ON b.id = up.id
             WHERE m.user_id = @user_id::uuid)
     OR EXISTS (SELECT 1 FROM api_tokens t JOIN up ON t.account_id = up.id JOIN blocked b ON b.id = up.id
                WHERE t.id = @token_id::uuid))::bool AS suspended
FROM accounts a
WHERE a.id = @account_id::uuid
  AND (sqlc.narg(domain_id)::uuid IS NULL OR EXISTS (SELECT 1 FROM dom));

-- name: Reach :many
-- Everywhere the principal stands, one row per fact: an account it owns
-- (level 5; directly, through an ancestor at most max_depth levels up, or as
-- an owner-level token), an account it is a member of (level 0), a grant on
-- every domain of an account (domain_id null), a grant expanded to each
-- domain it covers, and a row of level 0 for every grant (a grant covering no
-- domain yet still gives standing in its account). As in Standing, an
-- ownership, membership, team or token of a suspended account (or one below
-- a suspended account) counts for nothing; an owner above a suspended
-- account reaches it and below it as ever.
WITH RECURSIVE blocked (id, dist) AS (
    SELECT s.id, 0 FROM accounts s WHERE s.suspended_at IS NOT NULL
    UNION ALL
    SELECT c.id, b.dist + 1 FROM accounts c JOIN blocked b ON c.parent_id = b.id
    WHERE b.dist < @max_depth::int
),
owned (id, dist) AS (
    SELECT s.id, 0 FROM (
        SELECT m.account_id AS id FROM account_members m
        WHERE m.user_id = @user_id::uuid AND m.role = 'owner'
        UNION
        SELECT t.account_id FROM api_tokens t WHERE t.id = @token_id::uuid AND t.level = 5
    ) s
    WHERE NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = s.id)
    UNION ALL
    SELECT c.id, o.dist + 1 FROM accounts c JOIN owned o ON c.parent_id = o.id
    WHERE o.dist < @max_depth::int
),
grants AS (
    SELECT g.account_id, g.level, g.domain_set, g.domain_ids, g.label FROM team_grants g
    JOIN team_members tm ON tm.team_id = g.team_id
    JOIN teams tt ON tt.id = g.team_id
    WHERE tm.user_id = @user_id::uuid
      AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = tt.account_id)
    UNION ALL
    SELECT t.account_id, t.level, t.domain_set, t.domain_ids, t.label FROM api_tokens t
    WHERE t.id = @token_id::uuid AND t.level < 5
      AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = t.account_id)
)
SELECT o.id AS account_id, NULL::uuid AS domain_id, 5::int AS level FROM owned o
UNION ALL
SELECT m.account_id, NULL::uuid, 0::int FROM account_members m WHERE m.user_id = @user_id::uuid
    AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = m.account_id)
UNION ALL
SELECT g.account_id, NULL::uuid, CASE WHEN g.domain_set = 'all' THEN g.level ELSE 0 END::int FROM grants g
UNION ALL
SELECT d.account_id, d.id, g.level::int FROM grants g
JOIN domains d ON d.account_id = g.account_id
WHERE (g.domain_set = 'named' AND d.id = ANY(g.domain_ids))
   OR (g.domain_set = 'label' AND g.label = ANY(d.labels));

-- name: IsOperator :one
-- Whether the user holds the instance operator role.
SELECT EXISTS (SELECT 1 FROM instance_operators WHERE user_id = @user_id)::bool AS operator;

-- name: UserByEmail :one
SELECT id, email FROM users WHERE email = lower(@email::text);

-- name: GrantOperator :exec
INSERT INTO instance_operators (user_id) VALUES (@user_id) ON CONFLICT DO NOTHING;

-- name: RevokeOperator :execrows
DELETE FROM instance_operators WHERE user_id = @user_id;

-- name: AccountDepth :one
-- How many ancestors the account has (0 for a top-level account), counting
-- at most max_depth + 1 so that a cycle made by hand cannot loop.
WITH RECURSIVE up (id, parent_id, dist) AS (
    SELECT a.id, a.parent_id, 0 FROM accounts a WHERE a.id = @account_id::uuid
    UNION ALL
    SELECT p.id, p.parent_id, up.dist + 1 FROM accounts p JOIN up ON p.id = up.parent_id
    WHERE up.dist <= @max_depth::int
)
SELECT coalesce(max(dist), 0)::int AS depth FROM up;

-- name: IsWithin :one
-- Whether account is ancestor itself or below it, at most max_depth levels.
WITH RECURSIVE up (id, parent_id, dist) AS (
    SELECT a.id, a.parent_id, 0 FROM accounts a WHERE a.id = @account_id::uuid
    UNION ALL
    SELECT p.id, p.parent_id, up.dist + 1 FROM accounts p JOIN up ON p.id = up.parent_id
    WHERE up.dist < @max_depth::int
)
SELECT EXISTS (SELECT 1 FROM up WHERE up.id = @ancestor_id::uuid)::bool AS within;

-- name: CreateTeam :one
INSERT INTO teams (account_id, name) VALUES (@account_id, @name)
ON CONFLICT (account_id, name) DO NOTHING
RETURNING *;

-- name: TeamByID :one
SELECT * FROM teams WHERE id = @id;

-- name: TeamsOfAccount :many
SELECT * FROM teams WHERE account_id = @account_id ORDER BY name, id;

-- name: RenameTeam :one
UPDATE teams SET name = @name WHERE id = @id RETURNING *;

-- name: DeleteTeam :execrows
DELETE FROM teams WHERE id = @id;

-- name: AddTeamMember :exec
INSERT INTO team_members (team_id, account_id, user_id) VALUES (@team_id, @account_id, @user_id)
ON CONFLICT (team_id, user_id) DO NOTHING;

-- name: RemoveTeamMember :execrows
DELETE FROM team_members WHERE team_id = @team_id AND user_id = @user_id;

-- name: TeamMembers :many
SELECT u.id, u.email, u.name, u.created_at FROM team_members tm JOIN users u ON u.id = tm.user_id
WHERE tm.team_id = @team_id ORDER BY u.email;

-- name: InsertTeamGrant :one
INSERT INTO team_grants (team_id, account_id, level, domain_set, domain_ids, label)
VALUES (@team_id, @account_id, @level, @domain_set, @domain_ids::uuid[], sqlc.narg(label))
RETURNING *;

-- name: DeleteTeamGrant :execrows
DELETE FROM team_grants WHERE id = @id AND team_id = @team_id;

-- name: TeamGrants :many
SELECT * FROM team_grants WHERE team_id = @team_id ORDER BY created_at, id;

-- name: UserTeamGrants :many
-- The grants of every team the user is on, with the team, for the viewer.
SELECT g.*, t.name AS team_name FROM team_grants g
JOIN team_members tm ON tm.team_id = g.team_id
JOIN teams t ON t.id = g.team_id
WHERE tm.user_id = @user_id
ORDER BY t.name, g.created_at, g.id;

-- name: DomainIDsByName :many
-- The ids of the named domains (stored form) of an account.
SELECT id, name FROM domains WHERE account_id = @account_id AND name = ANY(@names::text[]) ORDER BY name;

-- name: DomainNames :many
SELECT id, name FROM domains WHERE account_id = @account_id AND id = ANY(@ids::uuid[]) ORDER BY name;

-- name: TokenScope :one
SELECT account_id, level, domain_set, domain_ids, label FROM api_tokens WHERE id = @id;

-- name: OwnedAccounts :many
SELECT m.account_id FROM account_members m JOIN accounts a ON a.id = m.account_id
WHERE m.user_id = @user_id AND m.role = 'owner' ORDER BY a.name, a.id;
