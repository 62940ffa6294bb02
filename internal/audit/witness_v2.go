package audit

import (
	"fmt"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// The auditor's witness keeps no group state, only each group's head, so
// it checks a suite v2 commit against what the log says of its accounts at
// that point: the member keys of the user keys their chains set, every
// generation of them. They are kept encoded (a parsed hybrid key holds its
// expanded ML-DSA matrix, about 40 KB); a chain's current keys are parsed
// with its state, and retired ones only when a commit needs them.

// index builds byAcct from MemberKeys and the chains on first use, and
// records the current keys of chains from a state that predates
// MemberKeys.
func (s *witnessState) index(r *Report) {
	if s.byAcct != nil {
		return
	}
	s.byAcct = map[coffer.AccountID][][32]byte{}
	if s.MemberKeys == nil {
		s.MemberKeys = map[[32]byte][]byte{}
	}
	for a := range s.Accounts {
		if st := s.chain(r, a); st != nil {
			k := st.MemberKeys()
			s.MemberKeys[k.Hash()] = k.Marshal()
		}
	}
	for h, b := range s.MemberKeys {
		// The encoding starts with its version and account id; a full
		// parse, which expands the ML-DSA key, waits for a commit that
		// needs the keys.
		if coffer.MemberKeysHash(b) != h || len(b) < 17 || b[0] != coffer.SuiteV2 {
			r.Fail("witness", fmt.Sprintf("state: member keys %x", h[:8]), "stored member keys are corrupt")
			delete(s.MemberKeys, h)
			continue
		}
		a := coffer.AccountID(b[1:17])
		s.byAcct[a] = append(s.byAcct[a], h)
	}
}

// addMemberKeys records the member keys of a user key a chain set.
func (s *witnessState) addMemberKeys(r *Report, k *coffer.MemberKeys) {
	s.index(r)
	h := k.Hash()
	if _, ok := s.MemberKeys[h]; !ok {
		s.MemberKeys[h] = k.Marshal()
		s.byAcct[k.Account] = append(s.byAcct[k.Account], h)
	}
}

// lookup parses the stored member keys with hash h, or returns nil.
func (s *witnessState) lookup(h [32]byte) *coffer.MemberKeys {
	b, ok := s.MemberKeys[h]
	if !ok {
		return nil
	}
	k, err := coffer.ParseMemberKeys(b)
	if err != nil {
		return nil
	}
	return k
}

// checkCommitV2: the commit is signed (both halves of the hybrid
// signature) with the keys of its author's current user key, or, for a
// self-update, which the entry's keys from before a rotation sign, with the
// keys of an earlier one; and each add or update-key names the current
// member keys of the member's own account, under its handle.
func (s *witnessState) checkCommitV2(r *Report, obj string, l *translog.Leaf, c *coffer.Commit) {
	s.index(r)
	selfUpdate := false
	for _, op := range c.Ops {
		selfUpdate = selfUpdate || op.Kind == coffer.OpUpdateKey && op.Member == c.Author
	}
	verifies := func(k *coffer.MemberKeys) bool {
		return k != nil && k.SigningKey.Verify(coffer.LabelCommit, l.Commit.Body, l.Commit.Signature) == nil
	}
	var cur *coffer.MemberKeys
	if st := s.chain(r, c.Author); st != nil {
		cur = st.MemberKeys()
	}
	if !verifies(cur) {
		retired := false
		for _, h := range s.byAcct[c.Author] {
			if cur == nil || h != cur.Hash() {
				retired = retired || verifies(s.lookup(h))
			}
		}
		switch {
		case retired && selfUpdate:
		case retired:
			r.Fail("witness", obj, "commit %d of group %s is signed with a retired user key of %s, and is not its self-update", c.Seq, l.Group, c.Author)
			return
		default:
			r.Fail("witness", obj, "commit %d of group %s: the signature does not verify under the member keys of any logged user key of the author %s", c.Seq, l.Group, c.Author)
			return
		}
	}
	for _, op := range c.Ops {
		if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
			continue
		}
		st := s.chain(r, op.Member)
		if st != nil && st.MemberKeys().Hash() == op.KeysHash && (op.Kind != coffer.OpAdd || st.Handle == op.Handle) {
			continue
		}
		what := fmt.Sprintf("adds %s (%s)", op.Member, op.Handle)
		if op.Kind == coffer.OpUpdateKey {
			what = fmt.Sprintf("updates %s", op.Member)
		}
		k := s.lookup(op.KeysHash)
		switch {
		case k == nil:
			r.Fail("witness", obj, "commit %d of group %s %s with member keys no logged account chain set", c.Seq, l.Group, what)
		case k.Account != op.Member:
			r.Fail("witness", obj, "commit %d of group %s %s with the member keys of account %s", c.Seq, l.Group, what, k.Account)
		case op.Kind == coffer.OpAdd && k.Handle != op.Handle:
			r.Fail("witness", obj, "commit %d of group %s %s with member keys that name handle %s", c.Seq, l.Group, what, k.Handle)
		default:
			r.Fail("witness", obj, "commit %d of group %s %s with the member keys of its user key %d, which is not its current one", c.Seq, l.Group, what, k.Generation)
		}
	}
	s.Groups[l.Group] = witnessGroup{Seq: c.Seq, Head: l.Commit.Hash(), Suite: c.Suite}
}
