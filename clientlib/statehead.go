package clientlib

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer"
)

// The stored group state starts with a fixed header (coffer.GroupState's
// MarshalBinary, every version so far): version uint8, group [16]byte,
// seq uint64, head [32]byte. saveState needs only seq and head.
const (
	stateHeadSize   = 1 + 16 + 8 + 32
	stateVersionMax = 3
)

// peekStateHead reads seq and head from an encoded state of group g. ok is
// false for anything it does not recognise, which the caller then decodes
// whole.
func peekStateHead(b []byte, g coffer.GroupID) (seq uint64, head [32]byte, ok bool) {
	if len(b) < stateHeadSize || b[0] < 1 || b[0] > stateVersionMax || string(b[1:17]) != string(g[:]) {
		return 0, head, false
	}
	seq = binary.BigEndian.Uint64(b[17:25])
	copy(head[:], b[25:57])
	return seq, head, seq != 0
}

// storedHead returns the seq and head of the state of g stored on this
// device; found is false when there is none.
func (c *Client) storedHead(g coffer.GroupID) (seq uint64, head [32]byte, found bool, err error) {
	b, err := c.ks.Get(stateKey(g))
	if errors.Is(err, ErrNotFound) {
		return 0, head, false, nil
	}
	if err != nil {
		return 0, head, false, err
	}
	if seq, head, ok := peekStateHead(b, g); ok {
		return seq, head, true, nil
	}
	s := new(coffer.GroupState)
	if err := s.UnmarshalBinary(b); err != nil {
		return 0, head, false, fmt.Errorf("clientlib: stored group state is corrupt: %w", err)
	}
	if s.Group != g {
		return 0, head, false, fmt.Errorf("clientlib: stored group state is of group %s, not %s", s.Group, g)
	}
	return s.Seq, s.Head, true, nil
}
