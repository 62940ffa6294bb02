package coffer

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"math"
	"slices"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer/internal/ratchettree"
)

// A group state stored in rows: the server keeps a large group's state as
// a small header (MarshalBinaryRows) and one StateAccount row per account
// that was ever a member, so that a commit rewrites the header and the
// rows of the accounts it changed (ChangedMembers) instead of every
// member's entry: 9 MB at 100,000 members. A tree group's tree is kept
// apart as well, one row per node (MarshalBinaryDetached).
//
// Checkpoint version 7 is the header:
//
//	version uint8 = 7
//	suite uint8 (0: suite v1, or SuiteV2)
//	group [16]byte, seq uint64, head [32]byte, epoch uint64, share_history uint8,
//	pending_rotation uint8
//	key_commitments epoch × [32]byte
//	member_count uint32, account_count uint32
//	tree uint8 (1 in a tree group, else 0), then in a tree group:
//	  left_count uint32, left_count × leaf uint32, leaf_count uint32
//
// A StateAccount's Member is the account's current entry, or nil:
//
//	handle <uint8 length>, keys (suite v2: keys_hash [32]byte; suite v1:
//	signing_key [32]byte, encryption_key [1216]byte), role uint8,
//	joined_epoch uint64, key_epoch uint64, leaf uint32 (0 outside a tree)
//
// and its Roles is its role history, change_count × (epoch uint64, role
// uint8), in chain order, as in version 3.
//
// Like every checkpoint the rows are trusted data; UnmarshalBinaryRows
// checks them as UnmarshalBinary checks a checkpoint.
const stateVersionRows = 7

// StateAccount is one account's row of a group state stored in rows.
type StateAccount struct {
	ID     AccountID
	Member []byte // the current member entry; nil when not a member now
	Roles  []byte // the role history
}

// MarshalBinaryRows encodes the header of s stored in rows: everything
// but the member entries, role histories and tree, whose size does not
// grow with the members.
func (s *GroupState) MarshalBinaryRows() ([]byte, error) {
	if s.Seq == 0 {
		return nil, Errorf(EINVALID, "cannot encode a group state before its genesis")
	}
	if err := s.checkShape(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 128+32*len(s.keyCommitments)+4*len(s.treeLeft)))
	b.AddUint8(stateVersionRows)
	b.AddUint8(s.Suite)
	b.AddBytes(s.Group[:])
	b.AddUint64(s.Seq)
	b.AddBytes(s.Head[:])
	b.AddUint64(s.Epoch)
	b.AddUint8(boolByte(s.ShareHistory))
	b.AddUint8(boolByte(s.PendingRotation))
	for _, kc := range s.keyCommitments {
		b.AddBytes(kc[:])
	}
	b.AddUint32(uint32(len(s.Members)))
	b.AddUint32(uint32(s.roles.len()))
	b.AddUint8(boolByte(s.Tree != nil))
	if s.Tree != nil {
		b.AddUint32(uint32(len(s.treeLeft)))
		for _, l := range s.treeLeft {
			b.AddUint32(l)
		}
		b.AddUint32(s.Tree.Leaves())
	}
	return b.Bytes()
}

// StateAccounts returns every account's row, in id order.
func (s *GroupState) StateAccounts() ([]StateAccount, error) {
	ids := make([]AccountID, 0, s.roles.len())
	s.roles.all(func(id AccountID, _ []roleChange) { ids = append(ids, id) })
	return s.StateAccountsOf(ids)
}

// StateAccountsOf returns the rows of the accounts ids (in id order, each
// once), such as the ChangedMembers of s: an account that never was a
// member has none.
func (s *GroupState) StateAccountsOf(ids []AccountID) ([]StateAccount, error) {
	if err := s.checkShape(); err != nil {
		return nil, err
	}
	ids = slices.Clone(ids)
	slices.SortFunc(ids, compareIDs)
	ids = slices.Compact(ids)
	out := make([]StateAccount, 0, len(ids))
	for _, id := range ids {
		h, _ := s.roles.get(id)
		if len(h) == 0 {
			continue
		}
		row := StateAccount{ID: id, Roles: make([]byte, 0, 9*len(h))}
		for _, rc := range h {
			row.Roles = binary.BigEndian.AppendUint64(row.Roles, rc.epoch)
			row.Roles = append(row.Roles, byte(rc.role))
		}
		if m := s.Members[id]; m != nil {
			var err error
			if row.Member, err = s.marshalMemberRow(m); err != nil {
				return nil, err
			}
		}
		out = append(out, row)
	}
	return out, nil
}

func (s *GroupState) marshalMemberRow(m *Member) ([]byte, error) {
	if len(m.Handle) > 255 {
		return nil, Errorf(EINVALID, "handle of %s is %d bytes", m.ID, len(m.Handle))
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 64+len(m.Handle)+len(m.SigningKey)+len(m.EncryptionKey)))
	b.AddUint8(uint8(len(m.Handle)))
	b.AddBytes([]byte(m.Handle))
	if s.Suite == SuiteV2 {
		b.AddBytes(m.KeysHash[:])
	} else {
		b.AddBytes(m.SigningKey)
		b.AddBytes(m.EncryptionKey)
	}
	b.AddUint8(uint8(m.Role))
	b.AddUint64(m.JoinedEpoch)
	b.AddUint64(m.KeyEpoch)
	b.AddUint32(m.Leaf)
	return b.Bytes()
}

// UnmarshalBinaryRows restores a state from the header MarshalBinaryRows
// wrote and the rows of every account (in any order); loadTree returns a
// tree group's stored tree of the given leaf count, as for
// UnmarshalBinaryDetached. It checks what UnmarshalBinary checks, and that
// the rows are exactly the header's accounts. On error, s is unchanged.
func (s *GroupState) UnmarshalBinaryRows(header []byte, accounts []StateAccount, loadTree func(leaves uint32) (*ratchettree.Tree, error)) error {
	bad := func(what string) error {
		return Errorf(EINVALID, "malformed group state: %s", what)
	}
	var (
		in                               = cryptobyte.String(header)
		ns                               GroupState
		version, flag, pending, hasTree  uint8
		memberCount, accountCount, count uint32
		leaves                           uint32
		left                             []uint32
	)
	if !in.ReadUint8(&version) {
		return bad("empty")
	}
	if version != stateVersionRows {
		return Errorf(EINVALID, "unsupported group state header version %d", version)
	}
	if !in.ReadUint8(&ns.Suite) || !in.CopyBytes(ns.Group[:]) || !in.ReadUint64(&ns.Seq) || !in.CopyBytes(ns.Head[:]) ||
		!in.ReadUint64(&ns.Epoch) || !in.ReadUint8(&flag) || !in.ReadUint8(&pending) {
		return bad("truncated header")
	}
	if ns.Suite != 0 && ns.Suite != SuiteV2 || ns.Group.IsZero() || ns.Seq == 0 || ns.Seq >= math.MaxInt64 ||
		ns.Epoch == 0 || ns.Epoch > ns.Seq || flag > 1 || pending > 1 {
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
	if !in.ReadUint32(&memberCount) || !in.ReadUint32(&accountCount) || !in.ReadUint8(&hasTree) || hasTree > 1 {
		return bad("truncated counts")
	}
	if hasTree == 1 {
		if ns.Suite != SuiteV2 {
			return bad("a suite v1 tree")
		}
		if !in.ReadUint32(&count) || uint64(count) > uint64(len(in)/4) {
			return bad("truncated departures")
		}
		left = make([]uint32, count)
		for i := range left {
			in.ReadUint32(&left[i])
		}
		if !in.ReadUint32(&leaves) {
			return bad("truncated leaf count")
		}
	}
	if !in.Empty() {
		return bad("trailing bytes")
	}
	if uint64(accountCount) != uint64(len(accounts)) || memberCount > accountCount {
		return bad("the rows are not the header's accounts")
	}

	ns.Members = make(map[AccountID]*Member, memberCount)
	handles := make(map[Handle]AccountID, memberCount)
	histories := make(map[AccountID][]roleChange, accountCount)
	for _, a := range accounts {
		if a.ID.IsZero() {
			return bad("zero account id")
		}
		if _, dup := histories[a.ID]; dup {
			return bad("duplicate account")
		}
		h, err := parseRoleHistory(a.Roles)
		if err != nil {
			return bad(err.Error())
		}
		histories[a.ID] = h
		if a.Member == nil {
			continue
		}
		m, err := ns.parseMemberRow(a.ID, a.Member)
		if err != nil {
			return bad(err.Error())
		}
		if hasTree == 0 && m.Leaf != 0 {
			return bad("a leaf outside a tree")
		}
		if err := ns.addDecodedMember(m, handles); err != nil {
			return err
		}
	}
	if uint64(len(ns.Members)) != uint64(memberCount) {
		return bad("the rows are not the header's members")
	}
	if ns.owners < 1 {
		return bad("no owner")
	}
	// The histories are checked against every member.
	roles := make(map[AccountID][]roleChange, accountCount)
	for id, h := range histories {
		if err := ns.addRoleHistory(id, h, roles); err != nil {
			return err
		}
	}
	if err := ns.checkEveryMemberHasRoles(roles); err != nil {
		return err
	}
	ns.handles, ns.roles = newCowMap(handles), newCowMap(roles)
	if hasTree == 1 {
		if loadTree == nil {
			return Errorf(EINVALID, "a checkpoint whose tree is stored apart needs its tree")
		}
		t, err := loadTree(leaves)
		if err != nil {
			return bad(err.Error())
		}
		if t.Leaves() != leaves {
			return bad("the stored tree has another leaf count")
		}
		if err := ns.installTree(t, left); err != nil {
			return bad(err.Error())
		}
	} else if len(left) > 0 {
		return bad("departures outside a tree")
	}
	*s = ns
	return nil
}

func parseRoleHistory(data []byte) ([]roleChange, error) {
	if len(data) == 0 || len(data)%9 != 0 {
		return nil, errors.New("truncated role history")
	}
	in := cryptobyte.String(data)
	h := make([]roleChange, len(data)/9)
	for j := range h {
		var role uint8
		in.ReadUint64(&h[j].epoch)
		in.ReadUint8(&role)
		h[j].role = Role(role)
	}
	return h, nil
}

// parseMemberRow decodes a member entry of account id; addDecodedMember
// checks it against the state.
func (ns *GroupState) parseMemberRow(id AccountID, data []byte) (*Member, error) {
	in := cryptobyte.String(data)
	m := &Member{ID: id}
	var (
		handle cryptobyte.String
		sk, ek []byte
		role   uint8
	)
	ok := in.ReadUint8LengthPrefixed(&handle)
	if ns.Suite == SuiteV2 {
		ok = ok && in.CopyBytes(m.KeysHash[:])
	} else {
		ok = ok && in.ReadBytes(&sk, SigningKeySize) && in.ReadBytes(&ek, EncryptionKeySize)
	}
	if !ok || !in.ReadUint8(&role) || !in.ReadUint64(&m.JoinedEpoch) || !in.ReadUint64(&m.KeyEpoch) || !in.ReadUint32(&m.Leaf) {
		return nil, errors.New("truncated member")
	}
	if !in.Empty() {
		return nil, errors.New("trailing bytes after a member")
	}
	h, err := ParseHandle(string(handle))
	if err != nil {
		return nil, errors.New("invalid handle")
	}
	m.Handle, m.Role = h, Role(role)
	if ns.Suite != SuiteV2 {
		m.SigningKey = ed25519.PublicKey(bytes.Clone(sk))
		m.EncryptionKey = bytes.Clone(ek)
	}
	if m.KeyEpoch < m.JoinedEpoch || m.KeyEpoch > ns.Epoch {
		return nil, errors.New("invalid key epoch")
	}
	return m, nil
}

// addDecodedMember checks a decoded member entry against ns's header and
// the members decoded before it, and adds it to ns and to handles, the
// handle index being decoded.
func (ns *GroupState) addDecodedMember(m *Member, handles map[Handle]AccountID) error {
	bad := func(what string) error {
		return Errorf(EINVALID, "malformed group state: %s", what)
	}
	if _, dup := handles[m.Handle]; dup {
		return bad("duplicate handle")
	}
	if !m.Role.Valid() || m.JoinedEpoch == 0 || m.JoinedEpoch > ns.Epoch {
		return bad("invalid member")
	}
	if ns.Suite == SuiteV2 && m.KeysHash == ([32]byte{}) {
		return bad("zero keys hash")
	}
	ns.Members[m.ID] = m
	handles[m.Handle] = m.ID
	if m.Role == RoleOwner {
		ns.owners++
	}
	return nil
}

// addRoleHistory checks account id's decoded role history against ns's
// header and members, and adds it to roles, the histories being decoded.
func (ns *GroupState) addRoleHistory(id AccountID, h []roleChange, roles map[AccountID][]roleChange) error {
	bad := func(what string) error {
		return Errorf(EINVALID, "malformed group state: %s", what)
	}
	for j := range h {
		leftPending := h[j].epoch == ns.Epoch+1 && ns.PendingRotation && h[j].role == RoleNone && j == len(h)-1
		if h[j].role > RoleOwner || h[j].epoch == 0 || h[j].epoch > ns.Epoch && !leftPending || j > 0 && h[j].epoch <= h[j-1].epoch {
			return bad("invalid role history")
		}
	}
	want := RoleNone
	if m := ns.Members[id]; m != nil {
		want = m.Role
	}
	if h[len(h)-1].role != want {
		return bad("role history disagrees with members")
	}
	roles[id] = h
	return nil
}

func (ns *GroupState) checkEveryMemberHasRoles(roles map[AccountID][]roleChange) error {
	for id := range ns.Members {
		if roles[id] == nil {
			return Errorf(EINVALID, "malformed group state: member without role history")
		}
	}
	return nil
}
