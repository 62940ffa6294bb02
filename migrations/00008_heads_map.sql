-- +goose Up
-- The heads map (see docs/PROTOCOL.md, "Heads map"): an RFC 6962 tree with
-- one entry per account, group and resource, whose root every checkpoint
-- signs. Entries and stored hashes are versioned by the log size whose
-- checkpoint first included them, so a proof can be served against any
-- signed checkpoint, in particular the newest one the witnesses cosigned,
-- which may lag the newest one signed. A change adds one entry row and at
-- most one hash row per tree level: the cost grows with what changed, not
-- with the number of entries.

CREATE TABLE map_keys (
    map_key   bytea PRIMARY KEY,                          -- kind ‖ account ‖ group ‖ resource
    map_index bigint NOT NULL UNIQUE CHECK (map_index >= 0),
    log_size  bigint NOT NULL CHECK (log_size > 0)        -- first checkpoint size that has it
);

CREATE TABLE map_entries (
    map_index bigint NOT NULL,
    log_size  bigint NOT NULL,
    entry     bytea NOT NULL,                             -- translog.MapEntry encoding
    PRIMARY KEY (map_index, log_size)
);

-- tlog stored hashes of the map, by tlog.StoredHashIndex.
CREATE TABLE map_hashes (
    hash_index bigint NOT NULL CHECK (hash_index >= 0),
    log_size   bigint NOT NULL,
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (hash_index, log_size)
);

-- Every signed checkpoint, newest per tree size. cosigned is the same note
-- with the witnesses' cosignature lines appended, once there are any.
CREATE TABLE log_checkpoints (
    tree_size  bigint PRIMARY KEY CHECK (tree_size >= 0),
    map_size   bigint NOT NULL CHECK (map_size >= 0),
    checkpoint text NOT NULL,
    cosigned   text,
    signed_at  timestamptz NOT NULL
);

-- map_log_size: the log leaves [0, map_log_size) are in the map. A database
-- logged before the map existed catches up from 0 on the next integration.
ALTER TABLE log_head ADD COLUMN map_log_size bigint NOT NULL DEFAULT 0;
ALTER TABLE log_head ADD COLUMN map_size bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE log_head DROP COLUMN map_size;
ALTER TABLE log_head DROP COLUMN map_log_size;
DROP TABLE log_checkpoints;
DROP TABLE map_hashes;
DROP TABLE map_entries;
DROP TABLE map_keys;
