// Package ratchettree is suite v2's ratchet tree: the pure foundation of
// "tainted TreeKEM" (Alwen, Coretti, Dodis, Tselekounis, S&P 2021) over
// RFC 9420's left-balanced array layout, so that removing a member from
// a group of n costs O(log n) ciphertexts instead of n wraps.
//
// Construction, in brief. Leaves hold members' user keys (X-Wing, the
// MLKEM768-X25519 HPKE KEM). Every parent node holds an X-Wing key pair
// derived with DeriveKeyPair from a 32-byte node secret. A path update
// refreshes one leaf's direct path: the committer draws a random path
// secret for the leaf's parent and derives each next one with
// HKDF-Expand(SHA-256); each node secret comes from its path secret the
// same way, and the last (root) secret gives the epoch key as
// HKDF(root secret, salt = commit hash). Each path secret is sealed with
// HPKE (base mode, HKDF-SHA256, AES-256-GCM) once to every node of the
// resolution of the copath node at that level; the HPKE info binds the
// label coffer/v2/tree-path, the group, the epoch, the refreshed node and
// the recipient node, so a ciphertext moved to another group, epoch or
// node does not open. A rekey (genesis, bulk add, refreshing the nodes a
// removed admin knew) gives each node an independent fresh secret sealed
// to the resolution of each of its children, so sealing is parallel.
//
// Taint: only admins commit, and a committer learns every secret it
// generates, so the public tree records, per parent node, which admins
// know its secret without being below it. Removing or demoting an admin
// must refresh every node that admin taints; the verifier checks it.
//
// The public verifier (Verify*) is pure and deterministic: shape (one
// ciphertext per resolution node, nothing else), public keys present and
// well formed, the tree hash the commit claims, and the taint rules. The
// receiver side (Receive*) opens the one ciphertext for its position,
// derives the rest and checks each derived public key against the
// committed one. Failures are *Error values with a named Rule; callers
// in the coffer packages report them as security errors.
//
// This package does not import the root coffer package, so that the one
// chain verifier (coffer.VerifyChain) can call it.
package ratchettree
