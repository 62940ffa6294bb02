package clientlib

import (
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/userkey"
)

// What a device of a suite v2 account keeps in its KeyStore, beside the
// suite v1 entries ("identity", "account", the session) that the rest of
// the client reads:
//
//   - "device": this device's id, name and 32-byte seed, from which its
//     hybrid signing key and X-Wing key derive. It never leaves the device.
//   - "account-chain": the checkpoint of the account's own chain as this
//     device last verified it (coffer.AccountState.MarshalBinary). Every
//     later link is verified from it, so a server cannot roll the account
//     back or fork it under this device.
//   - "user-keys": every user key seed this device holds, by generation.
//     The newest is the account's current user key, and "identity" is
//     always the suite v1 identity it derives (user signing key, user key);
//     older ones open what groups wrapped before a rotation.
//   - "account-pending": a link this device signed and has not yet seen
//     stored (a genesis whose registration may have failed halfway).
const (
	ksDevice         = "device"
	ksAccountChain   = "account-chain"
	ksUserKeys       = "user-keys"
	ksAccountPending = "account-pending"
)

// device is this device's own keys.
type device struct {
	id   coffer.DeviceID
	name string
	seed []byte
	sign *coffer.HybridPrivateKey
	dec  hpke.PrivateKey
}

func newDevice(name string) (*device, error) {
	if err := coffer.CheckDeviceName(name); err != nil {
		return nil, err
	}
	seed := make([]byte, coffer.DeviceSeedSize)
	rand.Read(seed)
	return deviceFromSeed(coffer.NewDeviceID(), name, seed)
}

func deviceFromSeed(id coffer.DeviceID, name string, seed []byte) (*device, error) {
	sk, dk, err := coffer.DeviceKeysFromSeed(seed)
	if err != nil {
		return nil, err
	}
	return &device{id: id, name: name, seed: seed, sign: sk, dec: dk}, nil
}

func (d *device) keys() coffer.DeviceKeys {
	return coffer.DeviceKeys{ID: d.id, Name: d.name, SigningKey: d.sign.Public(), EncryptionKey: d.dec.PublicKey().Bytes()}
}

func (d *device) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(coffer.SuiteV2)
	b.AddBytes(d.id[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(d.name)) })
	b.AddBytes(d.seed)
	return b.BytesOrPanic()
}

func parseDevice(data []byte) (*device, error) {
	s := cryptobyte.String(data)
	var (
		v    uint8
		id   coffer.DeviceID
		name cryptobyte.String
		seed []byte
	)
	if !s.ReadUint8(&v) || v != coffer.SuiteV2 || !s.CopyBytes(id[:]) || !s.ReadUint8LengthPrefixed(&name) ||
		!s.ReadBytes(&seed, coffer.DeviceSeedSize) || !s.Empty() {
		return nil, errors.New("clientlib: stored device keys are corrupt")
	}
	return deviceFromSeed(id, string(name), slices.Clone(seed))
}

// userKeyring holds the user keys this device knows, by generation.
type userKeyring map[uint64]hpke.PrivateKey

func (r userKeyring) newest() (uint64, hpke.PrivateKey) {
	var g uint64
	for k := range r {
		g = max(g, k)
	}
	return g, r[g]
}

func (r userKeyring) marshal() ([]byte, error) {
	gens := make([]uint64, 0, len(r))
	for g := range r {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	var b cryptobyte.Builder
	b.AddUint8(1)
	b.AddUint16(uint16(len(gens)))
	for _, g := range gens {
		seed, err := r[g].Bytes()
		if err != nil {
			return nil, err
		}
		b.AddUint64(g)
		b.AddBytes(seed)
	}
	return b.Bytes()
}

func parseUserKeyring(data []byte) (userKeyring, error) {
	s := cryptobyte.String(data)
	var (
		v uint8
		n uint16
	)
	if !s.ReadUint8(&v) || v != 1 || !s.ReadUint16(&n) || len(s) != int(n)*(8+coffer.EncryptionSecretSize) {
		return nil, errors.New("clientlib: stored user keys are corrupt")
	}
	r := userKeyring{}
	var last uint64
	for range int(n) {
		var (
			g    uint64
			seed []byte
		)
		s.ReadUint64(&g)
		s.ReadBytes(&seed, coffer.EncryptionSecretSize)
		if g <= last {
			return nil, errors.New("clientlib: stored user keys are corrupt")
		}
		last = g
		k, err := coffer.KEM().NewPrivateKey(seed)
		if err != nil {
			return nil, errors.New("clientlib: stored user keys are corrupt")
		}
		r[g] = k
	}
	return r, nil
}

// identityFromUserKey is the suite v1 identity an account's user key
// derives: the user signing key and the user key itself.
func identityFromUserKey(handle coffer.Handle, uk hpke.PrivateKey) (*Identity, error) {
	hk, err := userkey.HybridSigningKey(uk)
	if err != nil {
		return nil, err
	}
	seed, err := uk.Bytes()
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(handle, hk.Ed25519PrivateKey().Seed(), slices.Clone(seed))
	if err != nil {
		return nil, err
	}
	id.hybrid = hk
	return id, nil
}

// walkBack fills r with every user key older than the newest one it
// holds, opening each rotation's sealed previous key in links (the whole
// chain, from the genesis, already verified). Each key opened is checked
// against the user key the chain records for its generation.
func walkBack(account coffer.AccountID, links []coffer.SignedLink, r userKeyring) error {
	// The user key of each generation, and the sealed previous key that
	// the link setting it carries.
	type gen struct {
		userKey []byte
		prev    []byte
	}
	var gens []gen // gens[i] is generation i+1
	for _, sl := range links {
		l, err := coffer.ParseAccountLink(sl.Body)
		if err != nil {
			return err
		}
		switch l.Kind {
		case coffer.LinkGenesis, coffer.LinkRevokeDevice, coffer.LinkRotateUserKey:
			gens = append(gens, gen{userKey: l.UserKey, prev: l.PrevUserKey})
		}
	}
	top, _ := r.newest()
	if top == 0 || top > uint64(len(gens)) {
		return coffer.Security("user-key", fmt.Errorf("this device holds user key generation %d; the chain has %d", top, len(gens)))
	}
	for g := top; g > 1; g-- {
		if _, ok := r[g-1]; ok {
			continue
		}
		prev, err := userkey.OpenPrevious(r[g], account, g, gens[g-1].prev, gens[g-2].userKey)
		if err != nil {
			return err
		}
		r[g-1] = prev
	}
	return nil
}

// device returns this key store's suite v2 device, or nil for a suite v1
// identity.
func (c *Client) device() *device {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct == nil {
		return nil
	}
	return c.acct.dev
}
