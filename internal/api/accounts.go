package api

import (
	"time"

	"github.com/cofferhq/coffer"
)

// SignedLink is a coffer.SignedLink: an account link's canonical body, the
// author's hybrid signature and, on an add-device link, the new device's.
type SignedLink struct {
	Body            []byte `json:"body"`
	Signature       []byte `json:"signature"`
	DeviceSignature []byte `json:"device_signature,omitempty"`
}

// Link and FromLink convert between the wire and the root package's form.
func (l SignedLink) Link() coffer.SignedLink {
	return coffer.SignedLink{Body: l.Body, Signature: l.Signature, DeviceSignature: l.DeviceSignature}
}

func FromLink(l coffer.SignedLink) SignedLink {
	return SignedLink{Body: l.Body, Signature: l.Signature, DeviceSignature: l.DeviceSignature}
}

// AccountLinks is a page of an account's chain: the links with seq > the
// request's after, at most MaxLinksPage, and the chain's head seq (0 for a
// suite v1 account, which has no chain).
type AccountLinks struct {
	AccountID coffer.AccountID `json:"account_id"`
	Links     []SignedLink     `json:"links"`
	HeadSeq   uint64           `json:"head_seq"`
}

// MaxLinksPage is the most links one page of AccountLinks holds.
const MaxLinksPage = 256

// AppendLinkRequest appends a link to an account's chain. SelfSignature is
// required exactly when the link rotates the user key (revoke-device,
// rotate-user-key): the new identity's self-signature, under
// coffer.LabelIdentity over the canonical identity of the state after the
// link.
type AppendLinkRequest struct {
	Link          SignedLink `json:"link"`
	SelfSignature []byte     `json:"self_signature,omitempty"`
}

// AppendLinkResponse names the seq the link was stored at.
type AppendLinkResponse struct {
	Seq uint64 `json:"seq"`
}

// PairingDevice is the device that asks to be linked: its name and public
// keys, as the add-device link will record them.
type PairingDevice struct {
	ID            coffer.DeviceID `json:"id"`
	Name          string          `json:"name"`
	SigningKey    []byte          `json:"signing_key"`    // hybrid, coffer.HybridPublicKeySize bytes
	EncryptionKey []byte          `json:"encryption_key"` // X-Wing, 1216 bytes
}

// CreatePairingRequest opens a pairing for handle under ID, the hash of the
// pairing code (coffer.PairingCode.ID), with the code's MAC of the request
// (coffer.PairingCode.RequestMAC). The server never sees the code.
type CreatePairingRequest struct {
	ID     string        `json:"id"`
	Handle coffer.Handle `json:"handle"`
	Device PairingDevice `json:"device"`
	MAC    []byte        `json:"mac"`
}

// CreatePairingResponse names the pairing and when it expires.
type CreatePairingResponse struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PairingApproval is an add-device link of the pairing's device, signed by
// the approving device (author signature only), with the code's MAC of its
// body (coffer.PairingCode.ApprovalMAC).
type PairingApproval struct {
	Link SignedLink `json:"link"`
	MAC  []byte     `json:"mac"`
}

// Pairing is an open pairing, exactly as the new device filed it, and its
// approval once a device of the account approved it (null before).
type Pairing struct {
	ID        string           `json:"id"`
	Handle    coffer.Handle    `json:"handle"`
	Device    PairingDevice    `json:"device"`
	MAC       []byte           `json:"mac"`
	ExpiresAt time.Time        `json:"expires_at"`
	Approval  *PairingApproval `json:"approval"`
}

// AccountsRequest is POST /v1/accounts/lookup: 1 to
// coffer.MaxAccountsLookup account ids.
type AccountsRequest struct {
	IDs []coffer.AccountID `json:"ids"`
}

// AccountsResponse holds the accounts that exist among the ids asked for,
// each once, in any order; unknown ids are absent. Each is what GET
// /v1/accounts/{id} answers, and a client checks it as that answer.
type AccountsResponse struct {
	Accounts []Account `json:"accounts"`
}

// MemberKeysRequest is POST /v1/member-keys: 1 to
// coffer.MaxMemberKeysLookup hashes of suite v2 member keys, 32 bytes each.
type MemberKeysRequest struct {
	Hashes [][]byte `json:"hashes"`
}

// MemberKeysResponse holds the canonical coffer.MemberKeys encodings the
// server has among the hashes asked for, in any order; unknown hashes are
// absent. A client checks each by hash: the server can withhold keys, not
// substitute them.
type MemberKeysResponse struct {
	Keys [][]byte `json:"keys"`
}
