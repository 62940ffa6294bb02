-- +goose Up
-- Resources: the rows that say which blob holds which resource version, and
-- the uploads still in flight. Every column is one of: identifier,
-- ciphertext, signature, hash, or bookkeeping (sizes, times, versions,
-- counters). The bytes themselves are in the BlobStore, never here.

CREATE TABLE resources (
    id               uuid PRIMARY KEY,                   -- identifier: chosen by the creating client
    group_id         uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE, -- identifier
    version          bigint NOT NULL CHECK (version >= 1), -- bookkeeping: 1, then +1 per replace
    author_id        uuid NOT NULL,                      -- identifier: author of this version
    epoch            bigint NOT NULL CHECK (epoch >= 1), -- bookkeeping: epoch whose key encrypts it
    header           bytea NOT NULL CHECK (length(header) = 145), -- signed: coffer.ResourceHeader encoding (ids, hashes, sizes)
    header_signature bytea NOT NULL CHECK (length(header_signature) = 64), -- signature: author's Ed25519
    meta             bytea NOT NULL CHECK (length(meta) <= 65564), -- ciphertext: AES-256-GCM metadata under the epoch key
    content_hash     bytea NOT NULL CHECK (length(content_hash) = 32), -- hash: SHA-256 of the stored ciphertext
    size             bigint NOT NULL CHECK (size >= 0),  -- bookkeeping: ciphertext size in bytes
    blob_key         text NOT NULL UNIQUE CHECK (blob_key ~ '^[0-9a-f]{32}$'), -- identifier: random, server-made
    created_at       timestamptz NOT NULL,               -- bookkeeping: when version 1 was stored
    updated_at       timestamptz NOT NULL                -- bookkeeping: when this version was stored
);
-- Listing is newest first with a (created_at, id) cursor.
CREATE INDEX resources_listing ON resources (group_id, created_at DESC, id DESC);

-- An upload is a resource version being written: created, then its
-- content streamed into a blob, then finalized into a resources row in one
-- transaction (which deletes the upload). Uploads that are never finalized
-- are collected, with their blobs, by store.DB.CollectUploads.
CREATE TABLE uploads (
    id           uuid PRIMARY KEY,                    -- identifier: random, server-made
    resource_id  uuid NOT NULL,                       -- identifier
    group_id     uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE, -- identifier
    author_id    uuid NOT NULL,                       -- identifier: who may write and finalize it
    version      bigint NOT NULL CHECK (version >= 1), -- bookkeeping: the version it will become
    blob_key     text UNIQUE CHECK (blob_key ~ '^[0-9a-f]{32}$'), -- identifier: set once content arrived
    size         bigint CHECK (size >= 0),            -- bookkeeping: ciphertext bytes received
    content_hash bytea CHECK (length(content_hash) = 32), -- hash: SHA-256 of the bytes received
    created_at   timestamptz NOT NULL,                -- bookkeeping
    updated_at   timestamptz NOT NULL,                -- bookkeeping: last activity, for collection
    CHECK ((blob_key IS NULL) = (size IS NULL) AND (size IS NULL) = (content_hash IS NULL))
);
CREATE INDEX uploads_activity ON uploads (updated_at);

-- The resource count per group, kept by the same transactions that insert
-- and delete resources, so the per-group limit holds under concurrency
-- without counting rows.
ALTER TABLE groups ADD COLUMN resource_count bigint NOT NULL DEFAULT 0 CHECK (resource_count >= 0); -- bookkeeping

-- +goose Down
ALTER TABLE groups DROP COLUMN resource_count;
DROP TABLE uploads;
DROP TABLE resources;
