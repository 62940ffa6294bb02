-- +goose Up
-- The checkpoint generation: a counter that every change of the signed
-- checkpoints (log_head, log_checkpoints) bumps in the same transaction.
-- A replica reads it in the same statement as the resource row a reader
-- asked for, after the request began; while it equals the generation of
-- the checkpoints a replica holds in memory, those are the ones the
-- database holds, and the replica serves the latest from memory instead of
-- reading the recent checkpoints again (docs/PROTOCOL.md, "Reading a
-- version's place in the log"). Several replicas over one database each
-- see every other's changes this way; no message between them is needed.
CREATE TABLE log_checkpoint_gen (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    gen       bigint NOT NULL CHECK (gen >= 0)
);
INSERT INTO log_checkpoint_gen (gen) VALUES (0);

-- +goose StatementBegin
CREATE FUNCTION bump_log_checkpoint_gen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_checkpoint_gen SET gen = gen + 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER log_head_checkpoint_gen AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON log_head
    FOR EACH STATEMENT EXECUTE FUNCTION bump_log_checkpoint_gen();
CREATE TRIGGER log_checkpoints_gen AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION bump_log_checkpoint_gen();

-- +goose Down
DROP TRIGGER log_checkpoints_gen ON log_checkpoints;
DROP TRIGGER log_head_checkpoint_gen ON log_head;
DROP FUNCTION bump_log_checkpoint_gen();
DROP TABLE log_checkpoint_gen;
