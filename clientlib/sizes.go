package clientlib

import (
	"fmt"
	"math"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Sizes and counts from signed or server data are checked before anything
// is allocated or converted for them. A signature says who made a claim,
// not that it is sane: an insider can sign a negative plaintext size, and
// a server can send more wraps than a group has epochs. Each is a
// *coffer.SecurityError, never a panic or a huge allocation, here and in
// the mobile facade, which converts to int64 for gobind.

// checkResourceSizes checks what a verified header and its decrypted
// metadata claim about sizes and numbers.
func checkResourceSizes(h *coffer.ResourceHeader, m *Meta) error {
	switch {
	case h.Version > math.MaxInt64:
		return coffer.Security("header", fmt.Errorf("version %d is absurd", h.Version))
	case h.ContentSize < 0 || h.ContentSize == math.MaxInt64:
		return coffer.Security("header", fmt.Errorf("content size %d is absurd", h.ContentSize))
	case m == nil:
		return nil
	case m.Size < 0:
		return coffer.Security("meta", fmt.Errorf("the author's metadata claims a negative plaintext size (%d)", m.Size))
	case m.Size > h.ContentSize:
		// age only adds to the plaintext: its ciphertext is never shorter.
		return coffer.Security("meta", fmt.Errorf("the author's metadata claims %d bytes of plaintext in %d bytes of ciphertext", m.Size, h.ContentSize))
	}
	return nil
}

// checkKeyCounts bounds the work a server can cause with the wraps and
// links of a group: a member has at most one wrap, and a group one history
// link, per epoch, so every epoch named twice is refused before any is
// opened. (Wraps for epochs beyond the verified state are not counted
// against it: a rotation may have landed since the sync.)
func checkKeyCounts(keys *api.Keys) error {
	wraps := make(map[uint64]bool, len(keys.Wraps))
	for _, w := range keys.Wraps {
		if wraps[w.Epoch] {
			return coffer.Security("wrap", fmt.Errorf("the server returned two wraps of epoch %d for this member", w.Epoch))
		}
		wraps[w.Epoch] = true
	}
	links := make(map[uint64]bool, len(keys.Links))
	for _, l := range keys.Links {
		if links[l.Epoch] {
			return coffer.Security("history-link", fmt.Errorf("the server returned two history links to epoch %d", l.Epoch))
		}
		links[l.Epoch] = true
	}
	return nil
}
