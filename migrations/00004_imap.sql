-- Where each pull of an IMAP mailbox stopped (internal/intake/imappull), so
-- that the next pull, on any replica, resumes there; and a lease, so that
-- one replica pulls a mailbox at a time.

-- +goose Up
CREATE TABLE imap_pull_state (
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The mailbox: server address (host:port), login and mailbox name.
    server       text NOT NULL,
    username     text NOT NULL,
    mailbox      text NOT NULL,
    -- The mailbox's UIDVALIDITY when last_uid was recorded (0: not yet
    -- selected). When the server reports another, UIDs were reassigned and
    -- the pull starts over; the store recognises what it already holds.
    uid_validity bigint NOT NULL DEFAULT 0 CHECK (uid_validity BETWEEN 0 AND 4294967295),
    -- Every message with a UID up to this one has been stored (or refused
    -- for good).
    last_uid     bigint NOT NULL DEFAULT 0 CHECK (last_uid BETWEEN 0 AND 4294967295),
    -- The puller holding the mailbox, until lease_until; renewed with
    -- every batch, cleared when the pull ends.
    lease_owner  uuid,
    lease_until  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, server, username, mailbox)
);

-- +goose Down
DROP TABLE imap_pull_state;
