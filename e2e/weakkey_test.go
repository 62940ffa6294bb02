package e2e_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// TestRegisterWeakSigningKeyRefused plays a client that registers an account
// whose signing key is of small order or non-canonical. With the identity
// point as key, the signature (identity, 0) verifies for every message, so
// the self-signature and every later login or commit "signature" would pass
// crypto/ed25519. cofferd must refuse the registration outright.
func TestRegisterWeakSigningKeyRefused(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	honest, err := clientlib.GenerateIdentity("mallory")
	if err != nil {
		t.Fatal(err)
	}
	weakKeys := map[string]string{
		"identity":      "0100000000000000000000000000000000000000000000000000000000000000",
		"order-2":       "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"order-8":       "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"y-equals-p":    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"identity-sign": "0100000000000000000000000000000000000000000000000000000000000080",
	}
	for name, hexKey := range weakKeys {
		t.Run(name, func(t *testing.T) {
			id := honest.Public()
			id.SigningKey = mustHexBytes(t, hexKey)
			// R = the key's own encoding, s = 0: for a small-order key this
			// is what makes the universal forgery verify.
			sig := append(bytes.Clone(id.SigningKey), make([]byte, 32)...)
			body, _ := json.Marshal(api.RegisterRequest{Identity: id.Marshal(), SelfSignature: sig})
			resp, err := http.Post(srv.URL()+"/v1/accounts", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var problem struct {
				Code string `json:"code"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&problem)
			if resp.StatusCode != http.StatusBadRequest || problem.Code != string(coffer.EINVALID) {
				t.Fatalf("registering signing key %s: status %d code %q, want 400 %s", hexKey, resp.StatusCode, problem.Code, coffer.EINVALID)
			}
		})
	}
	// The same identity with its honest key registers.
	c := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	if err := c.Register(t.Context(), "honest"); err != nil {
		t.Fatal(err)
	}
}

func mustHexBytes(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
