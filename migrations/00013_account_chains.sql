-- +goose Up
-- Suite v2 accounts (see docs/PROTOCOL.md, "Accounts (suite v2): storage
-- and endpoints"). An account with a chain keeps its links in
-- account_links and, in the accounts row, the verifier's state after the
-- head link (chain_seq), so appending a link verifies one link, not the
-- chain. The row's identity, self_signature and key columns are the
-- chain's current identity: a rotating link rewrites them in its
-- transaction. Suite v1 accounts have chain_seq 0 and no state.
ALTER TABLE accounts ADD COLUMN chain_seq bigint NOT NULL DEFAULT 0 CHECK (chain_seq >= 0);
ALTER TABLE accounts ADD COLUMN chain_state bytea; -- coffer.AccountState binary (public keys, seqs)
ALTER TABLE accounts ADD CONSTRAINT accounts_chain_check CHECK ((chain_seq = 0) = (chain_state IS NULL));

-- UNIQUE(account_id, seq) through the primary key is the compare-and-append,
-- as for commits.
CREATE TABLE account_links (
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    seq              bigint NOT NULL CHECK (seq >= 1),
    body             bytea NOT NULL,  -- the exact signed link bytes (public keys, wraps of the user key)
    signature        bytea NOT NULL,  -- the author's hybrid signature
    device_signature bytea,           -- add-device only: the new device's hybrid signature
    hash             bytea NOT NULL CHECK (length(hash) = 32),
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (account_id, seq)
);

-- A device waiting to be linked: its name and public keys under the id the
-- pairing code hashes to, with the MAC the code's secret keys (the server
-- never sees the code), and once an existing device approves, the
-- add-device link it signed with its MAC. Rows expire after ten minutes.
CREATE TABLE pairings (
    id                 text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    handle             text NOT NULL REFERENCES accounts (handle) ON DELETE CASCADE,
    device_id          uuid NOT NULL,
    device_name        text NOT NULL,
    signing_key        bytea NOT NULL,
    encryption_key     bytea NOT NULL CHECK (length(encryption_key) = 1216),
    mac                bytea NOT NULL CHECK (length(mac) = 32),
    approval_body      bytea,
    approval_signature bytea,
    approval_mac       bytea CHECK (length(approval_mac) = 32),
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    CHECK ((approval_body IS NULL) = (approval_signature IS NULL) AND (approval_body IS NULL) = (approval_mac IS NULL))
);
CREATE INDEX pairings_handle ON pairings (handle, expires_at);
CREATE INDEX pairings_expiry ON pairings (expires_at);

-- Account links are log leaves of their account, found by (account_id,
-- seq); a suite v1 identity leaf has no seq.
ALTER TABLE log_entries DROP CONSTRAINT log_entries_kind_check;
ALTER TABLE log_entries ADD CONSTRAINT log_entries_kind_check CHECK (
    (account_id IS NOT NULL AND group_id IS NULL AND resource_id IS NULL) OR
    (account_id IS NULL AND group_id IS NOT NULL AND (seq IS NULL) <> (resource_id IS NULL)));
CREATE UNIQUE INDEX log_entries_account_link ON log_entries (account_id, seq) WHERE account_id IS NOT NULL AND seq IS NOT NULL;

-- +goose Down
DROP INDEX log_entries_account_link;
DELETE FROM log_entries WHERE account_id IS NOT NULL AND seq IS NOT NULL;
ALTER TABLE log_entries DROP CONSTRAINT log_entries_kind_check;
ALTER TABLE log_entries ADD CONSTRAINT log_entries_kind_check CHECK (
    (account_id IS NOT NULL AND group_id IS NULL AND seq IS NULL AND resource_id IS NULL) OR
    (account_id IS NULL AND group_id IS NOT NULL AND (seq IS NULL) <> (resource_id IS NULL)));
DROP TABLE pairings;
DROP TABLE account_links;
ALTER TABLE accounts DROP CONSTRAINT accounts_chain_check;
ALTER TABLE accounts DROP COLUMN chain_state;
ALTER TABLE accounts DROP COLUMN chain_seq;
