package coffer

import (
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// An account (suite v2) is a hash chain of account links, as a group is a
// hash chain of commits. Each link is a canonical binary body signed with a
// hybrid signature by its author: one of the account's current devices, or
// the recovery key. An add-device link is also signed by the device it
// adds, which proves that the device holds the key it brings. The exact
// body bytes are signed, hashed, stored and served; nothing is
// re-serialized.
//
// Encoding (all integers big-endian, built with cryptobyte):
//
//	version      uint8 = SuiteV2
//	account      [16]byte, chosen at random by the client that creates it
//	seq          uint64, 1 for the genesis
//	prev         [32]byte, SignedLink.Hash of the previous link; zero for the genesis
//	time         uint64 (int64 unix milliseconds, informational)
//	kind         uint8
//	author_kind  uint8: 1 device, 2 recovery key
//	author       device id [16]byte, or the recovery signing key [1984]byte
//	then by kind:
//	  genesis (1):         origin <uint8 length>, handle <uint8 length>, device,
//	                       user_key [1216], user_signing_key [32], recovery,
//	                       device_wrap [1168], recovery_wrap [1168]
//	  add-device (2):      device, device_wrap [1168]
//	  revoke-device (3):   revoked device id [16], rotation
//	  rotate-user-key (4): rotation
//	  set-recovery (5):    recovery, recovery_wrap [1168]
//	device:   id [16], name <uint8 length>, signing_key [1984] (hybrid),
//	          encryption_key [1216] (X-Wing)
//	recovery: commitment [32], encryption_key [1216] (X-Wing)
//	rotation: user_key [1216], user_signing_key [32], wrap_count uint8,
//	          wrap_count × (device id [16], wrap [1168]) in increasing id order,
//	          recovery_wrap [1168], prev_user_key [60]
//
// The wraps travel inside the link rather than beside it (as group wraps
// do). An account has few devices (at most MaxAccountDevices), so a
// rotation stays small, and keeping the wraps under the signature means the
// server cannot drop, swap or replay one without breaking the link: a
// device that finds its wrap in a verified link knows its author made it.
// Each wrap is an HPKE seal (suite v1's KEM, KDF and AEAD) of the user
// key's 32-byte X-Wing private seed, with an info that binds the account,
// the user key generation and the recipient (see internal/userkey). The
// verifier cannot open wraps; it checks that a rotation has exactly one
// for each device that remains and one for the recovery key. A device
// checks the key it unwraps against the user key the chain records.
//
// The user key's seed also derives the account's user signing key
// (UserSigningKeyFromSeed, a hybrid key), which the genesis and every
// rotation publish beside the X-Wing user key. The X-Wing key and the
// signing key's Ed25519 half form the account's suite v1 PublicIdentity
// (AccountState.Identity): the keys groups wrap to and verify commits with.
// The X-Wing key and the whole hybrid key form its suite v2 MemberKeys
// (AccountState.MemberKeys), which suite v2 groups refer to by hash. So a new device
// changes no group, and a rotation retires both keys of every device that
// no longer holds the seed.
//
// A rotation also carries prev_user_key: the previous seed sealed under a
// key derived from the new one (internal/userkey.SealPrevious, AES-256-GCM),
// so whoever holds the current user key (a device, or the recovery key)
// can walk back to every earlier one and read what was wrapped to it. A
// revoked device knows only the seeds up to its revocation.
//
// The encoding is canonical: ParseAccountLink accepts exactly the bytes
// Marshal produces.

// LinkKind is the kind of an account link. Kinds are append-only.
type LinkKind uint8

const (
	LinkGenesis       LinkKind = 1 // creates the account with its first device
	LinkAddDevice     LinkKind = 2 // adds a device; signed by the new device too
	LinkRevokeDevice  LinkKind = 3 // removes a device and rotates the user key
	LinkRotateUserKey LinkKind = 4 // a new user key, wrapped to every device and the recovery key
	LinkSetRecovery   LinkKind = 5 // replaces the recovery key
)

var linkKindNames = [...]string{"link(0)", "genesis", "add-device", "revoke-device", "rotate-user-key", "set-recovery"}

func (k LinkKind) String() string {
	if int(k) < len(linkKindNames) && k != 0 {
		return linkKindNames[k]
	}
	return fmt.Sprintf("link(%d)", uint8(k))
}

// AuthorKind says who authored a link.
type AuthorKind uint8

const (
	AuthorDevice   AuthorKind = 1 // a current device, named by its id
	AuthorRecovery AuthorKind = 2 // the recovery key, named by its signing key
)

// Labels of account links.
const (
	LabelAccountLink       = "coffer/v2/account-link"        // the author's signature
	LabelAccountLinkDevice = "coffer/v2/account-link-device" // the added device's signature
	LabelAccountLinkHash   = "coffer/v2/account-link-hash"   // hash chaining links
	LabelUserKeyWrap       = "coffer/v2/user-key-wrap"       // HPKE info of a user key wrap
)

// Limits of account links.
const (
	// MaxAccountDevices caps the devices of an account, and so the wraps
	// of a rotation. People link a handful of devices; 32 leaves room for
	// shared machines and keeps a rotation under 40 KB.
	MaxAccountDevices = 32
	// MaxLinkSize bounds a link body; the largest valid link, a rotation
	// with MaxAccountDevices wraps, is about 40 KB.
	MaxLinkSize = 64 << 10
	// MaxOriginLength bounds the origin a genesis names.
	MaxOriginLength = 255
)

// MaxDeviceNameLength bounds a device's name.
const MaxDeviceNameLength = 64

// CheckDeviceName checks a device name: 1 to MaxDeviceNameLength bytes of
// valid UTF-8 with no control characters, and no spaces at either end. The
// name is for people (device lists, revocation by name); it is signed with
// the rest of the link but no rule depends on it.
func CheckDeviceName(name string) error {
	if name == "" || len(name) > MaxDeviceNameLength || !utf8.ValidString(name) || strings.TrimSpace(name) != name ||
		strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return Errorf(EINVALID, "a device name is 1 to %d bytes of printable text without spaces at either end", MaxDeviceNameLength)
	}
	return nil
}

// DeviceID names a device of an account. The device chooses it at random.
type DeviceID uuid

func NewDeviceID() DeviceID { return DeviceID(newUUID()) }

func ParseDeviceID(s string) (DeviceID, error) {
	u, err := parseUUID("device", s)
	return DeviceID(u), err
}

func (id DeviceID) String() string { return uuid(id).String() }
func (id DeviceID) IsZero() bool   { return id == DeviceID{} }

func (id DeviceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }
func (id *DeviceID) UnmarshalText(b []byte) (err error) {
	*id, err = ParseDeviceID(string(b))
	return err
}

// DeviceKeys is a device's public keys, and the name its user gave it, as
// a link records them.
type DeviceKeys struct {
	ID            DeviceID
	Name          string // 1 to MaxDeviceNameLength bytes of printable UTF-8
	SigningKey    HybridPublicKey
	EncryptionKey []byte // X-Wing encapsulation key, 1216 bytes
}

// DeviceWrap is a wrap of the user key to one device.
type DeviceWrap struct {
	Device DeviceID
	Wrap   []byte // WrapSize bytes
}

// AccountLink is one change to an account. Only the fields of its Kind are
// encoded: Marshal ignores the others and ParseAccountLink leaves them zero.
type AccountLink struct {
	Account AccountID
	Seq     uint64
	Prev    [32]byte
	// Time is the author's clock in unix milliseconds, shown as when a
	// device was added; no rule depends on it.
	Time int64
	Kind LinkKind

	AuthorKind        AuthorKind
	AuthorDevice      DeviceID        // AuthorDevice
	AuthorRecoveryKey HybridPublicKey // AuthorRecovery: the recovery signing key

	Origin string // genesis: the deployment, as CanonicalOrigin gives it
	Handle Handle // genesis

	Device DeviceKeys // genesis, add-device: the device added
	// UserKey is the new user key (X-Wing public key): genesis and rotations.
	UserKey []byte
	// UserSigningKey is the hybrid key derived from the new user key's
	// seed: genesis and rotations.
	UserSigningKey HybridPublicKey
	// PrevUserKey is the previous user key's seed, sealed under the new
	// one (HistoryLinkSize bytes): rotations.
	PrevUserKey []byte
	// DeviceWraps wrap the user key: genesis and add-device, one for the
	// device added; rotations, one per device after the link, by id.
	DeviceWraps []DeviceWrap

	RecoveryCommitment    [32]byte // genesis, set-recovery
	RecoveryEncryptionKey []byte   // genesis, set-recovery
	// RecoveryWrap wraps the user key to the recovery key: genesis,
	// rotations (the new user key), set-recovery (the current one, to the
	// new recovery key).
	RecoveryWrap []byte

	Revoked DeviceID // revoke-device
}

// rotates reports whether the link starts a new user key.
func (l *AccountLink) rotates() bool {
	return l.Kind == LinkGenesis || l.Kind == LinkRevokeDevice || l.Kind == LinkRotateUserKey
}

// WrapFor returns the wrap the link holds for device, if any.
func (l *AccountLink) WrapFor(device DeviceID) ([]byte, bool) {
	for _, w := range l.DeviceWraps {
		if w.Device == device {
			return w.Wrap, true
		}
	}
	return nil, false
}

// Marshal returns the canonical encoding of l. It does not validate l:
// ParseAccountLink and the verifier do. It panics on an origin or handle
// over 255 bytes, or more than 255 wraps, which no valid link has.
func (l *AccountLink) Marshal() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 4096))
	b.AddUint8(SuiteV2)
	b.AddBytes(l.Account[:])
	b.AddUint64(l.Seq)
	b.AddBytes(l.Prev[:])
	b.AddUint64(uint64(l.Time))
	b.AddUint8(uint8(l.Kind))
	b.AddUint8(uint8(l.AuthorKind))
	switch l.AuthorKind {
	case AuthorDevice:
		b.AddBytes(l.AuthorDevice[:])
	case AuthorRecovery:
		b.AddBytes(l.AuthorRecoveryKey.Bytes())
	}
	addDevice := func() {
		b.AddBytes(l.Device.ID[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.Device.Name)) })
		b.AddBytes(l.Device.SigningKey.Bytes())
		b.AddBytes(l.Device.EncryptionKey)
	}
	addRecovery := func() {
		b.AddBytes(l.RecoveryCommitment[:])
		b.AddBytes(l.RecoveryEncryptionKey)
	}
	firstWrap := func() []byte {
		if len(l.DeviceWraps) > 0 {
			return l.DeviceWraps[0].Wrap
		}
		return nil
	}
	switch l.Kind {
	case LinkGenesis:
		if len(l.Origin) > 255 {
			panic("coffer: origin over 255 bytes")
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.Origin)) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.Handle)) })
		addDevice()
		b.AddBytes(l.UserKey)
		b.AddBytes(l.UserSigningKey.Bytes())
		addRecovery()
		b.AddBytes(firstWrap())
		b.AddBytes(l.RecoveryWrap)
	case LinkAddDevice:
		addDevice()
		b.AddBytes(firstWrap())
	case LinkRevokeDevice, LinkRotateUserKey:
		if l.Kind == LinkRevokeDevice {
			b.AddBytes(l.Revoked[:])
		}
		if len(l.DeviceWraps) > 255 {
			panic("coffer: over 255 device wraps")
		}
		b.AddBytes(l.UserKey)
		b.AddBytes(l.UserSigningKey.Bytes())
		b.AddUint8(uint8(len(l.DeviceWraps)))
		for _, w := range l.DeviceWraps {
			b.AddBytes(w.Device[:])
			b.AddBytes(w.Wrap)
		}
		b.AddBytes(l.RecoveryWrap)
		b.AddBytes(l.PrevUserKey)
	case LinkSetRecovery:
		addRecovery()
		b.AddBytes(l.RecoveryWrap)
	}
	return b.BytesOrPanic()
}

// ParseAccountLink parses and validates a link body: the version, the
// kind, the sizes, and every field on its own (ids non-zero, origin and
// handle syntax, hybrid keys with CheckSigningKey on their Ed25519 half,
// X-Wing keys, wraps in increasing device order). It does not check the
// link against an account: VerifyAccountChain does. It accepts only the
// canonical encoding. Errors are *Error with code EINVALID and Rule
// RuleVersion, RuleLinkKind, RuleTooLarge, RuleMalformed or RuleWeakKey.
//
// The returned link does not alias body.
func ParseAccountLink(body []byte) (*AccountLink, error) {
	if len(body) > MaxLinkSize {
		return nil, ruleErr(RuleTooLarge, "account link is %d bytes, over the limit of %d", len(body), MaxLinkSize)
	}
	p := linkParser{s: cryptobyte.String(body)}
	var version uint8
	if !p.s.ReadUint8(&version) {
		return nil, ruleErr(RuleMalformed, "empty account link")
	}
	if version != SuiteV2 {
		return nil, ruleErr(RuleVersion, "unsupported account link version %d", version)
	}
	var (
		l          AccountLink
		tm         uint64
		kind, auth uint8
	)
	if !p.s.CopyBytes(l.Account[:]) || !p.s.ReadUint64(&l.Seq) || !p.s.CopyBytes(l.Prev[:]) ||
		!p.s.ReadUint64(&tm) || !p.s.ReadUint8(&kind) || !p.s.ReadUint8(&auth) {
		return nil, ruleErr(RuleMalformed, "truncated account link header")
	}
	l.Time, l.Kind, l.AuthorKind = int64(tm), LinkKind(kind), AuthorKind(auth)
	if l.Account.IsZero() {
		return nil, ruleErr(RuleMalformed, "account link has a zero account id")
	}
	if l.Kind < LinkGenesis || l.Kind > LinkSetRecovery {
		return nil, ruleErr(RuleLinkKind, "unknown account link kind %d", kind)
	}
	switch l.AuthorKind {
	case AuthorDevice:
		l.AuthorDevice = p.deviceID("author device")
	case AuthorRecovery:
		l.AuthorRecoveryKey = p.hybridKey("recovery signing key")
	default:
		return nil, ruleErr(RuleMalformed, "unknown author kind %d", auth)
	}
	switch l.Kind {
	case LinkGenesis:
		var origin, handle cryptobyte.String
		if !p.s.ReadUint8LengthPrefixed(&origin) || !p.s.ReadUint8LengthPrefixed(&handle) {
			p.fail(ruleErr(RuleMalformed, "truncated genesis"))
			break
		}
		if err := CheckOrigin(string(origin)); err != nil {
			p.fail(ruleErr(RuleMalformed, "genesis: %s", ErrorMessage(err)))
		}
		h, err := ParseHandle(string(handle))
		if err != nil {
			p.fail(ruleErr(RuleMalformed, "genesis: %s", ErrorMessage(err)))
		}
		l.Origin, l.Handle = string(origin), h
		l.Device = p.device()
		l.UserKey = p.xwingKey("user key")
		l.UserSigningKey = p.hybridKey("user signing key")
		l.RecoveryCommitment, l.RecoveryEncryptionKey = p.recovery()
		l.DeviceWraps = []DeviceWrap{{Device: l.Device.ID, Wrap: p.wrap()}}
		l.RecoveryWrap = p.wrap()
	case LinkAddDevice:
		l.Device = p.device()
		l.DeviceWraps = []DeviceWrap{{Device: l.Device.ID, Wrap: p.wrap()}}
	case LinkRevokeDevice, LinkRotateUserKey:
		if l.Kind == LinkRevokeDevice {
			l.Revoked = p.deviceID("revoked device")
		}
		l.UserKey = p.xwingKey("user key")
		l.UserSigningKey = p.hybridKey("user signing key")
		l.DeviceWraps = p.deviceWraps()
		l.RecoveryWrap = p.wrap()
		l.PrevUserKey = p.bytes(HistoryLinkSize, "previous user key")
	case LinkSetRecovery:
		l.RecoveryCommitment, l.RecoveryEncryptionKey = p.recovery()
		l.RecoveryWrap = p.wrap()
	}
	if p.err != nil {
		p.err.Message = fmt.Sprintf("%s link: %s", l.Kind, p.err.Message)
		return nil, p.err
	}
	if !p.s.Empty() {
		return nil, ruleErr(RuleMalformed, "%d trailing bytes after the %s link", len(p.s), l.Kind)
	}
	return &l, nil
}

// linkParser reads the parts of a link, keeping the first error; after an
// error every read returns zero values.
type linkParser struct {
	s   cryptobyte.String
	err *Error
}

func (p *linkParser) fail(err *Error) {
	if p.err == nil {
		p.err = err
	}
}

func (p *linkParser) bytes(n int, what string) []byte {
	var b []byte
	if p.err != nil {
		return nil
	}
	if !p.s.ReadBytes(&b, n) {
		p.fail(ruleErr(RuleMalformed, "truncated %s", what))
		return nil
	}
	return append([]byte(nil), b...)
}

func (p *linkParser) deviceID(what string) DeviceID {
	var id DeviceID
	if b := p.bytes(16, what); b != nil {
		copy(id[:], b)
		if id.IsZero() {
			p.fail(ruleErr(RuleMalformed, "zero %s id", what))
		}
	}
	return id
}

func (p *linkParser) hybridKey(what string) HybridPublicKey {
	b := p.bytes(HybridPublicKeySize, what)
	if b == nil {
		return HybridPublicKey{}
	}
	k, err := ParseHybridPublicKey(b)
	if err != nil {
		p.fail(ruleErr(RuleWeakKey, "%s: %s", what, ErrorMessage(err)))
	}
	return k
}

func (p *linkParser) xwingKey(what string) []byte {
	b := p.bytes(EncryptionKeySize, what)
	if b != nil {
		if err := CheckEncryptionKey(b); err != nil {
			p.fail(ruleErr(RuleMalformed, "%s: %s", what, ErrorMessage(err)))
		}
	}
	return b
}

func (p *linkParser) device() DeviceKeys {
	id := p.deviceID("device")
	var name cryptobyte.String
	if p.err == nil && !p.s.ReadUint8LengthPrefixed(&name) {
		p.fail(ruleErr(RuleMalformed, "truncated device name"))
	}
	if p.err == nil {
		if err := CheckDeviceName(string(name)); err != nil {
			p.fail(ruleErr(RuleMalformed, "%s", ErrorMessage(err)))
		}
	}
	return DeviceKeys{ID: id, Name: string(name), SigningKey: p.hybridKey("device signing key"), EncryptionKey: p.xwingKey("device encryption key")}
}

func (p *linkParser) recovery() ([32]byte, []byte) {
	var c [32]byte
	if b := p.bytes(32, "recovery commitment"); b != nil {
		copy(c[:], b)
		if c == ([32]byte{}) {
			p.fail(ruleErr(RuleMalformed, "zero recovery commitment"))
		}
	}
	return c, p.xwingKey("recovery encryption key")
}

func (p *linkParser) wrap() []byte { return p.bytes(WrapSize, "wrap") }

func (p *linkParser) deviceWraps() []DeviceWrap {
	var n uint8
	if p.err != nil {
		return nil
	}
	if !p.s.ReadUint8(&n) {
		p.fail(ruleErr(RuleMalformed, "truncated wrap count"))
		return nil
	}
	if int(n) > MaxAccountDevices {
		p.fail(ruleErr(RuleTooLarge, "%d device wraps, over the limit of %d devices", n, MaxAccountDevices))
		return nil
	}
	if n == 0 {
		p.fail(ruleErr(RuleMalformed, "a rotation without device wraps"))
		return nil
	}
	ws := make([]DeviceWrap, 0, n)
	for i := range int(n) {
		w := DeviceWrap{Device: p.deviceID("wrap recipient"), Wrap: p.wrap()}
		if p.err != nil {
			return nil
		}
		if i > 0 && string(ws[i-1].Device[:]) >= string(w.Device[:]) {
			p.fail(ruleErr(RuleMalformed, "device wraps are not in increasing device order"))
			return nil
		}
		ws = append(ws, w)
	}
	return ws
}

// SignedLink is a link body with its signatures, exactly as stored and
// served.
type SignedLink struct {
	Body []byte // the canonical AccountLink encoding
	// Signature is the author's hybrid signature over
	// SignedMessage(LabelAccountLink, Body).
	Signature []byte
	// DeviceSignature is, on an add-device link only, the added device's
	// hybrid signature over SignedMessage(LabelAccountLinkDevice, Body).
	// It is empty on every other link.
	DeviceSignature []byte
}

// SignLink encodes l and signs it with the author's key and, for an
// add-device link, with the new device's key (newDevice; nil otherwise).
func SignLink(l *AccountLink, author, newDevice *HybridPrivateKey) SignedLink {
	body := l.Marshal()
	sl := SignedLink{Body: body, Signature: author.Sign(LabelAccountLink, body)}
	if newDevice != nil {
		sl.DeviceSignature = newDevice.Sign(LabelAccountLinkDevice, body)
	}
	return sl
}

// Hash returns the link hash that the next link's Prev carries: SHA-256 of
// SignedMessage(LabelAccountLinkHash, Body). As for commits, signatures are
// not hashed: the body alone says what the link means, and ML-DSA's hedged
// signatures differ on every signing.
func (sl SignedLink) Hash() [32]byte {
	return sha256.Sum256(SignedMessage(LabelAccountLinkHash, sl.Body))
}

// CanonicalOrigin is the deployment origin that suite v2 binds accounts
// (and login statements) to: scheme://host:port, with the host in lower
// case, an IPv6 host in brackets and the default port made explicit.
func CanonicalOrigin(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return u.Scheme + "://" + host + ":" + port
}

// CheckOrigin checks that s is an origin as CanonicalOrigin writes it, for
// an http or https URL with a host and nothing after the port.
func CheckOrigin(s string) error {
	if len(s) == 0 || len(s) > MaxOriginLength {
		return Errorf(EINVALID, "origin must be 1 to %d bytes", MaxOriginLength)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Path != "" ||
		CanonicalOrigin(u) != s {
		return Errorf(EINVALID, "origin %q is not of the form scheme://host:port", truncate(s, 60))
	}
	return nil
}

// DeviceSeedSize is the size of the one secret a device stores; its hybrid
// signing key and its X-Wing key derive from it.
const DeviceSeedSize = 32

// Labels of a device's key derivations.
const (
	LabelDeviceSigningSeed    = "coffer/v2/device-seed/signing"
	LabelDeviceEncryptionSeed = "coffer/v2/device-seed/encryption"
)

// LabelUserSigningSeed derives the user signing key from the user key's
// seed.
const LabelUserSigningSeed = "coffer/v2/user-signing-key"

// UserSigningKeyFromSeed derives the account's hybrid user signing key
// from the user key's 32-byte seed (the X-Wing seed) with HKDF-SHA256.
func UserSigningKeyFromSeed(seed []byte) (*HybridPrivateKey, error) {
	if len(seed) != EncryptionSecretSize {
		return nil, Errorf(EINVALID, "user key seed must be %d bytes, got %d", EncryptionSecretSize, len(seed))
	}
	s := deriveKey(seed, LabelUserSigningSeed, HybridSeedSize)
	defer clear(s)
	return NewHybridKeyFromSeed(s)
}

// DeviceKeysFromSeed derives a device's hybrid signing key and X-Wing key
// from its 32-byte seed with HKDF-SHA256 under two labels.
func DeviceKeysFromSeed(seed []byte) (*HybridPrivateKey, hpke.PrivateKey, error) {
	if len(seed) != DeviceSeedSize {
		return nil, nil, Errorf(EINVALID, "device seed must be %d bytes, got %d", DeviceSeedSize, len(seed))
	}
	s := deriveKey(seed, LabelDeviceSigningSeed, HybridSeedSize)
	sk, err := NewHybridKeyFromSeed(s)
	if err != nil {
		return nil, nil, err
	}
	e := deriveKey(seed, LabelDeviceEncryptionSeed, EncryptionSecretSize)
	dk, err := KEM().NewPrivateKey(e)
	if err != nil {
		return nil, nil, Errorf(EINTERNAL, "x-wing key from seed")
	}
	return sk, dk, nil
}
