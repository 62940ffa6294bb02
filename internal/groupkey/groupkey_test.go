package groupkey_test

import (
	"bytes"
	"crypto/hpke"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

func MustKeyPair(tb testing.TB) (hpke.PrivateKey, []byte) {
	tb.Helper()
	priv, err := coffer.KEM().GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return priv, priv.PublicKey().Bytes()
}

func TestCommitment(t *testing.T) {
	k := groupkey.NewEpochKey()
	g := coffer.NewGroupID()
	c := groupkey.Commitment(k, g, 7)
	if !groupkey.CheckCommitment(k, g, 7, c) {
		t.Fatal("commitment does not check against its own key")
	}
	if c != groupkey.Commitment(k, g, 7) {
		t.Fatal("commitment is not deterministic")
	}
	tests := []struct {
		name  string
		k     groupkey.EpochKey
		g     coffer.GroupID
		epoch uint64
	}{
		{"other key", groupkey.NewEpochKey(), g, 7},
		{"other group", k, coffer.NewGroupID(), 7},
		{"other epoch", k, g, 8},
	}
	for _, tt := range tests {
		if groupkey.CheckCommitment(tt.k, tt.g, tt.epoch, c) {
			t.Errorf("%s: mismatched commitment accepted", tt.name)
		}
	}
}

func TestWrapRoundTrip(t *testing.T) {
	priv, pub := MustKeyPair(t)
	k := groupkey.NewEpochKey()
	g, member := coffer.NewGroupID(), coffer.NewAccountID()
	w, err := groupkey.Wrap(pub, g, 3, member, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != coffer.WrapSize {
		t.Fatalf("wrap is %d bytes, want %d", len(w), coffer.WrapSize)
	}
	got, err := groupkey.Unwrap(priv, g, 3, member, w)
	if err != nil {
		t.Fatal(err)
	}
	if got != k {
		t.Fatal("unwrapped a different key")
	}
}

func TestUnwrapRejects(t *testing.T) {
	priv, pub := MustKeyPair(t)
	otherPriv, _ := MustKeyPair(t)
	k := groupkey.NewEpochKey()
	g, member := coffer.NewGroupID(), coffer.NewAccountID()
	w, err := groupkey.Wrap(pub, g, 3, member, k)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(w)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name   string
		priv   hpke.PrivateKey
		g      coffer.GroupID
		epoch  uint64
		member coffer.AccountID
		wrap   []byte
	}{
		{"other member", priv, g, 3, coffer.NewAccountID(), w},
		{"other epoch", priv, g, 4, member, w},
		{"other group", priv, coffer.NewGroupID(), 3, member, w},
		{"other private key", otherPriv, g, 3, member, w},
		{"flipped tag", priv, g, 3, member, flipped},
		{"short", priv, g, 3, member, w[:len(w)-1]},
		{"long", priv, g, 3, member, append(bytes.Clone(w), 0)},
		{"empty", priv, g, 3, member, nil},
	}
	for _, tt := range tests {
		if _, err := groupkey.Unwrap(tt.priv, tt.g, tt.epoch, tt.member, tt.wrap); err == nil {
			t.Errorf("%s: unwrap succeeded", tt.name)
		}
	}
}

func TestWrapRejectsBadKey(t *testing.T) {
	_, pub := MustKeyPair(t)
	k := groupkey.NewEpochKey()
	for _, bad := range [][]byte{nil, pub[:len(pub)-1], append(bytes.Clone(pub), 0)} {
		if _, err := groupkey.Wrap(bad, coffer.NewGroupID(), 1, coffer.NewAccountID(), k); err == nil {
			t.Errorf("wrap to a %d-byte key succeeded", len(bad))
		}
	}
}

func TestWrapMany(t *testing.T) {
	const n = 9 // more than GOMAXPROCS, and odd
	privs := make([]hpke.PrivateKey, n)
	recipients := make([]groupkey.Recipient, n)
	for i := range n {
		var pub []byte
		privs[i], pub = MustKeyPair(t)
		recipients[i] = groupkey.Recipient{Member: coffer.NewAccountID(), EncryptionKey: pub}
	}
	k := groupkey.NewEpochKey()
	g := coffer.NewGroupID()
	wraps, err := groupkey.WrapMany(recipients, g, 5, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(wraps) != n {
		t.Fatalf("got %d wraps for %d recipients", len(wraps), n)
	}
	for i, w := range wraps {
		if len(w) != coffer.WrapSize {
			t.Errorf("wrap %d is %d bytes", i, len(w))
		}
		got, err := groupkey.Unwrap(privs[i], g, 5, recipients[i].Member, w)
		if err != nil || got != k {
			t.Errorf("wrap %d does not open for recipient %d: %v", i, i, err)
		}
		// Serial semantics: the wrap is bound to its own member only.
		j := (i + 1) % n
		if _, err := groupkey.Unwrap(privs[i], g, 5, recipients[j].Member, w); err == nil {
			t.Errorf("wrap %d opens under member %d's id", i, j)
		}
	}

	if wraps, err := groupkey.WrapMany(nil, g, 5, k); err != nil || len(wraps) != 0 {
		t.Errorf("WrapMany(nil) = %d wraps, %v", len(wraps), err)
	}

	// One bad key fails the whole batch, naming the first bad member.
	bad := append([]groupkey.Recipient(nil), recipients...)
	bad[6].EncryptionKey = bad[6].EncryptionKey[:10]
	bad[2].EncryptionKey = nil
	if _, err := groupkey.WrapMany(bad, g, 5, k); err == nil {
		t.Fatal("WrapMany accepted a malformed key")
	} else if want := bad[2].Member.String(); !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not name the first bad member %s", err, want)
	}
}

func TestHistoryLink(t *testing.T) {
	older, newer := groupkey.NewEpochKey(), groupkey.NewEpochKey()
	g := coffer.NewGroupID()
	link := groupkey.SealHistoryLink(newer, g, 4, older)
	if len(link) != coffer.HistoryLinkSize {
		t.Fatalf("link is %d bytes, want %d", len(link), coffer.HistoryLinkSize)
	}
	got, err := groupkey.OpenHistoryLink(newer, g, 4, link)
	if err != nil {
		t.Fatal(err)
	}
	if got != older {
		t.Fatal("link opened to a different key")
	}
	if bytes.Equal(link, groupkey.SealHistoryLink(newer, g, 4, older)) {
		t.Error("two links of the same keys are equal: nonce is not random")
	}
	flipped := bytes.Clone(link)
	flipped[0] ^= 1
	tests := []struct {
		name  string
		newer groupkey.EpochKey
		g     coffer.GroupID
		epoch uint64
		link  []byte
	}{
		{"wrong epoch", newer, g, 3, link},
		{"next epoch", newer, g, 5, link},
		{"wrong group", newer, coffer.NewGroupID(), 4, link},
		{"wrong key", older, g, 4, link},
		{"flipped nonce", newer, g, 4, flipped},
		{"short", newer, g, 4, link[:len(link)-1]},
		{"last epoch", newer, g, 1<<64 - 1, link},
	}
	for _, tt := range tests {
		if _, err := groupkey.OpenHistoryLink(tt.newer, tt.g, tt.epoch, tt.link); err == nil {
			t.Errorf("%s: link opened", tt.name)
		}
	}
}

func TestMetadata(t *testing.T) {
	k := groupkey.NewEpochKey()
	g := coffer.NewGroupID()
	r := coffer.NewResourceID()
	binding := append(r[:], 0, 0, 0, 0, 0, 0, 0, 2)
	plaintext := []byte(`{"name":"report.pdf","type":"application/pdf"}`)
	ct := groupkey.SealMetadata(k, g, 9, coffer.LabelResourceMeta, binding, plaintext)
	if len(ct) != len(plaintext)+28 {
		t.Errorf("ciphertext is %d bytes for %d of plaintext", len(ct), len(plaintext))
	}
	got, err := groupkey.OpenMetadata(k, g, 9, coffer.LabelResourceMeta, binding, ct)
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("round trip: %q, %v", got, err)
	}

	name := groupkey.SealMetadata(k, g, 9, coffer.LabelGroupMeta, nil, []byte("Team"))
	if got, err := groupkey.OpenMetadata(k, g, 9, coffer.LabelGroupMeta, nil, name); err != nil || string(got) != "Team" {
		t.Fatalf("group name round trip: %q, %v", got, err)
	}

	other := coffer.NewResourceID()
	tests := []struct {
		name    string
		k       groupkey.EpochKey
		g       coffer.GroupID
		epoch   uint64
		purpose string
		binding []byte
		ct      []byte
	}{
		{"other resource", k, g, 9, coffer.LabelResourceMeta, append(other[:], binding[16:]...), ct},
		{"other version", k, g, 9, coffer.LabelResourceMeta, append(r[:], 0, 0, 0, 0, 0, 0, 0, 1), ct},
		{"no binding", k, g, 9, coffer.LabelResourceMeta, nil, ct},
		{"other purpose", k, g, 9, coffer.LabelGroupMeta, binding, ct},
		{"other epoch", k, g, 10, coffer.LabelResourceMeta, binding, ct},
		{"other group", k, coffer.NewGroupID(), 9, coffer.LabelResourceMeta, binding, ct},
		{"other key", groupkey.NewEpochKey(), g, 9, coffer.LabelResourceMeta, binding, ct},
		{"not a metadata label", k, g, 9, coffer.LabelHistoryLink, binding, ct},
		{"group name as resource", k, g, 9, coffer.LabelResourceMeta, nil, name},
		{"truncated", k, g, 9, coffer.LabelResourceMeta, binding, ct[:len(ct)-1]},
		{"empty", k, g, 9, coffer.LabelResourceMeta, binding, nil},
	}
	for _, tt := range tests {
		if _, err := groupkey.OpenMetadata(tt.k, tt.g, tt.epoch, tt.purpose, tt.binding, tt.ct); err == nil {
			t.Errorf("%s: metadata opened", tt.name)
		}
	}
}

func TestSealMetadataRejectsOtherPurposes(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("SealMetadata accepted the history-link label as a metadata purpose")
		}
	}()
	groupkey.SealMetadata(groupkey.NewEpochKey(), coffer.NewGroupID(), 1, coffer.LabelHistoryLink, nil, nil)
}

// TestDerivedKeysDiffer checks the domain separation between purposes from
// the outside: a link sealed for epoch e→e+1 under K must not open as
// metadata under K at epoch e+1 (same key, same group, neighbouring context),
// and vice versa.
func TestDerivedKeysDiffer(t *testing.T) {
	k := groupkey.NewEpochKey()
	g := coffer.NewGroupID()
	link := groupkey.SealHistoryLink(k, g, 1, groupkey.NewEpochKey())
	for _, p := range []string{coffer.LabelGroupMeta, coffer.LabelResourceMeta} {
		if _, err := groupkey.OpenMetadata(k, g, 2, p, nil, link); err == nil {
			t.Errorf("history link opened as %s", p)
		}
	}
	meta := groupkey.SealMetadata(k, g, 2, coffer.LabelGroupMeta, nil, make([]byte, 32))
	if _, err := groupkey.OpenHistoryLink(k, g, 1, meta); err == nil {
		t.Error("group metadata opened as a history link")
	}
}

func TestEpochKeyRedacted(t *testing.T) {
	k := groupkey.NewEpochKey()
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if bytes.Contains([]byte(s), []byte(fmt.Sprintf("%x", k[:4]))) {
			t.Errorf("formatting leaks the key: %s", s)
		}
	}
}

// BenchmarkSeal is the baseline for BenchmarkWrapMany: a serial loop of raw
// hpke.Seal calls to already-parsed public keys.
func BenchmarkSeal(b *testing.B) {
	const n = 1000
	keys := benchKeys(b, n)
	pks := make([]hpke.PublicKey, n)
	for i, r := range keys {
		pk, err := coffer.KEM().NewPublicKey(r.EncryptionKey)
		if err != nil {
			b.Fatal(err)
		}
		pks[i] = pk
	}
	k := groupkey.NewEpochKey()
	b.ResetTimer()
	for b.Loop() {
		for _, pk := range pks {
			if _, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("info"), k[:]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/recipient")
}

// BenchmarkWrapMany wraps for 1000 recipients, parsing every key, on all
// GOMAXPROCS cores.
func BenchmarkWrapMany(b *testing.B) {
	const n = 1000
	keys := benchKeys(b, n)
	k := groupkey.NewEpochKey()
	g := coffer.NewGroupID()
	b.ResetTimer()
	for b.Loop() {
		if _, err := groupkey.WrapMany(keys, g, 1, k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/recipient")
}

func benchKeys(b *testing.B, n int) []groupkey.Recipient {
	b.Helper()
	keys := make([]groupkey.Recipient, n)
	for i := range keys {
		_, pub := MustKeyPair(b)
		keys[i] = groupkey.Recipient{Member: coffer.NewAccountID(), EncryptionKey: pub}
	}
	return keys
}
