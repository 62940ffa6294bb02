-- +goose Up
-- Resource headers of suite v2 groups (version 3) carry the author's hybrid
-- signature (Ed25519 ‖ ML-DSA-65, coffer.HybridSignatureSize = 3,373
-- bytes); suite v1 groups' headers keep Ed25519's 64. The server checks the
-- header's version against the group's suite, and the signature, before it
-- stores one.
ALTER TABLE resources DROP CONSTRAINT resources_header_signature_check;
ALTER TABLE resources ADD CONSTRAINT resources_header_signature_check CHECK (length(header_signature) IN (64, 3373));

-- +goose Down
-- Hybrid-signed resources cannot be kept under the old constraint.
DELETE FROM resources WHERE length(header_signature) <> 64;
ALTER TABLE resources DROP CONSTRAINT resources_header_signature_check;
ALTER TABLE resources ADD CONSTRAINT resources_header_signature_check CHECK (length(header_signature) = 64);
