-- name: GetUserForLogin :one
SELECT id, password_hash, disabled_at
FROM users
WHERE email = @email;

-- name: InsertLoginFailure :one
INSERT INTO login_failures (email, client, created_at)
VALUES (@email, @client, @created_at)
RETURNING id;

-- name: DeleteLoginFailure :exec
DELETE FROM login_failures WHERE id = @id;

-- name: DeleteLoginFailuresForEmail :exec
DELETE FROM login_failures WHERE email = @email;

-- name: NthRecentEmailFailure :one
-- The failure at 0-based position skip among the newest failures for an
-- e-mail address inside the window; no row means fewer than skip+1.
SELECT created_at
FROM login_failures
WHERE email = @email AND created_at > @since
ORDER BY created_at DESC
OFFSET @skip::integer LIMIT 1;

-- name: NthRecentClientFailure :one
SELECT created_at
FROM login_failures
WHERE client = @client AND created_at > @since
ORDER BY created_at DESC
OFFSET @skip::integer LIMIT 1;

-- name: PruneLoginFailures :execrows
DELETE FROM login_failures WHERE created_at < @before;

-- name: InsertRefreshToken :exec
INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at)
VALUES (@id, @family_id, @user_id, @token_hash, @created_at, @expires_at);

-- name: RefreshFamilyByHash :one
SELECT family_id FROM refresh_tokens WHERE token_hash = @token_hash;

-- name: LockRefreshFamily :exec
-- Every change to a family's rows happens under this lock, taken before any
-- row lock, so that a revocation sees every row of the family.
SELECT pg_advisory_xact_lock(@key::bigint);

-- name: GetRefreshTokenForUpdate :one
SELECT rt.id, rt.family_id, rt.user_id, rt.expires_at, rt.used_at, rt.revoked_at,
       u.disabled_at AS user_disabled_at
FROM refresh_tokens rt
JOIN users u ON u.id = rt.user_id
WHERE rt.token_hash = @token_hash
FOR UPDATE OF rt;

-- name: MarkRefreshTokenUsed :exec
UPDATE refresh_tokens SET used_at = @used_at WHERE id = @id;

-- name: RevokeRefreshFamily :execrows
UPDATE refresh_tokens SET revoked_at = @revoked_at
WHERE family_id = @family_id AND revoked_at IS NULL;

-- name: GetSession :one
-- The refresh token issued together with an access token, and its user.
SELECT rt.user_id, rt.family_id, rt.revoked_at, u.disabled_at AS user_disabled_at
FROM refresh_tokens rt
JOIN users u ON u.id = rt.user_id
WHERE rt.id = @id;

-- name: InsertAPIToken :one
INSERT INTO api_tokens (account_id, created_by, name, hint, token_hash, created_at)
VALUES (@account_id, @created_by, @name, @hint, @token_hash, @created_at)
RETURNING id, account_id, created_by, name, hint, created_at, last_used_at, revoked_at;

-- name: GetAPITokenByHash :one
SELECT id, account_id, last_used_at, revoked_at
FROM api_tokens
WHERE token_hash = @token_hash;

-- name: TouchAPIToken :exec
UPDATE api_tokens SET last_used_at = @now
WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @stale_before);

-- name: RevokeAPIToken :one
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, @revoked_at)
WHERE id = @id AND account_id = @account_id
RETURNING id;

-- name: ListAPITokens :many
SELECT id, account_id, created_by, name, hint, created_at, last_used_at, revoked_at
FROM api_tokens
WHERE account_id = @account_id
ORDER BY created_at DESC, id;

-- name: DeleteExpiredDashboardSessions :execrows
DELETE FROM dashboard_sessions WHERE expires_at <= @now;

-- name: InsertDashboardSession :exec
INSERT INTO dashboard_sessions (id_hash, user_id, family_id, created_at, expires_at)
VALUES (@id_hash, @user_id, @family_id, @created_at, @expires_at);

-- name: GetDashboardSession :one
-- A dashboard session with what ends it early: its user disabled, or the
-- login session it was started from revoked (logout, refresh token reuse).
SELECT ds.user_id, ds.family_id, ds.expires_at, u.disabled_at AS user_disabled_at,
    EXISTS (SELECT 1 FROM refresh_tokens rt
            WHERE rt.family_id = ds.family_id AND rt.revoked_at IS NOT NULL)::bool AS family_revoked
FROM dashboard_sessions ds
JOIN users u ON u.id = ds.user_id
WHERE ds.id_hash = @id_hash;

-- name: DeleteDashboardSession :exec
DELETE FROM dashboard_sessions WHERE id_hash = @id_hash;
