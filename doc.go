// Package coffer is the protocol vocabulary of Coffer, a zero-knowledge,
// end-to-end encrypted group sharing system.
//
// It holds what every component must agree on byte for byte: identifiers,
// public identities and their fingerprints, the signed-statement encoding,
// the commit format of a group's membership log with the one chain verifier,
// the signed resource header, size constants of suite v1 and the error codes.
//
// The server, the client library and the auditor all import this package;
// none of them re-implements a rule that lives here. Nothing in this package
// performs I/O.
//
// Suite v1 uses Ed25519 signatures, HPKE (RFC 9180) with MLKEM768-X25519
// (X-Wing), HKDF-SHA256 and AES-256-GCM for key wrapping, and age v1 for
// resource content. Every signed or authenticated message starts with a
// label of the form "coffer/v1/<purpose>" so a signature made for one purpose
// can never be replayed as another.
//
// Suite v2 (labels "coffer/v2/<purpose>") adds hybrid Ed25519 plus
// ML-DSA-65 signatures, accounts as hash chains of signed links with one
// verifier (VerifyAccountChain), devices, a per-account user key and a
// recovery key. Its formats and verifier are here; nothing uses them yet.
package coffer
