-- +goose Up
-- Tree groups (docs/PROTOCOL.md, "Suite v2: tree groups"). The public
-- ratchet tree is kept one row per non-blank node, so that a commit
-- rewrites only the nodes it touched (a removal from n members: O(log n)
-- rows), and groups.state holds checkpoint version 6, without the tree.
-- taint is the node's admin leaf indices, big-endian uint32 each.
CREATE TABLE tree_nodes (
    group_id   uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    node       integer NOT NULL CHECK (node >= 0),
    public_key bytea NOT NULL CHECK (length(public_key) = 1216),
    taint      bytea NOT NULL CHECK (length(taint) % 4 = 0),
    PRIMARY KEY (group_id, node)
);

-- The ciphertexts beside each tree commit, one per (refreshed node,
-- recipient node), as GroupState.ApplyTree checked them. A member fetches
-- those sealed to a node above its leaf.
CREATE TABLE tree_ciphertexts (
    group_id  uuid NOT NULL,
    seq       bigint NOT NULL,
    node      integer NOT NULL CHECK (node >= 0),
    recipient integer NOT NULL CHECK (recipient >= 0),
    sealed    bytea NOT NULL CHECK (length(sealed) = 1168),
    PRIMARY KEY (group_id, seq, recipient, node),
    FOREIGN KEY (group_id, seq) REFERENCES commits (group_id, seq) ON DELETE CASCADE
);

-- A tree group member's leaf, so that the server finds the ciphertexts
-- for it without loading the tree; NULL in pairwise groups.
ALTER TABLE group_members ADD COLUMN leaf integer CHECK (leaf >= 0);

-- +goose Down
ALTER TABLE group_members DROP COLUMN leaf;
DROP TABLE tree_ciphertexts;
DROP TABLE tree_nodes;
