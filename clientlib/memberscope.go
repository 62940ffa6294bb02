package clientlib

import (
	"iter"
	"slices"
	"sync"

	"github.com/cofferhq/coffer"
)

// After verifying a sync's commits, a client checks the members of the new
// state: it resolves their keys (withMemberKeysIn), proves their identities
// in the witnessed map (proveMembers) and follows the chains of verified
// contacts whose keys changed (followMemberChains). Done over every member,
// each check is a pass over the whole group on every sync: at 100,000
// members the three passes were most of a receiving member's time. An
// entry is never changed in place (coffer.GroupState.Clone), so in a state
// verified from one that passed every check, only the entries the commits
// added or replaced can fail one (coffer.GroupState.ChangedMembers), and
// only those are checked.

// A member of a tree group who is not an admin (a reader, readerOf) needs
// neither the other members' keys nor their identities to read: the epoch
// key reaches it through its own leaf's path, and the commits it verifies
// are signed by admins, whose keys the verifier resolves anyway. So its
// syncs check its own entry and the admins' (forReader), and leave the
// rest to when they are used: Members and Sync, which show every member
// with its trust, check them all first (checkEveryMember), as does every
// sync once the account is an admin. A reader reading a resource resolves
// its writer's keys then, by the hash its verified entry names
// (resolveSigner). At 100,000 members these checks were most of a new
// member's first sync: 100,000 keys fetched and parsed, 100,000
// identities looked up and proven.

// readerOf reports whether account me reads s rather than administers
// it: a member of a suite v2 tree group below the admin role.
func readerOf(s *coffer.GroupState, me coffer.AccountID) bool {
	if s == nil || s.Suite != coffer.SuiteV2 || s.Tree == nil {
		return false
	}
	m := s.Members[me]
	return m != nil && m.Role < coffer.RoleAdmin
}

// memberScope is the members a check looks at: every member, or those a
// sync's commits changed.
type memberScope struct {
	all bool
	ids map[coffer.AccountID]struct{}
}

// allMembers checks every member.
var allMembers = &memberScope{all: true}

// newMemberScope returns an empty scope, or allMembers when every member
// must be checked.
func newMemberScope(all bool) *memberScope {
	if all {
		return allMembers
	}
	return &memberScope{ids: map[coffer.AccountID]struct{}{}}
}

// add widens sc by what s changed since Clone made it (the commits of one
// verifyChain call), and returns the scope to use from now on.
func (sc *memberScope) add(s *coffer.GroupState) *memberScope {
	if sc.all {
		return sc
	}
	ids, all := s.ChangedMembers()
	if all {
		return allMembers
	}
	for _, id := range ids {
		sc.ids[id] = struct{}{}
	}
	return sc
}

// with widens sc by ids, and returns the scope to use from now on.
func (sc *memberScope) with(ids []coffer.AccountID) *memberScope {
	if sc.all {
		return sc
	}
	for _, id := range ids {
		sc.ids[id] = struct{}{}
	}
	return sc
}

// forReader returns the members of sc that a reader checks in s: account
// me and the admins.
func (sc *memberScope) forReader(s *coffer.GroupState, me coffer.AccountID) *memberScope {
	out := newMemberScope(false)
	for id, m := range sc.members(s) {
		if id == me || m.Role >= coffer.RoleAdmin {
			out.ids[id] = struct{}{}
		}
	}
	return out
}

// members yields the current members of s in scope.
func (sc *memberScope) members(s *coffer.GroupState) iter.Seq2[coffer.AccountID, *coffer.Member] {
	return func(yield func(coffer.AccountID, *coffer.Member) bool) {
		if sc.all {
			for id, m := range s.Members {
				if !yield(id, m) {
					return
				}
			}
			return
		}
		for id := range sc.ids {
			if m := s.Members[id]; m != nil && !yield(id, m) {
				return
			}
		}
	}
}

// checkedStates remembers, per group, the last few states whose every
// member passed the checks above on this client (or, for a reader, whose
// own entry and admins did), so that the next sync from one checks only
// what its commits changed. A state this client made by committing
// (applyOwn) from a checked state is one too, with the members its commit
// changed pending: the next sync checks those as well.
type checkedStates struct {
	mu sync.Mutex
	m  map[coffer.GroupID][]checkedState // oldest first, at most maxCheckedStates
}

type checkedState struct {
	s       *coffer.GroupState
	pending []coffer.AccountID
	// reader: only this account's entry and the admins' were checked
	// (forReader); a check of every member starts from scratch.
	reader bool
}

// maxCheckedStates keeps a state that a commit was built on marked while
// the commit is in flight (the commit's own state is marked too) and a
// retry syncs from it again.
const maxCheckedStates = 4

// lookup reports whether s, by identity, is a state that passed the
// checks, with the members changed since that are still to be checked and
// whether it was checked as a reader checks it.
func (cs *checkedStates) lookup(s *coffer.GroupState) (checkedState, bool) {
	if s == nil {
		return checkedState{}, false
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, e := range cs.m[s.Group] {
		if e.s == s {
			return e, true
		}
	}
	return checkedState{}, false
}

// mark records that s passed the checks: every member's, or with reader
// set those of a reader (forReader).
func (cs *checkedStates) mark(s *coffer.GroupState, reader bool) { cs.put(s, nil, reader) }

// derive marks to, a state made from from by changing the members listed
// by the ChangedMembers of each of changed, when from is marked: the
// changed members are pending for the next sync.
func (cs *checkedStates) derive(from, to *coffer.GroupState, changed ...*coffer.GroupState) {
	e, ok := cs.lookup(from)
	if !ok {
		return
	}
	pending := slices.Clone(e.pending)
	for _, c := range changed {
		ids, all := c.ChangedMembers()
		if all {
			return
		}
		pending = append(pending, ids...)
	}
	cs.put(to, pending, e.reader)
}

func (cs *checkedStates) put(s *coffer.GroupState, pending []coffer.AccountID, reader bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[coffer.GroupID][]checkedState{}
	}
	l := slices.DeleteFunc(cs.m[s.Group], func(e checkedState) bool { return e.s == s })
	if len(l) >= maxCheckedStates {
		l = slices.Delete(l, 0, len(l)-maxCheckedStates+1)
	}
	cs.m[s.Group] = append(l, checkedState{s, pending, reader})
}
