// Package keymemo remembers X-Wing (MLKEM768-X25519) public key encodings
// that passed the full key check, so that the same bytes are not checked
// again in one process.
//
// A tree group's leaves are its members' user keys, and a member's device
// meets each of them twice: as a leaf in the chain's adds, checked by the
// ratchet tree verifier, and as the member's keys, checked when parsed.
// The check expands the ML-KEM matrix (about 60 µs a key), which for a
// new member of a 100,000-member group was about 5 s of the second pass.
//
// What is remembered is the SHA-256 of an encoding the check accepted; a
// later check of bytes with that hash is skipped. The check is a pure
// function of the bytes, so a remembered success is a success. Only keys
// that are checked twice (leaves, member keys, identities) are
// remembered: a tree commit's node keys are not, so they cannot push the
// leaves out. Failures are never remembered.
package keymemo

import (
	"crypto/sha256"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Size bounds the encodings remembered (about 10 MB at most).
const Size = 1 << 17

var seen, _ = lru.New[[32]byte, struct{}](Size)

// Known reports whether k passed the check before.
func Known(k []byte) bool {
	return seen.Contains(sha256.Sum256(k))
}

// Remember records that k passed the check.
func Remember(k []byte) {
	seen.Add(sha256.Sum256(k), struct{}{})
}

// Forget empties the memo. A benchmark that runs a server and several
// clients in one process calls it before measuring one party, so that
// the party is not spared checks another party made.
func Forget() { seen.Purge() }
