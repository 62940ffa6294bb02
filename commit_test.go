package coffer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
)

// MustSampleCommit returns a commit with one op of every kind: add user-5,
// remove user-6, set the role of user-7, rotate.
func MustSampleCommit(tb testing.TB) *coffer.Commit {
	tb.Helper()
	return &coffer.Commit{
		Group:         testGroupID(1),
		Seq:           7,
		Prev:          sha256.Sum256([]byte("prev")),
		Epoch:         3,
		Author:        MustChainMember(tb, 1).ID,
		Time:          -5, // any int64 round-trips
		ShareHistory:  true,
		KeyCommitment: sha256.Sum256([]byte("key commitment")),
		Ops: []coffer.Op{
			addOp(MustChainMember(tb, 5), coffer.RoleWriter),
			removeOp(MustChainMember(tb, 6)),
			setRoleOp(MustChainMember(tb, 7), coffer.RoleAdmin),
			rotateOp,
		},
	}
}

// Offsets into the sample commit's encoding.
const (
	sampleOffGroup   = 1
	sampleOffShare   = 1 + 16 + 8 + 32 + 8 + 16 + 8
	sampleOffNops    = sampleOffShare + 1 + 32
	sampleOffOps     = sampleOffNops + 2
	sampleOffAddID   = sampleOffOps + 1
	sampleOffHandle  = sampleOffAddID + 16 // length byte; "user-5" follows
	sampleOffAddEK   = sampleOffHandle + 1 + 6 + 32
	sampleOffAddRole = sampleOffAddEK + 1216
	sampleOffRemove  = sampleOffAddRole + 1
	sampleOffSetRole = sampleOffRemove + 1 + 16
	sampleOffRotate  = sampleOffSetRole + 1 + 16 + 1
)

func TestCommitRoundTrip(t *testing.T) {
	c := MustSampleCommit(t)
	body := c.Marshal()
	if body[0] != coffer.SuiteV1 || len(body) != sampleOffRotate+1 || coffer.OpKind(body[sampleOffRotate]) != coffer.OpRotate {
		t.Fatalf("unexpected layout: %d bytes", len(body))
	}
	got, err := coffer.ParseCommit(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, c)
	}
	if !bytes.Equal(got.Marshal(), body) {
		t.Errorf("re-encoding differs")
	}
	if !got.Rotates() {
		t.Errorf("Rotates() = false")
	}
	// The parsed commit must not alias the input.
	clear(body)
	if !reflect.DeepEqual(got, c) {
		t.Errorf("parsed commit aliases its input")
	}
}

func TestMarshalEncodesOnlyRelevantFields(t *testing.T) {
	m := MustChainMember(t, 5)
	c := MustSampleCommit(t)
	c.Ops = []coffer.Op{{Kind: coffer.OpRemove, Member: m.ID, Handle: m.Handle, SigningKey: m.Public(), Role: coffer.RoleOwner}}
	got, err := coffer.ParseCommit(c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if want := removeOp(m); !reflect.DeepEqual(got.Ops[0], want) {
		t.Errorf("remove op = %+v, want %+v", got.Ops[0], want)
	}
}

func TestParseCommitRejects(t *testing.T) {
	body := MustSampleCommit(t).Marshal()
	edit := func(f func(b []byte) []byte) []byte { return f(slices.Clone(body)) }
	set := func(off int, v ...byte) []byte {
		return edit(func(b []byte) []byte { copy(b[off:], v); return b })
	}
	nops := func(n uint16) []byte {
		return edit(func(b []byte) []byte { binary.BigEndian.PutUint16(b[sampleOffNops:], n); return b })
	}
	tests := []struct {
		name     string
		body     []byte
		wantRule string
	}{
		{"empty", nil, coffer.RuleMalformed},
		{"version-0", set(0, 0), coffer.RuleVersion},
		{"version-4", set(0, 4), coffer.RuleVersion},
		{"version-255", set(0, 255), coffer.RuleVersion},
		{"version-only", []byte{coffer.SuiteV1}, coffer.RuleMalformed},
		{"trailing-byte", append(slices.Clone(body), 0), coffer.RuleMalformed},
		{"history-flag-2", set(sampleOffShare, 2), coffer.RuleMalformed},
		{"zero-group", set(sampleOffGroup, make([]byte, 16)...), coffer.RuleMalformed},
		{"zero-author", set(sampleOffShare-8-16, make([]byte, 16)...), coffer.RuleMalformed},
		{"zero-member", set(sampleOffAddID, make([]byte, 16)...), coffer.RuleMalformed},
		{"zero-removed-member", set(sampleOffRemove+1, make([]byte, 16)...), coffer.RuleMalformed},
		{"add-role-0", set(sampleOffAddRole, 0), coffer.RuleMalformed},
		{"add-role-5", set(sampleOffAddRole, 5), coffer.RuleMalformed},
		{"set-role-0", set(sampleOffSetRole+17, 0), coffer.RuleMalformed},
		{"set-role-255", set(sampleOffSetRole+17, 255), coffer.RuleMalformed},
		{"handle-upper-case", set(sampleOffHandle+1, 'U'), coffer.RuleMalformed},
		{"handle-length-overrun", set(sampleOffHandle, 255), coffer.RuleMalformed},
		{"handle-length-short", set(sampleOffHandle, 2), coffer.RuleMalformed},
		{"encryption-key-invalid", set(sampleOffAddEK, bytes.Repeat([]byte{0xff}, 384)...), coffer.RuleMalformed},
		{"op-kind-0", set(sampleOffRotate, 0), coffer.RuleUnknownOp},
		{"op-kind-7", set(sampleOffRotate, 7), coffer.RuleUnknownOp},
		{"update-key-truncated", set(sampleOffRotate, byte(coffer.OpUpdateKey)), coffer.RuleMalformed},
		{"leave-truncated", set(sampleOffRotate, byte(coffer.OpLeave)), coffer.RuleMalformed},
		{"add-signing-key-identity-point", set(sampleOffAddEK-coffer.SigningKeySize, append([]byte{1}, make([]byte, 31)...)...), coffer.RuleWeakKey},
		{"add-signing-key-non-canonical", set(sampleOffAddEK-coffer.SigningKeySize, append(bytes.Repeat([]byte{0xff}, 31), 0x7f)...), coffer.RuleWeakKey},
		{"op-kind-255", set(sampleOffRemove, 255), coffer.RuleUnknownOp},
		{"op-count-short", nops(3), coffer.RuleMalformed},
		{"op-count-long", nops(5), coffer.RuleMalformed},
		{"op-count-over-limit", nops(coffer.MaxCommitOps + 1), coffer.RuleTooLarge},
		{"op-count-max", nops(0xffff), coffer.RuleTooLarge},
		{"body-over-limit", append(slices.Clone(body), make([]byte, coffer.MaxCommitSize)...), coffer.RuleTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := coffer.ParseCommit(tt.body)
			checkChainRule(t, err, tt.wantRule)
		})
	}
	for i := range body {
		if _, err := coffer.ParseCommit(body[:i]); err == nil {
			t.Errorf("truncation to %d bytes accepted", i)
		}
	}
}

func TestCommitHash(t *testing.T) {
	p := MustChainCast(t)
	sc := coffer.SignCommit(MustSampleCommit(t), p.owner.Key)
	want := sha256.Sum256(coffer.SignedMessage(coffer.LabelCommitHash, sc.Body))
	if sc.Hash() != want {
		t.Errorf("Hash is not SHA-256 over the labelled body")
	}
	other := sc
	other.Signature = coffer.SignCommit(MustSampleCommit(t), p.admin.Key).Signature
	if other.Hash() != sc.Hash() {
		t.Errorf("Hash depends on the signature")
	}
	if !coffer.VerifySignature(p.owner.Public(), coffer.LabelCommit, sc.Body, sc.Signature) {
		t.Errorf("SignCommit does not sign under LabelCommit")
	}
}

// TestCommitMangling flips every byte of a valid signed genesis, in its body
// and in its signature; no variant may verify.
func TestCommitMangling(t *testing.T) {
	p := MustChainCast(t)
	sc := MustGenesis(t, p.owner, addOp(p.writer, coffer.RoleWriter)).commits[0]
	if _, err := coffer.VerifyChain(nil, []coffer.SignedCommit{sc}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, i int, m coffer.SignedCommit) {
		_, err := coffer.VerifyChain(nil, []coffer.SignedCommit{m})
		var e *coffer.Error
		if !errors.As(err, &e) || e.Code != coffer.EINVALID || e.Rule == "" {
			t.Fatalf("flipping %s byte %d: got %v, want a rule violation", what, i, err)
		}
	}
	for i := range sc.Body {
		m := coffer.SignedCommit{Body: slices.Clone(sc.Body), Signature: sc.Signature}
		m.Body[i] ^= 0xff
		check("body", i, m)
	}
	for i := range sc.Signature {
		m := coffer.SignedCommit{Body: sc.Body, Signature: slices.Clone(sc.Signature)}
		m.Signature[i] ^= 0xff
		check("signature", i, m)
	}
}

func TestOpKindString(t *testing.T) {
	for k, want := range map[coffer.OpKind]string{coffer.OpAdd: "add", coffer.OpRemove: "remove",
		coffer.OpSetRole: "set-role", coffer.OpRotate: "rotate", coffer.OpLeave: "leave", coffer.OpUpdateKey: "update-key", 0: "op(0)", 9: "op(9)"} {
		if got := k.String(); got != want {
			t.Errorf("OpKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
