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

-- name: Customers :many
-- A page of the accounts below parent that the caller may see (visible):
-- its direct customers, or with all every account below it, at most
-- max_depth levels down; by name, after the cursor (after_name, after_id).
WITH RECURSIVE below (id, dist) AS (
    SELECT c.id, 1 FROM accounts c WHERE c.parent_id = @parent_id::uuid
    UNION ALL
    SELECT c.id, b.dist + 1 FROM accounts c JOIN below b ON c.parent_id = b.id
    WHERE @all_below::bool AND b.dist < @max_depth::int
)
SELECT a.* FROM accounts a JOIN below b ON b.id = a.id
WHERE a.id = ANY(@visible::uuid[])
  AND starts_with(lower(a.name), lower(@name_prefix::text))
  AND (sqlc.narg(suspended)::bool IS NULL OR (a.suspended_at IS NOT NULL) = sqlc.narg(suspended)::bool)
  AND (a.name, a.id) > (@after_name::text, @after_id::uuid)
ORDER BY a.name, a.id
LIMIT @lim;

-- name: CountCustomers :one
WITH RECURSIVE below (id, dist) AS (
    SELECT c.id, 1 FROM accounts c WHERE c.parent_id = @parent_id::uuid
    UNION ALL
    SELECT c.id, b.dist + 1 FROM accounts c JOIN below b ON c.parent_id = b.id
    WHERE @all_below::bool AND b.dist < @max_depth::int
)
SELECT count(*) FROM accounts a JOIN below b ON b.id = a.id
WHERE a.id = ANY(@visible::uuid[])
  AND starts_with(lower(a.name), lower(@name_prefix::text))
  AND (sqlc.narg(suspended)::bool IS NULL OR (a.suspended_at IS NOT NULL) = sqlc.narg(suspended)::bool);

-- name: SetSuspended :one
UPDATE accounts SET suspended_at = sqlc.narg(suspended_at) WHERE id = @id RETURNING *;

-- name: AccountForUpdate :one
SELECT * FROM accounts WHERE id = @id FOR UPDATE;

-- name: AccountContents :one
-- What stops an account's removal: its domains (every claim) and customers.
SELECT (SELECT count(*) FROM domains d WHERE d.account_id = @id)::bigint AS domains,
       (SELECT count(*) FROM accounts c WHERE c.parent_id = @id)::bigint AS customers;

-- name: DeleteAccount :execrows
-- Memberships, teams, grants, tokens, invitations and account services go
-- with the account (ON DELETE CASCADE).
DELETE FROM accounts WHERE id = @id;

-- name: CustomerOverview :many
-- The dashboard figures of each account given: its domains by state, its
-- last report, and its problems, counting only the domains in the caller's
-- reach (reach_accounts, reach_domains; account-wide figures, the uploads
-- and the account's own services, only for reach_accounts). Ingest
-- problems: uploads and mail to its domains' report addresses not stored
-- (refused, failed, cancelled, discarded) since problems_since. One row per
-- account.
SELECT a.id,
    count(d.id)::bigint AS domains,
    count(d.id) FILTER (WHERE d.mode = 'blocked')::bigint AS blocked,
    count(d.id) FILTER (WHERE d.mode <> 'blocked' AND d.dmarc_p = 'none')::bigint AS policy_none,
    count(d.id) FILTER (WHERE d.mode <> 'blocked' AND d.dmarc_p = 'quarantine')::bigint AS policy_quarantine,
    count(d.id) FILTER (WHERE d.mode <> 'blocked' AND d.dmarc_p = 'reject')::bigint AS policy_reject,
    count(d.id) FILTER (WHERE d.verified_at IS NOT NULL)::bigint AS verified,
    count(d.id) FILTER (WHERE d.verified_at IS NULL)::bigint AS unverified,
    lr.last_report_at,
    ((SELECT count(*) FROM report_blobs rb
      WHERE rb.account_id = a.id AND a.id = ANY(@reach_accounts::uuid[])
        AND rb.status IN ('refused', 'failed', 'cancelled', 'discarded') AND rb.received_at > @problems_since::timestamptz)
     + (SELECT count(*) FROM report_blob_recipients rr
        JOIN report_blobs rb ON rb.id = rr.blob_id
        JOIN domains x ON x.id = rr.domain_id
        WHERE x.account_id = a.id AND (x.account_id = ANY(@reach_accounts::uuid[]) OR x.id = ANY(@reach_domains::uuid[]))
          AND rb.status IN ('refused', 'failed', 'cancelled', 'discarded') AND rr.received_at > @problems_since::timestamptz))::bigint AS ingest_problems,
    (SELECT count(*) FROM sender_services s
     WHERE s.resolve_failed_at IS NOT NULL
       AND ((s.account_id = a.id AND a.id = ANY(@reach_accounts::uuid[]))
            OR s.slug IN (SELECT ds.service FROM domain_senders ds JOIN domains y ON y.id = ds.domain_id
                          WHERE y.account_id = a.id
                            AND (y.account_id = ANY(@reach_accounts::uuid[]) OR y.id = ANY(@reach_domains::uuid[])))))::bigint AS failing_services
FROM accounts a
LEFT JOIN domains d ON d.account_id = a.id
    AND (d.account_id = ANY(@reach_accounts::uuid[]) OR d.id = ANY(@reach_domains::uuid[]))
LEFT JOIN LATERAL (SELECT max(r.received_at) AS last_report_at FROM reports r
                   JOIN domains rd ON rd.id = r.domain_id WHERE rd.account_id = a.id
                     AND (rd.account_id = ANY(@reach_accounts::uuid[]) OR rd.id = ANY(@reach_domains::uuid[]))) lr ON true
WHERE a.id = ANY(@ids::uuid[])
GROUP BY a.id, lr.last_report_at;
