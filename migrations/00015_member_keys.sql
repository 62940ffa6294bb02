-- +goose Up
-- The suite v2 member keys of every account, at every generation of its
-- user key (see docs/PROTOCOL.md, "Accounts (suite v2): storage and
-- endpoints"): the canonical coffer.MemberKeys encoding under its hash,
-- which suite v2 group commits carry in place of the keys. A row is
-- written in the transaction of the link that sets the user key (genesis,
-- revoke-device, rotate-user-key) and never changes: old generations stay,
-- because old commits were signed with them. The account's current keys
-- are its highest generation.
CREATE TABLE member_keys (
    hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    generation bigint NOT NULL CHECK (generation >= 1),
    keys       bytea NOT NULL CHECK (length(keys) <= 3737),
    UNIQUE (account_id, generation)
);

-- +goose Down
DROP TABLE member_keys;
