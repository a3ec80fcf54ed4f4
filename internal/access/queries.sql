-- name: Grant :one
-- The principal's standing in one account: its own role there, and whether it
-- owns the account's parent (an MSP owner acts in customer accounts). When a
-- domain is named it must be the account's, or there is no row.
SELECT
    a.id,
    coalesce((SELECT m.role FROM account_members m
              WHERE m.account_id = a.id AND m.user_id = sqlc.arg(user_id)::uuid), '')::text AS role,
    EXISTS (SELECT 1 FROM account_members m
            WHERE m.account_id = a.parent_id AND m.user_id = sqlc.arg(user_id)::uuid AND m.role = 'owner') AS parent_owner,
    coalesce(a.id = sqlc.arg(token_account)::uuid OR a.parent_id = sqlc.arg(token_account)::uuid, false)::bool AS token_scope
FROM accounts a
WHERE a.id = sqlc.arg(account_id)::uuid
  AND (sqlc.narg(domain_id)::uuid IS NULL
       OR EXISTS (SELECT 1 FROM domains d WHERE d.id = sqlc.narg(domain_id)::uuid AND d.account_id = a.id));

-- name: Grants :many
-- Every account in which the principal has some standing, with that standing.
SELECT
    a.id,
    coalesce(m.role, '')::text AS role,
    (pm.role IS NOT DISTINCT FROM 'owner') AS parent_owner,
    coalesce(a.id = sqlc.arg(token_account)::uuid OR a.parent_id = sqlc.arg(token_account)::uuid, false)::bool AS token_scope
FROM accounts a
LEFT JOIN account_members m ON m.account_id = a.id AND m.user_id = sqlc.arg(user_id)::uuid
LEFT JOIN account_members pm ON pm.account_id = a.parent_id AND pm.user_id = sqlc.arg(user_id)::uuid
WHERE m.user_id IS NOT NULL
   OR pm.role = 'owner'
   OR a.id = sqlc.arg(token_account)::uuid
   OR a.parent_id = sqlc.arg(token_account)::uuid
ORDER BY a.name, a.id;

-- name: IsOperator :one
-- Whether the user holds the instance operator role.
SELECT EXISTS (SELECT 1 FROM instance_operators WHERE user_id = @user_id)::bool AS operator;

-- name: UserByEmail :one
SELECT id, email FROM users WHERE email = lower(@email::text);

-- name: GrantOperator :exec
INSERT INTO instance_operators (user_id) VALUES (@user_id) ON CONFLICT DO NOTHING;

-- name: RevokeOperator :execrows
DELETE FROM instance_operators WHERE user_id = @user_id;
