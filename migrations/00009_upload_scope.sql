-- The accounts an upload's reports may be stored for, decided when it
-- arrived from what the uploader may manage (internal/ingest, Upload): the
-- account uploaded to and those below it in which the uploader holds the
-- permission to manage domains. An MSP's owner acts in its customers'
-- accounts but not in their customers', so the account tree alone is too
-- wide a scope.

-- +goose Up
-- NULL: the account and every account below it (IMAP pulls, which the
-- operator configures, and uploads stored before this column).
ALTER TABLE report_blobs ADD COLUMN scope_accounts uuid[];

-- +goose Down
ALTER TABLE report_blobs DROP COLUMN scope_accounts;
