-- MSP customer accounts can be suspended (issue 11): the suspended account's
-- own members and tokens, and those of the accounts below it, are refused
-- everything in it, while the owners, teams and tokens of the accounts above
-- keep their access (internal/access decides). The DNS edge does not look at
-- it: a suspended customer's domains are served unchanged.

-- +goose Up
ALTER TABLE accounts ADD COLUMN suspended_at timestamptz;
CREATE INDEX accounts_suspended_idx ON accounts (id) WHERE suspended_at IS NOT NULL;

-- +goose Down
DROP INDEX accounts_suspended_idx;
ALTER TABLE accounts DROP COLUMN suspended_at;
