-- +goose Up
-- Resource headers of suite 2 bind a chunk tree (root, chunk count, size)
-- and are 153 bytes. Suite-1 rows cannot be read by current clients; they
-- are not rechecked (NOT VALID) so that a migration never fails on them.
ALTER TABLE resources DROP CONSTRAINT resources_header_check;
ALTER TABLE resources ADD CONSTRAINT resources_header_check CHECK (length(header) = 153) NOT VALID;

-- +goose Down
ALTER TABLE resources DROP CONSTRAINT resources_header_check;
ALTER TABLE resources ADD CONSTRAINT resources_header_check CHECK (length(header) = 145) NOT VALID;
