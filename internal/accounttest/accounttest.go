// Package accounttest builds suite v2 account chains for tests through the
// exported API, as a client builds them: real device keys, real user-key
// wraps, each link verified before a test sends it (or corrupts it). The
// server, witness and audit tests share it.
package accounttest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/userkey"
)

type Device struct {
	ID   coffer.DeviceID
	Name string
	Key  *coffer.HybridPrivateKey
	Enc  hpke.PrivateKey
}

func MustDevice(tb testing.TB) *Device {
	tb.Helper()
	seed := make([]byte, coffer.DeviceSeedSize)
	rand.Read(seed)
	sk, dk, err := coffer.DeviceKeysFromSeed(seed)
	if err != nil {
		tb.Fatal(err)
	}
	id := coffer.NewDeviceID()
	return &Device{ID: id, Name: "device " + id.String()[:8], Key: sk, Enc: dk}
}

func (d *Device) Keys() coffer.DeviceKeys {
	return coffer.DeviceKeys{ID: d.ID, Name: d.Name, SigningKey: d.Key.Public(), EncryptionKey: d.Enc.PublicKey().Bytes()}
}

// SignLogin is d's signature of the suite v2 log-in statement.
func (d *Device) SignLogin(origin string, account coffer.AccountID, challenge []byte) []byte {
	return d.Key.Sign(coffer.LabelDeviceLogin, coffer.DeviceLoginStatement(origin, account, d.ID, challenge))
}

// Account is an account chain and the secrets its devices would hold.
type Account struct {
	tb       testing.TB
	ID       coffer.AccountID
	Links    []coffer.SignedLink
	State    *coffer.AccountState
	Devices  []*Device // current
	Recovery *coffer.RecoveryKey
	UserKey  hpke.PrivateKey

	// What the builder made, by public key or id, for Push to pick up
	// whichever of the built links is pushed.
	userKeys   map[string]hpke.PrivateKey
	recoveries map[string]*coffer.RecoveryKey
	devices    map[coffer.DeviceID]*Device
}

// MustAccount builds the genesis of a new account for origin and
// handle, with one device.
func MustAccount(tb testing.TB, origin, handle string) *Account {
	tb.Helper()
	a := &Account{tb: tb, ID: coffer.NewAccountID(), Recovery: coffer.NewRecoveryKey(),
		userKeys: map[string]hpke.PrivateKey{}, recoveries: map[string]*coffer.RecoveryKey{}, devices: map[coffer.DeviceID]*Device{}}
	d := MustDevice(tb)
	uk, err := userkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	l := a.base(coffer.LinkGenesis, d)
	l.Origin, l.Handle = origin, coffer.Handle(handle)
	l.Device = d.Keys()
	l.UserKey = uk.PublicKey().Bytes()
	l.UserSigningKey = mustHybridUserKey(tb, uk).Public()
	l.RecoveryCommitment = a.Recovery.Commitment(a.ID)
	l.RecoveryEncryptionKey = a.Recovery.EncryptionKey().PublicKey().Bytes()
	l.DeviceWraps = []coffer.DeviceWrap{{Device: d.ID, Wrap: a.seal(d.Enc.PublicKey().Bytes(), 1, userkey.Recipient{Device: d.ID}, uk)}}
	l.RecoveryWrap = a.seal(l.RecoveryEncryptionKey, 1, userkey.RecoveryRecipient, uk)
	a.userKeys[string(l.UserKey)], a.devices[d.ID] = uk, d
	a.Push(coffer.SignLink(l, d.Key, nil))
	return a
}

func mustHybridUserKey(tb testing.TB, uk hpke.PrivateKey) *coffer.HybridPrivateKey {
	tb.Helper()
	k, err := userkey.HybridSigningKey(uk)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustUserSigningKey(tb testing.TB, uk hpke.PrivateKey) ed25519.PrivateKey {
	tb.Helper()
	k, err := userkey.SigningKey(uk)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func (a *Account) seal(to []byte, gen uint64, r userkey.Recipient, uk hpke.PrivateKey) []byte {
	w, err := userkey.Seal(to, a.ID, gen, r, uk)
	if err != nil {
		a.tb.Fatal(err)
	}
	return w
}

// base is the next link of kind by author (nil: fill in the author later).
func (a *Account) base(kind coffer.LinkKind, author *Device) *coffer.AccountLink {
	l := &coffer.AccountLink{Account: a.ID, Seq: 1, Kind: kind, AuthorKind: coffer.AuthorDevice, Time: time.Now().UnixMilli()}
	if author != nil {
		l.AuthorDevice = author.ID
	}
	if a.State != nil {
		l.Seq, l.Prev = a.State.Seq+1, a.State.Head
	}
	return l
}

// Device returns current device i.
func (a *Account) Device(i int) *Device { return a.Devices[i] }

// AddDevice returns an add-device link of d by author, signed by both.
func (a *Account) AddDevice(author, d *Device) coffer.SignedLink {
	l := a.AddDeviceLink(author, d)
	return coffer.SignLink(l, author.Key, d.Key)
}

// AddDeviceLink returns the unsigned add-device link of d by author.
func (a *Account) AddDeviceLink(author, d *Device) *coffer.AccountLink {
	l := a.base(coffer.LinkAddDevice, author)
	l.Device = d.Keys()
	l.DeviceWraps = []coffer.DeviceWrap{{Device: d.ID, Wrap: a.seal(d.Enc.PublicKey().Bytes(), a.State.UserKeyGeneration, userkey.Recipient{Device: d.ID}, a.UserKey)}}
	a.devices[d.ID] = d
	return l
}

// rotation fills in a new user key for l, wrapped to every current device
// but except.
func (a *Account) rotation(l *coffer.AccountLink, except coffer.DeviceID) *coffer.AccountLink {
	uk, err := userkey.Generate()
	if err != nil {
		a.tb.Fatal(err)
	}
	gen := a.State.UserKeyGeneration + 1
	l.UserKey = uk.PublicKey().Bytes()
	l.UserSigningKey = mustHybridUserKey(a.tb, uk).Public()
	if l.PrevUserKey, err = userkey.SealPrevious(uk, a.UserKey, a.ID, gen); err != nil {
		a.tb.Fatal(err)
	}
	ds := slices.Clone(a.Devices)
	slices.SortFunc(ds, func(x, y *Device) int { return bytes.Compare(x.ID[:], y.ID[:]) })
	for _, d := range ds {
		if d.ID != except {
			l.DeviceWraps = append(l.DeviceWraps, coffer.DeviceWrap{Device: d.ID, Wrap: a.seal(d.Enc.PublicKey().Bytes(), gen, userkey.Recipient{Device: d.ID}, uk)})
		}
	}
	l.RecoveryWrap = a.seal(a.State.RecoveryEncryptionKey, gen, userkey.RecoveryRecipient, uk)
	a.userKeys[string(l.UserKey)] = uk
	return l
}

// Revoke returns a revoke-device link of d by author.
func (a *Account) Revoke(author, d *Device) coffer.SignedLink {
	l := a.base(coffer.LinkRevokeDevice, author)
	l.Revoked = d.ID
	return coffer.SignLink(a.rotation(l, d.ID), author.Key, nil)
}

// Rotate returns a rotate-user-key link by author.
func (a *Account) Rotate(author *Device) coffer.SignedLink {
	return coffer.SignLink(a.rotation(a.base(coffer.LinkRotateUserKey, author), coffer.DeviceID{}), author.Key, nil)
}

// SetRecovery returns a set-recovery link to a new recovery key by author.
func (a *Account) SetRecovery(author *Device) coffer.SignedLink {
	rk := coffer.NewRecoveryKey()
	l := a.base(coffer.LinkSetRecovery, author)
	l.RecoveryCommitment = rk.Commitment(a.ID)
	l.RecoveryEncryptionKey = rk.EncryptionKey().PublicKey().Bytes()
	l.RecoveryWrap = a.seal(l.RecoveryEncryptionKey, a.State.UserKeyGeneration, userkey.RecoveryRecipient, a.UserKey)
	a.recoveries[string(l.RecoveryEncryptionKey)] = rk
	return coffer.SignLink(l, author.Key, nil)
}

// Push verifies sl as the next link and makes it part of the account.
func (a *Account) Push(sl coffer.SignedLink) {
	a.tb.Helper()
	next, err := coffer.VerifyAccountChain(a.State, []coffer.SignedLink{sl})
	if err != nil {
		a.tb.Fatalf("the builder made a link the verifier refuses: %v", err)
	}
	l, _ := coffer.ParseAccountLink(sl.Body)
	switch l.Kind {
	case coffer.LinkGenesis, coffer.LinkAddDevice:
		a.Devices = append(a.Devices, a.devices[l.Device.ID])
	case coffer.LinkRevokeDevice:
		a.Devices = slices.DeleteFunc(a.Devices, func(d *Device) bool { return d.ID == l.Revoked })
	case coffer.LinkSetRecovery:
		a.Recovery = a.recoveries[string(l.RecoveryEncryptionKey)]
	}
	a.UserKey = a.userKeys[string(next.UserKey)]
	a.State, a.Links = next, append(a.Links, sl)
}

// SigningKey is the current user signing key.
func (a *Account) SigningKey() ed25519.PrivateKey { return mustUserSigningKey(a.tb, a.UserKey) }

// SelfSignature is the self-signature of the current identity.
func (a *Account) SelfSignature() []byte {
	return coffer.Sign(a.SigningKey(), coffer.LabelIdentity, a.State.Identity().Marshal())
}

// HybridKey is the current hybrid user signing key, which signs the
// account's suite v2 commits and resource headers.
func (a *Account) HybridKey() *coffer.HybridPrivateKey { return mustHybridUserKey(a.tb, a.UserKey) }

// MemberKeys is the account's current suite v2 member keys, as suite v2
// groups name them by hash.
func (a *Account) MemberKeys() *coffer.MemberKeys { return a.State.MemberKeys() }
