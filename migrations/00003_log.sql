-- +goose Up
-- The transparency log (see docs/PROTOCOL.md, "Transparency log").
--
-- A writer appends a leaf to log_entries in the same transaction as the
-- registration or commit it records: one INSERT, no lock shared with other
-- writers. A single sequencer (in whichever cofferd replica holds the
-- log_head row lock) later gives pending leaves their dense leaf_index in
-- id order, stores the tlog hashes of the tree and signs a new checkpoint.

CREATE TABLE log_entries (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- arrival order, may have gaps
    leaf_index bigint UNIQUE CHECK (leaf_index >= 0),           -- position in the tree; NULL while pending
    leaf       bytea NOT NULL,                                   -- translog leaf encoding (public data)
    leaf_hash  bytea NOT NULL CHECK (length(leaf_hash) = 32),    -- tlog record hash of leaf
    account_id uuid,                                             -- identity leaves: the account
    group_id   uuid,                                             -- commit leaves: the group ...
    seq        bigint,                                           -- ... and the commit's seq
    created_at timestamptz NOT NULL,
    CHECK ((account_id IS NULL) <> (group_id IS NULL)),
    CHECK ((group_id IS NULL) = (seq IS NULL))
) WITH (toast_tuple_target = 128);
-- Leaves live out of line, uncompressed (they are mostly keys and
-- signatures): the sequencer's UPDATE of leaf_index then rewrites a small
-- row that points at the leaf, instead of copying the leaf.
ALTER TABLE log_entries ALTER COLUMN leaf SET STORAGE EXTERNAL;
CREATE INDEX log_entries_pending ON log_entries (id) WHERE leaf_index IS NULL;
CREATE INDEX log_entries_account ON log_entries (account_id) WHERE account_id IS NOT NULL;
CREATE UNIQUE INDEX log_entries_commit ON log_entries (group_id, seq) WHERE group_id IS NOT NULL;

-- tlog stored hashes, by tlog.StoredHashIndex.
CREATE TABLE log_hashes (
    hash_index bigint PRIMARY KEY CHECK (hash_index >= 0),
    hash       bytea NOT NULL CHECK (length(hash) = 32)
);

-- The one row holding the integrated tree and its latest signed checkpoint.
CREATE TABLE log_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tree_size  bigint NOT NULL CHECK (tree_size >= 0),
    root_hash  bytea NOT NULL CHECK (length(root_hash) = 32),
    checkpoint text NOT NULL, -- signed note; empty until the first sequencer run
    updated_at timestamptz NOT NULL
);
-- The RFC 6962 hash of the empty tree, SHA-256 of the empty string.
INSERT INTO log_head (tree_size, root_hash, checkpoint, updated_at)
VALUES (0, '\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', '', now());

-- +goose Down
DROP TABLE log_head;
DROP TABLE log_hashes;
DROP TABLE log_entries;
