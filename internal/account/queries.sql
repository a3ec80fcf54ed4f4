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

-- name: MemberRole :one
SELECT role FROM account_members WHERE account_id = @account_id AND user_id = @user_id;

-- name: LockOwners :many
-- Locks the owner rows of an account, so that two changes that each leave
-- one owner cannot both pass the last-owner check: the second waits, and
-- then sees the first's change.
SELECT user_id FROM account_members
WHERE account_id = @account_id AND role = 'owner'
ORDER BY user_id
FOR UPDATE;

-- name: SetMemberRole :execrows
UPDATE account_members SET role = @role WHERE account_id = @account_id AND user_id = @user_id;

-- name: RemoveMember :execrows
DELETE FROM account_members WHERE account_id = @account_id AND user_id = @user_id;

-- name: JoinAccount :exec
-- Adds a member; an existing membership keeps its role.
INSERT INTO account_members (account_id, user_id, role) VALUES (@account_id, @user_id, @role)
ON CONFLICT (account_id, user_id) DO NOTHING;

-- name: MemberByEmail :one
SELECT u.id FROM account_members m JOIN users u ON u.id = m.user_id
WHERE m.account_id = @account_id AND u.email = @email;

-- name: UserByEmail :one
SELECT id, email, name, created_at FROM users WHERE email = @email;

-- name: RevokeExpiredInvitations :exec
UPDATE invitations SET revoked_at = @now
WHERE account_id = @account_id AND email = @email
  AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= @now;

-- name: CreateInvitation :one
INSERT INTO invitations (account_id, email, role, token_hash, invited_by, created_at, sent_at, expires_at)
VALUES (@account_id, @email, @role, @token_hash, @invited_by, @now, @now, @expires_at)
RETURNING id, account_id, email, role, invited_by, created_at, sent_at, expires_at, accepted_at, revoked_at;

-- name: OpenInvitations :many
SELECT id, account_id, email, role, invited_by, created_at, sent_at, expires_at, accepted_at, revoked_at
FROM invitations
WHERE account_id = @account_id AND accepted_at IS NULL AND revoked_at IS NULL
ORDER BY created_at DESC, id;

-- name: ResendInvitation :one
-- A new token and lifetime for an open invitation; the old token's hash is
-- gone, so the old token is dead.
UPDATE invitations SET token_hash = @token_hash, sent_at = @now, expires_at = @expires_at
WHERE id = @id AND account_id = @account_id AND accepted_at IS NULL AND revoked_at IS NULL
RETURNING id, account_id, email, role, invited_by, created_at, sent_at, expires_at, accepted_at, revoked_at;

-- name: RevokeInvitation :one
UPDATE invitations SET revoked_at = coalesce(revoked_at, @now)
WHERE id = @id AND account_id = @account_id AND accepted_at IS NULL
RETURNING id, account_id, email, role, invited_by, created_at, sent_at, expires_at, accepted_at, revoked_at;

-- name: InvitationByHashForUpdate :one
SELECT i.id, i.account_id, i.email, i.role, i.token_hash, i.expires_at, i.accepted_at, i.revoked_at, a.name AS account_name
FROM invitations i JOIN accounts a ON a.id = i.account_id
WHERE i.token_hash = @token_hash
FOR UPDATE OF i;

-- name: MarkInvitationAccepted :exec
UPDATE invitations SET accepted_at = @now, accepted_by = @user_id WHERE id = @id;

-- name: UserNameEmail :one
SELECT name, email FROM users WHERE id = @id;
