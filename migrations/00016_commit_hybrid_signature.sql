-- +goose Up
-- Suite v2 commits are signed with the author's hybrid key (Ed25519 ‖
-- ML-DSA-65, coffer.HybridSignatureSize = 3,373 bytes); suite v1 commits
-- keep Ed25519's 64. The body's version byte says which, and the verifier
-- checks it before any commit is stored.
ALTER TABLE commits DROP CONSTRAINT commits_signature_check;
ALTER TABLE commits ADD CONSTRAINT commits_signature_check CHECK (length(signature) IN (64, 3373));

-- +goose Down
-- Suite v2 groups cannot be kept under the old constraint.
DELETE FROM groups WHERE id IN (SELECT group_id FROM commits WHERE length(signature) <> 64);
ALTER TABLE commits DROP CONSTRAINT commits_signature_check;
ALTER TABLE commits ADD CONSTRAINT commits_signature_check CHECK (length(signature) = 64);
