package clientlib

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// TestLookupRefusesWeakSigningKey: a server answering a lookup, by handle
// or by id, with an identity whose signing key is of small order or not
// canonical, self-signed with the signature (R = the key, s = 0) that
// crypto/ed25519 accepts under such a key for every message, is caught
// before the identity is used or remembered as a contact.
func TestLookupRefusesWeakSigningKey(t *testing.T) {
	honest, err := GenerateIdentity("bob")
	if err != nil {
		t.Fatal(err)
	}
	id := coffer.NewAccountID()
	for name, hexKey := range map[string]string{
		"identity":      "0100000000000000000000000000000000000000000000000000000000000000",
		"order-2":       "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"order-8":       "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"identity-sign": "0100000000000000000000000000000000000000000000000000000000000080",
	} {
		t.Run(name, func(t *testing.T) {
			key, err := hex.DecodeString(hexKey)
			if err != nil {
				t.Fatal(err)
			}
			pub := honest.Public()
			pub.SigningKey = key
			a := api.Account{ID: id, Identity: pub.Marshal(), SelfSignature: append(bytes.Clone(key), make([]byte, 32)...)}
			h := pub.Handle
			if _, err := checkAccount(a, &h, nil); !coffer.IsSecurity(err) {
				t.Errorf("lookup by handle: %v, want a security error", err)
			}
			if _, err := checkAccount(a, nil, &id); !coffer.IsSecurity(err) {
				t.Errorf("lookup by id: %v, want a security error", err)
			}
		})
	}
}
