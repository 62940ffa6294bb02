-- +goose Up
-- The lease of the replica streaming an upload's content (see
-- store.DB.LeaseUpload). While it holds, no replica's collector removes
-- the upload or the blob being written, however long the upload takes.
ALTER TABLE uploads ADD COLUMN writing_key text CHECK (writing_key ~ '^[0-9a-f]{32}$'); -- identifier: blob being written, server-made
ALTER TABLE uploads ADD COLUMN writing_until timestamptz; -- bookkeeping: the lease's end
CREATE INDEX uploads_writing ON uploads (writing_key) WHERE writing_key IS NOT NULL;

-- +goose Down
DROP INDEX uploads_writing;
ALTER TABLE uploads DROP COLUMN writing_until;
ALTER TABLE uploads DROP COLUMN writing_key;
