package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMatcherFindsEveryEncoding plants a secret in each encoding, at every
// base64 alignment, across chunk boundaries, and requires the matcher to
// find each one exactly where it is.
func TestMatcherFindsEveryEncoding(t *testing.T) {
	secret := make([]byte, 16)
	rand.Read(secret)
	m := newMatcher([]canarySecret{{"file-key", secret}})
	plants := map[string][]byte{
		"raw":      secret,
		"hex":      []byte(hex.EncodeToString(secret)),
		"HEX":      []byte(strings.ToUpper(hex.EncodeToString(secret))),
		"b64 at 0": []byte(base64.StdEncoding.EncodeToString(secret)),
		"b64 at 1": []byte(base64.StdEncoding.EncodeToString(append([]byte{7}, secret...))),
		"b64 at 2": []byte(base64.StdEncoding.EncodeToString(append([]byte{7, 9}, secret...))),
		"url at 1": []byte(base64.URLEncoding.EncodeToString(append([]byte{0xfb}, append(secret, 0xff, 0xfe)...))),
		"url at 2": []byte(base64.RawURLEncoding.EncodeToString(append([]byte{0xfb, 0xff}, append(secret, 0xff)...))),
		"b64 tail": []byte(base64.StdEncoding.EncodeToString(append(append([]byte{1, 2, 3}, secret...), 0xee))),
	}
	for name, plant := range plants {
		for _, at := range []int{0, 5, 4<<20 - 10, 4<<20 + 3} {
			data := make([]byte, at+len(plant)+100)
			copy(data[at:], plant)
			f := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(f, data, 0o600); err != nil {
				t.Fatal(err)
			}
			hits := 0
			n, err := m.searchFile(f, func(off int64, nd needle) { hits++ })
			if err != nil || n != int64(len(data)) {
				t.Fatalf("searchFile: %d, %v", n, err)
			}
			if hits == 0 {
				t.Errorf("%s at %d: not found", name, at)
			}
		}
	}
	// Random data of the same size does not match.
	noise := make([]byte, 1<<20)
	rand.Read(noise)
	f := filepath.Join(t.TempDir(), "noise")
	os.WriteFile(f, noise, 0o600)
	if _, err := m.searchFile(f, func(int64, needle) { t.Error("hit in random data") }); err != nil {
		t.Fatal(err)
	}
}

func TestCheckCiphertext(t *testing.T) {
	for range 2000 {
		for _, n := range []int{28, 40, 64, 100, 256, 1000} {
			b := make([]byte, n)
			rand.Read(b)
			if why := checkCiphertext(b); why != "" {
				t.Fatalf("random %d bytes rejected: %s", n, why)
			}
		}
	}
	for _, bad := range []string{
		"short",
		`{"name":"project x"}                    `,
		"Project X ships on March 3rd; tell nobody about it.",
		"Prüfbericht für das Projekt — vertraulich, bitte nicht weitergeben!",
		string(bytes.Repeat([]byte{0, 0, 0, 1}, 32)),
	} {
		if checkCiphertext([]byte(bad)) == "" {
			t.Errorf("%q passed as ciphertext", bad)
		}
	}
}
