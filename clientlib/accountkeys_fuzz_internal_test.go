package clientlib

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/userkey"
)

// FuzzStoredAccountBlobs: the parsers of the account blobs a KeyStore
// holds (device, user keys, unfinished registration) never panic, and what
// they accept encodes back to the same bytes. A KeyStore is the app's
// code, and a corrupt one must be an error, not a crash.
func FuzzStoredAccountBlobs(f *testing.F) {
	dev, err := newDevice("phone")
	if err != nil {
		f.Fatal(err)
	}
	uk, _ := userkey.Generate()
	ring, _ := userKeyring{1: uk, 3: uk}.marshal()
	pend := (&pendingAccount{genesis: coffer.SignedLink{Body: []byte("body"), Signature: []byte("sig")}, recovery: coffer.NewRecoveryKey()}).marshal()
	for _, seed := range [][]byte{dev.marshal(), ring, pend, {}, {2}, {1, 0, 1}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := parseDevice(b); err == nil && !bytes.Equal(d.marshal(), b) {
			t.Fatalf("device blob does not round-trip")
		}
		if r, err := parseUserKeyring(b); err == nil {
			if again, err := r.marshal(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("user keys do not round-trip: %v", err)
			}
		}
		ks := NewMemoryKeyStore()
		ks.Put(ksAccountPending, b)
		c := &Client{ks: ks}
		if p, err := c.loadPending(); err == nil && p != nil && !bytes.Equal(p.marshal(), b) {
			t.Fatalf("pending registration does not round-trip")
		}
	})
}
