-- +goose Up
-- Resources in the transparency log (see docs/PROTOCOL.md, "Resources in
-- the log"): every finalized version and every signed delete is a log leaf
-- of its group, found by (group_id, resource_id). Suite-2 headers now carry
-- the hash of the header they replace and are 185 bytes.
ALTER TABLE log_entries ADD COLUMN resource_id uuid;
ALTER TABLE log_entries DROP CONSTRAINT IF EXISTS log_entries_check;
ALTER TABLE log_entries DROP CONSTRAINT IF EXISTS log_entries_check1;
ALTER TABLE log_entries ADD CONSTRAINT log_entries_kind_check CHECK (
    (account_id IS NOT NULL AND group_id IS NULL AND seq IS NULL AND resource_id IS NULL) OR
    (account_id IS NULL AND group_id IS NOT NULL AND (seq IS NULL) <> (resource_id IS NULL)));
CREATE INDEX log_entries_resource ON log_entries (group_id, resource_id) WHERE resource_id IS NOT NULL;

ALTER TABLE resources DROP CONSTRAINT resources_header_check;
ALTER TABLE resources ADD CONSTRAINT resources_header_check CHECK (length(header) = 185) NOT VALID;

-- +goose Down
ALTER TABLE resources DROP CONSTRAINT resources_header_check;
ALTER TABLE resources ADD CONSTRAINT resources_header_check CHECK (length(header) = 153) NOT VALID;
DROP INDEX log_entries_resource;
ALTER TABLE log_entries DROP CONSTRAINT log_entries_kind_check;
DELETE FROM log_entries WHERE resource_id IS NOT NULL;
ALTER TABLE log_entries DROP COLUMN resource_id;
ALTER TABLE log_entries ADD CHECK ((account_id IS NULL) <> (group_id IS NULL));
ALTER TABLE log_entries ADD CHECK ((group_id IS NULL) = (seq IS NULL));
