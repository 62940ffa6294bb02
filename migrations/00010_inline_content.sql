-- +goose Up
-- Small resources keep their ciphertext in the row instead of a blob: the
-- age file followed by its chunk hash list, byte for byte what a blob would
-- hold. A read of one is then one indexed row, with no file to open. The
-- bytes are durable when the transaction that writes them commits, as a
-- blob is once committed, and they follow the same rows: an upload holds
-- them until it is finalized, so no reader sees them before. Exactly one
-- of blob_key and content names where a version's ciphertext is.
ALTER TABLE resources ALTER COLUMN blob_key DROP NOT NULL;
ALTER TABLE resources ADD COLUMN content bytea CHECK (length(content) <= 65536); -- ciphertext: age file and chunk hash list of a small resource
ALTER TABLE resources ADD CONSTRAINT resources_content_place CHECK ((blob_key IS NULL) <> (content IS NULL));
-- Ciphertext does not compress: never try.
ALTER TABLE resources ALTER COLUMN content SET STORAGE EXTERNAL;

ALTER TABLE uploads ADD COLUMN content bytea CHECK (length(content) <= 65536); -- ciphertext: as resources.content, until finalized
ALTER TABLE uploads ALTER COLUMN content SET STORAGE EXTERNAL;
ALTER TABLE uploads DROP CONSTRAINT uploads_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_content_place CHECK (
    (size IS NULL) = (content_hash IS NULL)
    AND (size IS NULL) = (blob_key IS NULL AND content IS NULL)
    AND (blob_key IS NULL OR content IS NULL));

-- +goose Down
-- Fails while rows hold inline content: such versions have no blob.
ALTER TABLE uploads DROP CONSTRAINT uploads_content_place;
ALTER TABLE uploads ADD CONSTRAINT uploads_check CHECK ((blob_key IS NULL) = (size IS NULL) AND (size IS NULL) = (content_hash IS NULL));
ALTER TABLE uploads DROP COLUMN content;
ALTER TABLE resources DROP CONSTRAINT resources_content_place;
ALTER TABLE resources DROP COLUMN content;
ALTER TABLE resources ALTER COLUMN blob_key SET NOT NULL;
