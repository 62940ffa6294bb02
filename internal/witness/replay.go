package witness

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// Rule names a reason to refuse a checkpoint. They are stable: they appear in
// the Coffer-Witness-Refusal header and in cofferd's log.
type Rule string

const (
	RuleLeaf       Rule = "leaf"        // a leaf does not parse
	RuleIdentity   Rule = "identity"    // an identity does not verify or is registered twice
	RuleChain      Rule = "chain"       // a commit is refused by coffer.VerifyChain
	RuleDuplicate  Rule = "duplicate"   // a second commit for one (group, seq)
	RuleAddedKey   Rule = "added-key"   // an added or self-updated member's keys are not its logged identity
	RuleMap        Rule = "map"         // the heads map line is not the map the leaves produce
	RuleLeaves     Rule = "leaves"      // the served leaves do not hash to the checkpoint's root
	RuleTime       Rule = "time"        // the checkpoint's time goes backwards or is in the future
	RuleSameSize   Rule = "same-size"   // a checkpoint of the cosigned size that is not the same tree
	RuleConsistent Rule = "consistency" // the consistency proof does not verify
	// RuleAccountChain: an account link is refused by
	// coffer.VerifyAccountChain, or names another account or seq than its
	// leaf.
	RuleAccountChain Rule = "account-chain"
	// RuleMemberKeys: a suite v2 commit refers to member keys that no
	// replayed account chain set (not yet, or never), that are another
	// account's, or, for an add or update-key, that are not the account's
	// current keys at that point of the log.
	RuleMemberKeys Rule = "member-keys"
)

// Refusal is a checkpoint the witness will not cosign, and why.
type Refusal struct {
	Rule   Rule
	Reason string
}

func (r *Refusal) Error() string { return "witness refuses: " + string(r.Rule) + ": " + r.Reason }

func refuse(rule Rule, format string, args ...any) *Refusal {
	return &Refusal{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// identity is what the witness keeps of a registered account.
type identity struct {
	Handle        coffer.Handle
	SigningKey    []byte
	EncryptionKey [32]byte // SHA-256 of the X-Wing key, which is 1,216 bytes
}

// replay is the state the log's leaves produce: the identities, the group
// chains, the heads map and the log tree's frontier. It is what the witness
// checks each new leaf against. A replay that refused a leaf is left
// half-applied; the caller throws it away (see Witness.restore).
type replay struct {
	size       int64 // leaves applied
	frontier   map[int64]tlog.Hash
	identities map[coffer.AccountID]identity
	handles    map[coffer.Handle]coffer.AccountID
	groups     map[coffer.GroupID]*coffer.GroupState
	// accounts are the suite v2 account chains; identityGen is, per chain
	// account, the user-key generation whose identity leaf was logged.
	accounts    map[coffer.AccountID]*coffer.AccountState
	identityGen map[coffer.AccountID]uint64
	// memberKeys are the suite v2 member keys of every user key every
	// replayed account chain set, old generations included: a group's
	// commits stay signed with the keys its entries held then.
	memberKeys *chainKeys
	heads      *translog.MemoryMap
	mapKeys    []translog.MapKey // in map index order, to rebuild heads
	resources  map[ResourceRef]*coffer.ResourceLogState
}

func newReplay() *replay {
	return &replay{
		frontier:    map[int64]tlog.Hash{},
		identities:  map[coffer.AccountID]identity{},
		handles:     map[coffer.Handle]coffer.AccountID{},
		groups:      map[coffer.GroupID]*coffer.GroupState{},
		accounts:    map[coffer.AccountID]*coffer.AccountState{},
		identityGen: map[coffer.AccountID]uint64{},
		memberKeys:  newChainKeys(),
		heads:       translog.NewMemoryMap(),
	}
}

// ReadHashes implements tlog.HashReader over the frontier: the only stored
// hashes that appending to the tree and hashing its root read.
func (r *replay) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := r.frontier[x]
		if !ok {
			return nil, fmt.Errorf("witness: log hash %d is not in the frontier", x)
		}
		out[i] = h
	}
	return out, nil
}

// root is the log tree's root hash.
func (r *replay) root() (tlog.Hash, error) { return tlog.TreeHash(r.size, r) }

// leafRules checks and applies one parsed leaf by kind. New leaf kinds add
// an entry here.
var leafRules = map[translog.Kind]func(r *replay, index int64, l *translog.Leaf) *Refusal{
	translog.KindIdentity:    (*replay).applyIdentity,
	translog.KindCommit:      (*replay).applyCommit,
	translog.KindAccountLink: (*replay).applyAccountLink,
}

// apply checks leaf index (raw) against everything before it and applies it
// to the identities, the chains, the heads map and the tree.
func (r *replay) apply(index int64, raw []byte) *Refusal {
	if index != r.size {
		return refuse(RuleLeaves, "leaf %d served where leaf %d was expected", index, r.size)
	}
	l, err := translog.ParseLeaf(raw)
	if err != nil {
		return refuse(RuleLeaf, "log leaf %d: %v", index, err)
	}
	rule, ok := leafRules[l.Kind]
	if !ok {
		return refuse(RuleLeaf, "log leaf %d is of kind %s, which this witness does not know", index, l.Kind)
	}
	if ref := rule(r, index, l); ref != nil {
		return ref
	}
	u, err := translog.LeafUpdate(index, raw, l)
	if err != nil {
		return refuse(RuleMap, "log leaf %d: %v", index, err)
	}
	key := u.Key
	_, known := r.heads.Entry(key)
	if err := r.heads.ApplyLeaf(index, raw, l); err != nil {
		return refuse(RuleMap, "log leaf %d: %v", index, err)
	}
	if !known {
		r.mapKeys = append(r.mapKeys, key)
	}
	hs, err := tlog.StoredHashesForRecordHash(index, translog.RecordHash(raw), r)
	if err != nil {
		return refuse(RuleLeaves, "log leaf %d: %v", index, err)
	}
	base := tlog.StoredHashIndex(0, index)
	for j, h := range hs {
		r.frontier[base+int64(j)] = h
	}
	r.size++
	r.trimFrontier()
	return nil
}

// trimFrontier drops the stored hashes that no later append or root reads.
func (r *replay) trimFrontier() {
	keep := translog.Frontier(r.size)
	if len(r.frontier) <= 2*len(keep) {
		return
	}
	kept := make(map[int64]tlog.Hash, len(keep))
	for _, x := range keep {
		kept[x] = r.frontier[x]
	}
	r.frontier = kept
}

// applyIdentity: the identity verifies under its own key, and suite v1
// registers an account once and a handle once. The identity of a suite v2
// account is its chain's (applyChainIdentity).
func (r *replay) applyIdentity(index int64, l *translog.Leaf) *Refusal {
	id, err := l.VerifyIdentity()
	if err != nil {
		return refuse(RuleIdentity, "log leaf %d: the identity of account %s does not verify: %s", index, l.Account, coffer.ErrorMessage(err))
	}
	if st := r.accounts[l.Account]; st != nil {
		return r.applyChainIdentity(index, l.Account, st, id)
	}
	if _, dup := r.identities[l.Account]; dup {
		return refuse(RuleIdentity, "log leaf %d registers account %s a second time", index, l.Account)
	}
	if other, dup := r.handles[id.Handle]; dup {
		return refuse(RuleIdentity, "log leaf %d registers handle %s to %s; it is registered to %s", index, id.Handle, l.Account, other)
	}
	r.identities[l.Account] = identity{Handle: id.Handle, SigningKey: bytes.Clone(id.SigningKey), EncryptionKey: sha256.Sum256(id.EncryptionKey)}
	r.handles[id.Handle] = l.Account
	return nil
}

// applyChainIdentity: a suite v2 account logs its identity once per user
// key, after the link that sets it (the genesis or a rotation), and it must
// be exactly the identity the chain sets: the chain's handle, user signing
// key and user key. Group commits are then checked against it, as for
// suite v1 identities.
func (r *replay) applyChainIdentity(index int64, a coffer.AccountID, st *coffer.AccountState, id coffer.PublicIdentity) *Refusal {
	if r.identityGen[a] >= st.UserKeyGeneration {
		return refuse(RuleIdentity, "log leaf %d logs an identity of account %s a second time for user key %d", index, a, st.UserKeyGeneration)
	}
	if !id.Equal(st.Identity()) {
		return refuse(RuleIdentity, "log leaf %d: the identity of account %s is not the one its chain sets at link %d", index, a, st.Seq)
	}
	r.identities[a] = identity{Handle: id.Handle, SigningKey: bytes.Clone(id.SigningKey), EncryptionKey: sha256.Sum256(id.EncryptionKey)}
	r.identityGen[a] = st.UserKeyGeneration
	return nil
}

// applyAccountLink: each link of a suite v2 account verifies through
// coffer.VerifyAccountChain from the account's previous state (so a link
// of the server's making, a gap, a fork or a replay is refused); a genesis
// takes a handle no other account holds and an id that no suite v1
// registration took; and a link that follows a change of the user key
// comes only after the identity of that key was logged.
func (r *replay) applyAccountLink(index int64, l *translog.Leaf) *Refusal {
	if _, err := l.ParseAccountLink(); err != nil {
		return refuse(RuleAccountChain, "log leaf %d: link %d of account %s: %s", index, l.Seq, l.Account, coffer.ErrorMessage(err))
	}
	prev := r.accounts[l.Account]
	trusted := prev
	if prev == nil {
		if _, v1 := r.identities[l.Account]; v1 {
			return refuse(RuleIdentity, "log leaf %d: account %s was registered without an account chain", index, l.Account)
		}
		trusted = &coffer.AccountState{Account: l.Account}
	} else if r.identityGen[l.Account] < prev.UserKeyGeneration {
		return refuse(RuleIdentity, "log leaf %d: link %d of account %s follows a user key whose identity is not logged", index, l.Seq, l.Account)
	}
	next, err := coffer.VerifyAccountChain(trusted, []coffer.SignedLink{l.Link})
	if err != nil {
		return refuse(RuleAccountChain, "log leaf %d: account %s: %s", index, l.Account, coffer.ErrorMessage(err))
	}
	if prev == nil {
		if other, dup := r.handles[next.Handle]; dup && other != l.Account {
			return refuse(RuleIdentity, "log leaf %d registers handle %s to %s; it is registered to %s", index, next.Handle, l.Account, other)
		}
		r.handles[next.Handle] = l.Account
	}
	r.accounts[l.Account] = next
	if prev == nil {
		r.memberKeys.set(nil, next)
	} else if next.UserKeyGeneration != prev.UserKeyGeneration {
		r.memberKeys.set(prev, next)
	}
	return nil
}

// applyCommit: exactly one commit per (group, seq); the commit verifies
// through coffer.VerifyChainWith from the group's previous state, with the
// member keys of the account chains replayed so far; and every member it
// adds is added with the keys of its logged identity (suite v1) or its
// account's current member keys (suite v2), so the server cannot slip a
// key of its own into a group.
func (r *replay) applyCommit(index int64, l *translog.Leaf) *Refusal {
	c, err := l.ParseCommit()
	if err != nil {
		return refuse(RuleChain, "log leaf %d: commit %d of group %s: %s", index, l.Seq, l.Group, coffer.ErrorMessage(err))
	}
	prev := r.groups[l.Group]
	if prev != nil && l.Seq <= prev.Seq {
		return refuse(RuleDuplicate, "log leaf %d is a second commit %d of group %s", index, l.Seq, l.Group)
	}
	trusted := prev
	if trusted == nil {
		trusted = &coffer.GroupState{Group: l.Group}
	}
	next, err := coffer.VerifyChainWith(trusted, []coffer.SignedCommit{l.Commit}, r.memberKeys)
	if err != nil {
		rule := RuleChain
		var ce *coffer.Error
		if errors.As(err, &ce) && ce.Rule == coffer.RuleMemberKeys {
			rule = RuleMemberKeys
		}
		return refuse(rule, "log leaf %d: group %s: %s", index, l.Group, coffer.ErrorMessage(err))
	}
	if c.Suite == coffer.SuiteV2 {
		if ref := r.checkAuthorKeys(index, c, prev); ref != nil {
			return ref
		}
		if ref := r.checkMemberKeys(index, c, next); ref != nil {
			return ref
		}
		r.groups[l.Group] = next
		return nil
	}
	if _, ok := r.identities[c.Author]; !ok {
		return refuse(RuleAddedKey, "log leaf %d: commit %d of group %s is by %s, whose identity is not in the log", index, c.Seq, l.Group, c.Author)
	}
	for _, op := range c.Ops {
		switch op.Kind {
		case coffer.OpAdd:
			id, ok := r.identities[op.Member]
			if !ok {
				return refuse(RuleAddedKey, "log leaf %d: commit %d of group %s adds %s (%s), whose identity is not in the log", index, c.Seq, l.Group, op.Member, op.Handle)
			}
			if id.Handle != op.Handle || !bytes.Equal(id.SigningKey, op.SigningKey) || id.EncryptionKey != sha256.Sum256(op.EncryptionKey) {
				return refuse(RuleAddedKey, "log leaf %d: commit %d of group %s adds %s (%s) with keys that are not its logged identity", index, c.Seq, l.Group, op.Member, op.Handle)
			}
		case coffer.OpUpdateKey:
			// A self-update follows its account's rotation: the new keys
			// are the identity the log holds for the account now, never
			// keys of the server's (or a revoked device's) choosing.
			id := r.identities[op.Member] // the author: a member, so logged
			if !bytes.Equal(id.SigningKey, op.SigningKey) || id.EncryptionKey != sha256.Sum256(op.EncryptionKey) {
				return refuse(RuleAddedKey, "log leaf %d: commit %d of group %s updates %s to keys that are not its logged identity", index, c.Seq, l.Group, op.Member)
			}
		}
	}
	r.groups[l.Group] = next
	return nil
}

// checkAuthorKeys: a suite v2 commit after the genesis is signed with the
// keys the author's entry names, which may be of a user key the author has
// since retired (a revoked device may hold it): such a commit is accepted
// only as the author's self-update, which moves the entry to the current
// keys. The server refuses the same. The genesis's author's keys are its
// first add's, which checkMemberKeys holds to the current user key.
func (r *replay) checkAuthorKeys(index int64, c *coffer.Commit, prev *coffer.GroupState) *Refusal {
	if prev == nil {
		return nil
	}
	for _, op := range c.Ops {
		if op.Kind == coffer.OpUpdateKey && op.Member == c.Author {
			return nil
		}
	}
	m, st := prev.Members[c.Author], r.accounts[c.Author]
	if m == nil || st == nil || m.KeysHash != st.MemberKeys().Hash() {
		return refuse(RuleMemberKeys, "log leaf %d: commit %d of group %s is signed with keys of a retired user key of %s, and is not its self-update", index, c.Seq, c.Group, c.Author)
	}
	return nil
}

// checkMemberKeys: every add and update-key of suite v2 commit c (whose
// result is next) names the member keys its account's replayed chain holds
// at this point of the log: keys of that account and handle (which
// VerifyChainWith checks only for the author), and of its current user key,
// never a retired one, which a revoked device may still hold.
func (r *replay) checkMemberKeys(index int64, c *coffer.Commit, next *coffer.GroupState) *Refusal {
	for _, op := range c.Ops {
		if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
			continue
		}
		k, err := next.MemberKeys(op.Member, r.memberKeys)
		if err != nil {
			return refuse(RuleMemberKeys, "log leaf %d: commit %d of group %s: %s", index, c.Seq, c.Group, coffer.ErrorMessage(err))
		}
		st := r.accounts[op.Member]
		if st == nil || st.UserKeyGeneration != k.Generation || st.MemberKeys().Hash() != op.KeysHash {
			cur := uint64(0)
			if st != nil {
				cur = st.UserKeyGeneration
			}
			return refuse(RuleMemberKeys, "log leaf %d: commit %d of group %s gives %s the keys of its user key %d, not its current user key %d",
				index, c.Seq, c.Group, op.Member, k.Generation, cur)
		}
	}
	return nil
}

// checkMap compares the checkpoint's coffer-map line with the map the leaves
// produced.
func (r *replay) checkMap(cp translog.Checkpoint) *Refusal {
	root, err := r.heads.Root()
	if err != nil {
		return refuse(RuleMap, "%v", err)
	}
	if cp.MapSize != r.heads.Size() || cp.MapRoot != root {
		return refuse(RuleMap, "the checkpoint of size %d names a heads map of %d entries that is not the map its leaves produce (%d entries)", cp.Size, cp.MapSize, r.heads.Size())
	}
	return nil
}

// snapshot is the encoding of a replay on disk.
type snapshot struct {
	Size       int64
	Frontier   map[int64]tlog.Hash
	Identities map[coffer.AccountID]identity
	Groups     map[coffer.GroupID][]byte // GroupState.MarshalBinary
	MapEntries [][]byte                  // MapEntry encodings in map index order
	Resources  map[ResourceRef]coffer.ResourceLogState
	// Accounts are the suite v2 chains (AccountState.MarshalBinary) and
	// IdentityGens the user-key generation of each one's logged identity.
	Accounts     map[coffer.AccountID][]byte
	IdentityGens map[coffer.AccountID]uint64
	// MemberKeys are the encodings of the member keys of the retired user
	// keys of those chains; each chain's current keys are its state's.
	MemberKeys [][]byte
}

func (r *replay) snapshot() (*snapshot, error) {
	s := &snapshot{Size: r.size, Frontier: map[int64]tlog.Hash{}, Identities: r.identities, Groups: make(map[coffer.GroupID][]byte, len(r.groups))}
	for _, x := range translog.Frontier(r.size) {
		s.Frontier[x] = r.frontier[x]
	}
	for g, st := range r.groups {
		b, err := st.MarshalBinary()
		if err != nil {
			return nil, err
		}
		s.Groups[g] = b
	}
	s.Accounts, s.IdentityGens = make(map[coffer.AccountID][]byte, len(r.accounts)), r.identityGen
	for a, st := range r.accounts {
		b, err := st.MarshalBinary()
		if err != nil {
			return nil, err
		}
		s.Accounts[a] = b
	}
	s.MemberKeys = r.memberKeys.retiredEncodings()
	s.Resources = make(map[ResourceRef]coffer.ResourceLogState, len(r.resources))
	for ref, rs := range r.resources {
		s.Resources[ref] = *rs
	}
	for _, k := range r.mapKeys {
		e, ok := r.heads.Entry(k)
		if !ok {
			return nil, fmt.Errorf("witness: map key %s has no entry", k)
		}
		s.MapEntries = append(s.MapEntries, e.Marshal())
	}
	return s, nil
}

func (s *snapshot) restore() (*replay, error) {
	r := newReplay()
	r.size = s.Size
	if s.Frontier != nil {
		r.frontier = s.Frontier
	}
	for _, x := range translog.Frontier(r.size) {
		if _, ok := r.frontier[x]; !ok {
			return nil, errors.New("witness state: the log frontier is incomplete")
		}
	}
	if s.Identities != nil {
		r.identities = s.Identities
	}
	for a, id := range r.identities {
		if other, dup := r.handles[id.Handle]; dup {
			return nil, fmt.Errorf("witness state: handle %s held by %s and %s", id.Handle, a, other)
		}
		r.handles[id.Handle] = a
	}
	for a, b := range s.Accounts {
		st := new(coffer.AccountState)
		if err := st.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("witness state: account %s: %w", a, err)
		}
		r.accounts[a] = st
		r.memberKeys.set(nil, st)
		if other, dup := r.handles[st.Handle]; dup && other != a {
			return nil, fmt.Errorf("witness state: handle %s held by %s and %s", st.Handle, a, other)
		}
		r.handles[st.Handle] = a
	}
	for i, b := range s.MemberKeys {
		k, err := coffer.ParseMemberKeys(b)
		if err != nil {
			return nil, fmt.Errorf("witness state: member keys %d: %w", i, err)
		}
		st := r.accounts[k.Account]
		switch {
		case st == nil || k.Generation > st.UserKeyGeneration:
			return nil, fmt.Errorf("witness state: member keys %d are not of a known user key of account %s", i, k.Account)
		case k.Generation < st.UserKeyGeneration:
			r.memberKeys.retire(k.Hash(), b)
		}
	}
	for a, g := range s.IdentityGens {
		r.identityGen[a] = g
	}
	for g, b := range s.Groups {
		st := new(coffer.GroupState)
		if err := st.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("witness state: group %s: %w", g, err)
		}
		r.groups[g] = st
	}
	for ref, rs := range s.Resources {
		rs := rs
		r.setResource(ref, &rs)
	}
	for i, b := range s.MapEntries {
		e, err := translog.ParseMapEntry(b)
		if err != nil {
			return nil, fmt.Errorf("witness state: map entry %d: %w", i, err)
		}
		if _, dup := r.heads.Entry(e.Key); dup {
			return nil, fmt.Errorf("witness state: map entry %d repeats %s", i, e.Key)
		}
		if err := r.heads.Put(e); err != nil {
			return nil, err
		}
		r.mapKeys = append(r.mapKeys, e.Key)
	}
	return r, nil
}
