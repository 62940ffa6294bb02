package translog_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// TestIdentityLeafWithSmallOrderKeyRefused: an identity leaf whose signing
// key is the identity point carries the signature (identity, 0), which
// crypto/ed25519 accepts for every message. A witness or client replaying
// the log must refuse it, not record an account that signs anything.
func TestIdentityLeafWithSmallOrderKeyRefused(t *testing.T) {
	dk, err := coffer.KEM().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	weak := append([]byte{1}, make([]byte, 31)...)
	id := coffer.PublicIdentity{Handle: "mallory", SigningKey: weak, EncryptionKey: dk.PublicKey().Bytes()}
	forged := append(bytes.Clone(weak), make([]byte, 32)...)
	l, err := translog.ParseLeaf(translog.IdentityLeaf(coffer.NewAccountID(), id.Marshal(), forged))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.VerifyIdentity(); err == nil {
		t.Fatal("an identity leaf with a small-order signing key and a universal signature verifies")
	}
}
