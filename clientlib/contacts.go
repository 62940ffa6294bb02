package clientlib

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
)

// ContactState says how far a contact's keys are trusted.
type ContactState uint8

const (
	// Unverified keys were seen (from the server) but never compared out of
	// band. Wrapping a group key for them is refused unless the app opted
	// into trust on first use.
	Unverified ContactState = 1
	// Verified keys were compared out of band (safety number or QR code).
	Verified ContactState = 2
	// Changed keys differ from the verified ones. Wrapping is blocked until
	// the user verifies the new keys.
	Changed ContactState = 3
)

func (s ContactState) String() string {
	switch s {
	case Unverified:
		return "unverified"
	case Verified:
		return "verified"
	case Changed:
		return "changed"
	}
	return "unknown"
}

// Contact is another account as this device knows it.
type Contact struct {
	Handle    coffer.Handle
	AccountID coffer.AccountID
	// Seen is the identity most recently received from the server.
	Seen coffer.PublicIdentity
	// VerifiedIdentity is the identity the user verified, if any. For a
	// suite v2 account it follows the verified chain: the identity of the
	// chain's current user key, as long as the chain continues the
	// account the user verified.
	VerifiedIdentity *coffer.PublicIdentity
	State            ContactState
	// Chain is a suite v2 account's chain as last verified; nil for v1.
	Chain *coffer.AccountState
	// VerifiedGenesis is, for a verified suite v2 account, the hash of the
	// genesis the user verified: the account is pinned by its id and
	// genesis, not by keys, which rotate.
	VerifiedGenesis [32]byte
}

// SafetyNumber is the safety number of the keys last seen; for a suite v2
// account, the account's, which devices and rotations never change.
func (c *Contact) SafetyNumber() string {
	if c.Chain != nil {
		return c.Chain.SafetyNumber()
	}
	return coffer.FingerprintOf(c.Seen).SafetyNumber()
}

func contactKey(h coffer.Handle) string { return "contacts/" + string(h) }

// contactIndexKey lists known handles. It sits outside "contacts/" so that
// no handle (such as "index") can collide with it.
const contactIndexKey = "contact-index"

func (c *Contact) marshal() []byte {
	var b cryptobyte.Builder
	if c.Chain != nil {
		b.AddUint8(2)
	} else {
		b.AddUint8(1)
	}
	b.AddUint8(uint8(c.State))
	b.AddBytes(c.AccountID[:])
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Seen.Marshal()) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		if c.VerifiedIdentity != nil {
			b.AddBytes(c.VerifiedIdentity.Marshal())
		}
	})
	if c.Chain != nil {
		cp, err := c.Chain.MarshalBinary()
		if err != nil {
			panic("clientlib: a contact's chain is not verified: " + err.Error())
		}
		b.AddBytes(c.VerifiedGenesis[:])
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cp) })
	}
	return b.BytesOrPanic()
}

func parseContact(data []byte) (*Contact, error) {
	s := cryptobyte.String(data)
	var (
		v, state       uint8
		id             []byte
		seen, verified cryptobyte.String
	)
	if !s.ReadUint8(&v) || (v != 1 && v != 2) || !s.ReadUint8(&state) || !s.ReadBytes(&id, 16) ||
		!s.ReadUint16LengthPrefixed(&seen) || !s.ReadUint16LengthPrefixed(&verified) {
		return nil, errors.New("clientlib: stored contact is corrupt")
	}
	c := &Contact{State: ContactState(state)}
	if v == 2 {
		var cp cryptobyte.String
		if !s.CopyBytes(c.VerifiedGenesis[:]) || !s.ReadUint24LengthPrefixed(&cp) {
			return nil, errors.New("clientlib: stored contact is corrupt")
		}
		c.Chain = new(coffer.AccountState)
		if err := c.Chain.UnmarshalBinary(cp); err != nil {
			return nil, fmt.Errorf("clientlib: stored contact's chain: %w", err)
		}
	}
	if !s.Empty() {
		return nil, errors.New("clientlib: stored contact is corrupt")
	}
	copy(c.AccountID[:], id)
	var err error
	if c.Seen, err = coffer.ParseStoredPublicIdentity(seen); err != nil {
		return nil, err
	}
	c.Handle = c.Seen.Handle
	if len(verified) > 0 {
		vi, err := coffer.ParseStoredPublicIdentity(verified)
		if err != nil {
			return nil, err
		}
		c.VerifiedIdentity = &vi
	}
	return c, nil
}

func (c *Client) loadContact(h coffer.Handle) (*Contact, error) {
	b, err := c.ks.Get(contactKey(h))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseContact(b)
}

// observe records keys received from the server for an account and returns
// the contact with its resulting state.
func (c *Client) observe(a *Account) (*Contact, error) {
	ct, err := c.loadContact(a.Identity.Handle)
	if err != nil {
		return nil, err
	}
	if ct == nil {
		ct = &Contact{Handle: a.Identity.Handle, AccountID: a.ID, State: Unverified}
	}
	ct.Seen = a.Identity
	if a.Chain != nil {
		ct.Chain = a.Chain
		switch {
		case ct.VerifiedGenesis == ([32]byte{}) && ct.VerifiedIdentity == nil:
			ct.AccountID = a.ID
			ct.State = Unverified
		case ct.AccountID == a.ID && ct.VerifiedGenesis == a.Chain.Genesis:
			// The chain was verified link by link from the state this
			// device held: the keys it names now are the account's.
			vi := a.Identity
			ct.VerifiedIdentity, ct.State = &vi, Verified
		default:
			ct.State = Changed
		}
		return ct, c.putContact(ct)
	}
	switch {
	case ct.VerifiedIdentity == nil:
		ct.AccountID = a.ID
		ct.State = Unverified
	case ct.VerifiedIdentity.Equal(a.Identity) && ct.AccountID == a.ID:
		ct.State = Verified
	default:
		// The verified account id is kept: only a new verification moves
		// trust to another account.
		ct.State = Changed
	}
	return ct, c.putContact(ct)
}

// Verify marks the keys the server currently shows for handle as verified,
// after checking code (a safety number, with or without spaces, or a
// scanned QR payload) against them. The user must have received code from
// the contact through a channel the server does not control.
func (c *Client) Verify(ctx context.Context, handle, code string) (*Contact, error) {
	a, err := c.Lookup(ctx, handle)
	if err != nil {
		return nil, err
	}
	if a.Chain != nil && !a.Chain.MatchVerificationCode(code) || a.Chain == nil && !coffer.MatchVerificationCode(a.Identity, code) {
		return nil, coffer.Errorf(coffer.EINVALID,
			"the safety number for %s does not match the keys the server holds: check it with %s again; if it still differs, the server may be substituting keys", handle, handle)
	}
	ct, err := c.observe(a)
	if err != nil {
		return nil, err
	}
	vi := a.Identity
	ct.VerifiedIdentity, ct.State, ct.AccountID = &vi, Verified, a.ID
	if a.Chain != nil {
		ct.VerifiedGenesis = a.Chain.Genesis
	}
	if err := c.putContact(ct); err != nil {
		return nil, err
	}
	if err := c.indexContact(ct.Handle); err != nil {
		return nil, err
	}
	// The account's other devices, and the next one linked, learn it.
	return ct, c.shareVerified(ctx)
}

// Contact returns the stored contact for handle, or ENOTFOUND.
func (c *Client) Contact(handle string) (*Contact, error) {
	h, err := coffer.ParseHandle(handle)
	if err != nil {
		return nil, err
	}
	ct, err := c.loadContact(h)
	if err != nil {
		return nil, err
	}
	if ct == nil {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "no contact %q", handle)
	}
	return ct, nil
}

// Contacts lists every known contact, sorted by handle. The list lives in
// the key store under contactIndexKey.
func (c *Client) Contacts() ([]*Contact, error) {
	return c.readContacts(func(_ coffer.Handle, ct *Contact) *Contact { return ct })
}

func (c *Client) indexContact(h coffer.Handle) error {
	c.ksMu.Lock()
	defer c.ksMu.Unlock()
	b, err := c.ks.Get(contactIndexKey)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	// Called once per handle a group add trusts: splitting the whole index
	// each time made adding 100,000 members quadratic in allocations.
	if hasField(b, string(h)) {
		return nil
	}
	if err := c.ks.Put(contactIndexKey, []byte(strings.TrimSpace(string(b)+" "+string(h)))); err != nil {
		return err
	}
	return c.changeContactStamp()
}

// trustedAccount returns an account whose keys may receive a wrap: verified
// by the user, or (with TrustOnFirstUse) pinned on first sight. A key that
// differs from the verified one is a security error, since in suite v1 an
// account's keys never change: a different key means substitution.
func (c *Client) trustedAccount(ctx context.Context, handle string) (*Account, error) {
	a, err := c.Lookup(ctx, handle)
	if err != nil {
		return nil, err
	}
	ct, err := c.observe(a)
	if err != nil {
		return nil, err
	}
	if err := c.indexContact(ct.Handle); err != nil {
		return nil, err
	}
	switch ct.State {
	case Verified:
		return a, nil
	case Changed:
		return nil, coffer.Security("contact-key", &coffer.Error{Code: coffer.EKEYCHANGED, Message: fmt.Sprintf(
			"the keys the server shows for %s differ from the keys you verified: do not trust them; compare safety numbers with %s again", handle, handle)})
	}
	if c.opts.TrustOnFirstUse {
		vi := a.Identity
		ct.VerifiedIdentity, ct.State, ct.AccountID = &vi, Verified, a.ID
		if a.Chain != nil {
			ct.VerifiedGenesis = a.Chain.Genesis
		}
		return a, c.putContact(ct)
	}
	return nil, &coffer.Error{Code: coffer.EUNVERIFIED, Message: fmt.Sprintf(
		"%s's keys are not verified: compare safety numbers with %s, then verify the contact", handle, handle)}
}

// hasField reports whether the space-separated list b holds the word w.
func hasField(b []byte, w string) bool {
	if w == "" {
		return false
	}
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(w))
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		if (start == 0 || isSpace(b[start-1])) && (end == len(b) || isSpace(b[end])) {
			return true
		}
		i = start + 1
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
