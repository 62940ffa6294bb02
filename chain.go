package coffer

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer/internal/ratchettree"
)

// The chain verifier is the one place where the membership rules live. The
// server runs it before appending a commit, every client runs it before
// trusting a membership view, and the auditor runs it over every stored
// chain. It is a pure function of the commits it is given and, optionally, a
// state the caller verified before (a checkpoint); it trusts nothing else.
//
// The rules, each with a stable name in the Rule field of the *Error:
//
//   - position: the group id matches (RuleGroup), seq is the previous seq
//     plus one (RuleSeq) and prev is the previous commit's hash (RulePrev).
//     A commit replayed from another group fails RuleGroup.
//   - genesis: seq 1, zero prev, epoch 1, a non-zero key commitment, and a
//     first op that adds the author as owner with the key that signs it; it
//     may add more members but nothing else (RuleGenesis).
//   - authority: the author is a current owner or admin (RuleAuthor), or any
//     current member for a leave, and the signature verifies under the
//     signing key the chain records for the author (RuleSignature).
//   - owner protection: only an owner adds, removes, demotes or promotes an
//     owner; admins manage readers, writers and admins, including each
//     other; a group always keeps at least one owner (RuleOwnerProtection).
//     Nobody raises their own role (RuleSelfPromotion); lowering it or
//     leaving is allowed.
//   - membership: an add names a non-member whose handle no current member
//     has, and no commit has two ops for one member (RuleDuplicateMember);
//     remove and set-role name a current member (RuleNotMember); a set-role
//     changes the role (RuleNoOp).
//   - epochs: a removal or demotion needs an OpRotate in the same commit,
//     and a commit holds at most one (RuleRotation). A rotating commit has
//     epoch+1 and a new, non-zero key commitment; any other commit keeps
//     both (RuleEpoch, RuleKeyCommitment).
//   - the history flag never changes after the genesis (RuleHistoryFlag), and
//     a commit has at least one op (RuleEmpty).
//   - leaving: a leave op names its author and is its commit's only op, so
//     it never rotates (RuleLeave); the last owner cannot leave
//     (RuleOwnerProtection). Nobody removes themself with a remove op
//     (RuleLeave): its rotation would let the leaver pick, and so know, the
//     next epoch's key. A leave sets PendingRotation, and while it is
//     set every commit other than a leave must rotate (RulePendingRotation).
//   - no shared history: in a group created without history sharing, a
//     commit that adds a member must rotate (RuleJoinRotation), so a joiner
//     never holds a key under which content was written before the join.
//   - self-update: an update-key op names its author, and its commit holds
//     exactly that op and one OpRotate, nothing else (RuleUpdateKey). Any
//     member may make it, whatever its role. It is signed with the author's
//     key before the update; afterwards the entry holds the new keys, so the
//     old signing key no longer signs and the new epoch key is wrapped to the
//     new encryption key. Both new keys differ from the entry's old ones and
//     from every other member's (RuleKeyReuse). Keeping the commit to the
//     update and its rotation keeps the rule simple: a member who may do
//     more makes a second commit. Its rotation also performs a pending
//     rotation, and in a group without shared history it adds nobody.
//   - every signing key an add or update-key op brings in passes
//     CheckSigningKey: not of small order, canonically encoded (RuleWeakKey,
//     checked by ParseCommit), and every encryption key CheckEncryptionKey
//     (RuleMalformed).
//   - suite: the genesis fixes the group's suite, and every later commit
//     has its version byte (RuleVersion). In suite v2 an op names a
//     member's keys by hash (MemberKeys); the verifier asks a
//     MemberKeySource for the author's keys and checks that they hash to
//     the author's entry and name the author's account and handle
//     (RuleMemberKeys) before it checks the hybrid signature. A v2
//     update-key's new keys are checked the same way and must be of a
//     later generation of the author's account (RuleKeyReuse). The keys of
//     an added member are not fetched here: whoever uses them (a client
//     wrapping to them, the server accepting the add) resolves them with
//     GroupState.MemberKeys, which makes the same checks.
//
// Authorization is judged against the state before the commit, and a commit
// applies atomically: each op sees the roles as they were when the author
// signed.

// Rule names of the chain verifier and the commit parser. They are stable:
// clients, the server's error responses and the auditor's report carry them.
const (
	RuleVersion         = "version"          // unknown commit version
	RuleMalformed       = "malformed"        // not a canonical, well-formed encoding
	RuleTooLarge        = "too-large"        // over MaxCommitSize or MaxCommitOps
	RuleUnknownOp       = "unknown-op"       // unknown op kind
	RuleGenesis         = "genesis"          // the first commit is not a valid genesis
	RuleGroup           = "group"            // commit for another group
	RuleSeq             = "seq"              // seq is not the previous seq plus one
	RulePrev            = "prev"             // prev is not the previous commit's hash
	RuleAuthor          = "author"           // author is not a current owner or admin
	RuleSignature       = "signature"        // signature does not verify under the author's key
	RuleHistoryFlag     = "history-flag"     // the history-sharing flag changed
	RuleEmpty           = "empty"            // a commit without ops
	RuleEpoch           = "epoch"            // epoch is not the previous epoch (+1 iff rotating)
	RuleRotation        = "rotation"         // removal or demotion without a rotation, or two rotations
	RuleKeyCommitment   = "key-commitment"   // key commitment reused on rotation, or changed without one
	RuleDuplicateMember = "duplicate-member" // adding a member or handle twice, or two ops for one member
	RuleNotMember       = "not-member"       // removing or changing the role of a non-member
	RuleSelfPromotion   = "self-promotion"   // an author raising their own role
	RuleOwnerProtection = "owner-protection" // a non-owner touching an owner, or no owner left
	RuleNoOp            = "no-op"            // set-role to the role the member already has
	RuleWeakKey         = "weak-key"         // an added signing key is of small order or not canonical
	RuleLeave           = "leave"            // a leave that names another member or comes with other ops, or a self-removal
	RulePendingRotation = "pending-rotation" // a member left, and the next admin commit does not rotate
	RuleJoinRotation    = "join-rotation"    // an add without a rotation in a group without shared history
	RuleUpdateKey       = "update-key"       // an update-key for another member, without a rotation, or with other ops
	// RuleMemberKeys (memberkeys.go): suite v2 keys unavailable, or not
	// the ones the entry names.
	// RuleKeyReuse (shared with the account chain): an update-key that
	// keeps an old key or takes another member's.
)

func ruleErr(rule, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Message: fmt.Sprintf(format, args...), Rule: rule}
}

// Member is a current member of a group, with the keys the chain recorded
// when the member was added: the keys themselves in suite v1, their
// MemberKeysHash in suite v2 (resolve them with GroupState.MemberKeys).
type Member struct {
	ID            AccountID
	Handle        Handle
	SigningKey    ed25519.PublicKey // suite v1
	EncryptionKey []byte            // suite v1
	KeysHash      [32]byte          // suite v2
	// Keys are a suite v2 member's keys once GroupState.WithMemberKeys
	// resolved and checked them (it also sets SigningKey to their Ed25519
	// half and EncryptionKey); nil otherwise. They are not encoded: a
	// checkpoint holds the hash.
	Keys        *MemberKeys
	Role        Role
	JoinedEpoch uint64 // the epoch of the commit that added the member
	// KeyEpoch is the first epoch of the member's current keys: JoinedEpoch,
	// or the epoch its latest self-update (OpUpdateKey) started. Readers
	// use it to tell which key signed what the member wrote at an epoch.
	KeyEpoch uint64
	// Leaf is the member's leaf in a tree group's ratchet tree.
	Leaf uint32
}

// GroupState is a group as a verified chain leaves it. The zero value is the
// state before the genesis; a zero value with only Group set additionally
// requires the genesis to be for that group.
//
// A GroupState is only meaningful when it comes from VerifyChain, Apply,
// Clone or UnmarshalBinary. Callers must treat its fields and members as
// read-only.
type GroupState struct {
	Group GroupID
	// Suite is SuiteV2 for a suite v2 group, zero for suite v1; the
	// genesis fixes it.
	Suite        uint8
	Seq          uint64   // seq of the head commit; 0 before the genesis
	Head         [32]byte // SignedCommit.Hash of the head commit
	Epoch        uint64
	ShareHistory bool
	// PendingRotation is set by a leave and cleared by a rotation: a member
	// left, still holding the current epoch key, so no client may encrypt
	// or wrap under that key, and the next commit by an admin or owner must
	// rotate.
	PendingRotation bool
	Members         map[AccountID]*Member // current members
	// Tree is a tree group's public ratchet tree (treegroup.go), nil in a
	// pairwise group. It is never changed in place: a commit replaces it.
	Tree *ratchettree.Tree
	// treeLeft holds the leaves of members who left since the last
	// rotation, which the rotation must remove from the tree.
	treeLeft []uint32

	// keyCommitments[e-1] is the key commitment of epoch e.
	keyCommitments [][32]byte
	// roles holds, for every account that was ever a member, its role
	// changes in chain order, at most one per epoch (the last one in that
	// epoch, which is also the highest: see RoleAt). Shared by clones
	// (cowmap.go), as is handles.
	roles cowMap[AccountID, []roleChange]

	// Derived from Members, rebuilt by reindex.
	handles cowMap[Handle, AccountID]
	owners  int

	// The members whose entries were added, replaced or removed since
	// Clone made this state (ChangedMembers). cloned is false in a state
	// Clone did not make, and changedAll set once changed would pass
	// maxChanged: every entry counts as changed then.
	changed    []AccountID
	cloned     bool
	changedAll bool

	// treeKeys is how checkTree checks a tree commit's public keys: set
	// only while VerifyChainKeysOnUse runs.
	treeKeys ratchettree.KeyCheck
}

// maxChanged bounds the changes a state lists (ChangedMembers): past it,
// a caller compares every member instead, as after a bulk change.
const maxChanged = 1 << 16

// ChangedMembers returns the members whose entries were added, replaced
// or removed (a removed member is listed but absent from Members) since
// Clone made s, VerifyChain counting as one Clone of its trusted state,
// with repeats. all is true when the list is not known: s was not made by
// Clone (a genesis, a decoded state), or more changed than maxChanged.
//
// It is what lets a client that checked every entry of a state check, in
// the state a sync verified from it, only the entries the sync's commits
// changed: entries are never changed in place (Clone), so any other entry
// is the one it checked.
func (s *GroupState) ChangedMembers() (ids []AccountID, all bool) {
	if !s.cloned || s.changedAll {
		return nil, true
	}
	return s.changed, false
}

// noteChanged records that member id's entry was added, replaced or
// removed.
func (s *GroupState) noteChanged(id AccountID) {
	if s.changedAll {
		return
	}
	if len(s.changed) >= maxChanged {
		s.changed, s.changedAll = nil, true
		return
	}
	s.changed = append(s.changed, id)
}

type roleChange struct {
	epoch uint64
	role  Role // RoleNone after a removal
}

// Clone returns a copy of s that can be changed without changing s. It
// costs a copy of the member map, not of each member, and the changes of
// s over the role histories and the handle index it shares (cowmap.go):
// members and role histories are copy-on-write (ownMember, recordRole),
// since a verifier clones a 100,000-member state for every commit it
// checks. Key byte
// slices are shared: they are never modified.
func (s *GroupState) Clone() *GroupState {
	c := &GroupState{
		Group:           s.Group,
		Suite:           s.Suite,
		Seq:             s.Seq,
		Head:            s.Head,
		Epoch:           s.Epoch,
		ShareHistory:    s.ShareHistory,
		Members:         maps.Clone(s.Members),
		PendingRotation: s.PendingRotation,
		Tree:            s.Tree,
		treeLeft:        slices.Clone(s.treeLeft),
		keyCommitments:  slices.Clone(s.keyCommitments),
		roles:           s.roles.clone(),
		handles:         s.handles.clone(),
		owners:          s.owners,
		cloned:          true,
	}
	if c.Members == nil || c.roles.base == nil || c.handles.base == nil {
		c.reindex()
	}
	return c
}

// ownMember returns member id's entry for changing: a copy of it, stored
// in s's map, since Clone shares entries between states.
func (s *GroupState) ownMember(id AccountID) *Member {
	mc := *s.Members[id]
	s.Members[id] = &mc
	s.noteChanged(id)
	return &mc
}

func (s *GroupState) reindex() {
	if s.Members == nil {
		s.Members = make(map[AccountID]*Member)
	}
	if s.roles.base == nil {
		s.roles = newCowMap[AccountID, []roleChange](nil)
	}
	handles := make(map[Handle]AccountID, len(s.Members))
	s.owners = 0
	for id, m := range s.Members {
		handles[m.Handle] = id
		if m.Role == RoleOwner {
			s.owners++
		}
	}
	s.handles = newCowMap(handles)
}

// checkShape rejects a state that was assembled by hand instead of by the
// verifier, before it can make the verifier panic.
func (s *GroupState) checkShape() error {
	if s.Seq == 0 {
		return nil
	}
	if s.Epoch == 0 || uint64(len(s.keyCommitments)) != s.Epoch || s.roles.base == nil {
		return Errorf(EINVALID, "group state is not a verified checkpoint")
	}
	if s.handles.base == nil {
		s.reindex()
	}
	return nil
}

// KeyCommitment returns the key commitment of epoch, if the chain has
// reached it.
func (s *GroupState) KeyCommitment(epoch uint64) ([32]byte, bool) {
	if epoch == 0 || epoch > uint64(len(s.keyCommitments)) {
		return [32]byte{}, false
	}
	return s.keyCommitments[epoch-1], true
}

// RoleAt returns the highest role id held at any point during epoch, or
// RoleNone if id was not a member during epoch (or epoch is not reached
// yet). Readers use it to check that a resource's author could write at the
// resource's epoch.
//
// Because removals and demotions always start a new epoch, a role only
// rises within an epoch, so the highest role during an epoch is the last
// one recorded in it or before it.
func (s *GroupState) RoleAt(id AccountID, epoch uint64) Role {
	if epoch == 0 || epoch > s.Epoch {
		return RoleNone
	}
	h, _ := s.roles.get(id)
	i := sort.Search(len(h), func(i int) bool { return h[i].epoch > epoch })
	if i == 0 {
		return RoleNone
	}
	return h[i-1].role
}

// MemberByHandle is the current member with handle h, or nil.
func (s *GroupState) MemberByHandle(h Handle) *Member {
	if s.handles.base == nil {
		// A state built by hand, not by the verifier: no index.
		for _, m := range s.Members {
			if m.Handle == h {
				return m
			}
		}
		return nil
	}
	if id, ok := s.handles.get(h); ok {
		return s.Members[id]
	}
	return nil
}

// SortedMembers returns copies of the current members, ordered by id.
func (s *GroupState) SortedMembers() []*Member {
	ms := s.sortedMembers()
	for i, m := range ms {
		mc := *m
		ms[i] = &mc
	}
	return ms
}

// sortedMembers is SortedMembers without the copies, for callers in this
// package that only read them (marshalling a 100,000-member state).
func (s *GroupState) sortedMembers() []*Member {
	// Sorted by the map's keys (each entry's ID), kept beside the entries:
	// comparing through the pointers cost a cache miss per comparison.
	type keyed struct {
		id AccountID
		m  *Member
	}
	byID := make([]keyed, 0, len(s.Members))
	for id, m := range s.Members {
		byID = append(byID, keyed{id, m})
	}
	slices.SortFunc(byID, func(a, b keyed) int { return compareIDs(a.id, b.id) })
	ms := make([]*Member, len(byID))
	for i, k := range byID {
		ms[i] = k.m
	}
	return ms
}

// compareIDs orders account ids as bytes.Compare orders their bytes, in
// two integer comparisons.
func compareIDs(a, b AccountID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

func (s *GroupState) name(id AccountID) string {
	if m := s.Members[id]; m != nil {
		return fmt.Sprintf("%s (%s)", m.Handle, id)
	}
	return id.String()
}

// Apply verifies sc as the next commit of s and applies it in place. On
// error, s is unchanged. The error is an *Error with code EINVALID and a
// Rule.
//
// Apply verifies suite v1 commits only: a suite v2 commit needs the keys
// its author's entry refers to, which ApplyWith takes.
func (s *GroupState) Apply(sc SignedCommit) error { return s.ApplyWith(sc, nil) }

// ApplyWith is Apply with a source of the suite v2 member keys the commit
// refers to. src is not used for suite v1 commits and may be nil.
func (s *GroupState) ApplyWith(sc SignedCommit, src MemberKeySource) error {
	if err := s.checkShape(); err != nil {
		return err
	}
	c, err := ParseCommit(sc.Body)
	if err != nil {
		return err
	}
	return s.applyParsed(c, sc.Hash(), func(sg commitSigner) error {
		return checkSignature(c, sg, sc, src)
	})
}

// commitSigner is whom the rules require to have signed a commit: the
// author's Ed25519 key in suite v1; in suite v2 the hash of the author's
// keys, with the handle and account those keys must name.
type commitSigner struct {
	ed       ed25519.PublicKey
	keysHash [32]byte
	handle   Handle
}

func (a commitSigner) equal(b commitSigner) bool {
	return bytes.Equal(a.ed, b.ed) && a.keysHash == b.keysHash && a.handle == b.handle
}

// checkSignature verifies sc, whose body parsed as c, as signed by sg: an
// Ed25519 signature in suite v1; in suite v2 a hybrid signature under the
// keys src gives for sg, checked against sg first, and for an update-key
// the new keys, which must be a later generation of the same account.
func checkSignature(c *Commit, sg commitSigner, sc SignedCommit, src MemberKeySource) error {
	if c.Suite != SuiteV2 {
		if !VerifySignature(sg.ed, LabelCommit, sc.Body, sc.Signature) {
			return signatureErr(c)
		}
		return nil
	}
	k, err := resolveMemberKeys(src, sg.keysHash, c.Author, sg.handle)
	if err != nil {
		return err
	}
	if err := k.SigningKey.Verify(LabelCommit, sc.Body, sc.Signature); err != nil {
		return ruleErr(RuleSignature, "signature does not verify under the signing key of author %s: %s", c.Author, ErrorMessage(err))
	}
	for i, op := range c.Ops {
		if op.Kind != OpUpdateKey || op.Member != c.Author {
			continue
		}
		nk, err := resolveMemberKeys(src, op.KeysHash, c.Author, sg.handle)
		if err != nil {
			return err
		}
		if nk.Generation <= k.Generation || nk.Origin != k.Origin {
			return ruleErr(RuleKeyReuse, "op %d: the update-key of %s must move to a later generation of its account's keys (from %d, not to %d)", i, c.Author, k.Generation, nk.Generation)
		}
	}
	return nil
}

// applyParsed is Apply for a commit already parsed and hashed. check
// verifies the commit's signature as made by a signer and returns nil if it
// is; it is asked about exactly one signer, the one the rules require, and
// nothing is applied unless it says yes.
func (s *GroupState) applyParsed(c *Commit, hash [32]byte, check func(commitSigner) error) error {
	return s.applyChecked(c, hash, check, nil)
}

// applyChecked is applyParsed that, when cts is not nil, also requires
// cts to be exactly the tree ciphertexts the commit needs (ApplyTree).
func (s *GroupState) applyChecked(c *Commit, hash [32]byte, check func(commitSigner) error, cts []ratchettree.Ciphertext) error {
	sg, err := s.authorize(c)
	if err != nil {
		return err
	}
	if err := check(sg); err != nil {
		return err
	}
	return s.apply(c, hash, cts)
}

func signatureErr(c *Commit) error {
	return ruleErr(RuleSignature, "signature does not verify under the signing key of author %s", c.Author)
}

// authorize checks the commit's position and author and returns the
// signer that must have signed it.
func (s *GroupState) authorize(c *Commit) (commitSigner, error) {
	if s.Seq == 0 {
		return s.authorizeGenesis(c)
	}
	if c.Group != s.Group {
		return commitSigner{}, ruleErr(RuleGroup, "names group %s, not %s", c.Group, s.Group)
	}
	if c.Suite != s.Suite {
		return commitSigner{}, ruleErr(RuleVersion, "a commit of suite %d in a group of suite %d", suiteOf(c.Suite), suiteOf(s.Suite))
	}
	// Seq is a bigint in storage; a chain never gets near this.
	if s.Seq >= math.MaxInt64 {
		return commitSigner{}, ruleErr(RuleSeq, "the chain is full")
	}
	if c.Seq != s.Seq+1 {
		return commitSigner{}, ruleErr(RuleSeq, "seq is %d, want %d", c.Seq, s.Seq+1)
	}
	if c.Prev != s.Head {
		return commitSigner{}, ruleErr(RulePrev, "prev is not the hash of commit %d", s.Seq)
	}
	m := s.Members[c.Author]
	if m == nil {
		return commitSigner{}, ruleErr(RuleAuthor, "author %s is not a member of the group", c.Author)
	}
	sg := m.signer()
	if leave, err := checkLeaveShape(c); err != nil || leave {
		// Any member may leave, and only leave.
		return sg, err
	}
	if update, err := checkUpdateKeyShape(c); err != nil || update {
		// Any member may replace its own keys, and do only that. The
		// commit is signed with the key the entry holds before it.
		return sg, err
	}
	if m.Role < RoleAdmin {
		return commitSigner{}, ruleErr(RuleAuthor, "author %s is a %s; only owners and admins change membership", s.name(c.Author), m.Role)
	}
	return sg, nil
}

// signer is whom the rules require to sign m's commits.
func (m *Member) signer() commitSigner {
	if m.KeysHash != ([32]byte{}) {
		// Suite v2: the hash names the signer; a resolved entry's Ed25519
		// half is no signer of its own.
		return commitSigner{keysHash: m.KeysHash, handle: m.Handle}
	}
	return commitSigner{ed: m.SigningKey, handle: m.Handle}
}

func suiteOf(v uint8) uint8 {
	if v == 0 {
		return SuiteV1
	}
	return v
}

// checkLeaveShape reports whether c is a leave: its only op is OpLeave and
// names its author. A commit with a leave op in any other shape is refused:
// a leaver removes only themself, changes nothing else, and never rotates.
func checkLeaveShape(c *Commit) (bool, error) {
	for i, op := range c.Ops {
		if op.Kind != OpLeave {
			continue
		}
		if op.Member != c.Author {
			return false, ruleErr(RuleLeave, "op %d: %s cannot make %s leave; only a member's own leave is allowed", i, c.Author, op.Member)
		}
		if len(c.Ops) != 1 {
			return false, ruleErr(RuleLeave, "op %d: a leave must be the only op of its commit (no rotation, no other change)", i)
		}
		return true, nil
	}
	return false, nil
}

// checkUpdateKeyShape reports whether c is a self-update: an OpUpdateKey
// naming its author plus one OpRotate, and nothing else. A commit with an
// update-key op in any other shape is refused: the update must start an
// epoch whose key only the new keys receive, and a member who is not an
// admin must not slip anything else into the commit.
func checkUpdateKeyShape(c *Commit) (bool, error) {
	updates, rotations := 0, 0
	for i, op := range c.Ops {
		switch op.Kind {
		case OpUpdateKey:
			if op.Member != c.Author {
				return false, ruleErr(RuleUpdateKey, "op %d: %s cannot update the keys of %s; a member updates only its own", i, c.Author, op.Member)
			}
			updates++
		case OpRotate:
			rotations++
		}
	}
	switch {
	case updates == 0:
		return false, nil
	case updates > 1:
		return false, ruleErr(RuleUpdateKey, "%d update-key ops; a commit holds at most one", updates)
	case rotations != 1 || len(c.Ops) != 2:
		return false, ruleErr(RuleUpdateKey, "an update-key must come with one rotation and nothing else")
	}
	return true, nil
}

func (s *GroupState) authorizeGenesis(c *Commit) (commitSigner, error) {
	var none commitSigner
	if !s.Group.IsZero() && c.Group != s.Group {
		return none, ruleErr(RuleGroup, "genesis is for group %s, not %s", c.Group, s.Group)
	}
	if c.Seq != 1 {
		return none, ruleErr(RuleGenesis, "the first commit must have seq 1, not %d", c.Seq)
	}
	if c.Prev != ([32]byte{}) {
		return none, ruleErr(RuleGenesis, "the genesis must have a zero prev")
	}
	if c.Epoch != 1 {
		return none, ruleErr(RuleGenesis, "the genesis must start epoch 1, not %d", c.Epoch)
	}
	if len(c.Ops) == 0 {
		return none, ruleErr(RuleEmpty, "the genesis has no ops")
	}
	op := c.Ops[0]
	if op.Kind != OpAdd || op.Member != c.Author || op.Role != RoleOwner {
		return none, ruleErr(RuleGenesis, "the genesis must first add its author %s as owner", c.Author)
	}
	return commitSigner{ed: op.SigningKey, keysHash: op.KeysHash, handle: op.Handle}, nil
}

// apply checks the rules that follow a verified signature and, if all hold,
// applies c. It changes nothing unless it returns nil. The rules of each op
// kind are in opRules; apply holds the rules about the commit as a whole.
func (s *GroupState) apply(c *Commit, hash [32]byte, cts []ratchettree.Ciphertext) error {
	cc := &commitCheck{s: s, c: c, genesis: s.Seq == 0, authorRole: RoleOwner, touched: make(map[AccountID]struct{}, len(c.Ops))}
	if !cc.genesis {
		cc.authorRole, cc.owners = s.Members[c.Author].Role, s.owners
		if c.ShareHistory != s.ShareHistory {
			return ruleErr(RuleHistoryFlag, "the history-sharing flag is fixed at %t by the genesis", s.ShareHistory)
		}
		if len(c.Ops) == 0 {
			return ruleErr(RuleEmpty, "no ops")
		}
	}
	if err := cc.checkEpoch(); err != nil {
		return err
	}
	for i, op := range c.Ops {
		if op.Kind == OpRotate {
			continue
		}
		if cc.genesis && op.Kind != OpAdd {
			return ruleErr(RuleGenesis, "op %d: the genesis may only add members, not %s", i, op.Kind)
		}
		if _, dup := cc.touched[op.Member]; dup {
			return ruleErr(RuleDuplicateMember, "op %d: more than one op for member %s in one commit", i, op.Member)
		}
		cc.touched[op.Member] = struct{}{}
		if err := opRules[op.Kind].check(cc, i, op); err != nil {
			return err
		}
	}
	if err := cc.checkCommit(); err != nil {
		return err
	}
	if err := cc.checkTree(); err != nil {
		return err
	}
	if cts != nil {
		var addrs []ratchettree.Ciphertext
		if cc.tree != nil {
			addrs = cc.tree.addrs
		}
		if err := ratchettree.CheckCiphertexts(addrs, cts); err != nil {
			return treeErr(err)
		}
	}

	// Every rule holds: apply. Nothing below can fail.
	if cc.genesis {
		*s = GroupState{
			Group:        c.Group,
			Suite:        c.Suite,
			ShareHistory: c.ShareHistory,
			Members:      make(map[AccountID]*Member, len(c.Ops)),
			roles:        newCowMap(make(map[AccountID][]roleChange, len(c.Ops))),
			handles:      newCowMap(make(map[Handle]AccountID, len(c.Ops))),
			treeKeys:     s.treeKeys,
		}
	}
	for _, op := range c.Ops {
		if r, ok := opRules[op.Kind]; ok {
			r.apply(s, c, op)
		}
	}
	s.applyTree(cc)
	if cc.genesis || cc.rotating {
		s.keyCommitments = append(s.keyCommitments, c.KeyCommitment)
	}
	s.PendingRotation = cc.leaving || s.PendingRotation && !cc.rotating
	s.Seq, s.Head, s.Epoch, s.owners = c.Seq, hash, c.Epoch, cc.owners
	return nil
}

// commitCheck is the verification of one commit against the state before
// it: what the ops found so far, for the rules about the whole commit.
type commitCheck struct {
	s          *GroupState
	c          *Commit
	genesis    bool
	authorRole Role // the author's role before the commit
	rotating   bool
	owners     int // owners after the ops checked so far
	touched    map[AccountID]struct{}
	added      map[Handle]struct{}
	needRotate bool // a removal or demotion
	leaving    bool // a leave op
	selfRemove bool // the author removes themself
	tree       *treeCheck
}

// opRule is what one op kind requires and does. check judges the op against
// the state before the commit; apply changes the state once the whole
// commit has passed.
type opRule struct {
	check func(cc *commitCheck, i int, op Op) error
	apply func(s *GroupState, c *Commit, op Op)
}

// opRules is the table of membership ops. OpRotate has no entry: a rotation
// is judged with the epoch (checkEpoch).
var opRules = map[OpKind]opRule{
	OpAdd:       {(*commitCheck).checkAdd, (*GroupState).applyAdd},
	OpRemove:    {(*commitCheck).checkRemove, (*GroupState).applyRemove},
	OpSetRole:   {(*commitCheck).checkSetRole, (*GroupState).applySetRole},
	OpLeave:     {(*commitCheck).checkLeave, (*GroupState).applyLeave},
	OpUpdateKey: {(*commitCheck).checkUpdateKey, (*GroupState).applyUpdateKey},
}

// checkEpoch: a rotating commit starts epoch+1 with a new, non-zero key
// commitment; any other commit keeps both; at most one rotation per commit.
func (cc *commitCheck) checkEpoch() error {
	s, c := cc.s, cc.c
	rotations := 0
	for _, op := range c.Ops {
		if op.Kind == OpRotate {
			rotations++
		}
	}
	cc.rotating = rotations > 0
	switch {
	case cc.genesis && cc.rotating:
		return ruleErr(RuleGenesis, "the genesis starts epoch 1 and cannot rotate")
	case rotations > 1:
		return ruleErr(RuleRotation, "%d rotate ops; at most one is allowed", rotations)
	case cc.genesis:
		if c.KeyCommitment == ([32]byte{}) {
			return ruleErr(RuleKeyCommitment, "the key commitment is zero")
		}
	case cc.rotating:
		if c.Epoch != s.Epoch+1 {
			return ruleErr(RuleEpoch, "a rotation from epoch %d must start epoch %d, not %d", s.Epoch, s.Epoch+1, c.Epoch)
		}
		if c.KeyCommitment == ([32]byte{}) {
			return ruleErr(RuleKeyCommitment, "the key commitment is zero")
		}
		if c.KeyCommitment == s.keyCommitments[s.Epoch-1] {
			return ruleErr(RuleKeyCommitment, "the rotation to epoch %d reuses the key commitment of epoch %d", c.Epoch, s.Epoch)
		}
	default:
		if c.Epoch != s.Epoch {
			return ruleErr(RuleEpoch, "epoch is %d, but the group is at epoch %d and only a rotation changes it", c.Epoch, s.Epoch)
		}
		if c.KeyCommitment != s.keyCommitments[s.Epoch-1] {
			return ruleErr(RuleKeyCommitment, "the key commitment changed without a rotation")
		}
	}
	return nil
}

// checkCommit holds the rules about the commit as a whole, once every op
// passed its own.
func (cc *commitCheck) checkCommit() error {
	switch {
	case cc.needRotate && !cc.rotating:
		return ruleErr(RuleRotation, "removing or demoting a member requires a key rotation (a rotate op) in the same commit")
	case cc.s.PendingRotation && !cc.leaving && !cc.rotating:
		return ruleErr(RulePendingRotation, "a member left at epoch %d: the next commit by an admin or owner must rotate", cc.s.Epoch)
	case !cc.genesis && !cc.c.ShareHistory && cc.added != nil && !cc.rotating:
		return ruleErr(RuleJoinRotation, "the group does not share history: adding a member requires a key rotation in the same commit")
	case cc.owners < 1:
		return ruleErr(RuleOwnerProtection, "the group must keep at least one owner")
	case cc.selfRemove:
		return ruleErr(RuleLeave, "author %s removes themself in a commit that rotates, and so picks the key of an epoch they will not be in: leave with a leave op instead", cc.s.name(cc.c.Author))
	}
	return nil
}

// checkAdd: an add names a non-member whose handle no member has; only an
// owner adds an owner.
func (cc *commitCheck) checkAdd(i int, op Op) error {
	s := cc.s
	if s.Members[op.Member] != nil {
		return ruleErr(RuleDuplicateMember, "op %d: %s is already a member", i, s.name(op.Member))
	}
	if other, ok := s.handles.get(op.Handle); ok {
		return ruleErr(RuleDuplicateMember, "op %d: handle %s is already used by member %s", i, op.Handle, other)
	}
	if _, ok := cc.added[op.Handle]; ok {
		return ruleErr(RuleDuplicateMember, "op %d: handle %s is added twice", i, op.Handle)
	}
	if cc.added == nil {
		cc.added = make(map[Handle]struct{})
	}
	cc.added[op.Handle] = struct{}{}
	if op.Role == RoleOwner {
		if cc.authorRole != RoleOwner {
			return ruleErr(RuleOwnerProtection, "op %d: only an owner may add an owner", i)
		}
		cc.owners++
	}
	return nil
}

// checkRemove: a removal names a member, only an owner removes an owner,
// and the commit must rotate.
func (cc *commitCheck) checkRemove(i int, op Op) error {
	s := cc.s
	m := s.Members[op.Member]
	if m == nil {
		return ruleErr(RuleNotMember, "op %d: cannot remove %s: not a member", i, op.Member)
	}
	if m.Role == RoleOwner {
		if cc.authorRole != RoleOwner {
			return ruleErr(RuleOwnerProtection, "op %d: only an owner may remove owner %s", i, s.name(op.Member))
		}
		cc.owners--
	}
	cc.needRotate = true
	cc.selfRemove = cc.selfRemove || op.Member == cc.c.Author
	return nil
}

// checkSetRole: a role change names a member and changes its role; nobody
// raises their own role; only an owner makes or unmakes an owner; a
// demotion must rotate.
func (cc *commitCheck) checkSetRole(i int, op Op) error {
	s := cc.s
	m := s.Members[op.Member]
	if m == nil {
		return ruleErr(RuleNotMember, "op %d: cannot set the role of %s: not a member", i, op.Member)
	}
	if op.Role == m.Role {
		return ruleErr(RuleNoOp, "op %d: %s is already a %s", i, s.name(op.Member), m.Role)
	}
	if op.Member == cc.c.Author && op.Role > m.Role {
		return ruleErr(RuleSelfPromotion, "op %d: author %s cannot raise their own role from %s to %s", i, s.name(op.Member), m.Role, op.Role)
	}
	if m.Role == RoleOwner || op.Role == RoleOwner {
		if cc.authorRole != RoleOwner {
			return ruleErr(RuleOwnerProtection, "op %d: only an owner may change %s from %s to %s", i, s.name(op.Member), m.Role, op.Role)
		}
		if m.Role == RoleOwner {
			cc.owners--
		} else {
			cc.owners++
		}
	}
	if op.Role < m.Role {
		cc.needRotate = true
	}
	return nil
}

// checkLeave: authorize already required a leave to be its commit's only op
// and to name its author. The last owner cannot leave: owner protection
// holds for leaving as for removal.
func (cc *commitCheck) checkLeave(i int, op Op) error {
	if cc.s.Members[op.Member].Role == RoleOwner {
		cc.owners--
	}
	cc.leaving = true
	return nil
}

// checkUpdateKey: authorize already required the update to be its
// author's own, alone with a rotation. Both keys change, so the old signing
// key stops signing and the old encryption key gets no wrap of the new
// epoch; and neither is another member's, so no entry can pass for another.
func (cc *commitCheck) checkUpdateKey(i int, op Op) error {
	s := cc.s
	m := s.Members[op.Member]
	if s.Suite == SuiteV2 {
		// checkSignature already required the new keys to be a later
		// generation of the author's own account, which refuses the keys
		// the entry has and, since the hash binds the account, any other
		// member's.
		return nil
	}
	if bytes.Equal(op.SigningKey, m.SigningKey) || bytes.Equal(op.EncryptionKey, m.EncryptionKey) {
		return ruleErr(RuleKeyReuse, "op %d: the update-key of %s must replace both its signing and its encryption key", i, s.name(op.Member))
	}
	for id, other := range s.Members {
		if id == op.Member {
			continue
		}
		if bytes.Equal(op.SigningKey, other.SigningKey) || bytes.Equal(op.EncryptionKey, other.EncryptionKey) {
			return ruleErr(RuleKeyReuse, "op %d: the update-key of %s takes a key of member %s", i, s.name(op.Member), s.name(id))
		}
	}
	return nil
}

func (s *GroupState) applyUpdateKey(c *Commit, op Op) {
	m := s.ownMember(op.Member)
	m.SigningKey, m.EncryptionKey, m.KeysHash, m.Keys, m.KeyEpoch = op.SigningKey, op.EncryptionKey, op.KeysHash, nil, c.Epoch
}

func (s *GroupState) applyAdd(c *Commit, op Op) {
	s.Members[op.Member] = &Member{
		ID:            op.Member,
		Handle:        op.Handle,
		SigningKey:    op.SigningKey,
		EncryptionKey: op.EncryptionKey,
		KeysHash:      op.KeysHash,
		Role:          op.Role,
		JoinedEpoch:   c.Epoch,
		KeyEpoch:      c.Epoch,
	}
	s.handles.set(op.Handle, op.Member)
	s.noteChanged(op.Member)
	s.recordRole(op.Member, c.Epoch, op.Role)
}

func (s *GroupState) applyRemove(c *Commit, op Op) {
	s.handles.del(s.Members[op.Member].Handle)
	delete(s.Members, op.Member)
	s.noteChanged(op.Member)
	s.recordRole(op.Member, c.Epoch, RoleNone)
}

func (s *GroupState) applySetRole(c *Commit, op Op) {
	s.ownMember(op.Member).Role = op.Role
	s.recordRole(op.Member, c.Epoch, op.Role)
}

// applyLeave removes the leaver without starting an epoch. The leaver held
// their role for all of the current epoch (they keep its key, and may have
// written under it), so the loss of the role is recorded at the next epoch,
// which the pending rotation starts. RoleAt never answers for an epoch the
// chain has not reached, and a re-add (which must rotate) overwrites it.
func (s *GroupState) applyLeave(c *Commit, op Op) {
	s.handles.del(s.Members[op.Member].Handle)
	delete(s.Members, op.Member)
	s.noteChanged(op.Member)
	s.recordRole(op.Member, c.Epoch+1, RoleNone)
}

func (s *GroupState) recordRole(id AccountID, epoch uint64, r Role) {
	// Histories are shared between clones (Clone): never write into one's
	// backing array.
	h, _ := s.roles.get(id)
	if n := len(h); n > 0 && h[n-1].epoch == epoch {
		// Within an epoch a role only rises (see RoleAt): keep the last.
		h = slices.Clone(h)
		h[n-1].role = r
		s.roles.set(id, h)
		return
	}
	s.roles.set(id, append(slices.Clip(h), roleChange{epoch, r}))
}

// chainWindow is how many commits VerifyChain parses and verifies in
// parallel at a time. It bounds the memory held for parsed commits.
const chainWindow = 1024

// VerifyChain verifies commits as the continuation of trusted and returns
// the resulting state. With trusted == nil, commits[0] must be a valid
// genesis, and the caller must check that the result's Group is the group it
// asked for (or pass &GroupState{Group: id} instead of nil). trusted is never
// modified. The error is an *Error with code EINVALID, a Rule, and a message
// naming the first commit that fails; clients wrap it as a security error.
//
// Commits are checked in order; the error is always the one that applying
// them one by one with Apply would give. The two expensive steps, parsing
// (which validates X-Wing keys) and signature verification, are spread over
// GOMAXPROCS goroutines.
//
// VerifyChain verifies suite v1 chains only; VerifyChainWith takes the
// source of the member keys a suite v2 chain refers to.
func VerifyChain(trusted *GroupState, commits []SignedCommit) (*GroupState, error) {
	return VerifyChainWith(trusted, commits, nil)
}

// VerifyChainWith is VerifyChain with a source of suite v2 member keys,
// which it calls from several goroutines at once. src is not used for a
// suite v1 chain and may be nil.
func VerifyChainWith(trusted *GroupState, commits []SignedCommit, src MemberKeySource) (*GroupState, error) {
	return verifyChain(trusted, commits, src, ratchettree.ParseKeys)
}

// VerifyChainKeysOnUse is VerifyChainWith for a client: a tree commit's
// public keys are checked for size, not parsed as X-Wing keys
// (ratchettree.KeySizes), because a client parses each key when it seals
// to it and most it never seals to. Every other rule is checked as
// VerifyChainWith checks it. cofferd and coffer-audit use VerifyChainWith,
// so a stored chain holds only keys that parse.
func VerifyChainKeysOnUse(trusted *GroupState, commits []SignedCommit, src MemberKeySource) (*GroupState, error) {
	return verifyChain(trusted, commits, src, ratchettree.KeySizes)
}

func verifyChain(trusted *GroupState, commits []SignedCommit, src MemberKeySource, kc ratchettree.KeyCheck) (*GroupState, error) {
	var s *GroupState
	if trusted == nil {
		s = new(GroupState)
		s.reindex()
	} else {
		s = trusted.Clone()
	}
	if err := s.checkShape(); err != nil {
		return nil, err
	}
	if s.Seq == 0 && len(commits) == 0 {
		return nil, ruleErr(RuleGenesis, "the chain is empty")
	}
	base := s.Seq
	s.treeKeys = kc
	for start := 0; start < len(commits); start += chainWindow {
		batch := commits[start:min(start+chainWindow, len(commits))]
		if i, err := s.verifyWindow(batch, src); err != nil {
			return nil, atCommit(err, base+uint64(start+i)+1)
		}
	}
	// The state goes on to Apply, which checks keys in full.
	s.treeKeys = ratchettree.ParseKeys
	return s, nil
}

type parsedCommit struct {
	c    *Commit
	hash [32]byte
	err  error
	// The signature check done ahead of Apply: its result (nil when the
	// signature verifies) for signer, the signer the author is expected
	// to be; checked is false when no signer was expected.
	signer  commitSigner
	checked bool
	sigErr  error
}

// verifyWindow applies batch to s and returns the index and error of the
// first commit that fails, which is always the error that applying the
// commits one by one with Apply gives.
//
// The expensive steps run ahead of the rules, on every core: parsing (which
// validates X-Wing keys), hashing, and Ed25519 verification under the key
// each author is expected to hold, which expectedAuthorKeys finds in one
// cheap pass over the add ops. The rules then run in order, through the
// same applyParsed as Apply, and a commit is applied only after its
// signature verified under the key the rules name: the key checked ahead,
// when it is the same key, or else (only in a chain that breaks a rule)
// that key, checked then.
func (s *GroupState) verifyWindow(batch []SignedCommit, src MemberKeySource) (int, error) {
	parsed := make([]parsedCommit, len(batch))
	forEach(len(batch), func(i int) {
		p := &parsed[i]
		p.c, p.err = ParseCommit(batch[i].Body)
		if p.err == nil {
			p.hash = batch[i].Hash()
		}
	})
	n := s.expectedAuthorKeys(parsed)
	forEach(n, func(i int) {
		if p := &parsed[i]; p.checked {
			p.sigErr = checkSignature(p.c, p.signer, batch[i], src)
		}
	})
	return s.applyWindow(batch, parsed, src)
}

// applyWindow runs the rules over batch in order, with the results of the
// checks done ahead in parsed, and stops at the first commit that fails.
func (s *GroupState) applyWindow(batch []SignedCommit, parsed []parsedCommit, src MemberKeySource) (int, error) {
	for i := range parsed {
		p := &parsed[i]
		if p.err != nil {
			return i, p.err
		}
		err := s.applyParsed(p.c, p.hash, func(sg commitSigner) error {
			if p.checked && sg.equal(p.signer) {
				return p.sigErr
			}
			return checkSignature(p.c, sg, batch[i], src)
		})
		if err != nil {
			return i, err
		}
	}
	return 0, nil
}

// expectedAuthorKeys sets parsed[i].signer to the signer the author of
// commit i is if the chain so far is valid: the keys of the author's
// latest add or update-key, in s or in the commits before i (a genesis: its
// first op's).
// It trusts nothing: the rules later compare it with the signer they
// require. It returns how many leading commits parsed.
func (s *GroupState) expectedAuthorKeys(parsed []parsedCommit) int {
	latest := make(map[AccountID]commitSigner)
	genesis := s.Seq == 0
	current := func(id AccountID) (commitSigner, bool) {
		if sg, ok := latest[id]; ok {
			return sg, true
		}
		if m := s.Members[id]; m != nil {
			return m.signer(), true
		}
		return commitSigner{}, false
	}
	for i := range parsed {
		p := &parsed[i]
		if p.err != nil {
			return i
		}
		c := p.c
		switch {
		case genesis && i == 0:
			if len(c.Ops) > 0 && c.Ops[0].Kind == OpAdd {
				op := c.Ops[0]
				p.signer, p.checked = commitSigner{ed: op.SigningKey, keysHash: op.KeysHash, handle: op.Handle}, true
			}
		default:
			p.signer, p.checked = current(c.Author)
		}
		for _, op := range c.Ops {
			switch op.Kind {
			case OpAdd:
				latest[op.Member] = commitSigner{ed: op.SigningKey, keysHash: op.KeysHash, handle: op.Handle}
			case OpUpdateKey:
				sg, _ := current(op.Member)
				latest[op.Member] = commitSigner{ed: op.SigningKey, keysHash: op.KeysHash, handle: sg.handle}
			}
		}
	}
	return len(parsed)
}

func atCommit(err error, seq uint64) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Code: e.Code, Rule: e.Rule, Message: fmt.Sprintf("commit %d: %s", seq, e.Message)}
	}
	return err
}

// forEach calls f(i) for every i in [0, n), spread over GOMAXPROCS
// goroutines in contiguous chunks.
func forEach(n int, f func(i int)) {
	const minChunk = 16
	workers := min(runtime.GOMAXPROCS(0), (n+minChunk-1)/minChunk)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				f(i)
			}
		})
	}
	wg.Wait()
}

// stateVersion versions the GroupState checkpoint encoding. Version 2 adds
// the pending-rotation flag, version 3 the key epochs of members who
// updated their keys. UnmarshalBinary still reads versions 1 and 2, written
// before leave and update-key ops existed, when no rotation could be
// pending and every member's keys were those it joined with.
//
// stateVersionV2 is a suite v2 group's checkpoint: version 3's layout with
// each member's keys_hash [32]byte in place of its two keys.
//
// stateVersionTree is a tree group's checkpoint: version 4's layout
// followed by its tree (see MarshalBinary).
const (
	stateVersion     = 3
	stateVersionV2   = 4
	stateVersionTree = 5
	// stateVersionTreeDetached is version 5 with the tree's leaf count in
	// place of the tree, which the server keeps one row per node
	// (MarshalBinaryDetached).
	stateVersionTreeDetached = 6
	// Version 7 (stateVersionRows, staterows.go) is the header of a state
	// stored in rows; UnmarshalBinary does not read it.
)

// MarshalBinary encodes s as a checkpoint that UnmarshalBinary restores, so
// the server and clients can resume verification from it instead of from
// the genesis. The encoding is deterministic (members and accounts sorted
// by id):
//
//	version uint8 = 3
//	group [16]byte, seq uint64, head [32]byte, epoch uint64, share_history uint8,
//	pending_rotation uint8
//	key_commitments epoch × [32]byte
//	member_count uint32, then per member by id:
//	  id [16]byte, handle <uint8 length>, signing_key [32]byte,
//	  encryption_key [1216]byte, role uint8, joined_epoch uint64
//	account_count uint32, then per account ever a member, by id:
//	  id [16]byte, change_count uint32, change_count × (epoch uint64, role uint8)
//	updated_count uint32, then per member whose KeyEpoch is not its
//	JoinedEpoch, by id:
//	  id [16]byte, key_epoch uint64 (above joined_epoch, at most epoch)
//
// A role change may name epoch+1 only while a rotation is pending: it is a
// leaver's loss of role, which takes effect at the next epoch.
//
// Version 4 (suite v2) has keys_hash [32]byte in place of each member's two
// keys. Version 5 (a tree group) is version 4 followed by:
//
//	per member by id: leaf uint32
//	left_count uint32, left_count × leaf uint32 (members who left since the
//	  last rotation)
//	tree <uint32 length> (ratchettree's public tree encoding: keys, taint)
//
// A checkpoint is trusted data: whoever can change it can change what the
// verifier believes. Keep it where the verifier keeps its own state.
func (s *GroupState) MarshalBinary() ([]byte, error) { return s.marshalState(false) }

func (s *GroupState) marshalState(detached bool) ([]byte, error) {
	if s.Seq == 0 {
		return nil, Errorf(EINVALID, "cannot encode a group state before its genesis")
	}
	if err := s.checkShape(); err != nil {
		return nil, err
	}
	v2 := s.Suite == SuiteV2
	// Sized for what is written: a suite v2 entry names its keys by hash
	// (a 1,400-byte guess per member made a 140 MB buffer, cleared, for
	// a 100,000-member state of 9 MB).
	perMember := 100
	if !v2 {
		perMember += SigningKeySize + 1216
	}
	// The tree (about 250 MB at 100,000 leaves) is counted in the size
	// and appended last, in place: growing the builder past it copied it
	// several times, 3 s of a new member's first snapshot, and encoding
	// it apart cost a second buffer and a copy of it.
	treeSize := 0
	if s.Tree != nil && !detached {
		treeSize = s.Tree.EncodedSize()
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 128+32*len(s.keyCommitments)+perMember*len(s.Members)+48*s.roles.len()+4+treeSize))
	if s.Tree != nil && detached {
		b.AddUint8(stateVersionTreeDetached)
	} else if s.Tree != nil {
		b.AddUint8(stateVersionTree)
	} else if v2 {
		b.AddUint8(stateVersionV2)
	} else {
		b.AddUint8(stateVersion)
	}
	b.AddBytes(s.Group[:])
	b.AddUint64(s.Seq)
	b.AddBytes(s.Head[:])
	b.AddUint64(s.Epoch)
	b.AddUint8(boolByte(s.ShareHistory))
	b.AddUint8(boolByte(s.PendingRotation))
	for _, kc := range s.keyCommitments {
		b.AddBytes(kc[:])
	}
	members := s.sortedMembers()
	b.AddUint32(uint32(len(members)))
	for _, m := range members {
		b.AddBytes(m.ID[:])
		// The length-prefixed handle, written directly: a continuation per
		// member was a tenth of marshalling 100,000 of them.
		if len(m.Handle) > 255 {
			return nil, Errorf(EINVALID, "handle of %s is %d bytes", m.ID, len(m.Handle))
		}
		b.AddUint8(uint8(len(m.Handle)))
		b.AddBytes([]byte(m.Handle))
		if v2 {
			b.AddBytes(m.KeysHash[:])
		} else {
			b.AddBytes(m.SigningKey)
			b.AddBytes(m.EncryptionKey)
		}
		b.AddUint8(uint8(m.Role))
		b.AddUint64(m.JoinedEpoch)
	}
	ids := make([]AccountID, 0, s.roles.len())
	s.roles.all(func(id AccountID, _ []roleChange) { ids = append(ids, id) })
	slices.SortFunc(ids, compareIDs)
	b.AddUint32(uint32(len(ids)))
	for _, id := range ids {
		h, _ := s.roles.get(id)
		b.AddBytes(id[:])
		b.AddUint32(uint32(len(h)))
		for _, rc := range h {
			b.AddUint64(rc.epoch)
			b.AddUint8(uint8(rc.role))
		}
	}
	var updated []*Member
	for _, m := range members {
		if m.KeyEpoch != m.JoinedEpoch {
			updated = append(updated, m)
		}
	}
	b.AddUint32(uint32(len(updated)))
	for _, m := range updated {
		b.AddBytes(m.ID[:])
		b.AddUint64(m.KeyEpoch)
	}
	if s.Tree != nil {
		for _, m := range members {
			b.AddUint32(m.Leaf)
		}
		b.AddUint32(uint32(len(s.treeLeft)))
		for _, l := range s.treeLeft {
			b.AddUint32(l)
		}
		if detached {
			b.AddUint32(s.Tree.Leaves())
			return b.Bytes()
		}
		// uint32 length ‖ the tree, as AddUint32LengthPrefixed writes it.
		b.AddUint32(uint32(treeSize))
		out, err := b.Bytes()
		if err != nil {
			return nil, err
		}
		if out, err = s.Tree.AppendBinary(out); err != nil {
			return nil, err
		}
		return out, nil
	}
	return b.Bytes()
}

// UnmarshalBinary restores a checkpoint written by MarshalBinary. It checks
// the encoding and the state's invariants, but not that each encryption key
// is a valid X-Wing key (the verifier checked that when the member was
// added), to keep loading a large group cheap. On error, s is unchanged.
func (s *GroupState) UnmarshalBinary(data []byte) error { return s.unmarshalState(data, nil) }

func (s *GroupState) unmarshalState(data []byte, loadTree func(leaves uint32) (*ratchettree.Tree, error)) error {
	bad := func(what string) error {
		return Errorf(EINVALID, "malformed group state: %s", what)
	}
	var (
		in            = cryptobyte.String(data)
		ns            GroupState
		version, flag uint8
		pending       uint8
	)
	if !in.ReadUint8(&version) {
		return bad("empty")
	}
	if version < 1 || version > stateVersionTreeDetached {
		return Errorf(EINVALID, "unsupported group state version %d", version)
	}
	v2 := version >= stateVersionV2
	if v2 {
		ns.Suite = SuiteV2
	}
	if !in.CopyBytes(ns.Group[:]) || !in.ReadUint64(&ns.Seq) || !in.CopyBytes(ns.Head[:]) ||
		!in.ReadUint64(&ns.Epoch) || !in.ReadUint8(&flag) || version > 1 && !in.ReadUint8(&pending) {
		return bad("truncated header")
	}
	if ns.Group.IsZero() || ns.Seq == 0 || ns.Seq >= math.MaxInt64 || ns.Epoch == 0 || ns.Epoch > ns.Seq || flag > 1 || pending > 1 {
		return bad("invalid header")
	}
	ns.ShareHistory, ns.PendingRotation = flag == 1, pending == 1
	if ns.Epoch > uint64(len(in)/32) {
		return bad("truncated key commitments")
	}
	ns.keyCommitments = make([][32]byte, ns.Epoch)
	for i := range ns.keyCommitments {
		in.CopyBytes(ns.keyCommitments[i][:])
	}

	keySize := SigningKeySize + EncryptionKeySize
	if v2 {
		keySize = HashSize
	}
	minMember := 16 + 1 + keySize + 1 + 8
	var n uint32
	if !in.ReadUint32(&n) || uint64(n) > uint64(len(in)/minMember) {
		return bad("truncated members")
	}
	ns.Members = make(map[AccountID]*Member, n)
	handles := make(map[Handle]AccountID, n)
	var keys []byte
	if !v2 {
		keys = make([]byte, int(n)*keySize)
	}
	var prev AccountID
	for i := range int(n) {
		var (
			m       Member
			handle  cryptobyte.String
			sk, ek  []byte
			role    uint8
			idBytes []byte
		)
		ok := in.ReadBytes(&idBytes, 16) && in.ReadUint8LengthPrefixed(&handle)
		if v2 {
			ok = ok && in.CopyBytes(m.KeysHash[:])
		} else {
			ok = ok && in.ReadBytes(&sk, SigningKeySize) && in.ReadBytes(&ek, EncryptionKeySize)
		}
		if !ok || !in.ReadUint8(&role) || !in.ReadUint64(&m.JoinedEpoch) {
			return bad("truncated member")
		}
		copy(m.ID[:], idBytes)
		if i > 0 && bytes.Compare(prev[:], m.ID[:]) >= 0 || m.ID.IsZero() {
			return bad("members out of order")
		}
		prev = m.ID
		h, err := ParseHandle(string(handle))
		if err != nil {
			return bad("invalid handle")
		}
		m.Handle, m.Role, m.KeyEpoch = h, Role(role), m.JoinedEpoch
		if !v2 {
			k := keys[i*keySize : (i+1)*keySize]
			copy(k, sk)
			copy(k[SigningKeySize:], ek)
			m.SigningKey = ed25519.PublicKey(k[:SigningKeySize:SigningKeySize])
			m.EncryptionKey = k[SigningKeySize:]
		}
		if err := ns.addDecodedMember(&m, handles); err != nil {
			return err
		}
	}
	if ns.owners < 1 {
		return bad("no owner")
	}

	const minAccount = 16 + 4 + 9
	if !in.ReadUint32(&n) || uint64(n) > uint64(len(in)/minAccount) {
		return bad("truncated role history")
	}
	ns.handles = newCowMap(handles)
	roles := make(map[AccountID][]roleChange, n)
	for i := range int(n) {
		var (
			id      AccountID
			idBytes []byte
			count   uint32
		)
		if !in.ReadBytes(&idBytes, 16) || !in.ReadUint32(&count) || count == 0 || uint64(count) > uint64(len(in)/9) {
			return bad("truncated role history")
		}
		copy(id[:], idBytes)
		if i > 0 && bytes.Compare(prev[:], id[:]) >= 0 || id.IsZero() {
			return bad("role history out of order")
		}
		prev = id
		h := make([]roleChange, count)
		for j := range h {
			var role uint8
			in.ReadUint64(&h[j].epoch)
			in.ReadUint8(&role)
			h[j].role = Role(role)
		}
		if err := ns.addRoleHistory(id, h, roles); err != nil {
			return err
		}
	}
	if err := ns.checkEveryMemberHasRoles(roles); err != nil {
		return err
	}
	ns.roles = newCowMap(roles)
	if version >= 3 {
		if !in.ReadUint32(&n) || uint64(n) > uint64(len(in)/24) {
			return bad("truncated key epochs")
		}
		for i := range int(n) {
			var (
				id      AccountID
				idBytes []byte
				epoch   uint64
			)
			in.ReadBytes(&idBytes, 16)
			in.ReadUint64(&epoch)
			copy(id[:], idBytes)
			if i > 0 && bytes.Compare(prev[:], id[:]) >= 0 {
				return bad("key epochs out of order")
			}
			prev = id
			m := ns.Members[id]
			if m == nil || epoch <= m.JoinedEpoch || epoch > ns.Epoch {
				return bad("invalid key epoch")
			}
			m.KeyEpoch = epoch
		}
	}
	if version >= stateVersionTree {
		if version == stateVersionTreeDetached && loadTree == nil {
			return Errorf(EINVALID, "a checkpoint whose tree is stored apart needs its tree")
		}
		if err := ns.unmarshalTree(&in, version == stateVersionTreeDetached, loadTree); err != nil {
			return bad(err.Error())
		}
	}
	if !in.Empty() {
		return bad("trailing bytes")
	}
	*s = ns
	return nil
}
