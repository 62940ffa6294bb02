package coffer

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"math"
	"slices"
)

// The account-chain verifier is, for accounts, what VerifyChain is for
// groups: the one place where the rules live, a pure function of the links
// it is given and, optionally, a state the caller verified before. The
// server runs it before appending a link, clients before trusting a
// contact's devices or their own user key, the auditor and witnesses over
// every stored chain.
//
// The rules, each with a stable name in the Rule field of the *Error:
//
//   - position: the account id matches (RuleAccount), seq is the previous
//     seq plus one (RuleSeq), prev is the previous link's hash (RulePrev).
//   - genesis: the first link, and only the first, is a genesis with seq 1
//     and a zero prev, authored by the device it creates (RuleGenesis). A
//     caller that expects an account, origin or handle gets RuleAccount,
//     RuleOrigin or RuleHandle when the genesis names another.
//   - authority: a link is authored by a current device (RuleLinkAuthor),
//     or, for add-device and set-recovery only, by the recovery key, whose
//     signing key must match the account's recovery commitment
//     (RuleLinkAuthor). The author's hybrid signature verifies
//     (RuleSignature). An add-device link also carries the new device's
//     signature, and no other link carries one (RuleDeviceSignature).
//   - devices: an add-device names a device id the account never had
//     (RuleDuplicateDevice), and the account stays within
//     MaxAccountDevices (RuleTooManyDevices); a revoke-device names a
//     current device (RuleNotDevice) other than its author (RuleLinkAuthor:
//     a device that revokes itself would choose, and so know, the next user
//     key). Since only a device may revoke, and not itself, an account
//     always keeps at least one device.
//   - rotations (genesis, revoke-device, rotate-user-key): exactly one wrap
//     for each device that remains, and one for the recovery key
//     (RuleWraps; the parser checks the order and the recovery wrap).
//   - keys: every key a link brings in (a device's signing and encryption
//     keys, a user key and user signing key, a recovery encryption key) is new to the account:
//     no key is ever reused, in the same role or another, so a revoked
//     device's or retired user key never comes back (RuleKeyReuse); each
//     hybrid key's Ed25519 half, and each user signing key, passes
//     CheckSigningKey (RuleWeakKey, from the parser).
//
// The verifier cannot open wraps. A device checks the user key it unwraps
// against the chain's UserKey, and refuses a mismatch as a security error.

// Rule names of the account-chain verifier and the link parser, beside the
// ones they share with the group chain (RuleVersion, RuleMalformed,
// RuleTooLarge, RuleGenesis, RuleSeq, RulePrev, RuleSignature, RuleWeakKey).
const (
	RuleAccount         = "account"          // a link for another account
	RuleOrigin          = "origin"           // the genesis names another deployment
	RuleHandle          = "handle"           // the genesis names another handle
	RuleLinkKind        = "link-kind"        // unknown link kind
	RuleLinkAuthor      = "link-author"      // the author may not author this link
	RuleDeviceSignature = "device-signature" // the added device's signature is missing, wrong, or out of place
	RuleDuplicateDevice = "duplicate-device" // a device id the account already had
	RuleNotDevice       = "not-device"       // revoking a device that is not current
	RuleTooManyDevices  = "too-many-devices" // over MaxAccountDevices
	RuleWraps           = "wraps"            // a rotation's wraps do not match the devices
	RuleKeyReuse        = "key-reuse"        // a key the account already used
)

// AccountDevice is a current device of an account.
type AccountDevice struct {
	DeviceKeys
	AddedSeq  uint64 // the link that added it (1 for the genesis device)
	AddedTime int64  // that link's Time
	// WrapSeq is the link that holds this device's wrap of the current
	// user key: the last rotation, or the device's add-device link if it
	// came later.
	WrapSeq uint64
}

// AccountState is an account as a verified chain leaves it. The zero
// value is the state before the genesis; with Account, Origin or Handle
// set, it additionally requires the genesis to name them.
//
// An AccountState is only meaningful when it comes from
// VerifyAccountChain, Apply or Clone. Callers must treat it as read-only.
type AccountState struct {
	Account AccountID
	Origin  string
	Handle  Handle
	Seq     uint64   // seq of the head link; 0 before the genesis
	Head    [32]byte // SignedLink.Hash of the head link
	Genesis [32]byte // SignedLink.Hash of the genesis

	Devices map[DeviceID]*AccountDevice

	UserKey           []byte          // the current user key, an X-Wing public key
	UserSigningKey    HybridPublicKey // the hybrid key derived from the current user key's seed
	UserKeyGeneration uint64          // 1 at the genesis, +1 per rotation
	UserKeySeq        uint64          // the link that set the current user key

	RecoveryCommitment    [32]byte
	RecoveryEncryptionKey []byte
	RecoveryWrapSeq       uint64 // the link that holds the recovery key's wrap of the current user key

	verified bool
	// Every device id and key the account ever had, for the rules against
	// reuse. Keys are stored as strings of their encodings.
	everDevices map[DeviceID]struct{}
	everKeys    map[string]struct{}
}

// Clone returns a deep copy of s. Key byte slices are shared: they are
// never modified.
func (s *AccountState) Clone() *AccountState {
	c := *s
	c.Devices = make(map[DeviceID]*AccountDevice, len(s.Devices))
	for id, d := range s.Devices {
		dc := *d
		c.Devices[id] = &dc
	}
	c.everDevices = make(map[DeviceID]struct{}, len(s.everDevices))
	for id := range s.everDevices {
		c.everDevices[id] = struct{}{}
	}
	c.everKeys = make(map[string]struct{}, len(s.everKeys))
	for k := range s.everKeys {
		c.everKeys[k] = struct{}{}
	}
	return &c
}

// SortedDevices returns copies of the current devices, ordered by id.
func (s *AccountState) SortedDevices() []*AccountDevice {
	ds := make([]*AccountDevice, 0, len(s.Devices))
	for _, d := range s.Devices {
		dc := *d
		ds = append(ds, &dc)
	}
	slices.SortFunc(ds, func(a, b *AccountDevice) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return ds
}

// Apply verifies sl as the next link of s and applies it in place. On
// error, s is unchanged. The error is an *Error with code EINVALID and a
// Rule.
func (s *AccountState) Apply(sl SignedLink) error {
	if s.Seq != 0 && !s.verified {
		return Errorf(EINVALID, "account state is not a verified checkpoint")
	}
	l, err := ParseAccountLink(sl.Body)
	if err != nil {
		return err
	}
	key, err := s.authorize(l)
	if err != nil {
		return err
	}
	if err := key.Verify(LabelAccountLink, sl.Body, sl.Signature); err != nil {
		return ruleErr(RuleSignature, "the author's signature does not verify: %s", ErrorMessage(err))
	}
	if l.Kind == LinkAddDevice {
		if err := l.Device.SigningKey.Verify(LabelAccountLinkDevice, sl.Body, sl.DeviceSignature); err != nil {
			return ruleErr(RuleDeviceSignature, "the new device %s did not sign the link: %s", l.Device.ID, ErrorMessage(err))
		}
	} else if len(sl.DeviceSignature) != 0 {
		return ruleErr(RuleDeviceSignature, "a %s link carries a device signature; only add-device does", l.Kind)
	}
	rule, ok := linkRules[l.Kind]
	if !ok {
		return ruleErr(RuleLinkKind, "unknown account link kind %d", uint8(l.Kind))
	}
	if err := rule(s, l); err != nil {
		return err
	}
	s.applyLink(l, sl.Hash())
	return nil
}

// authorize checks the link's position and author and returns the key
// that must have signed it.
func (s *AccountState) authorize(l *AccountLink) (HybridPublicKey, error) {
	var none HybridPublicKey
	if s.Seq == 0 {
		return s.authorizeGenesis(l)
	}
	if l.Account != s.Account {
		return none, ruleErr(RuleAccount, "names account %s, not %s", l.Account, s.Account)
	}
	if s.Seq >= math.MaxInt64 {
		return none, ruleErr(RuleSeq, "the account chain is full")
	}
	if l.Seq != s.Seq+1 {
		return none, ruleErr(RuleSeq, "seq is %d, want %d", l.Seq, s.Seq+1)
	}
	if l.Prev != s.Head {
		return none, ruleErr(RulePrev, "prev is not the hash of link %d", s.Seq)
	}
	if l.Kind == LinkGenesis {
		return none, ruleErr(RuleGenesis, "a genesis after the first link")
	}
	switch l.AuthorKind {
	case AuthorDevice:
		d := s.Devices[l.AuthorDevice]
		if d == nil {
			return none, ruleErr(RuleLinkAuthor, "author %s is not a current device of the account", l.AuthorDevice)
		}
		return d.SigningKey, nil
	case AuthorRecovery:
		if l.Kind != LinkAddDevice && l.Kind != LinkSetRecovery {
			return none, ruleErr(RuleLinkAuthor, "the recovery key may author add-device and set-recovery links, not %s", l.Kind)
		}
		c := RecoveryCommitment(s.Account, l.AuthorRecoveryKey, s.RecoveryEncryptionKey)
		if c != s.RecoveryCommitment {
			return none, ruleErr(RuleLinkAuthor, "the recovery signing key does not match the account's recovery commitment")
		}
		return l.AuthorRecoveryKey, nil
	}
	return none, ruleErr(RuleMalformed, "unknown author kind %d", uint8(l.AuthorKind))
}

func (s *AccountState) authorizeGenesis(l *AccountLink) (HybridPublicKey, error) {
	var none HybridPublicKey
	if l.Kind != LinkGenesis {
		return none, ruleErr(RuleGenesis, "the first link must be a genesis, not %s", l.Kind)
	}
	if !s.Account.IsZero() && l.Account != s.Account {
		return none, ruleErr(RuleAccount, "genesis is for account %s, not %s", l.Account, s.Account)
	}
	if s.Origin != "" && l.Origin != s.Origin {
		return none, ruleErr(RuleOrigin, "genesis is for deployment %q, not %q", l.Origin, s.Origin)
	}
	if s.Handle != "" && l.Handle != s.Handle {
		return none, ruleErr(RuleHandle, "genesis is for handle %q, not %q", l.Handle, s.Handle)
	}
	if l.Seq != 1 {
		return none, ruleErr(RuleGenesis, "the genesis must have seq 1, not %d", l.Seq)
	}
	if l.Prev != ([32]byte{}) {
		return none, ruleErr(RuleGenesis, "the genesis must have a zero prev")
	}
	if l.AuthorKind != AuthorDevice || l.AuthorDevice != l.Device.ID {
		return none, ruleErr(RuleGenesis, "the genesis must be authored by the device it creates")
	}
	return l.Device.SigningKey, nil
}

// linkRules holds, per link kind, the rules that follow a verified
// signature. Each changes nothing.
var linkRules = map[LinkKind]func(*AccountState, *AccountLink) error{
	LinkGenesis:       (*AccountState).checkGenesis,
	LinkAddDevice:     (*AccountState).checkAddDevice,
	LinkRevokeDevice:  (*AccountState).checkRevokeDevice,
	LinkRotateUserKey: (*AccountState).checkRotateUserKey,
	LinkSetRecovery:   (*AccountState).checkSetRecovery,
}

func (s *AccountState) checkGenesis(l *AccountLink) error {
	return checkNewKeys(nil, l.Device.SigningKey.Bytes(), l.Device.EncryptionKey, l.UserKey, l.UserSigningKey.Bytes(), l.UserSigningKey.Ed25519(), l.RecoveryEncryptionKey)
}

func (s *AccountState) checkAddDevice(l *AccountLink) error {
	if _, ok := s.everDevices[l.Device.ID]; ok {
		return ruleErr(RuleDuplicateDevice, "device %s was already a device of the account", l.Device.ID)
	}
	if len(s.Devices) >= MaxAccountDevices {
		return ruleErr(RuleTooManyDevices, "the account already has %d devices, the most it may have", len(s.Devices))
	}
	return checkNewKeys(s.everKeys, l.Device.SigningKey.Bytes(), l.Device.EncryptionKey)
}

func (s *AccountState) checkRevokeDevice(l *AccountLink) error {
	if s.Devices[l.Revoked] == nil {
		return ruleErr(RuleNotDevice, "cannot revoke %s: not a current device", l.Revoked)
	}
	if l.AuthorKind == AuthorDevice && l.AuthorDevice == l.Revoked {
		return ruleErr(RuleLinkAuthor, "device %s cannot revoke itself: it would know the next user key", l.Revoked)
	}
	return s.checkRotation(l, l.Revoked)
}

func (s *AccountState) checkRotateUserKey(l *AccountLink) error {
	return s.checkRotation(l, DeviceID{})
}

// checkRotation: a new user key, never used before, wrapped to exactly
// the devices that remain (all current devices but revoked).
func (s *AccountState) checkRotation(l *AccountLink, revoked DeviceID) error {
	want := len(s.Devices)
	if !revoked.IsZero() {
		want--
	}
	if len(l.DeviceWraps) != want {
		return ruleErr(RuleWraps, "%d device wraps for %d devices", len(l.DeviceWraps), want)
	}
	for _, w := range l.DeviceWraps {
		if s.Devices[w.Device] == nil || w.Device == revoked {
			return ruleErr(RuleWraps, "a wrap for %s, which is not a device that remains", w.Device)
		}
	}
	// The Ed25519 half counts on its own: it is the account's suite v1
	// signing key, so a rotation must replace it too.
	return checkNewKeys(s.everKeys, l.UserKey, l.UserSigningKey.Bytes(), l.UserSigningKey.Ed25519())
}

func (s *AccountState) checkSetRecovery(l *AccountLink) error {
	return checkNewKeys(s.everKeys, l.RecoveryEncryptionKey)
}

// checkNewKeys fails unless every key is new: not in ever, and not equal
// to another of keys.
func checkNewKeys(ever map[string]struct{}, keys ...[]byte) error {
	for i, k := range keys {
		if _, ok := ever[string(k)]; ok {
			return ruleErr(RuleKeyReuse, "a key the account already used")
		}
		for _, o := range keys[:i] {
			if bytes.Equal(k, o) {
				return ruleErr(RuleKeyReuse, "one key in two roles")
			}
		}
	}
	return nil
}

// applyLink applies a link whose rules all hold.
func (s *AccountState) applyLink(l *AccountLink, hash [32]byte) {
	if l.Kind == LinkGenesis {
		s.Account, s.Origin, s.Handle, s.Genesis = l.Account, l.Origin, l.Handle, hash
		s.Devices = make(map[DeviceID]*AccountDevice)
		s.everDevices = make(map[DeviceID]struct{})
		s.everKeys = make(map[string]struct{})
		s.UserKeyGeneration = 0
		s.verified = true
	}
	s.Seq, s.Head = l.Seq, hash
	switch l.Kind {
	case LinkGenesis, LinkAddDevice:
		s.Devices[l.Device.ID] = &AccountDevice{DeviceKeys: l.Device, AddedSeq: l.Seq, AddedTime: l.Time, WrapSeq: l.Seq}
		s.everDevices[l.Device.ID] = struct{}{}
		s.everKeys[string(l.Device.SigningKey.Bytes())] = struct{}{}
		s.everKeys[string(l.Device.EncryptionKey)] = struct{}{}
	case LinkRevokeDevice:
		delete(s.Devices, l.Revoked)
	}
	if l.rotates() {
		s.UserKey = l.UserKey
		s.UserSigningKey = l.UserSigningKey
		s.everKeys[string(l.UserSigningKey.Bytes())] = struct{}{}
		s.everKeys[string(l.UserSigningKey.Ed25519())] = struct{}{}
		s.UserKeyGeneration++
		s.UserKeySeq = l.Seq
		s.RecoveryWrapSeq = l.Seq
		s.everKeys[string(l.UserKey)] = struct{}{}
		for _, d := range s.Devices {
			d.WrapSeq = l.Seq
		}
	}
	if l.Kind == LinkGenesis || l.Kind == LinkSetRecovery {
		s.RecoveryCommitment = l.RecoveryCommitment
		s.RecoveryEncryptionKey = l.RecoveryEncryptionKey
		s.RecoveryWrapSeq = l.Seq
		s.everKeys[string(l.RecoveryEncryptionKey)] = struct{}{}
	}
}

// VerifyAccountChain verifies links as the continuation of trusted and
// returns the resulting state. With trusted == nil, links[0] must be a
// valid genesis, and the caller must check that the result is the account
// it asked for, or pass &AccountState{Account: id, Origin: o, Handle: h}
// (any of them) to have the verifier require it. trusted is never
// modified. The error is an *Error with code EINVALID, a Rule, and a
// message naming the first link that fails; clients wrap it as a security
// error.
func VerifyAccountChain(trusted *AccountState, links []SignedLink) (*AccountState, error) {
	var s *AccountState
	if trusted == nil {
		s = new(AccountState)
	} else {
		s = trusted.Clone()
	}
	if s.Seq != 0 && !s.verified {
		return nil, Errorf(EINVALID, "account state is not a verified checkpoint")
	}
	if s.Seq == 0 && len(links) == 0 {
		return nil, ruleErr(RuleGenesis, "the account chain is empty")
	}
	base := s.Seq
	for i, sl := range links {
		if err := s.Apply(sl); err != nil {
			return nil, atLink(err, base+uint64(i)+1)
		}
	}
	return s, nil
}

func atLink(err error, seq uint64) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Code: e.Code, Rule: e.Rule, Message: fmt.Sprintf("account link %d: %s", seq, e.Message)}
	}
	return err
}

// LabelAccountFingerprint is the label of an account's fingerprint.
const LabelAccountFingerprint = "coffer/v2/account-fingerprint"

// AccountFingerprint is the fingerprint of a suite v2 account: SHA-512 of
// SignedMessage(LabelAccountFingerprint, account id ‖ genesis hash). The
// genesis binds the deployment origin, the handle, the first device, the
// first user key and the first recovery commitment, so the number pins the
// account where it was made. Later links never change it: adding or
// revoking devices, rotating the user key or the recovery key is verified
// through the chain, not by comparing numbers again. A new genesis under
// the same handle is a new number, and shows as a changed contact.
// Its SafetyNumber is compared as in suite v1.
func AccountFingerprint(account AccountID, genesis [32]byte) Fingerprint {
	body := make([]byte, 0, 16+32)
	body = append(body, account[:]...)
	body = append(body, genesis[:]...)
	return sha512.Sum512(SignedMessage(LabelAccountFingerprint, body))
}

// MemberKeys returns the account's current keys as a suite v2 group
// refers to them (by MemberKeys.Hash): nil before the genesis.
func (s *AccountState) MemberKeys() *MemberKeys {
	if s.Seq == 0 {
		return nil
	}
	return &MemberKeys{
		Account: s.Account, Origin: s.Origin, Handle: s.Handle, Generation: s.UserKeyGeneration,
		EncryptionKey: bytes.Clone(s.UserKey), SigningKey: s.UserSigningKey,
	}
}

// Identity returns the account's suite v1 identity: its handle, the
// Ed25519 half of its user signing key, and its user key. Groups, log-ins and the server's accounts
// table use it; it changes with every rotation of the user key. The zero
// value before the genesis.
func (s *AccountState) Identity() PublicIdentity {
	if s.Seq == 0 {
		return PublicIdentity{}
	}
	return PublicIdentity{Handle: s.Handle, SigningKey: s.UserSigningKey.Ed25519(), EncryptionKey: bytes.Clone(s.UserKey)}
}

// Fingerprint returns the account's fingerprint, or the zero value before
// the genesis.
func (s *AccountState) Fingerprint() Fingerprint {
	if s.Seq == 0 {
		return Fingerprint{}
	}
	return AccountFingerprint(s.Account, s.Genesis)
}
