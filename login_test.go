package coffer_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/cofferhq/coffer"
)

// TestDeviceLoginStatement pins the encoding (docs/PROTOCOL.md, Login) and
// checks that every field it binds changes it.
func TestDeviceLoginStatement(t *testing.T) {
	account, _ := coffer.ParseAccountID("0c0ffe00-9a11-4e2d-8b1e-000000000001")
	device, _ := coffer.ParseDeviceID("0c0ffe00-9a11-4e2d-8b1e-0000000000d1")
	challenge := bytes.Repeat([]byte{0xcc}, coffer.ChallengeSize)
	origin := "https://coffer.example:443"
	got := coffer.DeviceLoginStatement(origin, account, device, challenge)
	want := "02" + "001a" + hex.EncodeToString([]byte(origin)) +
		"0c0ffe009a114e2d8b1e000000000001" + "0c0ffe009a114e2d8b1e0000000000d1" +
		"20" + hex.EncodeToString(challenge)
	if hex.EncodeToString(got) != want {
		t.Fatalf("statement\n%x\nwant\n%s", got, want)
	}
	other, _ := coffer.ParseDeviceID("0c0ffe00-9a11-4e2d-8b1e-0000000000d2")
	for name, s := range map[string][]byte{
		"origin":    coffer.DeviceLoginStatement("https://coffer.example:8443", account, device, challenge),
		"account":   coffer.DeviceLoginStatement(origin, coffer.AccountID(device), device, challenge),
		"device":    coffer.DeviceLoginStatement(origin, account, other, challenge),
		"challenge": coffer.DeviceLoginStatement(origin, account, device, make([]byte, coffer.ChallengeSize)),
		"suite v1":  coffer.LoginStatement(origin, account, challenge),
	} {
		if bytes.Equal(s, got) {
			t.Errorf("another %s, the same statement", name)
		}
	}
}
