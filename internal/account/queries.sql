-- name: AccountByID :one
SELECT * FROM accounts WHERE id = @id;

-- name: AccountsByIDs :many
SELECT * FROM accounts WHERE id = ANY(@ids::uuid[]) ORDER BY name, id;

-- name: UserByID :one
SELECT id, email, name, created_at FROM users WHERE id = @id;

-- name: CreateAccount :one
INSERT INTO accounts (name, parent_id) VALUES (@name, sqlc.narg(parent_id)) RETURNING *;

-- name: CreateUser :one
INSERT INTO users (email, name, password_hash) VALUES (@email, @name, @password_hash)
ON CONFLICT (email) DO NOTHING
RETURNING id, email, name, created_at;

-- name: UserIDByEmail :one
SELECT id FROM users WHERE email = @email;

-- name: AddMember :exec
INSERT INTO account_members (account_id, user_id, role) VALUES (@account_id, @user_id, @role)
ON CONFLICT (account_id, user_id) DO UPDATE SET role = EXCLUDED.role;

-- name: MembersOfAccount :many
SELECT u.id, u.email, u.name, m.role FROM account_members m JOIN users u ON u.id = m.user_id
WHERE m.account_id = @account_id ORDER BY u.email;
