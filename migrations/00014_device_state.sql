-- +goose Up
-- A suite v2 account's device state: what its devices verified (contacts,
-- pinned keys, group heads), encrypted by the client under a key derived
-- from the user key. The server sees only the ciphertext and a version,
-- which a write must raise by exactly one (compare-and-swap).
CREATE TABLE device_states (
    account_id uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    version    bigint NOT NULL CHECK (version >= 1),
    ciphertext bytea NOT NULL CHECK (length(ciphertext) <= 1048576),
    updated_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE device_states;
