package clientlib

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Device state: what the devices of a suite v2 account verified, shared
// through the server under a key only they hold, so that a device that is
// linked or recovered starts from it instead of trusting on first use.
//
// The state is the pins of verified contacts (handle, account id, genesis
// hash), the pinned log key, the witness keys and quorum, and the highest
// verified head of each group. It is encrypted with AES-256-GCM under
// HKDF-SHA256(user key seed, info LabelDeviceState); the additional data
// binds the account, the user key generation and the blob's version, so
// the server can neither move a blob to another account nor present an
// old blob as the current version. A device remembers the highest version
// it read and refuses an older one.
//
// Writes: SaveDeviceState, which Verify and the end of a rotation call (a
// failure there is returned, the verification or rotation stands); an app
// calls it after syncs to share new group heads. A write merges what the
// stored blob holds with this device's state and replaces it by
// compare-and-swap on the version. Reads: LoadDeviceState, which the end of
// a device link and of Recover call.

// LabelDeviceState names the device state key and its additional data.
const LabelDeviceState = "coffer/v2/device-state"

const (
	deviceStateFormat = 1
	ksStateSeen       = "device-state/version"
	ksStateWitnesses  = "device-state/witnesses"
	// deviceStateRetries bounds the compare-and-swap loop of a write.
	deviceStateRetries = 4
	maxStateWitnesses  = 64
)

func floorKey(g coffer.GroupID) string { return "group/" + g.String() + "/floor" }

// ContactPin is a verified suite v2 contact as the device state carries it:
// the account and the genesis the user verified.
type ContactPin struct {
	Handle  coffer.Handle
	Account coffer.AccountID
	Genesis [32]byte
}

// GroupFloor is the highest head of a group a device of the account
// verified: no device accepts an older one.
type GroupFloor struct {
	Group coffer.GroupID
	Seq   uint64
	Head  [32]byte
}

// deviceState is the plaintext of the blob.
type deviceState struct {
	Account   coffer.AccountID
	LogKey    string
	Witnesses []string
	Quorum    int
	Contacts  []ContactPin // sorted by handle, unique
	Groups    []GroupFloor // sorted by group id, unique
}

func (s *deviceState) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(deviceStateFormat)
	b.AddBytes(s.Account[:])
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.LogKey)) })
	b.AddUint8(uint8(s.Quorum))
	b.AddUint8(uint8(len(s.Witnesses)))
	for _, w := range s.Witnesses {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(w)) })
	}
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, c := range s.Contacts {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Handle)) })
			b.AddBytes(c.Account[:])
			b.AddBytes(c.Genesis[:])
		}
	})
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, g := range s.Groups {
			b.AddBytes(g.Group[:])
			b.AddUint64(g.Seq)
			b.AddBytes(g.Head[:])
		}
	})
	return b.Bytes()
}

// parseDeviceState is the strict inverse of marshal: one encoding per
// state (sorted, unique, no trailing bytes), every field checked.
func parseDeviceState(data []byte) (*deviceState, error) {
	bad := func(what string) error { return fmt.Errorf("device state: %s", what) }
	in := cryptobyte.String(data)
	var (
		format, quorum, nw uint8
		logKey             []byte
		contacts, groups   cryptobyte.String
		s                  deviceState
	)
	if !in.ReadUint8(&format) || format != deviceStateFormat {
		return nil, bad("unknown format")
	}
	if !in.CopyBytes(s.Account[:]) || !in.ReadUint16LengthPrefixed((*cryptobyte.String)(&logKey)) ||
		!in.ReadUint8(&quorum) || !in.ReadUint8(&nw) {
		return nil, bad("truncated header")
	}
	if s.Account.IsZero() {
		return nil, bad("no account")
	}
	s.LogKey = string(logKey)
	if nw > maxStateWitnesses || int(quorum) > int(nw) {
		return nil, bad("witness count or quorum out of range")
	}
	s.Quorum = int(quorum)
	for range nw {
		var w []byte
		if !in.ReadUint16LengthPrefixed((*cryptobyte.String)(&w)) || len(w) == 0 {
			return nil, bad("truncated witness")
		}
		s.Witnesses = append(s.Witnesses, string(w))
	}
	if !in.ReadUint24LengthPrefixed(&contacts) || !in.ReadUint24LengthPrefixed(&groups) || !in.Empty() {
		return nil, bad("truncated or trailing data")
	}
	for !contacts.Empty() {
		var (
			h []byte
			p ContactPin
		)
		if !contacts.ReadUint8LengthPrefixed((*cryptobyte.String)(&h)) || !contacts.CopyBytes(p.Account[:]) || !contacts.CopyBytes(p.Genesis[:]) {
			return nil, bad("truncated contact")
		}
		hd, err := coffer.ParseHandle(string(h))
		if err != nil {
			return nil, bad("contact handle: " + err.Error())
		}
		p.Handle = hd
		if p.Account.IsZero() || p.Genesis == ([32]byte{}) {
			return nil, bad("contact without account or genesis")
		}
		if n := len(s.Contacts); n > 0 && s.Contacts[n-1].Handle >= p.Handle {
			return nil, bad("contacts not sorted and unique")
		}
		s.Contacts = append(s.Contacts, p)
	}
	for !groups.Empty() {
		var f GroupFloor
		if !groups.CopyBytes(f.Group[:]) || !groups.ReadUint64(&f.Seq) || !groups.CopyBytes(f.Head[:]) {
			return nil, bad("truncated group")
		}
		if f.Group == (coffer.GroupID{}) || f.Seq == 0 || f.Seq > 1<<62 {
			return nil, bad("group without id or seq")
		}
		if n := len(s.Groups); n > 0 && bytes.Compare(s.Groups[n-1].Group[:], f.Group[:]) >= 0 {
			return nil, bad("groups not sorted and unique")
		}
		s.Groups = append(s.Groups, f)
	}
	return &s, nil
}

// stateKey derives the device state key from a user key seed.
func deviceStateKey(seed []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, seed, nil, LabelDeviceState, 32)
}

func deviceStateAD(account coffer.AccountID, gen, version uint64) []byte {
	body := make([]byte, 0, 32)
	body = append(body, account[:]...)
	body = binary.BigEndian.AppendUint64(body, gen)
	body = binary.BigEndian.AppendUint64(body, version)
	return coffer.SignedMessage(LabelDeviceState, body)
}

// sealStateBlob encrypts plain as version of account's state under the
// user key seed of generation gen: generation (8 bytes), nonce (12),
// AES-256-GCM ciphertext.
func sealStateBlob(seed []byte, gen uint64, account coffer.AccountID, version uint64, nonce, plain []byte) ([]byte, error) {
	aead, err := stateAEAD(seed)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint64(nil, gen)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, deviceStateAD(account, gen, version)), nil
}

func stateAEAD(seed []byte) (cipher.AEAD, error) {
	key, err := deviceStateKey(seed)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Refusals of openStateBlob, which the vectors name.
var (
	errStateShort        = errors.New("too short to be a device state")
	errStateGeneration   = errors.New("names a user key generation this account never had")
	errStateDecrypt      = errors.New("does not decrypt under this account's key: it is another account's, another version's, or corrupt")
	errStateOtherAccount = errors.New("names another account")
)

// openStateBlob decrypts and parses the blob ct, stored as version of
// account's state; seedOf returns the user key seed of a generation.
func openStateBlob(seedOf func(gen uint64) ([]byte, bool), account coffer.AccountID, version uint64, ct []byte) (*deviceState, error) {
	if len(ct) < 8+12+16 {
		return nil, errStateShort
	}
	gen := binary.BigEndian.Uint64(ct)
	seed, ok := seedOf(gen)
	if !ok {
		return nil, errStateGeneration
	}
	aead, err := stateAEAD(seed)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, ct[8:20], ct[20:], deviceStateAD(account, gen, version))
	if err != nil {
		return nil, errStateDecrypt
	}
	s, err := parseDeviceState(plain)
	if err != nil {
		return nil, err
	}
	if s.Account != account {
		return nil, errStateOtherAccount
	}
	return s, nil
}

// seedOf returns a's user key seeds by generation, each observed as a
// secret with the state key derived from it.
func (c *Client) seedOf(a *accountSelf) func(uint64) ([]byte, bool) {
	return func(gen uint64) ([]byte, bool) {
		uk, ok := a.keys[gen]
		if !ok {
			return nil, false
		}
		seed, err := uk.Bytes()
		if err != nil {
			return nil, false
		}
		if key, err := deviceStateKey(seed); err == nil {
			c.observeSecret("device-state-key", key)
		}
		return seed, true
	}
}

// sealDeviceState encrypts plain as version of a's state under a's newest
// user key, with a random nonce.
func (c *Client) sealDeviceState(a *accountSelf, version uint64, plain []byte) ([]byte, error) {
	gen, _ := a.keys.newest()
	seed, _ := c.seedOf(a)(gen)
	if seed == nil {
		return nil, errors.New("clientlib: the newest user key has no seed")
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return sealStateBlob(seed, gen, a.state.Account, version, nonce, plain)
}

func stateSecurity(format string, args ...any) error {
	return coffer.Security("device-state", fmt.Errorf(format, args...))
}

// openDeviceState decrypts and parses the blob st of a's account: any
// failure is a security error, since only a device of the account writes
// it.
func (c *Client) openDeviceState(a *accountSelf, st *api.DeviceState) (*deviceState, error) {
	s, err := openStateBlob(c.seedOf(a), a.state.Account, st.Version, st.Ciphertext)
	if err != nil {
		return nil, stateSecurity("the server's device state (version %d) %v", st.Version, err)
	}
	return s, nil
}

// fetchDeviceState reads the account's blob; nil state for version 0. A
// version below the highest this device read before is a rollback.
func (c *Client) fetchDeviceState(ctx context.Context, a *accountSelf) (*api.DeviceState, *deviceState, error) {
	var st api.DeviceState
	if err := c.call(ctx, http.MethodGet, "/v1/account-state", true, nil, &st); err != nil {
		return nil, nil, err
	}
	seen, err := c.seenStateVersion()
	if err != nil {
		return nil, nil, err
	}
	if st.Version < seen {
		return nil, nil, stateSecurity("the server shows device state version %d, but this device read version %d: the server rolled it back", st.Version, seen)
	}
	if st.Version == 0 {
		if len(st.Ciphertext) != 0 {
			return nil, nil, stateSecurity("the server's device state has content but version 0")
		}
		return &st, nil, nil
	}
	s, err := c.openDeviceState(a, &st)
	if err != nil {
		return nil, nil, err
	}
	return &st, s, nil
}

func (c *Client) seenStateVersion() (uint64, error) {
	b, err := c.ks.Get(ksStateSeen)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("clientlib: stored device state version is corrupt: %w", err)
	}
	return v, nil
}

func (c *Client) noteStateVersion(v uint64) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	seen, err := c.seenStateVersion()
	if err != nil || v <= seen {
		return err
	}
	return c.ks.Put(ksStateSeen, []byte(strconv.FormatUint(v, 10)))
}

// localFloor returns the lowest head of g this device accepts beyond its
// own verified state: one another device of the account verified.
func (c *Client) localFloor(g coffer.GroupID) (*GroupFloor, error) {
	b, err := c.ks.Get(floorKey(g))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(b)
	f := &GroupFloor{Group: g}
	if !s.ReadUint64(&f.Seq) || !s.CopyBytes(f.Head[:]) || !s.Empty() {
		return nil, errors.New("clientlib: stored group floor is corrupt")
	}
	return f, nil
}

// raiseFloor stores f unless this device already verified or holds a
// floor at least as high. The same seq with another head is a fork.
func (c *Client) raiseFloor(f GroupFloor) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	local, err := c.localState(f.Group)
	if err != nil {
		return err
	}
	if local != nil && local.Seq >= f.Seq {
		if local.Seq == f.Seq && local.Head != f.Head {
			return coffer.Security("fork", fmt.Errorf("group %s: another device of this account verified commit %d with another hash", f.Group, f.Seq))
		}
		return nil
	}
	old, err := c.localFloor(f.Group)
	if err != nil {
		return err
	}
	if old != nil && old.Seq >= f.Seq {
		if old.Seq == f.Seq && old.Head != f.Head {
			return coffer.Security("fork", fmt.Errorf("group %s: devices of this account verified different commits at %d", f.Group, f.Seq))
		}
		return nil
	}
	var b cryptobyte.Builder
	b.AddUint64(f.Seq)
	b.AddBytes(f.Head[:])
	return c.ks.Put(floorKey(f.Group), b.BytesOrPanic())
}

// checkFloor refuses a server head below the floor of g, when this device
// has not verified g itself yet (its own state is checked by syncOnce).
func (c *Client) checkFloor(g coffer.GroupID, local *coffer.GroupState, serverHead uint64) (*GroupFloor, error) {
	if local != nil {
		return nil, nil
	}
	f, err := c.localFloor(g)
	if err != nil || f == nil {
		return nil, err
	}
	if serverHead < f.Seq {
		return nil, coffer.Security("rollback", fmt.Errorf("group %s: the server shows head seq %d, but a device of this account verified up to seq %d: "+
			"the server rolled the group back or is hiding commits", g, serverHead, f.Seq))
	}
	return f, nil
}

// checkFloorPage checks the commit at the floor's seq, when commits (from
// seq first) hold it, against the head the other device verified.
func checkFloorPage(f *GroupFloor, first uint64, commits []coffer.SignedCommit) error {
	if f == nil || f.Seq < first || f.Seq >= first+uint64(len(commits)) {
		return nil
	}
	if commits[f.Seq-first].Hash() != f.Head {
		return coffer.Security("fork", fmt.Errorf("group %s: commit %d is not the one another device of this account verified", f.Group, f.Seq))
	}
	return nil
}

// localDeviceState collects what this device verified: groups are those
// the server lists and those prev (the stored state) names.
func (c *Client) localDeviceState(ctx context.Context, a *accountSelf, prev *deviceState) (*deviceState, error) {
	s := &deviceState{Account: a.state.Account, Witnesses: slices.Clone(c.opts.Witnesses), Quorum: c.opts.Quorum}
	if len(s.Witnesses) > 0 && s.Quorum == 0 {
		s.Quorum = len(s.Witnesses)
	}
	if b, err := c.ks.Get(ksLogKey); err == nil {
		s.LogKey = string(b)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	contacts, err := c.Contacts()
	if err != nil {
		return nil, err
	}
	for _, ct := range contacts {
		if ct.VerifiedGenesis != ([32]byte{}) {
			s.Contacts = append(s.Contacts, ContactPin{Handle: ct.Handle, Account: ct.AccountID, Genesis: ct.VerifiedGenesis})
		}
	}
	ids, err := c.groupIDs(ctx)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		for _, f := range prev.Groups {
			ids = append(ids, f.Group)
		}
	}
	for _, g := range ids {
		var f *GroupFloor
		if st, err := c.localState(g); err != nil {
			return nil, err
		} else if st != nil {
			f = &GroupFloor{Group: g, Seq: st.Seq, Head: st.Head}
		}
		if fl, err := c.localFloor(g); err != nil {
			return nil, err
		} else if fl != nil && (f == nil || fl.Seq > f.Seq) {
			f = fl
		}
		if f != nil {
			s.Groups = append(s.Groups, *f)
		}
	}
	return s, nil
}

// mergeDeviceState is local with what prev holds and local lacks: this
// device's pins and keys win, and each group keeps its highest head.
func mergeDeviceState(local, prev *deviceState) *deviceState {
	out := *local
	if prev != nil {
		if out.LogKey == "" {
			out.LogKey = prev.LogKey
		}
		if len(out.Witnesses) == 0 {
			out.Witnesses, out.Quorum = prev.Witnesses, prev.Quorum
		}
		for _, p := range prev.Contacts {
			if !slices.ContainsFunc(out.Contacts, func(q ContactPin) bool { return q.Handle == p.Handle }) {
				out.Contacts = append(out.Contacts, p)
			}
		}
		out.Groups = append(slices.Clone(out.Groups), prev.Groups...)
	}
	slices.SortFunc(out.Contacts, func(a, b ContactPin) int { return strings.Compare(string(a.Handle), string(b.Handle)) })
	// Highest seq first within a group, then keep the first of each.
	slices.SortFunc(out.Groups, func(a, b GroupFloor) int {
		if c := bytes.Compare(a.Group[:], b.Group[:]); c != 0 {
			return c
		}
		return -cmpUint(a.Seq, b.Seq)
	})
	out.Groups = slices.CompactFunc(out.Groups, func(a, b GroupFloor) bool { return a.Group == b.Group })
	return &out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SaveDeviceState shares what this device verified with the account's
// other devices: it merges this device's contact pins, log and witness
// keys and group heads with the stored device state, encrypts the result
// under the current user key and stores it. A stored state that does not
// decrypt is a security error and is not overwritten.
func (c *Client) SaveDeviceState(ctx context.Context) error {
	a, err := c.account2()
	if err != nil {
		return err
	}
	for range deviceStateRetries {
		st, prev, err := c.fetchDeviceState(ctx, a)
		if err != nil {
			return err
		}
		local, err := c.localDeviceState(ctx, a, prev)
		if err != nil {
			return err
		}
		plain, err := mergeDeviceState(local, prev).marshal()
		if err != nil {
			return err
		}
		version := st.Version + 1
		ct, err := c.sealDeviceState(a, version, plain)
		if err != nil {
			return err
		}
		if len(ct) > coffer.MaxDeviceStateSize {
			return coffer.Errorf(coffer.ETOOLARGE, "the device state is %d bytes, over the server's limit of %d", len(ct), coffer.MaxDeviceStateSize)
		}
		var out api.DeviceState
		err = c.call(ctx, http.MethodPut, "/v1/account-state", true, api.DeviceState{Version: version, Ciphertext: ct}, &out)
		if coffer.ErrorCode(err) == coffer.ECONFLICT {
			continue // another device wrote: merge with its state
		}
		if err != nil {
			return err
		}
		return c.noteStateVersion(version)
	}
	return coffer.Errorf(coffer.ECONFLICT, "the device state kept changing under this device: try again")
}

// DeviceStateReport says what LoadDeviceState adopted.
type DeviceStateReport struct {
	// Found is false when the server has no device state for the account:
	// this device then starts with nothing verified, and contacts must be
	// verified again (or the server withheld it: it cannot be told apart).
	Found   bool
	Version uint64
	// Verified are the contacts imported as verified, after their chains
	// were verified from the pinned genesis.
	Verified []coffer.Handle
	// Changed are pinned contacts whose chain, as the server shows it, does
	// not continue the pinned account: they are stored as changed.
	Changed []coffer.Handle
	// Groups is how many group heads became this device's floors.
	Groups int
	// Witnesses and Quorum are the witness configuration the account's
	// devices use; a client built without Options.Witnesses uses them
	// from its next New on.
	Witnesses []string
	Quorum    int
}

// LoadDeviceState adopts the device state the account's other devices
// stored: the log key (which must be the one this device pinned, if it
// pinned one), group heads as the lowest this device accepts, witness
// keys, and contacts, each imported as verified only after its chain is
// verified from the pinned genesis. A state that does not decrypt or
// parse, another account's, or older than one this device read, is a
// security error and nothing is imported. A pinned contact whose chain
// does not continue is stored as changed, and the error names it.
func (c *Client) LoadDeviceState(ctx context.Context) (*DeviceStateReport, error) {
	a, err := c.account2()
	if err != nil {
		return nil, err
	}
	st, s, err := c.fetchDeviceState(ctx, a)
	if err != nil {
		return nil, err
	}
	rep := &DeviceStateReport{Version: st.Version}
	if s == nil {
		return rep, nil
	}
	rep.Found, rep.Witnesses, rep.Quorum = true, s.Witnesses, s.Quorum
	// The log key first: a state naming another log than the one this
	// device pinned is refused whole.
	if s.LogKey != "" {
		if b, err := c.ks.Get(ksLogKey); err == nil {
			if string(b) != s.LogKey {
				return nil, logSecurity("the account's other devices pinned log key %q, but this device pinned %q", s.LogKey, b)
			}
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		} else if c.opts.LogKey != "" && c.opts.LogKey != s.LogKey {
			return nil, logSecurity("the account's other devices pinned log key %q, but this device is configured with %q", s.LogKey, c.opts.LogKey)
		} else if err := c.ks.Put(ksLogKey, []byte(s.LogKey)); err != nil {
			return nil, err
		}
	}
	if len(s.Witnesses) > 0 {
		if err := c.ks.Put(ksStateWitnesses, marshalWitnesses(s.Witnesses, s.Quorum)); err != nil {
			return nil, err
		}
	}
	for _, f := range s.Groups {
		if err := c.raiseFloor(f); err != nil {
			return nil, err
		}
		rep.Groups++
	}
	var changed []string
	for _, p := range s.Contacts {
		ok, err := c.importContact(ctx, p)
		if err != nil {
			return nil, err
		}
		if ok {
			rep.Verified = append(rep.Verified, p.Handle)
		} else {
			rep.Changed = append(rep.Changed, p.Handle)
			changed = append(changed, string(p.Handle))
		}
	}
	if err := c.noteStateVersion(st.Version); err != nil {
		return nil, err
	}
	if len(changed) > 0 {
		return rep, coffer.Security("contact-key", &coffer.Error{Code: coffer.EKEYCHANGED, Message: fmt.Sprintf(
			"the account's other devices verified %s, but the server now shows accounts that do not continue the ones they verified: "+
				"compare safety numbers again", strings.Join(changed, ", "))})
	}
	return rep, nil
}

// importContact pins p on this device and checks the account the server
// shows against it, following its chain from the genesis. It reports
// whether the contact is verified. A contact this device pinned itself is
// kept as it is: a different pin there is reported as changed.
func (c *Client) importContact(ctx context.Context, p ContactPin) (bool, error) {
	ct, err := c.loadContact(p.Handle)
	if err != nil {
		return false, err
	}
	if ct != nil && ct.VerifiedGenesis != ([32]byte{}) {
		return ct.AccountID == p.Account && ct.VerifiedGenesis == p.Genesis && ct.State == Verified, nil
	}
	acct, err := c.Lookup(ctx, string(p.Handle))
	if err != nil && !coffer.IsSecurity(err) && coffer.ErrorCode(err) != coffer.ENOTFOUND {
		return false, err
	}
	if err != nil {
		// A chain that does not verify, or no account: not the pinned one.
		acct = nil
	}
	// Reload: Lookup may have stored what it saw.
	if ct, err = c.loadContact(p.Handle); err != nil {
		return false, err
	}
	if ct == nil {
		ct = &Contact{Handle: p.Handle, State: Unverified}
		if acct != nil {
			ct.Seen = acct.Identity
		}
	}
	ct.AccountID, ct.VerifiedGenesis, ct.VerifiedIdentity = p.Account, p.Genesis, nil
	if acct == nil || acct.Chain == nil {
		// Gone, or no longer a suite v2 account: not the one pinned.
		ct.State = Changed
		if ct.Seen.Handle == "" {
			// Nothing seen to store a contact with: the pin waits for the
			// account to be looked up.
			return false, nil
		}
	} else if acct.ID == p.Account && acct.Chain.Genesis == p.Genesis {
		vi := acct.Identity
		ct.Seen, ct.Chain, ct.VerifiedIdentity, ct.State = acct.Identity, acct.Chain, &vi, Verified
	} else {
		ct.Seen, ct.Chain, ct.State = acct.Identity, acct.Chain, Changed
	}
	if err := c.putContact(ct); err != nil {
		return false, err
	}
	return ct.State == Verified, c.indexContact(ct.Handle)
}

func marshalWitnesses(ws []string, quorum int) []byte {
	return []byte(strconv.Itoa(quorum) + "\n" + strings.Join(ws, "\n"))
}

// deviceStateLoad is the outcome of the load at the end of a device link
// or a recovery.
type deviceStateLoad struct {
	mu     sync.Mutex
	done   bool
	report *DeviceStateReport
	err    error
}

// adoptDeviceState runs LoadDeviceState and keeps its outcome.
func (c *Client) adoptDeviceState(ctx context.Context) error {
	rep, err := c.LoadDeviceState(ctx)
	c.stateLoad.mu.Lock()
	c.stateLoad.done, c.stateLoad.report, c.stateLoad.err = true, rep, err
	c.stateLoad.mu.Unlock()
	return err
}

// DeviceStateLoaded returns the outcome of the device state load that
// ended this client's device link or Recover (which does not fail on it,
// so that the new recovery key still reaches the user). An app must show
// an error, and a report with Found false (nothing to start from: the
// contacts must be verified again), to the user. ENOTFOUND before a link
// or recovery.
func (c *Client) DeviceStateLoaded() (*DeviceStateReport, error) {
	c.stateLoad.mu.Lock()
	defer c.stateLoad.mu.Unlock()
	if !c.stateLoad.done {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "this client has not linked or recovered a device")
	}
	return c.stateLoad.report, c.stateLoad.err
}

// shareVerified saves the device state after a verification, on a suite v2
// account.
func (c *Client) shareVerified(ctx context.Context) error {
	if !c.IsAccountV2() {
		return nil
	}
	return c.SaveDeviceState(ctx)
}

// storedWitnesses returns the witness configuration a device state load
// stored, if any.
func storedWitnesses(ks KeyStore) ([]string, int, error) {
	b, err := ks.Get(ksStateWitnesses)
	if errors.Is(err, ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	q, rest, _ := strings.Cut(string(b), "\n")
	quorum, err := strconv.Atoi(q)
	ws := strings.Split(rest, "\n")
	if err != nil || rest == "" || quorum < 0 || quorum > len(ws) {
		return nil, 0, errors.New("clientlib: stored witness configuration is corrupt")
	}
	return ws, quorum, nil
}
