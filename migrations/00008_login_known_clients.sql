-- Login throttling by account and client with a known-client path
-- (internal/auth): a failure made with a known-client token is that
-- client's alone and is kept apart from the failures of unknown clients.

-- +goose Up
ALTER TABLE login_failures ADD COLUMN known_client uuid;
CREATE INDEX login_failures_known_client_idx ON login_failures (email, known_client, created_at)
    WHERE known_client IS NOT NULL;

-- +goose Down
DROP INDEX login_failures_known_client_idx;
ALTER TABLE login_failures DROP COLUMN known_client;
