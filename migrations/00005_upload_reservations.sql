-- +goose Up
-- Bounds on what uploads that are never finalized can hold until they
-- expire. An upload reserves the bytes it is about to stream (reserved);
-- an account's pending bytes are the sum, over its uploads, of the larger
-- of reserved and size, and must stay under a configured limit. Pending
-- uploads also count against the group's resource limit, which the group
-- index makes cheap to count.
ALTER TABLE uploads ADD COLUMN reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0); -- bookkeeping: bytes reserved by a PUT in progress
CREATE INDEX uploads_author ON uploads (author_id);
CREATE INDEX uploads_group ON uploads (group_id);

-- +goose Down
DROP INDEX uploads_group;
DROP INDEX uploads_author;
ALTER TABLE uploads DROP COLUMN reserved;
