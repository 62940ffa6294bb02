package coffer_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

func TestPairingCodeParse(t *testing.T) {
	c := coffer.NewPairingCode()
	code := c.Reveal()
	if len(code) != 19 || strings.Count(code, "-") != 3 {
		t.Fatalf("code %q is not four groups of four", code)
	}
	if strings.Contains(fmt.Sprint(c), code[:4]) || strings.Contains(fmt.Sprintf("%#v %v", c, *c), code[:4]) {
		t.Fatalf("formatting a code shows it")
	}
	for _, typed := range []string{code, "  " + code + "\n", strings.ToLower(code), strings.ReplaceAll(code, "-", " ")} {
		got, err := coffer.ParsePairingCode(typed)
		if err != nil || got.Reveal() != code || got.ID() != c.ID() {
			t.Errorf("ParsePairingCode(%q) = %v, %v", typed, got, err)
		}
	}
	for _, bad := range []string{"", "ABCD-EFGH", code + "A", "ABCD-EFGH-IJKL-MNO1", "ABCD-EFGH-IJKL-MN0P"} {
		if _, err := coffer.ParsePairingCode(bad); err == nil {
			t.Errorf("ParsePairingCode(%q) accepted", bad)
		}
	}
	if coffer.NewPairingCode().ID() == c.ID() {
		t.Fatal("two codes share an id")
	}
	if err := coffer.CheckPairingID(c.ID()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", strings.ToUpper(c.ID()), c.ID()[:30], c.ID() + "00", code} {
		if coffer.CheckPairingID(bad) == nil {
			t.Errorf("CheckPairingID(%q) accepted", bad)
		}
	}
}

// TestPairingMACs: the request MAC binds the handle, the device's id, name
// and both keys; the approval MAC binds the link body; neither verifies
// under another code.
func TestPairingMACs(t *testing.T) {
	c, other := coffer.NewPairingCode(), coffer.NewPairingCode()
	d, o := MustTestDevice(t, 1), MustTestDevice(t, 2)
	mac := c.RequestMAC("alice", d.Keys())
	if err := c.CheckRequestMAC("alice", d.Keys(), mac); err != nil {
		t.Fatal(err)
	}
	swap := func(f func(*coffer.DeviceKeys)) coffer.DeviceKeys {
		k := d.Keys()
		f(&k)
		return k
	}
	for name, check := range map[string]error{
		"another handle":         c.CheckRequestMAC("mallory", d.Keys(), mac),
		"another signing key":    c.CheckRequestMAC("alice", swap(func(k *coffer.DeviceKeys) { k.SigningKey = o.Key.Public() }), mac),
		"another encryption key": c.CheckRequestMAC("alice", swap(func(k *coffer.DeviceKeys) { k.EncryptionKey = o.Enc }), mac),
		"another device id":      c.CheckRequestMAC("alice", swap(func(k *coffer.DeviceKeys) { k.ID = o.ID }), mac),
		"another name":           c.CheckRequestMAC("alice", swap(func(k *coffer.DeviceKeys) { k.Name = "evil" }), mac),
		"another code":           other.CheckRequestMAC("alice", d.Keys(), mac),
		"no mac":                 c.CheckRequestMAC("alice", d.Keys(), nil),
	} {
		if !coffer.IsSecurity(check) {
			t.Errorf("%s: err = %v, want a security error", name, check)
		}
	}
	body := MustAccount(t).links[0].Body
	amac := c.ApprovalMAC(body)
	if err := c.CheckApprovalMAC(body, amac); err != nil {
		t.Fatal(err)
	}
	edited := append([]byte(nil), body...)
	edited[len(edited)-1] ^= 1
	if !coffer.IsSecurity(c.CheckApprovalMAC(edited, amac)) || !coffer.IsSecurity(other.CheckApprovalMAC(body, amac)) ||
		!coffer.IsSecurity(c.CheckApprovalMAC(body, mac)) {
		t.Fatal("an approval MAC verified for another body or code, or a request MAC as an approval")
	}
}

func FuzzParsePairingCode(f *testing.F) {
	f.Add(coffer.NewPairingCode().Reveal())
	f.Add("abcd efgh ijkl mnop")
	f.Add("----")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := coffer.ParsePairingCode(s)
		if err != nil {
			return
		}
		again, err := coffer.ParsePairingCode(c.Reveal())
		if err != nil || again.ID() != c.ID() {
			t.Fatalf("a parsed code does not parse to itself: %v", err)
		}
	})
}
