package coffer_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cofferhq/coffer"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// accountCast: devices 1 to 5 and recovery keys 1 and 2.
type accountCast struct {
	d1, d2, d3, d4, d5 *testDevice
	r1, r2             *coffer.RecoveryKey
}

func MustAccountCast(tb testing.TB) accountCast {
	tb.Helper()
	return accountCast{MustTestDevice(tb, 1), MustTestDevice(tb, 2), MustTestDevice(tb, 3), MustTestDevice(tb, 4), MustTestDevice(tb, 5),
		testRecoveryKey(1), testRecoveryKey(2)}
}

type accountCase struct {
	name, comment, rule string
	build               func(tb testing.TB, p accountCast) []coffer.SignedLink
}

// accountCaseWants holds, for the cases that have one, what the caller
// expects of the genesis (account, origin, handle).
var accountCaseWants = map[string]coffer.AccountState{
	"expected-account":       {Account: testAccountID(1), Origin: testOrigin, Handle: "alice"},
	"expected-other-account": {Account: testAccountID(2)},
	"expected-other-origin":  {Origin: "https://coffer.example:8443"},
	"expected-other-handle":  {Handle: "mallory"},
}

// want is what the caller expects of the genesis; zero for nothing.
func (tc accountCase) want() coffer.AccountState { return accountCaseWants[tc.name] }

// wantState is the trusted state VerifyAccountChain gets for the case.
func (tc accountCase) wantState() *coffer.AccountState {
	w, ok := accountCaseWants[tc.name]
	if !ok {
		return nil
	}
	return &w
}

// editAt returns an edit that overwrites body at the first occurrence of
// old (which must be there) with new.
func editAt(tb testing.TB, old, new []byte) func([]byte) []byte {
	return func(body []byte) []byte {
		i := bytes.Index(body, old)
		if i < 0 {
			tb.Fatalf("edit target not in the body")
		}
		body = bytes.Clone(body)
		copy(body[i:], new)
		return body
	}
}

// Offsets in every link body: version 0, account 1, seq 17, prev 25,
// time 57, kind 65, author kind 66, author 67.
const (
	linkKindOffset = 65
)

var smallOrderEd = append([]byte{1}, make([]byte, 31)...) // the identity point

// accountCases are the rule tests, one per vector file in
// testdata/accountchain; in every failing case only the last link is bad.
var accountCases = []accountCase{
	// Chains that verify.
	{"genesis", "a genesis: first device, user key, recovery commitment", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).links
	}},
	{"add-device-by-device", "a device adds a second device, which co-signs", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).DoAdd(p.d1, p.d2).links
	}},
	{"add-device-by-recovery", "the recovery key adds a device", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).DoAddByRecovery(p.r1, p.d2).links
	}},
	{"revoke-device", "a device revokes another and rotates the user key", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).DoAdd(p.d1, p.d2).DoAdd(p.d2, p.d3).DoRevoke(p.d3, p.d1).links
	}},
	{"rotate-user-key", "a device rotates the user key", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).DoAdd(p.d1, p.d2).DoRotate(p.d2).DoRotate(p.d1).links
	}},
	{"set-recovery-by-device", "a device replaces the recovery key", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).DoSetRecovery(p.d1, p.r2).links
	}},
	{"set-recovery-by-recovery", "the recovery key replaces itself", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(ByRecovery(b.SetRecovery(nil, p.r2), p.r1), p.r1.SigningKey(), nil).links
	}},
	{"recovery-flow", "the only device is lost: the recovery key adds a new one, which revokes the old and rotates the recovery key", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).DoAddByRecovery(p.r1, p.d3).DoRevoke(p.d3, p.d1).DoSetRecovery(p.d3, p.r2).DoAddByRecovery(p.r2, p.d4).links
	}},

	{"expected-account", "a genesis for the account, deployment and handle the caller expects", "", func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).links
	}},
	{"expected-other-account", "a genesis for another account than the caller expects", coffer.RuleAccount, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).links
	}},
	{"expected-other-origin", "a genesis made on another deployment (port 8443) than the caller's", coffer.RuleOrigin, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).links
	}},
	{"expected-other-handle", "a genesis for another handle than the caller looked up", coffer.RuleHandle, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		return MustAccount(tb).links
	}},

	// genesis
	{"empty-chain", "no links at all", coffer.RuleGenesis, func(tb testing.TB, p accountCast) []coffer.SignedLink { return nil }},
	{"genesis-not-first", "the first link adds a device", coffer.RuleGenesis, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		return b.Push(b.AddDevice(p.d1, p.d2), p.d1.Key, p.d2.Key).links
	}},
	{"genesis-seq-2", "a genesis with seq 2", coffer.RuleGenesis, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		l := b.Genesis(p.d1, p.r1)
		l.Seq = 2
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"genesis-prev", "a genesis with a non-zero prev", coffer.RuleGenesis, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		l := b.Genesis(p.d1, p.r1)
		l.Prev[0] = 1
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"genesis-author-other-device", "a genesis naming another device as its author", coffer.RuleGenesis, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		l := b.Genesis(p.d1, p.r1)
		l.AuthorDevice = p.d2.ID
		return b.Push(l, p.d2.Key, nil).links
	}},
	{"genesis-by-recovery", "a genesis authored by a recovery key", coffer.RuleGenesis, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		return b.Push(ByRecovery(b.Genesis(p.d1, p.r1), p.r1), p.r1.SigningKey(), nil).links
	}},
	{"genesis-twice", "a second genesis continuing the chain", coffer.RuleGenesis, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.Genesis(p.d2, p.r2)
		l.UserKey = testUserKey(tb, 9)
		return b.Push(l, p.d2.Key, nil).links
	}},
	{"genesis-signature", "a genesis signed by another key than its device's", coffer.RuleSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		return b.Push(b.Genesis(p.d1, p.r1), p.d2.Key, nil).links
	}},
	{"genesis-user-key-is-device-key", "the genesis user key is the device's encryption key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		l := b.Genesis(p.d1, p.r1)
		l.UserKey = p.d1.Enc
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"genesis-origin-not-canonical", "a genesis whose origin has no explicit port", coffer.RuleMalformed, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		l := b.Genesis(p.d1, p.r1)
		l.Origin = "https://coffer.example"
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"genesis-small-order-device-key", "the Ed25519 half of the device's signing key is the identity point", coffer.RuleWeakKey, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		return b.pushBody(b.Genesis(p.d1, p.r1), editAt(tb, p.d1.Key.Public().Bytes()[:32], smallOrderEd), p.d1.Key, nil)
	}},

	// position
	{"other-account", "a link for another account", coffer.RuleAccount, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.AddDevice(p.d1, p.d2)
		l.Account = testAccountID(2)
		return b.Push(l, p.d1.Key, p.d2.Key).links
	}},
	{"seq-skip", "seq jumps by two", coffer.RuleSeq, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.AddDevice(p.d1, p.d2)
		l.Seq++
		return b.Push(l, p.d1.Key, p.d2.Key).links
	}},
	{"seq-repeat", "seq repeats the head's", coffer.RuleSeq, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.AddDevice(p.d1, p.d3)
		l.Seq--
		return b.Push(l, p.d1.Key, p.d3.Key).links
	}},
	{"prev-wrong", "prev is not the head's hash", coffer.RulePrev, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.AddDevice(p.d1, p.d3)
		l.Prev = b.links[0].Hash()
		return b.Push(l, p.d1.Key, p.d3.Key).links
	}},

	// format
	{"version-1", "a link with version 1", coffer.RuleVersion, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.pushBody(b.AddDevice(p.d1, p.d2), func(body []byte) []byte { body[0] = 1; return body }, p.d1.Key, p.d2.Key)
	}},
	{"unknown-kind", "a link of kind 6", coffer.RuleLinkKind, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.pushBody(b.AddDevice(p.d1, p.d2), func(body []byte) []byte { body[linkKindOffset] = 6; return body }, p.d1.Key, p.d2.Key)
	}},
	{"trailing-bytes", "a byte after the link", coffer.RuleMalformed, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.pushBody(b.AddDevice(p.d1, p.d2), func(body []byte) []byte { return append(body, 0) }, p.d1.Key, p.d2.Key)
	}},
	{"rotation-wraps-unordered", "a rotation's wraps out of device order", coffer.RuleMalformed, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.Rotate(p.d1)
		l.DeviceWraps[0], l.DeviceWraps[1] = l.DeviceWraps[1], l.DeviceWraps[0]
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"rotation-no-wraps", "a rotation with no device wraps", coffer.RuleMalformed, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.Rotate(p.d1)
		l.DeviceWraps = nil
		return b.Push(l, p.d1.Key, nil).links
	}},

	// authority
	{"author-unknown-device", "a link by a device the account never had (a server's forgery)", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(b.AddDevice(p.d5, p.d2), p.d5.Key, p.d2.Key).links
	}},
	{"author-revoked-device", "a link by a revoked device", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2).DoRevoke(p.d2, p.d1)
		return b.Push(b.AddDevice(p.d1, p.d3), p.d1.Key, p.d3.Key).links
	}},
	{"author-signature", "a link naming a current device, signed by another key (a server's forgery)", coffer.RuleSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(b.AddDevice(p.d1, p.d2), p.d2.Key, p.d2.Key).links
	}},
	{"author-signature-ed25519-half", "the author's signature with its Ed25519 half broken", coffer.RuleSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		sl := signLinkDet(b.AddDevice(p.d1, p.d2), p.d1.Key, p.d2.Key)
		sl.Signature[3] ^= 1
		return b.with(sl)
	}},
	{"author-signature-ml-dsa-half", "the author's signature with its ML-DSA-65 half broken", coffer.RuleSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		sl := signLinkDet(b.AddDevice(p.d1, p.d2), p.d1.Key, p.d2.Key)
		sl.Signature[1000] ^= 1
		return b.with(sl)
	}},
	{"author-signature-device-label", "the author signs under the added device's label", coffer.RuleSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		sl := signLinkDet(b.AddDevice(p.d1, p.d2), p.d1.Key, p.d2.Key)
		sl.Signature = p.d1.Key.SignDeterministic(coffer.LabelAccountLinkDevice, sl.Body)
		return b.with(sl)
	}},
	{"recovery-rotates", "the recovery key authors a user key rotation", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(ByRecovery(b.Rotate(nil), p.r1), p.r1.SigningKey(), nil).links
	}},
	{"recovery-revokes", "the recovery key authors a revocation", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		return b.Push(ByRecovery(b.Revoke(nil, p.d1), p.r1), p.r1.SigningKey(), nil).links
	}},
	{"recovery-uncommitted", "a recovery key the account never committed to adds a device", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(ByRecovery(b.AddDevice(nil, p.d2), p.r2), p.r2.SigningKey(), p.d2.Key).links
	}},
	{"recovery-replaced", "the old recovery key adds a device after set-recovery", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoSetRecovery(p.d1, p.r2)
		return b.Push(ByRecovery(b.AddDevice(nil, p.d2), p.r1), p.r1.SigningKey(), p.d2.Key).links
	}},
	{"recovery-signature", "a link naming the committed recovery key, signed by another key", coffer.RuleSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(ByRecovery(b.AddDevice(nil, p.d2), p.r1), p.r2.SigningKey(), p.d2.Key).links
	}},

	// the added device's signature
	{"add-device-unsigned", "an add-device without the new device's signature", coffer.RuleDeviceSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(b.AddDevice(p.d1, p.d2), p.d1.Key, nil).links
	}},
	{"add-device-signed-by-author", "the author signs in the new device's place", coffer.RuleDeviceSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(b.AddDevice(p.d1, p.d2), p.d1.Key, p.d1.Key).links
	}},
	{"add-device-signature-author-label", "the new device signs under the author's label", coffer.RuleDeviceSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		sl := signLinkDet(b.AddDevice(p.d1, p.d2), p.d1.Key, nil)
		sl.DeviceSignature = p.d2.Key.SignDeterministic(coffer.LabelAccountLink, sl.Body)
		return b.with(sl)
	}},
	{"device-signature-on-rotation", "a rotation carrying a device signature", coffer.RuleDeviceSignature, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(b.Rotate(p.d1), p.d1.Key, p.d1.Key).links
	}},

	// devices
	{"add-current-device", "adding a device that is already current", coffer.RuleDuplicateDevice, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		return b.Push(b.AddDevice(p.d1, p.d2), p.d1.Key, p.d2.Key).links
	}},
	{"add-revoked-device-id", "re-adding a revoked device's id with fresh keys", coffer.RuleDuplicateDevice, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2).DoRevoke(p.d1, p.d2)
		fresh := *p.d3
		fresh.ID = p.d2.ID
		return b.Push(b.AddDevice(p.d1, &fresh), p.d1.Key, fresh.Key).links
	}},
	{"add-revoked-device-keys", "a new device id with a revoked device's keys", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2).DoRevoke(p.d1, p.d2)
		again := *p.d2
		again.ID = p.d5.ID
		return b.Push(b.AddDevice(p.d1, &again), p.d1.Key, again.Key).links
	}},
	{"add-device-user-key", "a new device whose encryption key is the user key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.AddDevice(p.d1, p.d2)
		l.Device.EncryptionKey = testUserKey(tb, 1)
		return b.Push(l, p.d1.Key, p.d2.Key).links
	}},
	{"too-many-devices", "adding a device past MaxAccountDevices", coffer.RuleTooManyDevices, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		for n := 2; n <= coffer.MaxAccountDevices; n++ {
			b.DoAdd(p.d1, MustTestDevice(tb, 100+n))
		}
		d := MustTestDevice(tb, 100+coffer.MaxAccountDevices+1)
		return b.Push(b.AddDevice(p.d1, d), p.d1.Key, d.Key).links
	}},
	{"revoke-unknown-device", "revoking a device the account never had", coffer.RuleNotDevice, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.Revoke(p.d1, p.d5)
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"revoke-revoked-device", "revoking a device twice", coffer.RuleNotDevice, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2).DoAdd(p.d1, p.d3).DoRevoke(p.d1, p.d2)
		l := b.Revoke(p.d1, p.d2)
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"revoke-self", "a device revokes itself, so it would know the next user key", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		return b.Push(b.Revoke(p.d1, p.d1), p.d1.Key, nil).links
	}},
	{"revoke-only-device", "the only device revokes itself", coffer.RuleLinkAuthor, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.Revoke(p.d1, p.d1)
		l.DeviceWraps = []coffer.DeviceWrap{{Device: p.d1.ID, Wrap: testWrap("x")}}
		return b.Push(l, p.d1.Key, nil).links
	}},

	// rotations
	{"rotation-missing-wrap", "a rotation without a wrap for one device", coffer.RuleWraps, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.Rotate(p.d1)
		l.DeviceWraps = l.DeviceWraps[:1]
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"revoke-wraps-revoked", "a revocation that wraps the new user key to the revoked device", coffer.RuleWraps, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.rotation(b.next(coffer.LinkRevokeDevice, p.d1), 2, coffer.DeviceID{})
		l.Revoked = p.d2.ID
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"rotation-wrap-stranger", "a rotation that wraps the user key to a device the account does not have", coffer.RuleWraps, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.Rotate(p.d1)
		for i, w := range l.DeviceWraps {
			if w.Device == p.d2.ID {
				l.DeviceWraps[i].Device = p.d5.ID
			}
		}
		if bytes.Compare(l.DeviceWraps[0].Device[:], l.DeviceWraps[1].Device[:]) > 0 {
			l.DeviceWraps[0], l.DeviceWraps[1] = l.DeviceWraps[1], l.DeviceWraps[0]
		}
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"rotation-same-user-key", "a rotation to the current user key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.Rotate(p.d1)
		l.UserKey = testUserKey(tb, 1)
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"rotation-old-user-key", "a rotation back to a retired user key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoRotate(p.d1)
		l := b.Rotate(p.d1)
		l.UserKey = testUserKey(tb, 1)
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"revoke-user-key-is-device-key", "a revocation whose new user key is a remaining device's encryption key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.Revoke(p.d1, p.d2)
		l.UserKey = p.d1.Enc
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"rotation-old-user-signing-key", "a rotation that brings back a retired user signing key with a new user key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoRotate(p.d1)
		l := b.Rotate(p.d1)
		l.UserSigningKey = testUserSigningKey(tb, 1)
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"rotation-same-ed25519-half", "a rotation whose new hybrid user signing key keeps the Ed25519 half of the current one (the suite v1 signing key) with a new ML-DSA-65 half", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.Rotate(p.d1)
		mixed := append(testUserSigningKey(tb, 1).Ed25519(), testUserSigningKey(tb, 2).Bytes()[32:]...)
		k, err := coffer.ParseHybridPublicKey(mixed)
		if err != nil {
			tb.Fatal(err)
		}
		l.UserSigningKey = k
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"revoke-same-user-signing-key", "a revocation that keeps the current user signing key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb).DoAdd(p.d1, p.d2)
		l := b.Revoke(p.d1, p.d2)
		l.UserSigningKey = testUserSigningKey(tb, 1)
		return b.Push(l, p.d1.Key, nil).links
	}},
	{"genesis-small-order-user-signing-key", "a genesis whose user signing key is a small-order point", coffer.RuleWeakKey, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := &accountBuilder{tb: tb, account: testAccountID(1)}
		return b.pushBody(b.Genesis(p.d1, p.r1), editAt(tb, testUserSigningKey(tb, 1).Bytes(), smallOrderEd), p.d1.Key, nil)
	}},
	{"rotation-small-order-user-signing-key", "a rotation whose user signing key is a small-order point", coffer.RuleWeakKey, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.pushBody(b.Rotate(p.d1), editAt(tb, testUserSigningKey(tb, 2).Bytes(), smallOrderEd), p.d1.Key, nil)
	}},
	{"rotation-without-prev-user-key", "a rotation cut before its sealed previous user key", coffer.RuleMalformed, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.pushBody(b.Rotate(p.d1), func(body []byte) []byte { return body[:len(body)-coffer.HistoryLinkSize] }, p.d1.Key, nil)
	}},
	{"add-device-empty-name", "an add-device whose device has no name", coffer.RuleMalformed, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.AddDevice(p.d1, p.d2)
		l.Device.Name = ""
		return b.Push(l, p.d1.Key, p.d2.Key).links
	}},
	{"add-device-control-name", "an add-device whose device name holds a control character", coffer.RuleMalformed, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		l := b.AddDevice(p.d1, p.d2)
		l.Device.Name = "phone\x1b[2J"
		return b.Push(l, p.d1.Key, p.d2.Key).links
	}},
	{"set-recovery-same-key", "set-recovery to the current recovery key", coffer.RuleKeyReuse, func(tb testing.TB, p accountCast) []coffer.SignedLink {
		b := MustAccount(tb)
		return b.Push(b.SetRecovery(p.d1, p.r1), p.d1.Key, nil).links
	}},
}

func TestAccountChainRules(t *testing.T) {
	p := MustAccountCast(t)
	for _, tc := range accountCases {
		t.Run(tc.name, func(t *testing.T) {
			checkAccount(t, tc.wantState(), tc.build(t, p), tc.rule)
		})
	}
}
