-- +goose Up
-- A reader checking a replace asks for the log leaf of the version it
-- replaces (POST /v1/log/proofs, "versions"): the store walks one
-- resource's leaves from the newest down. With the leaf index in the index,
-- that walk reads a leaf or two in index order instead of sorting every
-- leaf the resource ever had, so a resource with many versions costs an
-- anonymous caller's request no more than one with few.
DROP INDEX log_entries_resource;
CREATE INDEX log_entries_resource ON log_entries (group_id, resource_id, leaf_index) WHERE resource_id IS NOT NULL;

-- +goose Down
DROP INDEX log_entries_resource;
CREATE INDEX log_entries_resource ON log_entries (group_id, resource_id) WHERE resource_id IS NOT NULL;
