-- Live vendor ranges (issue 10): a service's SPF include is resolved at
-- start, hourly and on demand. Its DNS-lookup cost is unknown (NULL) until
-- the include resolved once, so that the 10-lookup rule never counts a
-- never-resolved service as cheaper than it is; a service without an
-- include costs nothing of its own (0). A failed resolution keeps the last
-- good ranges and cost, and records why and when.

-- +goose Up
ALTER TABLE sender_services ALTER COLUMN spf_lookups DROP NOT NULL;
ALTER TABLE sender_services ALTER COLUMN spf_lookups DROP DEFAULT;
UPDATE sender_services SET spf_lookups = NULL WHERE resolved_at IS NULL AND spf_include <> '';
UPDATE sender_services SET spf_lookups = 0 WHERE spf_include = '';
-- When the last resolution failed (resolve_error says why); NULL after a
-- success.
ALTER TABLE sender_services ADD COLUMN resolve_failed_at timestamptz;
UPDATE sender_services SET resolve_failed_at = updated_at WHERE resolve_error <> '';
-- When the include was last looked up, whatever the outcome: on-demand
-- refreshes are limited by it.
ALTER TABLE sender_services ADD COLUMN resolve_attempted_at timestamptz;
UPDATE sender_services SET resolve_attempted_at = greatest(resolved_at, resolve_failed_at);

-- +goose Down
ALTER TABLE sender_services DROP COLUMN resolve_attempted_at;
ALTER TABLE sender_services DROP COLUMN resolve_failed_at;
UPDATE sender_services SET spf_lookups = 1 WHERE spf_lookups IS NULL OR spf_include = '';
ALTER TABLE sender_services ALTER COLUMN spf_lookups SET DEFAULT 1;
ALTER TABLE sender_services ALTER COLUMN spf_lookups SET NOT NULL;
