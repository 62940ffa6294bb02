package clientlib

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

// The device state vectors are in testdata/devicestate (at the module
// root), one case per file:
//
//	expect: valid | too-short | unknown-generation | no-decrypt | bad-plaintext | other-account
//	comment: what the case shows
//	seed: hex of the user key seed of generation 1 (the only one the account has)
//	account: the account the blob is read for
//	version: the version the server serves it as
//	ciphertext: hex of the blob
//	plaintext: hex of the decrypted state (valid cases)
//
// Run `go test ./clientlib -run TestDeviceStateVectors -update` to rewrite
// them from deviceStateCases.
const deviceStateDir = "../testdata/devicestate"

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the test vectors under testdata/ instead of checking them")
	}
}

type deviceStateCase struct {
	name, expect, comment string
	account               coffer.AccountID
	version               uint64
	ciphertext            []byte
	plaintext             []byte
}

func deviceStateCases(t *testing.T) (seed []byte, cases []deviceStateCase) {
	seed = bytes.Repeat([]byte{0x5e}, 32)
	otherSeed := bytes.Repeat([]byte{0x0f}, 32)
	nonce := bytes.Repeat([]byte{0x11}, 12)
	s := sampleDeviceState()
	acct := s.Account
	other := coffer.AccountID{9, 9, 9}
	plain, _ := s.marshal()
	seal := func(seed []byte, gen uint64, a coffer.AccountID, v uint64, p []byte) []byte {
		ct, err := sealStateBlob(seed, gen, a, v, nonce, p)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	good := seal(seed, 1, acct, 3, plain)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	unsorted := sampleDeviceState()
	unsorted.Contacts[0], unsorted.Contacts[1] = unsorted.Contacts[1], unsorted.Contacts[0]
	bad, _ := unsorted.marshal()
	moved := sampleDeviceState()
	moved.Account = other
	movedPlain, _ := moved.marshal()
	cases = []deviceStateCase{
		{"valid", "valid", "a state sealed as version 3 of the account under generation 1", acct, 3, good, plain},
		{"other-version", "no-decrypt", "the same blob served as version 4: the version is in the additional data", acct, 4, good, nil},
		{"older-version-label", "no-decrypt", "the same blob served as version 2", acct, 2, good, nil},
		{"other-account", "no-decrypt", "the same blob read for another account: the account is in the additional data", other, 3, good, nil},
		{"other-key", "no-decrypt", "sealed under another seed, labelled generation 1", acct, 3, seal(otherSeed, 1, acct, 3, plain), nil},
		{"flipped-bit", "no-decrypt", "the last byte of the tag flipped", acct, 3, flipped, nil},
		{"unknown-generation", "unknown-generation", "sealed under generation 2, which the account never had", acct, 3, seal(seed, 2, acct, 3, plain), nil},
		{"too-short", "too-short", "generation, nonce and less than a tag", acct, 3, good[:35], nil},
		{"unsorted-contacts", "bad-plaintext", "sealed correctly, but the contacts are not sorted: not the canonical encoding", acct, 3, seal(seed, 1, acct, 3, bad), nil},
		{"names-other-account", "other-account", "sealed for the account, but the state inside names another", acct, 3, seal(seed, 1, acct, 3, movedPlain), nil},
	}
	return seed, cases
}

func (c deviceStateCase) file(seed []byte) string {
	var b strings.Builder
	b.WriteString("expect: " + c.expect + "\ncomment: " + c.comment + "\nseed: " + hex.EncodeToString(seed) +
		"\naccount: " + c.account.String() + "\nversion: " + strconv.FormatUint(c.version, 10) + "\nciphertext: " + hex.EncodeToString(c.ciphertext) + "\n")
	if c.plaintext != nil {
		b.WriteString("plaintext: " + hex.EncodeToString(c.plaintext) + "\n")
	}
	return b.String()
}

func TestDeviceStateVectors(t *testing.T) {
	seed, cases := deviceStateCases(t)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll(deviceStateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if err := os.WriteFile(filepath.Join(deviceStateDir, c.name+".txt"), []byte(c.file(seed)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(deviceStateDir, "*.txt"))
	if err != nil || len(files) != len(cases) {
		t.Fatalf("%d vector files, want %d (%v): run with -update", len(files), len(cases), err)
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			f[k] = v
		}
		fseed, _ := hex.DecodeString(f["seed"])
		ct, _ := hex.DecodeString(f["ciphertext"])
		acct, err := coffer.ParseAccountID(f["account"])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		version, _ := strconv.ParseUint(f["version"], 10, 64)
		s, err := openStateBlob(func(g uint64) ([]byte, bool) { return fseed, g == 1 }, acct, version, ct)
		got := "valid"
		switch {
		case errors.Is(err, errStateShort):
			got = "too-short"
		case errors.Is(err, errStateGeneration):
			got = "unknown-generation"
		case errors.Is(err, errStateDecrypt):
			got = "no-decrypt"
		case errors.Is(err, errStateOtherAccount):
			got = "other-account"
		case err != nil:
			got = "bad-plaintext"
		}
		if got != f["expect"] {
			t.Errorf("%s: %s (%v), want %s", filepath.Base(name), got, err, f["expect"])
			continue
		}
		if got == "valid" {
			want, _ := hex.DecodeString(f["plaintext"])
			again, _ := s.marshal()
			if !bytes.Equal(again, want) {
				t.Errorf("%s: decrypted state differs from plaintext", filepath.Base(name))
			}
		}
	}
	// The files are what the cases make today.
	for _, c := range cases {
		raw, err := os.ReadFile(filepath.Join(deviceStateDir, c.name+".txt"))
		if err != nil || string(raw) != c.file(seed) {
			t.Errorf("%s: the vector file is not what the case makes (%v): run with -update", c.name, err)
		}
	}
}
