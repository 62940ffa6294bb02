package coffer

import (
	"context"
	"time"
)

// The storage of suite v2 accounts: their chains of links and the pairings
// through which a new device asks to join one. The server verifies every
// link with VerifyAccountChain before it calls the store; the store keeps
// the links, the verifier's state after the head, and the account's
// current identity in step, atomically.

// AccountLinkAppend is a verified account link with what is stored
// atomically with it.
type AccountLinkAppend struct {
	Link   SignedLink
	Parsed *AccountLink
	// State is the verifier's state after the link.
	State *AccountState
	// Identity and SelfSignature are the account's identity after the link
	// (State.Identity()) and its self-signature, set on a genesis and on a
	// link that rotates the user key: the store makes them the account's.
	Identity      *PublicIdentity
	SelfSignature []byte
	Received      time.Time
}

// Pairing is a device that asks to be linked to the account of Handle,
// filed under the id its pairing code hashes to (PairingCode.ID), and the
// add-device link an existing device of the account approved it with, once
// it did. The MACs are the code's (PairingCode.RequestMAC, ApprovalMAC):
// the server stores and returns them and can check neither.
type Pairing struct {
	ID       string
	Handle   Handle
	Device   DeviceKeys
	MAC      []byte
	Created  time.Time
	Expires  time.Time
	Approval *SignedLink // author signature only; nil until approved
	// ApprovalMAC authenticates Approval.Body.
	ApprovalMAC []byte
}

// AccountChainService stores suite v2 account chains and pairings. The
// server calls it.
type AccountChainService interface {
	// CreateChainAccount stores the account a, whose ID is the chain's and
	// whose Identity is the genesis state's, with its genesis link g, in one
	// transaction, and logs it. ECONFLICT if the id or the handle is taken.
	CreateChainAccount(ctx context.Context, a *Account, g *AccountLinkAppend) error
	// AccountChain returns the verified state after the stored head of the
	// account's chain: ENOTFOUND for no account, the zero state (Seq 0) for
	// a suite v1 account.
	AccountChain(ctx context.Context, id AccountID) (*AccountState, error)
	// AppendAccountLink stores a.Link as link a.State.Seq of account
	// a.State.Account if the stored head is the link before it; otherwise
	// ECONFLICT and the current head. With a.Identity set it makes that the
	// account's identity and revokes every refresh token of the account.
	// An add-device link deletes the pairings of the device it adds. The
	// link is logged in the same transaction.
	AppendAccountLink(ctx context.Context, a *AccountLinkAppend) (head uint64, err error)
	// CreateDeviceRefreshToken stores t, the refresh token of a device's
	// log-in checked against the chain state at seq chainSeq, if the
	// account's head is still chainSeq; ECONFLICT otherwise. Holding the
	// row against appends while it stores t closes the race in which a
	// device is revoked between the check and the token: either the
	// revocation sees t and revokes it, or t is refused.
	CreateDeviceRefreshToken(ctx context.Context, t RefreshToken, chainSeq uint64) error
	// AccountLinks returns up to limit links of the account with seq >
	// after, in order, and the head seq (0 for a suite v1 account).
	// ENOTFOUND for no account.
	AccountLinks(ctx context.Context, id AccountID, after uint64, limit int) (links []SignedLink, head uint64, err error)
	// CreatePairing stores p (Created and Expires set). ENOTFOUND unless
	// p.Handle is a suite v2 account; ELIMIT when the handle already has
	// maxOpen unexpired pairings; ECONFLICT when the id exists.
	CreatePairing(ctx context.Context, p *Pairing, maxOpen int) error
	// Pairing returns an unexpired pairing or ENOTFOUND.
	Pairing(ctx context.Context, id string) (*Pairing, error)
	// ApprovePairing stores link and mac as the approval of the unexpired
	// pairing id, whose handle must be the caller's (ENOTFOUND otherwise).
	// A pairing is approved once: ECONFLICT when it already was.
	ApprovePairing(ctx context.Context, caller AccountID, id string, link SignedLink, mac []byte) error
}
