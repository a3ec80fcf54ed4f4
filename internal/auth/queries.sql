-- name: GetUserForLogin :one
SELECT id, password_hash, disabled_at
FROM users
WHERE email = @email;

-- name: InsertLoginFailure :one
-- known_client is the device id of a valid known-client token, or NULL.
INSERT INTO login_failures (email, client, known_client, created_at, purpose)
VALUES (@email, @client, @known_client, @created_at, @purpose)
RETURNING id;

-- name: DeleteLoginFailure :exec
DELETE FROM login_failures WHERE id = @id;

-- name: DeleteClientLoginFailures :exec
-- Forgets the failures of one unknown client for one address.
DELETE FROM login_failures
WHERE email = @email AND client = @client AND known_client IS NULL AND purpose = 'login';

-- name: DeleteKnownClientLoginFailures :exec
DELETE FROM login_failures WHERE email = @email AND known_client = @known_client AND purpose = 'login';

-- name: PairFailures :one
-- The four throttling buckets (see login.go) each count the failures in the
-- window other than the attempt being decided, and give the newest (the
-- epoch when there is none).
SELECT count(*)::integer AS failures, coalesce(max(created_at), 'epoch')::timestamptz AS newest
FROM login_failures
WHERE email = @email AND client = @client AND known_client IS NULL AND purpose = @purpose
  AND created_at > @since AND id <> @attempt;

-- name: AccountFailures :one
SELECT count(*)::integer AS failures, coalesce(max(created_at), 'epoch')::timestamptz AS newest
FROM login_failures
WHERE email = @email AND known_client IS NULL AND purpose = @purpose
  AND created_at > @since AND id <> @attempt;

-- name: ClientFailures :one
SELECT count(*)::integer AS failures, coalesce(max(created_at), 'epoch')::timestamptz AS newest
FROM login_failures
WHERE client = @client AND known_client IS NULL AND purpose = @purpose
  AND created_at > @since AND id <> @attempt;

-- name: KnownClientFailures :one
SELECT count(*)::integer AS failures, coalesce(max(created_at), 'epoch')::timestamptz AS newest
FROM login_failures
WHERE email = @email AND known_client = @known_client AND purpose = 'login'
  AND created_at > @since AND id <> @attempt;

-- name: PruneLoginFailures :execrows
DELETE FROM login_failures WHERE created_at < @before;

-- name: InsertRefreshToken :exec
INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at, session_started_at, client)
VALUES (@id, @family_id, @user_id, @token_hash, @created_at, @expires_at, @session_started_at, @client);

-- name: RefreshFamilyByHash :one
SELECT family_id FROM refresh_tokens WHERE token_hash = @token_hash;

-- name: LockRefreshFamily :exec
-- Every change to a family's rows happens under this lock, taken before any
-- row lock, so that a revocation sees every row of the family.
SELECT pg_advisory_xact_lock(@key::bigint);

-- name: GetRefreshTokenForUpdate :one
SELECT rt.id, rt.family_id, rt.user_id, rt.expires_at, rt.used_at, rt.revoked_at,
       rt.session_started_at, rt.client, u.disabled_at AS user_disabled_at
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
SELECT rt.user_id, rt.family_id, rt.revoked_at, rt.session_started_at, u.disabled_at AS user_disabled_at
FROM refresh_tokens rt
JOIN users u ON u.id = rt.user_id
WHERE rt.id = @id;

-- name: InsertAPIToken :one
INSERT INTO api_tokens (account_id, created_by, created_by_token, name, hint, token_hash, created_at,
                        level, read_only, domain_set, domain_ids, label, can_create_tokens, expires_at)
VALUES (@account_id, @created_by, @created_by_token, @name, @hint, @token_hash, @created_at,
        @level, @read_only, @domain_set, @domain_ids::uuid[], sqlc.narg(label), @can_create_tokens, sqlc.narg(expires_at))
RETURNING id, account_id, created_by, created_by_token, name, hint, created_at, last_used_at, revoked_at,
          level, read_only, domain_set, domain_ids, label, can_create_tokens, expires_at;

-- name: GetAPITokenByHash :one
SELECT id, account_id, last_used_at, revoked_at, expires_at, read_only
FROM api_tokens
WHERE token_hash = @token_hash;

-- name: GetAPIToken :one
SELECT id, account_id, created_by, created_by_token, name, hint, created_at, last_used_at, revoked_at,
       level, read_only, domain_set, domain_ids, label, can_create_tokens, expires_at
FROM api_tokens
WHERE id = @id;

-- name: DomainIDsByName :many
SELECT id FROM domains WHERE account_id = @account_id AND name = ANY(@names::text[]);

-- name: TouchAPIToken :exec
UPDATE api_tokens SET last_used_at = @now
WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @stale_before);

-- name: RevokeAPIToken :one
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, @revoked_at)
WHERE id = @id AND account_id = @account_id
RETURNING id;

-- name: RevokeAPITokensCreatedBy :execrows
-- Revokes every token created under the token, transitively.
WITH RECURSIVE below (id) AS (
    SELECT t.id FROM api_tokens t WHERE t.created_by_token = @id
    UNION
    SELECT t.id FROM api_tokens t JOIN below b ON t.created_by_token = b.id
)
UPDATE api_tokens SET revoked_at = @revoked_at
WHERE id IN (SELECT id FROM below) AND revoked_at IS NULL;

-- name: ListAPITokens :many
SELECT id, account_id, created_by, created_by_token, name, hint, created_at, last_used_at, revoked_at,
       level, read_only, domain_set, domain_ids, label, can_create_tokens, expires_at
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

-- name: ListSessions :many
-- A user's sessions that may still be refreshed: not revoked, their newest
-- token unexpired, within the absolute lifetime (@started_after). The
-- newest token's creation is the session's last use (login or refresh).
SELECT family_id, min(session_started_at)::timestamptz AS started_at,
       max(created_at)::timestamptz AS last_used_at, max(expires_at)::timestamptz AS expires_at,
       min(client)::text AS client
FROM refresh_tokens
WHERE user_id = @user_id
GROUP BY family_id
HAVING bool_and(revoked_at IS NULL) AND max(expires_at) > @now
   AND min(session_started_at) > @started_after
ORDER BY max(created_at) DESC, family_id;

-- name: UserFamilies :many
-- The families of a user's sessions that are not revoked.
SELECT DISTINCT family_id FROM refresh_tokens
WHERE user_id = @user_id AND revoked_at IS NULL;

-- name: FamilyOwner :one
SELECT user_id FROM refresh_tokens WHERE family_id = @family_id LIMIT 1;

-- name: GetUserForPassword :one
SELECT id, email, password_hash, disabled_at FROM users WHERE id = @id;

-- name: SetPasswordHash :exec
UPDATE users SET password_hash = @password_hash WHERE id = @id;

-- name: InsertPasswordReset :exec
INSERT INTO password_resets (user_id, token_hash, created_at, expires_at)
VALUES (@user_id, @token_hash, @created_at, @expires_at);

-- name: EndPasswordResets :exec
-- Ends every unused reset token of a user: a newer one replaces them, and
-- a reset or change of the password makes them pointless.
UPDATE password_resets SET used_at = @used_at WHERE user_id = @user_id AND used_at IS NULL;

-- name: GetPasswordResetForUpdate :one
SELECT pr.id, pr.user_id, pr.token_hash, pr.expires_at, pr.used_at, u.disabled_at AS user_disabled_at
FROM password_resets pr
JOIN users u ON u.id = pr.user_id
WHERE pr.token_hash = @token_hash
FOR UPDATE OF pr;

-- name: TokenCreatorEmail :one
-- The e-mail address of a user who created a token of the account.
SELECT u.email FROM users u
WHERE u.id = @user_id
  AND EXISTS (SELECT 1 FROM api_tokens t WHERE t.account_id = @account_id AND t.created_by = u.id);
