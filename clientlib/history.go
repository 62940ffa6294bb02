package clientlib

import (
	"fmt"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// walkHistory adds to keys every epoch key reachable through the history
// links from a key already in it, each checked against its commitment in
// the verified state s.
//
// The walk goes down from the newest key held, not the oldest: a member who
// was removed and added back holds wraps for non-adjacent epochs (say 1-2
// and 5-6), and the epochs in between (3-4) are reachable only from the
// later key. At each step K_e opens the link to K_{e-1}, unless K_{e-1} is
// held already (from a wrap, checked against its commitment before). A
// missing link ends nothing: a later held key may still reach further down.
// Whether a key that stays missing is a withheld one is for the reader to
// judge, against the epochs this member should reach.
func walkHistory(s *coffer.GroupState, links map[uint64][]byte, keys map[uint64]groupkey.EpochKey) error {
	newest := uint64(0)
	for e := range keys {
		newest = max(newest, e)
	}
	for e := newest; e > 1; e-- {
		if _, ok := keys[e-1]; ok {
			continue
		}
		k, ok := keys[e]
		if !ok {
			continue
		}
		link, ok := links[e-1]
		if !ok {
			continue
		}
		older, err := groupkey.OpenHistoryLink(k, s.Group, e-1, link)
		if err != nil {
			return coffer.Security("history-link", fmt.Errorf("link to epoch %d does not open: %w", e-1, err))
		}
		want, _ := s.KeyCommitment(e - 1)
		if !groupkey.CheckCommitment(older, s.Group, e-1, want) {
			return coffer.Security("history-link", fmt.Errorf("epoch %d key from link does not match its commitment", e-1))
		}
		keys[e-1] = older
	}
	return nil
}
