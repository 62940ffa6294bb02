-- +goose Up
-- The stored hashes of each blob-backed version's chunk tree, laid out as
-- golang.org/x/mod/sumdb/tlog lays them out (StoredHashIndex), 32 bytes
-- each, so that a verified range read proves its chunks from about
-- log2(chunks) of them instead of reading the chunk hash list from the blob
-- and rebuilding the tree on every request. The server computes them when
-- it finalizes an upload, from the list it proves against the signed root;
-- they change with the row's blob_key and go with the row, so nothing is
-- left to collect. Readers trust none of it: every proof is checked
-- against the signed root. NULL for inline content (one chunk, proven from
-- the row at once) and for versions stored before this migration, whose
-- tree the first range read fills in.
ALTER TABLE resources ADD COLUMN chunk_tree bytea CHECK (length(chunk_tree) % 32 = 0 AND length(chunk_tree) > 0); -- hash: tlog stored hashes of the chunk tree
-- Hashes do not compress, and out-of-line storage without compression lets
-- a read fetch only the slices it needs.
ALTER TABLE resources ALTER COLUMN chunk_tree SET STORAGE EXTERNAL;

-- +goose Down
ALTER TABLE resources DROP COLUMN chunk_tree;
