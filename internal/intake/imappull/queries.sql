-- name: ClaimMailbox :one
-- Take the lease on a mailbox, creating its row on the first pull. No row
-- comes back while another puller holds an unexpired lease.
INSERT INTO imap_pull_state AS s (account_id, server, username, mailbox, lease_owner, lease_until)
VALUES (@account_id, @server, @username, @mailbox, sqlc.arg(owner)::uuid, now() + make_interval(secs => @lease_seconds::float8))
ON CONFLICT (account_id, server, username, mailbox) DO UPDATE
SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until
WHERE s.lease_owner IS NULL OR s.lease_owner = EXCLUDED.lease_owner OR s.lease_until < now()
RETURNING uid_validity, last_uid;

-- name: Checkpoint :execrows
-- Record progress and renew the lease; no row is updated when the lease
-- was lost to another puller.
UPDATE imap_pull_state
SET uid_validity = @uid_validity, last_uid = @last_uid,
    lease_until = now() + make_interval(secs => @lease_seconds::float8), updated_at = now()
WHERE account_id = @account_id AND server = @server AND username = @username AND mailbox = @mailbox
  AND lease_owner = sqlc.arg(owner)::uuid;

-- name: ReleaseMailbox :exec
UPDATE imap_pull_state
SET lease_owner = NULL, lease_until = NULL
WHERE account_id = @account_id AND server = @server AND username = @username AND mailbox = @mailbox
  AND lease_owner = sqlc.arg(owner)::uuid;

-- name: MailboxState :one
SELECT uid_validity, last_uid, lease_owner, lease_until, updated_at FROM imap_pull_state
WHERE account_id = @account_id AND server = @server AND username = @username AND mailbox = @mailbox;
