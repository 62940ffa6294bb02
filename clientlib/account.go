package clientlib

import (
	"bytes"
	"context"
	"crypto/hpke"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/userkey"
)

// Suite v2 accounts: an account is a chain of signed links (devices, the
// user key, the recovery key; see accountlink.go in the root package). This
// device verifies every link of its own chain and of its contacts' chains
// with coffer.VerifyAccountChain, from the last state it verified. The
// account's identity in groups and log-ins is the suite v1 identity its
// current user key derives, so the group code is the same for both
// suites.

// accountSelf is this device's view of its own suite v2 account.
type accountSelf struct {
	dev   *device
	state *coffer.AccountState
	keys  userKeyring
	// older are the identities of the user keys before the current one,
	// newest first: they open what groups wrapped before a rotation, and
	// sign this account's self-update in a group that still lists it with
	// an old key.
	older []*Identity
}

// loadAccount reads this device's suite v2 keys, if it has any.
func (c *Client) loadAccount() error {
	b, err := c.ks.Get(ksDevice)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	dev, err := parseDevice(b)
	if err != nil {
		return err
	}
	a := &accountSelf{dev: dev}
	if b, err := c.ks.Get(ksAccountChain); err == nil {
		a.state = new(coffer.AccountState)
		if err := a.state.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("clientlib: stored account chain: %w", err)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if b, err := c.ks.Get(ksUserKeys); err == nil {
		if a.keys, err = parseUserKeyring(b); err != nil {
			return err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := a.deriveOlder(); err != nil {
		return err
	}
	// The stored identity holds the Ed25519 half; the whole hybrid user
	// signing key, which suite v2 groups sign with, derives from the
	// newest user key when it is this identity's.
	var hybrid *coffer.HybridPrivateKey
	if len(a.keys) > 0 {
		_, uk := a.keys.newest()
		if hk, err := userkey.HybridSigningKey(uk); err == nil {
			hybrid = hk
		}
	}
	c.mu.Lock()
	c.acct = a
	c.retired = a.older
	if c.id != nil && a.state != nil {
		c.id.acct = a.state
		if hybrid != nil && bytes.Equal(hybrid.Public().Ed25519(), c.id.public.SigningKey) {
			c.id.hybrid = hybrid
		}
	}
	c.mu.Unlock()
	return nil
}

func (a *accountSelf) deriveOlder() error {
	a.older = nil
	if a.state == nil || len(a.keys) == 0 {
		return nil
	}
	top, _ := a.keys.newest()
	for g := top - 1; g >= 1; g-- {
		k, ok := a.keys[g]
		if !ok {
			break
		}
		id, err := identityFromUserKey(a.state.Handle, k)
		if err != nil {
			return err
		}
		a.older = append(a.older, id)
	}
	return nil
}

// account returns this device's account view, or an error naming what is
// missing.
func (c *Client) account2() (*accountSelf, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct == nil || c.acct.state == nil || len(c.acct.keys) == 0 {
		return nil, coffer.Errorf(coffer.EINVALID, "this device holds no suite v2 account: create one, link this device, or recover")
	}
	return c.acct, nil
}

// IsAccountV2 reports whether this device belongs to a suite v2 account.
func (c *Client) IsAccountV2() bool {
	_, err := c.account2()
	return err == nil
}

// saveAccount stores a, then makes it this client's: device, user keys,
// chain checkpoint, then the identity of the newest user key.
func (c *Client) saveAccount(a *accountSelf) error {
	if err := c.ks.Put(ksDevice, a.dev.marshal()); err != nil {
		return err
	}
	kb, err := a.keys.marshal()
	if err != nil {
		return err
	}
	if err := c.ks.Put(ksUserKeys, kb); err != nil {
		return err
	}
	cb, err := a.state.MarshalBinary()
	if err != nil {
		return err
	}
	if err := c.ks.Put(ksAccountChain, cb); err != nil {
		return err
	}
	_, uk := a.keys.newest()
	id, err := identityFromUserKey(a.state.Handle, uk)
	if err != nil {
		return err
	}
	if !id.Public().Equal(a.state.Identity()) {
		return coffer.Security("user-key", errors.New("the newest user key this device holds is not the account's current one"))
	}
	id.acct = a.state
	if err := a.deriveOlder(); err != nil {
		return err
	}
	if err := c.ks.Put(ksIdentity, id.marshalPrivate()); err != nil {
		return err
	}
	if err := c.ks.Put(ksAccount, []byte(a.state.Account.String())); err != nil {
		return err
	}
	c.mu.Lock()
	c.acct, c.id, c.account, c.retired = a, id, a.state.Account, a.older
	c.mu.Unlock()
	return nil
}

func (c *Client) observeUserKey(k hpke.PrivateKey) {
	if seed, err := k.Bytes(); err == nil {
		c.observeSecret("user-key-seed", seed)
	}
}

// CreateAccount creates a suite v2 account for handle with this device as
// its first device, registers it and logs in. It returns the recovery
// key, which exists nowhere else: show it to the user once (as
// RecoveryKey.Words and a QR code) and forget it.
//
// If an earlier call on this key store made the account but did not finish
// registering it (the network failed), this one finishes that
// registration with the same keys and returns the same recovery key.
func (c *Client) CreateAccount(ctx context.Context, handle, deviceName string) (*coffer.RecoveryKey, error) {
	h, err := coffer.ParseHandle(handle)
	if err != nil {
		return nil, err
	}
	if c.holdsAccount() {
		p, err := c.loadPending()
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, errHoldsAccount()
		}
		if c.Identity().Handle() != h {
			return nil, coffer.Errorf(coffer.EINVALID, "this key store holds the unfinished registration of %q: use a new profile for %q", c.Identity().Handle(), h)
		}
		return c.register(ctx, p)
	}
	dev, err := newDevice(deviceName)
	if err != nil {
		return nil, err
	}
	uk, err := userkey.Generate()
	if err != nil {
		return nil, err
	}
	rk := coffer.NewRecoveryKey()
	c.observeSecret("device-seed", dev.seed)
	c.observeUserKey(uk)
	c.observeSecret("recovery-key", rk[:])
	account := coffer.NewAccountID()
	usk, err := userkey.HybridSigningKey(uk)
	if err != nil {
		return nil, err
	}
	dw, err := userkey.Seal(dev.dec.PublicKey().Bytes(), account, 1, userkey.Recipient{Device: dev.id}, uk)
	if err != nil {
		return nil, err
	}
	rw, err := userkey.Seal(rk.EncryptionKey().PublicKey().Bytes(), account, 1, userkey.RecoveryRecipient, uk)
	if err != nil {
		return nil, err
	}
	l := &coffer.AccountLink{
		Account: account, Seq: 1, Time: time.Now().UnixMilli(), Kind: coffer.LinkGenesis,
		AuthorKind: coffer.AuthorDevice, AuthorDevice: dev.id,
		Origin: c.origin, Handle: h, Device: dev.keys(),
		UserKey: uk.PublicKey().Bytes(), UserSigningKey: usk.Public(),
		RecoveryCommitment: rk.Commitment(account), RecoveryEncryptionKey: rk.EncryptionKey().PublicKey().Bytes(),
		DeviceWraps:  []coffer.DeviceWrap{{Device: dev.id, Wrap: dw}},
		RecoveryWrap: rw,
	}
	sl := coffer.SignLink(l, dev.sign, nil)
	state, err := coffer.VerifyAccountChain(&coffer.AccountState{Origin: c.origin, Handle: h}, []coffer.SignedLink{sl})
	if err != nil {
		return nil, fmt.Errorf("clientlib: the genesis this device made does not verify: %w", err)
	}
	// Keys first, and the registration still to do: if it fails after the
	// server stored the account, or before, nothing is lost.
	p := &pendingAccount{genesis: sl, recovery: rk}
	if err := c.ks.Put(ksAccountPending, p.marshal()); err != nil {
		return nil, err
	}
	if err := c.saveAccount(&accountSelf{dev: dev, state: state, keys: userKeyring{1: uk}}); err != nil {
		return nil, err
	}
	return c.register(ctx, p)
}

// HasUnfinishedAccount reports whether this key store holds an account
// that CreateAccount made but did not finish registering.
func (c *Client) HasUnfinishedAccount() bool {
	p, err := c.loadPending()
	return err == nil && p != nil
}

// register registers the account of this device's key store, whose
// genesis p holds, and logs in.
func (c *Client) register(ctx context.Context, p *pendingAccount) (*coffer.RecoveryKey, error) {
	id := c.Identity()
	account := c.AccountID()
	var acct api.Account
	err := c.call(ctx, http.MethodPost, "/v1/accounts", false, api.RegisterRequest{
		Identity: id.Public().Marshal(), SelfSignature: id.SelfSignature(), Genesis: ptr(api.FromLink(p.genesis)),
	}, &acct)
	switch {
	case coffer.ErrorCode(err) == coffer.ECONFLICT:
		// Registered by the attempt whose answer was lost, or the handle is
		// someone else's: logging in tells them apart.
		if lerr := c.Login(ctx); lerr != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case acct.ID != account || acct.Handle != id.Handle() || !bytes.Equal(acct.Identity, id.Public().Marshal()):
		return nil, coffer.Security("register", errors.New("server echoed a different account"))
	}
	if err := c.proveOwnIdentity(ctx, account, id); err != nil {
		return nil, err
	}
	c.noteIdentity(api.Account{ID: account, Identity: id.Public().Marshal(), SelfSignature: id.SelfSignature()}, id.Public())
	if err := c.Login(ctx); err != nil {
		return nil, err
	}
	if err := c.ks.Delete(ksAccountPending); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return p.recovery, nil
}

// pendingAccount is a registration not yet finished: the genesis, and the
// recovery key, kept (encrypted at rest, like every key) only until the
// registration succeeds and the key is handed to the caller to show.
type pendingAccount struct {
	genesis  coffer.SignedLink
	recovery *coffer.RecoveryKey
}

func (p *pendingAccount) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(1)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(p.genesis.Body) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(p.genesis.Signature) })
	b.AddBytes(p.recovery[:])
	return b.BytesOrPanic()
}

func (c *Client) loadPending() (*pendingAccount, error) {
	data, err := c.ks.Get(ksAccountPending)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(data)
	var (
		v         uint8
		body, sig cryptobyte.String
		rk        coffer.RecoveryKey
	)
	if !s.ReadUint8(&v) || v != 1 || !s.ReadUint24LengthPrefixed(&body) || !s.ReadUint16LengthPrefixed(&sig) ||
		!s.CopyBytes(rk[:]) || !s.Empty() {
		return nil, errors.New("clientlib: stored pending registration is corrupt")
	}
	return &pendingAccount{genesis: coffer.SignedLink{Body: bytes.Clone(body), Signature: bytes.Clone(sig)}, recovery: &rk}, nil
}

func ptr[T any](v T) *T { return &v }

// fetchLinks returns the links of an account chain after seq after, from
// path (".../links"), every page.
func (c *Client) fetchLinks(ctx context.Context, path string, after uint64) (coffer.AccountID, []coffer.SignedLink, error) {
	var (
		out     []coffer.SignedLink
		account coffer.AccountID
	)
	for {
		var page api.AccountLinks
		if err := c.call(ctx, http.MethodGet, path+"?after="+strconv.FormatUint(after, 10), false, nil, &page); err != nil {
			return account, nil, err
		}
		if !account.IsZero() && page.AccountID != account {
			return account, nil, coffer.Security("account-chain", errors.New("the server changed accounts between pages of one chain"))
		}
		account = page.AccountID
		if page.HeadSeq < after {
			// The caller verified the chain up to after: a shorter chain is
			// a rollback, or a fork the server started over.
			return account, nil, coffer.Security("account-chain", fmt.Errorf("the server shows the chain at link %d; this device verified it up to %d", page.HeadSeq, after))
		}
		if len(page.Links) > api.MaxLinksPage {
			return account, nil, coffer.Security("account-chain", fmt.Errorf("a page of %d links, over the limit of %d", len(page.Links), api.MaxLinksPage))
		}
		for _, l := range page.Links {
			out = append(out, l.Link())
		}
		after += uint64(len(page.Links))
		if len(page.Links) == 0 || after >= page.HeadSeq {
			if after < page.HeadSeq {
				return account, nil, coffer.Security("account-chain", fmt.Errorf("the server names head %d but served links only to %d", page.HeadSeq, after))
			}
			return account, out, nil
		}
	}
}

// syncAccount verifies the links of this device's own account after the
// state it holds, takes the user keys that rotations wrapped to it, and
// stores the result. A device that a link revoked gets ErrDeviceRevoked.
func (c *Client) syncAccount(ctx context.Context) (*accountSelf, error) {
	a, err := c.account2()
	if err != nil {
		return nil, err
	}
	account := a.state.Account
	_, links, err := c.fetchLinks(ctx, "/v1/accounts/"+account.String()+"/links", a.state.Seq)
	if err != nil {
		return nil, err
	}
	if len(links) == 0 {
		return a, nil
	}
	next, err := coffer.VerifyAccountChain(a.state, links)
	if err != nil {
		return nil, coffer.Security("account-chain", err)
	}
	if next.Devices[a.dev.id] == nil {
		return nil, ErrDeviceRevoked
	}
	keys := userKeyring{}
	for g, k := range a.keys {
		keys[g] = k
	}
	if next.UserKeyGeneration != a.state.UserKeyGeneration {
		wrapLink, err := coffer.ParseAccountLink(links[next.Devices[a.dev.id].WrapSeq-a.state.Seq-1].Body)
		if err != nil {
			return nil, err
		}
		w, ok := wrapLink.WrapFor(a.dev.id)
		if !ok {
			return nil, coffer.Security("user-key-wrap", errors.New("the link holding this device's wrap has none"))
		}
		uk, err := userkey.Open(a.dev.dec, account, next.UserKeyGeneration, userkey.Recipient{Device: a.dev.id}, w, next.UserKey)
		if err != nil {
			return nil, err
		}
		c.observeUserKey(uk)
		keys[next.UserKeyGeneration] = uk
		// Generations between the one this device held and the newest
		// (two rotations since its last sync) come from the sealed
		// previous keys of the new links.
		gens := map[uint64]*coffer.AccountLink{}
		g := a.state.UserKeyGeneration
		for _, sl := range links {
			l, err := coffer.ParseAccountLink(sl.Body)
			if err != nil {
				return nil, err
			}
			if l.Kind == coffer.LinkRevokeDevice || l.Kind == coffer.LinkRotateUserKey {
				g++
				gens[g] = l
			}
		}
		for g := next.UserKeyGeneration; g > a.state.UserKeyGeneration+1; g-- {
			prev, err := userkey.OpenPrevious(keys[g], account, g, gens[g].PrevUserKey, gens[g-1].UserKey)
			if err != nil {
				return nil, err
			}
			keys[g-1] = prev
		}
	}
	na := &accountSelf{dev: a.dev, state: next, keys: keys}
	if err := c.saveAccount(na); err != nil {
		return nil, err
	}
	return na, nil
}

// ErrDeviceRevoked: this device is no longer a device of its account.
var ErrDeviceRevoked = &coffer.Error{Code: coffer.EUNAUTHORIZED, Message: "this device was revoked from its account: link it again, or recover the account"}

// Device is a device of this device's account.
type Device struct {
	ID      coffer.DeviceID
	Name    string
	Added   time.Time
	Current bool // this device
}

// Devices lists the account's devices, after verifying its chain.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	a, err := c.syncAccount(ctx)
	if err != nil {
		return nil, err
	}
	var out []Device
	for _, d := range a.state.SortedDevices() {
		out = append(out, Device{ID: d.ID, Name: d.Name, Added: time.UnixMilli(d.AddedTime).UTC(), Current: d.ID == a.dev.id})
	}
	return out, nil
}

// AccountSafetyNumber returns this account's safety number. For a suite
// v2 account it pins the account (id and genesis), and stays the same as
// devices come and go.
func (c *Client) AccountSafetyNumber() string {
	if id := c.Identity(); id != nil {
		return id.SafetyNumber()
	}
	return ""
}

// appendLink posts a link to this account's chain. selfSig is the new
// identity's self-signature on a rotating link.
func (c *Client) appendLink(ctx context.Context, account coffer.AccountID, sl coffer.SignedLink, selfSig []byte) error {
	var resp api.AppendLinkResponse
	return c.call(ctx, http.MethodPost, "/v1/accounts/"+account.String()+"/links", false,
		api.AppendLinkRequest{Link: api.FromLink(sl), SelfSignature: selfSig}, &resp)
}

// rotation builds the rotation part of l (a revoke-device or
// rotate-user-key link on top of a): a new user key, wrapped to every
// device that remains and to the recovery key, with the current one sealed
// under it.
func (a *accountSelf) rotation(l *coffer.AccountLink, revoked coffer.DeviceID) (hpke.PrivateKey, error) {
	s := a.state
	gen := s.UserKeyGeneration + 1
	uk, err := userkey.Generate()
	if err != nil {
		return nil, err
	}
	usk, err := userkey.HybridSigningKey(uk)
	if err != nil {
		return nil, err
	}
	l.UserKey, l.UserSigningKey = uk.PublicKey().Bytes(), usk.Public()
	for _, d := range s.SortedDevices() {
		if d.ID == revoked {
			continue
		}
		w, err := userkey.Seal(d.EncryptionKey, s.Account, gen, userkey.Recipient{Device: d.ID}, uk)
		if err != nil {
			return nil, err
		}
		l.DeviceWraps = append(l.DeviceWraps, coffer.DeviceWrap{Device: d.ID, Wrap: w})
	}
	if l.RecoveryWrap, err = userkey.Seal(s.RecoveryEncryptionKey, s.Account, gen, userkey.RecoveryRecipient, uk); err != nil {
		return nil, err
	}
	_, cur := a.keys.newest()
	if l.PrevUserKey, err = userkey.SealPrevious(uk, cur, s.Account, gen); err != nil {
		return nil, err
	}
	return uk, nil
}

func (a *accountSelf) nextLink(kind coffer.LinkKind) *coffer.AccountLink {
	return &coffer.AccountLink{Account: a.state.Account, Seq: a.state.Seq + 1, Prev: a.state.Head,
		Time: time.Now().UnixMilli(), Kind: kind, AuthorKind: coffer.AuthorDevice, AuthorDevice: a.dev.id}
}

// rotate appends a rotating link built by fill (revoke-device or
// rotate-user-key), then makes the new user key this device's identity,
// logs in again (the server ends every session of the account on a
// rotation) and updates this account's keys in every group it is in.
func (c *Client) rotate(ctx context.Context, kind coffer.LinkKind, revoked coffer.DeviceID) error {
	a, err := c.syncAccount(ctx)
	if err != nil {
		return err
	}
	l := a.nextLink(kind)
	l.Revoked = revoked
	uk, err := a.rotation(l, revoked)
	if err != nil {
		return err
	}
	c.observeUserKey(uk)
	sl := coffer.SignLink(l, a.dev.sign, nil)
	next, err := coffer.VerifyAccountChain(a.state, []coffer.SignedLink{sl})
	if err != nil {
		return fmt.Errorf("clientlib: the link this device made does not verify: %w", err)
	}
	newID, err := identityFromUserKey(next.Handle, uk)
	if err != nil {
		return err
	}
	// The new key is kept before it is published: if the answer is lost,
	// the next sync finds the link and the key is already here.
	keys := userKeyring{}
	for g, k := range a.keys {
		keys[g] = k
	}
	keys[next.UserKeyGeneration] = uk
	if kb, err := keys.marshal(); err != nil {
		return err
	} else if err := c.ks.Put(ksUserKeys, kb); err != nil {
		return err
	}
	if err := c.appendLink(ctx, next.Account, sl, newID.SelfSignature()); err != nil {
		return err
	}
	if err := c.saveAccount(&accountSelf{dev: a.dev, state: next, keys: keys}); err != nil {
		return err
	}
	if err := c.Login(ctx); err != nil {
		return err
	}
	if err := c.updateKeysInGroups(ctx); err != nil {
		return err
	}
	// Re-encrypted under the new user key, which the revoked device lacks.
	return c.SaveDeviceState(ctx)
}

// RevokeDevice revokes the device named name (or with that id) and
// rotates the user key, so the revoked device can open nothing wrapped
// after this; then it updates this account's keys in every group.
func (c *Client) RevokeDevice(ctx context.Context, name string) error {
	a, err := c.syncAccount(ctx)
	if err != nil {
		return err
	}
	var target *coffer.AccountDevice
	for _, d := range a.state.SortedDevices() {
		if d.Name == name || d.ID.String() == name {
			if target != nil {
				return coffer.Errorf(coffer.EINVALID, "two devices are named %q: revoke one by its id", name)
			}
			target = d
		}
	}
	if target == nil {
		return coffer.Errorf(coffer.ENOTFOUND, "the account has no device %q", name)
	}
	if target.ID == a.dev.id {
		return coffer.Errorf(coffer.EINVALID, "a device cannot revoke itself: revoke it from another device, or rotate the user key")
	}
	return c.rotate(ctx, coffer.LinkRevokeDevice, target.ID)
}

// RotateUserKey gives the account a new user key without removing a device:
// after a device's keys may have leaked and it was cleaned, or on a
// schedule. Groups are updated as after a revocation.
func (c *Client) RotateUserKey(ctx context.Context) error {
	return c.rotate(ctx, coffer.LinkRotateUserKey, coffer.DeviceID{})
}

// RotateRecoveryKey replaces the recovery key, and returns the new one to
// show once. The old recovery words stop working.
func (c *Client) RotateRecoveryKey(ctx context.Context) (*coffer.RecoveryKey, error) {
	a, err := c.syncAccount(ctx)
	if err != nil {
		return nil, err
	}
	return c.setRecovery(ctx, a)
}

func (c *Client) setRecovery(ctx context.Context, a *accountSelf) (*coffer.RecoveryKey, error) {
	rk := coffer.NewRecoveryKey()
	c.observeSecret("recovery-key", rk[:])
	l := a.nextLink(coffer.LinkSetRecovery)
	l.RecoveryCommitment = rk.Commitment(a.state.Account)
	l.RecoveryEncryptionKey = rk.EncryptionKey().PublicKey().Bytes()
	gen, uk := a.keys.newest()
	w, err := userkey.Seal(l.RecoveryEncryptionKey, a.state.Account, gen, userkey.RecoveryRecipient, uk)
	if err != nil {
		return nil, err
	}
	l.RecoveryWrap = w
	sl := coffer.SignLink(l, a.dev.sign, nil)
	next, err := coffer.VerifyAccountChain(a.state, []coffer.SignedLink{sl})
	if err != nil {
		return nil, fmt.Errorf("clientlib: the link this device made does not verify: %w", err)
	}
	if err := c.appendLink(ctx, next.Account, sl, nil); err != nil {
		return nil, err
	}
	return rk, c.saveAccount(&accountSelf{dev: a.dev, state: next, keys: a.keys})
}

// fetchChain fetches and verifies a whole account chain by handle, as a
// device with no state of the account does (linking, recovering). The
// genesis must name this deployment and handle.
func (c *Client) fetchChain(ctx context.Context, h coffer.Handle) (*coffer.AccountState, []coffer.SignedLink, error) {
	account, links, err := c.fetchLinks(ctx, "/v1/handles/"+url.PathEscape(string(h))+"/links", 0)
	if err != nil {
		return nil, nil, err
	}
	s, err := coffer.VerifyAccountChain(&coffer.AccountState{Account: account, Origin: c.origin, Handle: h}, links)
	if err != nil {
		return nil, nil, coffer.Security("account-chain", err)
	}
	return s, links, nil
}

// Recover adds this device to the account of handle with the recovery
// key's words, with nothing else: the server never sees the key. It then
// replaces the recovery key, and returns the new one to show once.
func (c *Client) Recover(ctx context.Context, handle, words, deviceName string) (*coffer.RecoveryKey, error) {
	h, err := coffer.ParseHandle(handle)
	if err != nil {
		return nil, err
	}
	rk, err := coffer.ParseRecoveryWords(words)
	if err != nil {
		return nil, err
	}
	if c.holdsAccount() {
		return nil, errHoldsAccount()
	}
	state, links, err := c.fetchChain(ctx, h)
	if err != nil {
		return nil, err
	}
	commitment := rk.Commitment(state.Account)
	if subtle.ConstantTimeCompare(commitment[:], state.RecoveryCommitment[:]) != 1 {
		return nil, coffer.Errorf(coffer.EINVALID, "these recovery words are not %s's current recovery key (or the server shows another account)", h)
	}
	wl, err := coffer.ParseAccountLink(links[state.RecoveryWrapSeq-1].Body)
	if err != nil {
		return nil, err
	}
	uk, err := userkey.Open(rk.EncryptionKey(), state.Account, state.UserKeyGeneration, userkey.RecoveryRecipient, wl.RecoveryWrap, state.UserKey)
	if err != nil {
		return nil, err
	}
	c.observeUserKey(uk)
	keys := userKeyring{state.UserKeyGeneration: uk}
	if err := walkBack(state.Account, links, keys); err != nil {
		return nil, err
	}
	dev, err := newDevice(deviceName)
	if err != nil {
		return nil, err
	}
	c.observeSecret("device-seed", dev.seed)
	w, err := userkey.Seal(dev.dec.PublicKey().Bytes(), state.Account, state.UserKeyGeneration, userkey.Recipient{Device: dev.id}, uk)
	if err != nil {
		return nil, err
	}
	l := &coffer.AccountLink{Account: state.Account, Seq: state.Seq + 1, Prev: state.Head, Time: time.Now().UnixMilli(),
		Kind: coffer.LinkAddDevice, AuthorKind: coffer.AuthorRecovery, AuthorRecoveryKey: rk.SigningKey().Public(),
		Device: dev.keys(), DeviceWraps: []coffer.DeviceWrap{{Device: dev.id, Wrap: w}}}
	sl := coffer.SignLink(l, rk.SigningKey(), dev.sign)
	next, err := coffer.VerifyAccountChain(state, []coffer.SignedLink{sl})
	if err != nil {
		return nil, fmt.Errorf("clientlib: the link this device made does not verify: %w", err)
	}
	a := &accountSelf{dev: dev, state: next, keys: keys}
	if err := c.ks.Put(ksDevice, dev.marshal()); err != nil {
		return nil, err
	}
	if err := c.appendLink(ctx, next.Account, sl, nil); err != nil {
		return nil, err
	}
	if err := c.saveAccount(a); err != nil {
		return nil, err
	}
	if err := c.Login(ctx); err != nil {
		return nil, err
	}
	newKey, err := c.setRecovery(ctx, a)
	if err != nil {
		return nil, err
	}
	// Not fatal: the new recovery key must reach the user. The outcome is
	// kept for DeviceStateLoaded.
	_ = c.adoptDeviceState(ctx)
	return newKey, nil
}

// updateKeysInGroups brings this account's entry up to its current user
// key in every group it is in: after a rotation, each group still lists
// the old keys, which a revoked device holds, until this account's
// self-update (an update-key of its own entry with a rotation, signed with
// the old key) lands there. Groups already current are skipped, so a run
// that stopped halfway is finished by running it again.
func (c *Client) updateKeysInGroups(ctx context.Context) error {
	ids, err := c.groupIDs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range ids {
		if err := c.UpdateOwnKeys(ctx, g); err != nil {
			errs = append(errs, inGroup(err, g, coffer.ResourceID{}))
		}
	}
	return errors.Join(errs...)
}

// revokedDevice returns ErrDeviceRevoked when this device's account chain
// says another device revoked it, and nil otherwise (a suite v1 identity,
// a device still current, or a chain that cannot be read now).
func (c *Client) revokedDevice(ctx context.Context) error {
	if !c.IsAccountV2() {
		return nil
	}
	if _, err := c.syncAccount(ctx); errors.Is(err, ErrDeviceRevoked) {
		return err
	}
	return nil
}

// refreshOwnAccount syncs this device's account chain before a log-in, so
// that a rotation made by another device gives this one the new user key
// (through its wrap) before it signs. A suite v1 identity, or a device in
// the middle of joining an account, has nothing to sync.
func (c *Client) refreshOwnAccount(ctx context.Context) error {
	if !c.IsAccountV2() || c.AccountID().IsZero() {
		return nil
	}
	_, err := c.syncAccount(ctx)
	return err
}

// holdsAccount reports whether this client's key store already holds an
// identity or an account, which a new account, link or recovery would
// overwrite.
func (c *Client) holdsAccount() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id != nil || c.acct != nil
}

func errHoldsAccount() error {
	return coffer.Errorf(coffer.EINVALID, "this key store already holds an account: use a new profile")
}
