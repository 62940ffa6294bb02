-- +goose Up
-- A group's verified state in rows (docs/PROTOCOL.md, "How the server
-- stores a group's state"): groups.state holds checkpoint version 7, a
-- header without the member entries and role histories, and
-- group_state_accounts one row per account that was ever a member, so a
-- commit rewrites the header and the rows of the accounts it changed
-- instead of every member's entry (9 MB at 100,000 members). member is the
-- account's current entry, NULL once it is not a member; roles is its role
-- history, which is never deleted.
--
-- Nothing is converted here: that needs the Go decoder. A group keeps its
-- checkpoint of version 3 to 6 (state_rows false), which cofferd still
-- reads, until its next commit writes the header and every row and sets
-- state_rows. Converting at first load instead would make a read write.
CREATE TABLE group_state_accounts (
    group_id   uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    account_id uuid NOT NULL,
    member     bytea,
    roles      bytea NOT NULL CHECK (length(roles) > 0 AND length(roles) % 9 = 0),
    PRIMARY KEY (group_id, account_id)
);

-- True when groups.state is a version 7 header whose rows are in
-- group_state_accounts.
ALTER TABLE groups ADD COLUMN state_rows boolean NOT NULL DEFAULT false;

-- +goose Down
-- Older code cannot read a header without its rows: refuse to drop them
-- while any group is stored that way.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM groups WHERE state_rows) THEN
        RAISE EXCEPTION 'groups are stored in rows (state_rows): cannot migrate down';
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE groups DROP COLUMN state_rows;
DROP TABLE group_state_accounts;
