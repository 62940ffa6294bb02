package mobile

import (
	"encoding/json"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// Contact states.
const (
	StateUnverified = "unverified" // seen, never compared out of band
	StateVerified   = "verified"   // compared out of band
	StateChanged    = "changed"    // differ from the verified keys: blocked
)

// Contact is another account as this device knows it.
type Contact struct {
	Handle    string `json:"handle"`
	AccountID string `json:"account_id"`
	// State is StateVerified, StateUnverified or StateChanged.
	State string `json:"state"`
	// SafetyNumber is that of the keys the server showed last.
	SafetyNumber string `json:"safety_number"`
	// VerifiedSafetyNumber is that of the keys the user verified, or "".
	VerifiedSafetyNumber string `json:"verified_safety_number,omitempty"`
}

func contactOf(ct *clientlib.Contact) *Contact {
	out := &Contact{
		Handle: string(ct.Handle), AccountID: ct.AccountID.String(),
		State: ct.State.String(), SafetyNumber: ct.SafetyNumber(),
	}
	if ct.VerifiedIdentity != nil {
		out.VerifiedSafetyNumber = coffer.FingerprintOf(*ct.VerifiedIdentity).SafetyNumber()
	}
	return out
}

// ContactList is a list of contacts, sorted by handle.
type ContactList struct{ items []*Contact }

// Len returns the number of contacts.
func (l *ContactList) Len() int64 {
	defer guardQuiet()
	if l == nil {
		return 0
	}
	return int64(len(l.items))
}

// Get returns contact i, 0 <= i < Len().
func (l *ContactList) Get(i int64) (ct *Contact, err error) {
	defer guard(&err)
	if l == nil || i < 0 || i >= int64(len(l.items)) {
		return nil, newError(CodeInvalid, "index %d out of range", i)
	}
	return l.items[i], nil
}

// JSON returns the list as a JSON array.
func (l *ContactList) JSON() (b []byte, err error) {
	defer guard(&err)
	return listJSON(l.items)
}

func listJSON[T any](items []T) ([]byte, error) {
	if items == nil {
		items = []T{}
	}
	b, err := json.Marshal(items)
	if err != nil {
		return nil, wrap(err, nil)
	}
	return b, nil
}

// Verify marks handle's keys as verified after checking code against the
// keys the server shows: the contact's safety number (as typed, spaces
// optional) or their scanned QR payload, received through a channel the
// server does not control. CodeInvalid: the code does not match; ask the
// contact again, and if it still differs the server may be substituting
// keys.
func (c *Client) Verify(handle, code string) (ct *Contact, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	got, err := cl.Verify(bg(), handle, code)
	if err != nil {
		return nil, wrap(err, nil)
	}
	return contactOf(got), nil
}

// Contact returns the stored contact for handle (CodeNotFound if none).
// It does not contact the server.
func (c *Client) Contact(handle string) (ct *Contact, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	got, err := cl.Contact(handle)
	if err != nil {
		return nil, wrap(err, nil)
	}
	return contactOf(got), nil
}

// Contacts lists every contact this device knows. It does not contact the
// server.
func (c *Client) Contacts() (l *ContactList, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	cts, err := cl.Contacts()
	if err != nil {
		return nil, wrap(err, nil)
	}
	l = &ContactList{}
	for _, ct := range cts {
		l.items = append(l.items, contactOf(ct))
	}
	return l, nil
}
