package audit

import (
	"fmt"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// The auditor's witness keeps no group state, only each group's head, so
// it checks a suite v2 commit against what the log says of its accounts at
// that point: the member keys of the user keys their chains set, every
// generation of them.

// memberKeys returns the member keys index, building it on first use from
// the stored encodings and the chains' current keys.
func (s *witnessState) memberKeys(r *Report) coffer.MemberKeyMap {
	if s.keys != nil {
		return s.keys
	}
	s.keys, s.byAcct = coffer.MemberKeyMap{}, map[coffer.AccountID][]*coffer.MemberKeys{}
	for h, b := range s.MemberKeys {
		k, err := coffer.ParseMemberKeys(b)
		if err != nil || k.Hash() != h {
			r.Fail("witness", fmt.Sprintf("state: member keys %x", h[:8]), "stored member keys are corrupt")
			continue
		}
		s.index(k)
	}
	for a := range s.Accounts {
		if st := s.chain(r, a); st != nil {
			s.index(st.MemberKeys())
		}
	}
	return s.keys
}

func (s *witnessState) index(k *coffer.MemberKeys) [32]byte {
	h := k.Hash()
	if s.keys[h] == nil {
		s.keys[h] = k
		s.byAcct[k.Account] = append(s.byAcct[k.Account], k)
	}
	return h
}

// addMemberKeys records the member keys of a user key a chain set.
func (s *witnessState) addMemberKeys(r *Report, k *coffer.MemberKeys) {
	s.memberKeys(r)
	h := s.index(k)
	if s.MemberKeys == nil {
		s.MemberKeys = map[[32]byte][]byte{}
	}
	s.MemberKeys[h] = k.Marshal()
}

// current reports whether k are the member keys of its account's current
// user key in the log.
func (s *witnessState) current(r *Report, k *coffer.MemberKeys) bool {
	st := s.chain(r, k.Account)
	return st != nil && st.UserKeyGeneration == k.Generation && st.MemberKeys().Hash() == k.Hash()
}

// checkCommitV2: the commit is signed (both halves of the hybrid
// signature) with the keys of its author's current user key, or, for a
// self-update, which the entry's keys from before a rotation sign, with the
// keys of an earlier one; and each add or update-key names the current
// member keys of the member's own account, under its handle.
func (s *witnessState) checkCommitV2(r *Report, obj string, l *translog.Leaf, c *coffer.Commit) {
	keys := s.memberKeys(r)
	selfUpdate := false
	for _, op := range c.Ops {
		selfUpdate = selfUpdate || op.Kind == coffer.OpUpdateKey && op.Member == c.Author
	}
	signed, retired := false, false
	for _, k := range s.byAcct[c.Author] {
		if k.SigningKey.Verify(coffer.LabelCommit, l.Commit.Body, l.Commit.Signature) != nil {
			continue
		}
		if s.current(r, k) {
			signed = true
		} else {
			retired = true
		}
	}
	switch {
	case signed || retired && selfUpdate:
	case retired:
		r.Fail("witness", obj, "commit %d of group %s is signed with a retired user key of %s, and is not its self-update", c.Seq, l.Group, c.Author)
		return
	default:
		r.Fail("witness", obj, "commit %d of group %s: the signature does not verify under the member keys of any logged user key of the author %s", c.Seq, l.Group, c.Author)
		return
	}
	for _, op := range c.Ops {
		if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
			continue
		}
		what := fmt.Sprintf("adds %s (%s)", op.Member, op.Handle)
		if op.Kind == coffer.OpUpdateKey {
			what = fmt.Sprintf("updates %s", op.Member)
		}
		k := keys[op.KeysHash]
		switch {
		case k == nil:
			r.Fail("witness", obj, "commit %d of group %s %s with member keys no logged account chain set", c.Seq, l.Group, what)
		case k.Account != op.Member:
			r.Fail("witness", obj, "commit %d of group %s %s with the member keys of account %s", c.Seq, l.Group, what, k.Account)
		case op.Kind == coffer.OpAdd && k.Handle != op.Handle:
			r.Fail("witness", obj, "commit %d of group %s %s with member keys that name handle %s", c.Seq, l.Group, what, k.Handle)
		case !s.current(r, k):
			r.Fail("witness", obj, "commit %d of group %s %s with the member keys of its user key %d, which is not its current one", c.Seq, l.Group, what, k.Generation)
		}
	}
	s.Groups[l.Group] = witnessGroup{Seq: c.Seq, Head: l.Commit.Hash()}
}
