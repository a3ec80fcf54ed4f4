-- The current SPF form (issue 9): the customer's record ends in
-- redirect=<domain>._rspf.<edge zone>, whose record the edge serves from
-- edge_domain.rspf; a removed domain stays on the edge in mode 'removed'
-- for a grace period, answering so that its names authorise nothing
-- without making the customer's record an error.

-- +goose Up
ALTER TABLE edge_domain DROP CONSTRAINT edge_domain_mode_check;
ALTER TABLE edge_domain ADD CONSTRAINT edge_domain_mode_check CHECK (mode IN ('sending', 'blocked', 'removed'));
-- The TXT value at <name>._rspf.<edge zone>; '' until the row is next
-- compiled (the edge then answers from the mode alone). The nspf column may
-- now hold several records, one per line: the first at <name>._nspf, the
-- k-th (from 2) at _<k>.<name>._nspf, each one a 512-octet answer.
ALTER TABLE edge_domain ADD COLUMN rspf text NOT NULL DEFAULT '';
-- When a removed domain's grace period started.
ALTER TABLE edge_domain ADD COLUMN removed_at timestamptz;
ALTER TABLE edge_domain ADD CONSTRAINT edge_domain_removed_at_check CHECK ((mode = 'removed') = (removed_at IS NOT NULL));
CREATE INDEX edge_domain_removed_idx ON edge_domain (removed_at) WHERE removed_at IS NOT NULL AND NOT deleted;

-- +goose Down
DROP INDEX edge_domain_removed_idx;
UPDATE edge_domain SET serial = nextval('edge_serial_seq'), deleted = true, mode = 'sending', removed_at = NULL, updated_at = now()
WHERE mode = 'removed';
ALTER TABLE edge_domain DROP CONSTRAINT edge_domain_removed_at_check;
ALTER TABLE edge_domain DROP COLUMN removed_at;
ALTER TABLE edge_domain DROP COLUMN rspf;
ALTER TABLE edge_domain DROP CONSTRAINT edge_domain_mode_check;
ALTER TABLE edge_domain ADD CONSTRAINT edge_domain_mode_check CHECK (mode IN ('sending', 'blocked'));
