-- +goose Up
-- Coffer's schema holds only public keys, signatures, hashes, wrapped keys,
-- ciphertext and plain bookkeeping. coffer-audit classifies every column;
-- a new column must be added to its allowlist (cmd/coffer-audit) or the
-- audit fails.

CREATE TABLE accounts (
    id             uuid PRIMARY KEY,
    handle         text NOT NULL UNIQUE CHECK (handle ~ '^[a-z0-9._-]{3,32}$'),
    identity       bytea NOT NULL,  -- canonical coffer.PublicIdentity encoding
    self_signature bytea NOT NULL CHECK (length(self_signature) = 64),
    signing_key    bytea NOT NULL CHECK (length(signing_key) = 32),
    encryption_key bytea NOT NULL CHECK (length(encryption_key) = 1216),
    created_at     timestamptz NOT NULL
);

-- Login challenges are single use: consuming one deletes its row.
CREATE TABLE login_challenges (
    challenge_hash bytea PRIMARY KEY CHECK (length(challenge_hash) = 32),
    account_id     uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX login_challenges_expiry ON login_challenges (expires_at);

-- Refresh tokens are stored only as SHA-256 hashes. A family is one login;
-- presenting a used token again revokes the whole family (reuse detection).
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id  uuid NOT NULL,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- A group row caches the verified head of its commit chain and the verifier
-- state after it, so appending a commit verifies one commit, not the chain.
CREATE TABLE groups (
    id            uuid PRIMARY KEY,
    head_seq      bigint NOT NULL CHECK (head_seq >= 1),
    head_hash     bytea NOT NULL CHECK (length(head_hash) = 32),
    epoch         bigint NOT NULL CHECK (epoch >= 1),
    state         bytea NOT NULL,  -- coffer.GroupState binary (public keys, roles)
    meta_epoch    bigint,
    meta          bytea,           -- group name/description, AES-256-GCM under the epoch key
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- UNIQUE(group_id, seq) through the primary key is the compare-and-append:
-- of two writers racing for seq = head+1, exactly one insert succeeds.
CREATE TABLE commits (
    group_id   uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    seq        bigint NOT NULL CHECK (seq >= 1),
    body       bytea NOT NULL,   -- the exact signed bytes
    signature  bytea NOT NULL CHECK (length(signature) = 64),
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    author_id  uuid NOT NULL,
    epoch      bigint NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (group_id, seq)
);

-- Current membership, derived from the verified chain. It exists so that
-- authorization can live inside every query (a join on this table).
CREATE TABLE group_members (
    group_id   uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    account_id uuid NOT NULL,
    role       smallint NOT NULL CHECK (role BETWEEN 1 AND 4),
    PRIMARY KEY (group_id, account_id)
);
CREATE INDEX group_members_account ON group_members (account_id, group_id);

-- HPKE wraps of an epoch key, one per member and epoch.
CREATE TABLE wrapped_keys (
    group_id  uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    epoch     bigint NOT NULL,
    member_id uuid NOT NULL,
    wrap      bytea NOT NULL CHECK (length(wrap) = 1168),
    PRIMARY KEY (group_id, member_id, epoch)
);

-- History links: epoch key e sealed under a key derived from epoch key e+1.
CREATE TABLE history_links (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    epoch    bigint NOT NULL,  -- the older epoch whose key the link holds
    link     bytea NOT NULL CHECK (length(link) = 60),
    PRIMARY KEY (group_id, epoch)
);

-- +goose Down
DROP TABLE history_links;
DROP TABLE wrapped_keys;
DROP TABLE group_members;
DROP TABLE commits;
DROP TABLE groups;
DROP TABLE refresh_tokens;
DROP TABLE login_challenges;
DROP TABLE accounts;
