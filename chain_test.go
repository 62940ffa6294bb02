package coffer_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer"
)

// The -update flag rewrites the vectors under testdata/ instead of checking
// them. It is shared by every vector test of the package; whoever registers
// it first wins, so other test files can define it the same way.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the test vectors under testdata/ instead of checking them")
	}
}

func updateVectors() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// chainMember is a deterministic test account: every key derives from n, so
// the vectors are reproducible.
type chainMember struct {
	ID            coffer.AccountID
	Handle        coffer.Handle
	Key           ed25519.PrivateKey
	EncryptionKey []byte
}

func (m *chainMember) Public() ed25519.PublicKey { return m.Key.Public().(ed25519.PublicKey) }

var chainMembers sync.Map // int → *chainMember

// MustChainMember returns test account n, with an Ed25519 key from a fixed
// seed and an X-Wing key from KEM().DeriveKeyPair of a fixed ikm.
func MustChainMember(tb testing.TB, n int) *chainMember {
	tb.Helper()
	if m, ok := chainMembers.Load(n); ok {
		return m.(*chainMember)
	}
	seed := sha256.Sum256(fmt.Appendf(nil, "coffer chain test %d signing", n))
	ikm := sha256.Sum256(fmt.Appendf(nil, "coffer chain test %d encryption", n))
	id := sha256.Sum256(fmt.Appendf(nil, "coffer chain test %d id", n))
	id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80
	dk, err := coffer.KEM().DeriveKeyPair(ikm[:])
	if err != nil {
		tb.Fatal(err)
	}
	m := &chainMember{
		ID:            coffer.AccountID(id[:16]),
		Handle:        coffer.Handle(fmt.Sprintf("user-%d", n)),
		Key:           ed25519.NewKeyFromSeed(seed[:]),
		EncryptionKey: dk.PublicKey().Bytes(),
	}
	actual, _ := chainMembers.LoadOrStore(n, m)
	return actual.(*chainMember)
}

func testGroupID(n int) coffer.GroupID {
	h := sha256.Sum256(fmt.Appendf(nil, "coffer chain test group %d", n))
	h[6], h[8] = h[6]&0x0f|0x40, h[8]&0x3f|0x80
	return coffer.GroupID(h[:16])
}

// testKeyCommitment stands in for the HKDF commitment clients compute: the
// verifier treats it as opaque.
func testKeyCommitment(g coffer.GroupID, epoch uint64) [32]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64(append([]byte("test key commitment "), g[:]...), epoch))
}

func addOp(m *chainMember, r coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpAdd, Member: m.ID, Handle: m.Handle, SigningKey: m.Public(), EncryptionKey: m.EncryptionKey, Role: r}
}
func removeOp(m *chainMember) coffer.Op { return coffer.Op{Kind: coffer.OpRemove, Member: m.ID} }
func setRoleOp(m *chainMember, r coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpSetRole, Member: m.ID, Role: r}
}

var rotateOp = coffer.Op{Kind: coffer.OpRotate}

func leaveOp(m *chainMember) coffer.Op { return coffer.Op{Kind: coffer.OpLeave, Member: m.ID} }

// chainBuilder builds a chain commit by commit. Next returns a well-formed
// successor of the head, which a test may corrupt before Push.
type chainBuilder struct {
	tb       testing.TB
	group    coffer.GroupID
	share    bool
	commits  []coffer.SignedCommit
	head     *coffer.Commit
	headHash [32]byte
}

func newChain(tb testing.TB, group int) *chainBuilder {
	return &chainBuilder{tb: tb, group: testGroupID(group), share: true}
}

// MustGenesis returns a chain of group 1 whose genesis, by owner, adds the
// owner and then ops.
func MustGenesis(tb testing.TB, owner *chainMember, ops ...coffer.Op) *chainBuilder {
	tb.Helper()
	return newChain(tb, 1).Do(owner, append([]coffer.Op{addOp(owner, coffer.RoleOwner)}, ops...)...)
}

// Next returns the commit that follows the head: seq+1, prev, and the same
// epoch and key commitment unless ops contain a rotation.
func (b *chainBuilder) Next(author *chainMember, ops ...coffer.Op) *coffer.Commit {
	c := &coffer.Commit{
		Group:        b.group,
		Seq:          1,
		Epoch:        1,
		Author:       author.ID,
		ShareHistory: b.share,
		Ops:          ops,
	}
	if b.head != nil {
		c.Seq, c.Prev, c.Epoch = b.head.Seq+1, b.headHash, b.head.Epoch
		if c.Rotates() {
			c.Epoch++
		}
	}
	c.Time = 1767225600000 + int64(c.Seq)*60000 // fixed, so vectors are stable
	c.KeyCommitment = testKeyCommitment(b.group, c.Epoch)
	return c
}

// Push signs c with key and appends it, making it the head.
func (b *chainBuilder) Push(c *coffer.Commit, key ed25519.PrivateKey) *chainBuilder {
	return b.PushSigned(c, coffer.SignCommit(c, key))
}

// PushSigned appends sc, whose parsed form is c, making it the head.
func (b *chainBuilder) PushSigned(c *coffer.Commit, sc coffer.SignedCommit) *chainBuilder {
	b.commits = append(b.commits, sc)
	b.head, b.headHash = c, sc.Hash()
	return b
}

// Do appends a well-formed commit by author.
func (b *chainBuilder) Do(author *chainMember, ops ...coffer.Op) *chainBuilder {
	return b.Push(b.Next(author, ops...), author.Key)
}

// pushBody appends a commit whose body was edited after Marshal, signed by
// key.
func (b *chainBuilder) pushBody(c *coffer.Commit, edit func([]byte) []byte, key ed25519.PrivateKey) []coffer.SignedCommit {
	body := edit(c.Marshal())
	b.commits = append(b.commits, coffer.SignedCommit{Body: body, Signature: coffer.Sign(key, coffer.LabelCommit, body)})
	return b.commits
}

// chainCast is the cast of most cases: a group with an owner, an admin, a
// writer and a reader, and outsiders 5 and up.
type chainCast struct{ owner, admin, writer, reader, m5, m6 *chainMember }

func MustChainCast(tb testing.TB) chainCast {
	tb.Helper()
	return chainCast{MustChainMember(tb, 1), MustChainMember(tb, 2), MustChainMember(tb, 3),
		MustChainMember(tb, 4), MustChainMember(tb, 5), MustChainMember(tb, 6)}
}

func (p chainCast) base(tb testing.TB) *chainBuilder {
	tb.Helper()
	return MustGenesis(tb, p.owner, addOp(p.admin, coffer.RoleAdmin), addOp(p.writer, coffer.RoleWriter), addOp(p.reader, coffer.RoleReader))
}

type chainCase struct {
	name    string
	comment string
	rule    string // "" when the chain must verify
	build   func(tb testing.TB, p chainCast) []coffer.SignedCommit
}

// chainCases are the rule tests, one per vector file in testdata/chain,
// modelled on Keybase's team-chain vectors: every rule has negative cases,
// and in every failing case only the last commit is bad.
var chainCases = []chainCase{
	// Chains that verify.
	{"genesis-owner-only", "a genesis that adds only its author", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return MustGenesis(tb, p.owner).commits
	}},
	{"genesis-members", "a genesis that adds its author and one member of each other role", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).commits
	}},
	{"add-promote-remove", "an admin promotes a member the owner added, then removes it with a rotation", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader)).
			Do(p.admin, setRoleOp(p.m5, coffer.RoleWriter)).
			Do(p.admin, removeOp(p.m5), rotateOp).commits
	}},
	{"demote-with-rotation", "the owner demotes the admin in a rotating commit", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, setRoleOp(p.admin, coffer.RoleWriter), rotateOp).commits
	}},
	{"admin-manages-admins", "an admin adds an admin, who demotes the first admin", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, addOp(p.m5, coffer.RoleAdmin)).
			Do(p.m5, setRoleOp(p.admin, coffer.RoleReader), rotateOp).commits
	}},
	{"owner-handover", "the owner adds a second owner, who removes the first", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleOwner)).
			Do(p.m5, removeOp(p.owner), rotateOp).commits
	}},
	{"owner-handover-one-commit", "the only owner promotes a writer to owner and steps down in the same commit", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, setRoleOp(p.writer, coffer.RoleOwner), setRoleOp(p.owner, coffer.RoleAdmin), rotateOp).commits
	}},
	{"admin-leaves", "an admin removes itself with a rotation, picking the next key", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, removeOp(p.admin), rotateOp).commits
	}},
	{"admin-steps-down", "an admin demotes itself with a rotation", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, setRoleOp(p.admin, coffer.RoleReader), rotateOp).commits
	}},
	{"readd-after-removal", "a removed member is added again, with another role", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, removeOp(p.reader), rotateOp).
			Do(p.owner, addOp(p.reader, coffer.RoleWriter)).commits
	}},
	{"rotate-only", "an admin rotates the key without changing membership", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, rotateOp).Do(p.owner, rotateOp).commits
	}},
	{"no-history-sharing", "a group created without history sharing keeps the flag off, and an add rotates", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		b.share = false
		return b.Do(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.admin, coffer.RoleAdmin)).
			Do(p.owner, addOp(p.m5, coffer.RoleWriter), rotateOp).
			Do(p.admin, addOp(p.m6, coffer.RoleReader), addOp(p.reader, coffer.RoleReader), rotateOp).commits
	}},
	{"member-leaves", "a reader leaves without a rotation; a rotation is now pending", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, leaveOp(p.reader)).commits
	}},
	{"leave-then-rotate", "a writer and then a reader leave; the admin's next commit rotates", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, leaveOp(p.writer)).Do(p.reader, leaveOp(p.reader)).Do(p.admin, rotateOp).commits
	}},
	{"leave-then-add-with-rotation", "after a leave, the owner adds a member in a rotating commit", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, leaveOp(p.writer)).Do(p.owner, addOp(p.m5, coffer.RoleReader), rotateOp).commits
	}},
	{"leaver-readded", "a leaver is added back by the commit that performs the pending rotation", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, leaveOp(p.writer)).Do(p.owner, addOp(p.writer, coffer.RoleReader), rotateOp).commits
	}},
	{"admin-leaves-by-leave", "an admin leaves with a leave op; the owner rotates", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, leaveOp(p.admin)).Do(p.owner, rotateOp).commits
	}},
	{"owner-leaves-other-owner-rotates", "one of two owners leaves; the other rotates", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleOwner)).Do(p.owner, leaveOp(p.owner)).Do(p.m5, rotateOp).commits
	}},
	{"leave-in-no-history-group", "a member of a group without shared history leaves; the owner re-adds them with a rotation", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		b.share = false
		return b.Do(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.writer, coffer.RoleWriter)).
			Do(p.writer, leaveOp(p.writer)).Do(p.owner, addOp(p.writer, coffer.RoleWriter), rotateOp).commits
	}},

	// Leaving and the pending rotation.
	{"leave-then-add-without-rotation", "after a reader leaves, the owner adds a member without a rotation", coffer.RulePendingRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, leaveOp(p.reader)).Do(p.owner, addOp(p.m5, coffer.RoleReader)).commits
	}},
	{"leave-then-promote-without-rotation", "after a reader leaves, the admin promotes the writer without a rotation", coffer.RulePendingRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, leaveOp(p.reader)).Do(p.admin, setRoleOp(p.writer, coffer.RoleAdmin)).commits
	}},
	{"leave-then-readd-without-rotation", "after a writer leaves, the owner adds them back under the old key", coffer.RulePendingRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, leaveOp(p.writer)).Do(p.owner, addOp(p.writer, coffer.RoleWriter)).commits
	}},
	{"two-leaves-then-add-without-rotation", "two members leave (the second leave keeps the rotation pending), then an add does not rotate", coffer.RulePendingRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, leaveOp(p.reader)).Do(p.admin, leaveOp(p.admin)).Do(p.owner, addOp(p.m5, coffer.RoleReader)).commits
	}},
	{"leave-other-member", "the admin signs a leave naming the reader", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, leaveOp(p.reader)).commits
	}},
	{"leave-other-member-by-reader", "a reader signs a leave naming the writer", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, leaveOp(p.writer)).commits
	}},
	{"leave-with-rotation", "a writer leaves and rotates, choosing the next key", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, leaveOp(p.writer), rotateOp).commits
	}},
	{"leave-with-rotation-by-admin", "an admin leaves and rotates in one commit", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, leaveOp(p.admin), rotateOp).commits
	}},
	{"leave-with-add", "a reader leaves and adds an outsider in the same commit", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, addOp(p.m5, coffer.RoleOwner), leaveOp(p.reader)).commits
	}},
	{"leave-twice", "a commit with two leave ops by its author", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, leaveOp(p.writer), leaveOp(p.writer)).commits
	}},
	{"leave-by-outsider", "a non-member signs its own leave", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.m5, leaveOp(p.m5)).commits
	}},
	{"leave-after-leaving", "a member who left signs a second leave", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, leaveOp(p.writer)).Do(p.writer, leaveOp(p.writer)).commits
	}},
	{"leaver-adds-member", "an admin who left authors an add with a rotation", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, leaveOp(p.admin)).Do(p.admin, addOp(p.m5, coffer.RoleReader), rotateOp).commits
	}},
	{"last-owner-leave", "the only owner leaves with a leave op", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, leaveOp(p.owner)).commits
	}},
	{"leave-signed-by-other", "a leave naming the reader as author is signed by the writer", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		return b.Push(b.Next(p.reader, leaveOp(p.reader)), p.writer.Key).commits
	}},
	{"leave-bumps-epoch", "a leave starts a new epoch with a new key commitment, without a rotate op", coffer.RuleEpoch, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.writer, leaveOp(p.writer))
		c.Epoch++
		c.KeyCommitment = testKeyCommitment(b.group, c.Epoch)
		return b.Push(c, p.writer.Key).commits
	}},
	{"leave-changes-key-commitment", "a leave changes the key commitment", coffer.RuleKeyCommitment, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.writer, leaveOp(p.writer))
		c.KeyCommitment = testKeyCommitment(b.group, 99)
		return b.Push(c, p.writer.Key).commits
	}},
	{"genesis-leave", "the genesis adds its author and a member who leaves in it", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.owner, coffer.RoleOwner), leaveOp(p.m5)), p.owner.Key).commits
	}},

	// Groups without shared history.
	{"no-history-add-without-rotation", "in a group without shared history, the owner adds a member without a rotation", coffer.RuleJoinRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		b.share = false
		return b.Do(p.owner, addOp(p.owner, coffer.RoleOwner)).Do(p.owner, addOp(p.m5, coffer.RoleWriter)).commits
	}},
	{"no-history-readd-without-rotation", "in a group without shared history, a removed member is added back without a rotation", coffer.RuleJoinRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		b.share = false
		return b.Do(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.admin, coffer.RoleAdmin), addOp(p.reader, coffer.RoleReader)).
			Do(p.admin, removeOp(p.reader), rotateOp).Do(p.admin, addOp(p.reader, coffer.RoleReader)).commits
	}},
	{"no-history-add-with-promotion", "in a group without shared history, an add beside a promotion, without a rotation", coffer.RuleJoinRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		b.share = false
		return b.Do(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.writer, coffer.RoleWriter)).
			Do(p.owner, setRoleOp(p.writer, coffer.RoleAdmin), addOp(p.m5, coffer.RoleReader)).commits
	}},

	// The genesis.
	{"empty-chain", "a chain with no commits has no genesis", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return nil
	}},
	{"genesis-seq", "the first commit has seq 2", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		c := b.Next(p.owner, addOp(p.owner, coffer.RoleOwner))
		c.Seq = 2
		return b.Push(c, p.owner.Key).commits
	}},
	{"genesis-prev", "the genesis has a non-zero prev", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		c := b.Next(p.owner, addOp(p.owner, coffer.RoleOwner))
		c.Prev[0] = 1
		return b.Push(c, p.owner.Key).commits
	}},
	{"genesis-epoch", "the genesis starts epoch 2", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		c := b.Next(p.owner, addOp(p.owner, coffer.RoleOwner))
		c.Epoch = 2
		return b.Push(c, p.owner.Key).commits
	}},
	{"genesis-author-not-first", "the genesis adds another member before its author", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.admin, coffer.RoleAdmin), addOp(p.owner, coffer.RoleOwner)), p.owner.Key).commits
	}},
	{"genesis-author-admin", "the genesis adds its author as admin, not owner", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.owner, coffer.RoleAdmin)), p.owner.Key).commits
	}},
	{"genesis-author-missing", "the genesis author adds someone else as owner, signed with that member's key", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.m5, coffer.RoleOwner)), p.m5.Key).commits
	}},
	{"genesis-remove", "the genesis removes a member", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.owner, coffer.RoleOwner), removeOp(p.m5)), p.owner.Key).commits
	}},
	{"genesis-set-role", "the genesis sets a role", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.m5, coffer.RoleReader), setRoleOp(p.m6, coffer.RoleWriter)), p.owner.Key).commits
	}},
	{"genesis-rotate", "the genesis rotates (while claiming epoch 1)", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		c := b.Next(p.owner, addOp(p.owner, coffer.RoleOwner), rotateOp)
		c.Epoch = 1
		return b.Push(c, p.owner.Key).commits
	}},
	{"genesis-empty", "the genesis has no ops", coffer.RuleEmpty, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner), p.owner.Key).commits
	}},
	{"genesis-zero-key-commitment", "the genesis commits to nothing", coffer.RuleKeyCommitment, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		c := b.Next(p.owner, addOp(p.owner, coffer.RoleOwner))
		c.KeyCommitment = [32]byte{}
		return b.Push(c, p.owner.Key).commits
	}},
	{"genesis-wrong-key", "the genesis is signed by a key other than the one it adds for its author", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.owner, coffer.RoleOwner)), p.admin.Key).commits
	}},
	{"genesis-duplicate", "the genesis adds the same member twice", coffer.RuleDuplicateMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		return b.Push(b.Next(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.m5, coffer.RoleReader), addOp(p.m5, coffer.RoleWriter)), p.owner.Key).commits
	}},

	// Position in the chain.
	{"seq-hole", "a commit skips a seq", coffer.RuleSeq, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		c.Seq++
		return b.Push(c, p.owner.Key).commits
	}},
	{"seq-repeat", "a commit repeats the head's seq", coffer.RuleSeq, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader))
		c := b.Next(p.owner, addOp(p.m6, coffer.RoleReader))
		c.Seq--
		return b.Push(c, p.owner.Key).commits
	}},
	{"replay-genesis", "the genesis is served again as the second commit", coffer.RuleSeq, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		return append(b.commits, b.commits[0])
	}},
	{"prev-wrong", "a commit's prev is not the hash of the head", coffer.RulePrev, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		c.Prev[31] ^= 1
		return b.Push(c, p.owner.Key).commits
	}},
	{"prev-zero", "a commit after the genesis has a zero prev", coffer.RulePrev, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		c.Prev = [32]byte{}
		return b.Push(c, p.owner.Key).commits
	}},
	{"group-wrong", "a commit names another group", coffer.RuleGroup, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		c.Group = testGroupID(2)
		return b.Push(c, p.owner.Key).commits
	}},
	{"replay-other-group", "a valid commit of another group with the same members is replayed at the same seq", coffer.RuleGroup, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		other := newChain(tb, 2).Do(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.admin, coffer.RoleAdmin),
			addOp(p.writer, coffer.RoleWriter), addOp(p.reader, coffer.RoleReader)).
			Do(p.owner, addOp(p.m5, coffer.RoleOwner))
		return append(p.base(tb).commits, other.commits[1])
	}},

	// Signatures.
	{"signature-flipped", "a commit's signature has one bit flipped", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		cs := p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader)).commits
		cs[1].Signature = slices.Clone(cs[1].Signature)
		cs[1].Signature[10] ^= 0x40
		return cs
	}},
	{"signature-other-member", "a commit naming the owner as author is signed by the admin", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		return b.Push(b.Next(p.owner, addOp(p.m5, coffer.RoleOwner)), p.admin.Key).commits
	}},
	{"signature-outsider", "a commit naming the owner as author is signed by a non-member", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		return b.Push(b.Next(p.owner, addOp(p.m5, coffer.RoleOwner)), p.m5.Key).commits
	}},
	{"signature-wrong-label", "a commit signed without the commit label", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		body := c.Marshal()
		return b.PushSigned(c, coffer.SignedCommit{Body: body, Signature: coffer.Sign(p.owner.Key, coffer.LabelIdentity, body)}).commits
	}},
	{"signature-truncated", "a commit's signature is 63 bytes", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		cs := p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader)).commits
		cs[1].Signature = cs[1].Signature[:63]
		return cs
	}},
	{"signature-missing", "a commit has no signature", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		cs := p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader)).commits
		cs[1].Signature = nil
		return cs
	}},

	// Authors.
	{"author-writer", "a writer adds a member", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, addOp(p.m5, coffer.RoleReader)).commits
	}},
	{"author-reader", "a reader rotates the key", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, rotateOp).commits
	}},
	{"author-outsider", "a non-member adds itself", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.m5, addOp(p.m5, coffer.RoleOwner)).commits
	}},
	{"author-removed", "an admin removed earlier adds a member", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, removeOp(p.admin), rotateOp).Do(p.admin, addOp(p.m5, coffer.RoleReader)).commits
	}},
	{"author-demoted", "an admin demoted earlier adds a member", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, setRoleOp(p.admin, coffer.RoleWriter), rotateOp).Do(p.admin, addOp(p.m5, coffer.RoleReader)).commits
	}},

	// Roles.
	{"self-promotion", "an admin promotes itself to owner", coffer.RuleSelfPromotion, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, setRoleOp(p.admin, coffer.RoleOwner)).commits
	}},
	{"admin-removes-owner", "an admin removes the owner", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, removeOp(p.owner), rotateOp).commits
	}},
	{"admin-demotes-owner", "an admin demotes the owner", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, setRoleOp(p.owner, coffer.RoleAdmin), rotateOp).commits
	}},
	{"admin-adds-owner", "an admin adds an owner", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, addOp(p.m5, coffer.RoleOwner)).commits
	}},
	{"admin-promotes-to-owner", "an admin promotes a writer to owner", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, setRoleOp(p.writer, coffer.RoleOwner)).commits
	}},
	{"last-owner-leaves", "the only owner removes itself", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, removeOp(p.owner), rotateOp).commits
	}},
	{"last-owner-steps-down", "the only owner demotes itself", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, setRoleOp(p.owner, coffer.RoleAdmin), rotateOp).commits
	}},
	{"owners-all-removed", "an owner removes the other owner and itself in one commit", coffer.RuleOwnerProtection, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleOwner)).Do(p.owner, removeOp(p.m5), removeOp(p.owner), rotateOp).commits
	}},

	// Membership.
	{"add-existing-member", "the owner adds a current member again", coffer.RuleDuplicateMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.writer, coffer.RoleReader)).commits
	}},
	{"add-twice", "a commit adds the same member twice", coffer.RuleDuplicateMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader), addOp(p.m5, coffer.RoleReader)).commits
	}},
	{"add-duplicate-handle", "a new account is added under a current member's handle", coffer.RuleDuplicateMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		op := addOp(p.m5, coffer.RoleReader)
		op.Handle = p.writer.Handle
		return p.base(tb).Do(p.owner, op).commits
	}},
	{"two-ops-one-member", "a commit adds a member and sets its role", coffer.RuleDuplicateMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader), setRoleOp(p.m5, coffer.RoleWriter)).commits
	}},
	{"remove-and-readd", "a commit removes a member and adds it back (e.g. with other keys)", coffer.RuleDuplicateMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, removeOp(p.writer), addOp(p.writer, coffer.RoleWriter), rotateOp).commits
	}},
	{"remove-non-member", "the owner removes an account that is not a member", coffer.RuleNotMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, removeOp(p.m5), rotateOp).commits
	}},
	{"remove-removed", "the owner removes a member a second time", coffer.RuleNotMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, removeOp(p.reader), rotateOp).Do(p.owner, removeOp(p.reader), rotateOp).commits
	}},
	{"set-role-non-member", "the owner sets the role of a non-member", coffer.RuleNotMember, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, setRoleOp(p.m5, coffer.RoleWriter)).commits
	}},
	{"set-role-unchanged", "the owner sets a writer's role to writer", coffer.RuleNoOp, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, setRoleOp(p.writer, coffer.RoleWriter)).commits
	}},

	// Epochs, rotations and key commitments.
	{"remove-without-rotation", "a member is removed without a new epoch", coffer.RuleRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, removeOp(p.reader)).commits
	}},
	{"demote-without-rotation", "a writer is demoted without a new epoch", coffer.RuleRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, setRoleOp(p.writer, coffer.RoleReader)).commits
	}},
	{"self-removal-without-rotation", "an admin leaves without a new epoch", coffer.RuleRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.admin, removeOp(p.admin)).commits
	}},
	{"two-rotations", "a commit rotates twice", coffer.RuleRotation, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, rotateOp, rotateOp).commits
	}},
	{"epoch-without-rotation", "a commit bumps the epoch and key commitment without a rotate op", coffer.RuleEpoch, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		c.Epoch++
		c.KeyCommitment = testKeyCommitment(b.group, c.Epoch)
		return b.Push(c, p.owner.Key).commits
	}},
	{"remove-with-epoch-without-rotation", "a removal bumps the epoch without a rotate op", coffer.RuleEpoch, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, removeOp(p.reader))
		c.Epoch++
		c.KeyCommitment = testKeyCommitment(b.group, c.Epoch)
		return b.Push(c, p.owner.Key).commits
	}},
	{"rotation-skips-epoch", "a rotation jumps two epochs", coffer.RuleEpoch, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, removeOp(p.reader), rotateOp)
		c.Epoch++
		c.KeyCommitment = testKeyCommitment(b.group, c.Epoch)
		return b.Push(c, p.owner.Key).commits
	}},
	{"rotation-keeps-epoch", "a rotation keeps the epoch number", coffer.RuleEpoch, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, removeOp(p.reader), rotateOp)
		c.Epoch--
		return b.Push(c, p.owner.Key).commits
	}},
	{"rotation-reuses-key-commitment", "a removal rotates to a new epoch but keeps the key commitment (and so the key)", coffer.RuleKeyCommitment, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, removeOp(p.reader), rotateOp)
		c.KeyCommitment = b.head.KeyCommitment
		return b.Push(c, p.owner.Key).commits
	}},
	{"rotation-zero-key-commitment", "a rotation commits to nothing", coffer.RuleKeyCommitment, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, rotateOp)
		c.KeyCommitment = [32]byte{}
		return b.Push(c, p.owner.Key).commits
	}},
	{"key-commitment-without-rotation", "a commit changes the key commitment without a rotation", coffer.RuleKeyCommitment, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		c.KeyCommitment = testKeyCommitment(b.group, 99)
		return b.Push(c, p.owner.Key).commits
	}},

	// The rest of a commit.
	{"history-flag-changed", "a commit turns history sharing off", coffer.RuleHistoryFlag, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		c := b.Next(p.owner, addOp(p.m5, coffer.RoleReader))
		c.ShareHistory = false
		return b.Push(c, p.owner.Key).commits
	}},
	{"empty-commit", "a commit has no ops", coffer.RuleEmpty, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner).commits
	}},
	{"unknown-op", "a commit has op kind 9", coffer.RuleUnknownOp, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, coffer.Op{Kind: 9}).commits
	}},
	{"unknown-op-zero", "a commit has op kind 0", coffer.RuleUnknownOp, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, coffer.RoleReader), coffer.Op{Kind: 0}).commits
	}},
	{"unknown-version", "a correctly signed commit of version 4 (no such version)", coffer.RuleVersion, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		return b.pushBody(b.Next(p.owner, addOp(p.m5, coffer.RoleReader)), func(body []byte) []byte { body[0] = 4; return body }, p.owner.Key)
	}},
	{"trailing-bytes", "a correctly signed commit with a byte after the last op", coffer.RuleMalformed, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := p.base(tb)
		return b.pushBody(b.Next(p.owner, addOp(p.m5, coffer.RoleReader)), func(body []byte) []byte { return append(body, 0) }, p.owner.Key)
	}},
	{"invalid-role", "an add op with role 7", coffer.RuleMalformed, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, addOp(p.m5, 7)).commits
	}},
	{"invalid-encryption-key", "an add op whose encryption key is not an X-Wing key", coffer.RuleMalformed, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		op := addOp(p.m5, coffer.RoleReader)
		op.EncryptionKey = bytes.Repeat([]byte{0xff}, coffer.EncryptionKeySize)
		return p.base(tb).Do(p.owner, op).commits
	}},
	{"invalid-handle", "an add op with an upper-case handle", coffer.RuleMalformed, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		op := addOp(p.m5, coffer.RoleReader)
		op.Handle = "User-5"
		return p.base(tb).Do(p.owner, op).commits
	}},
	{"add-small-order-key", "an add op whose signing key is the identity point", coffer.RuleWeakKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		op := addOp(p.m5, coffer.RoleReader)
		op.SigningKey = mustHex(tb, "0100000000000000000000000000000000000000000000000000000000000000")
		return p.base(tb).Do(p.owner, op).commits
	}},
	{"add-order-8-key", "an add op whose signing key is a point of order 8", coffer.RuleWeakKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		op := addOp(p.m5, coffer.RoleAdmin)
		op.SigningKey = mustHex(tb, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
		return p.base(tb).Do(p.owner, op).commits
	}},
	{"add-non-canonical-key", "an add op whose signing key encodes y = p+3 instead of 3", coffer.RuleWeakKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		op := addOp(p.m5, coffer.RoleReader)
		op.SigningKey = mustHex(tb, "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
		return p.base(tb).Do(p.owner, op).commits
	}},
	{"genesis-small-order-key", "a genesis whose author's key is the identity point, signed with the signature (identity, 0) that verifies for every message", coffer.RuleWeakKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		identity := mustHex(tb, "0100000000000000000000000000000000000000000000000000000000000000")
		op := addOp(p.owner, coffer.RoleOwner)
		op.SigningKey = identity
		b := newChain(tb, 1)
		c := b.Next(p.owner, op)
		return b.PushSigned(c, coffer.SignedCommit{Body: c.Marshal(), Signature: append(slices.Clone(identity), make([]byte, 32)...)}).commits
	}},
	{"too-many-ops", "a commit with MaxCommitOps+1 ops", coffer.RuleTooLarge, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		ops := make([]coffer.Op, coffer.MaxCommitOps+1)
		for i := range ops {
			ops[i] = rotateOp
		}
		b := p.base(tb)
		c := b.Next(p.owner, ops...)
		c.Epoch = b.head.Epoch + 1
		return b.Push(c, p.owner.Key).commits
	}},
}

// allRules lists every rule the verifier and the parser report; each must
// have a negative case.
var allRules = []string{
	coffer.RuleVersion, coffer.RuleMalformed, coffer.RuleTooLarge, coffer.RuleUnknownOp, coffer.RuleGenesis,
	coffer.RuleGroup, coffer.RuleSeq, coffer.RulePrev, coffer.RuleAuthor, coffer.RuleSignature,
	coffer.RuleHistoryFlag, coffer.RuleEmpty, coffer.RuleEpoch, coffer.RuleRotation, coffer.RuleKeyCommitment,
	coffer.RuleDuplicateMember, coffer.RuleNotMember, coffer.RuleSelfPromotion, coffer.RuleOwnerProtection,
	coffer.RuleNoOp, coffer.RuleWeakKey, coffer.RuleLeave, coffer.RulePendingRotation, coffer.RuleJoinRotation,
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestEveryRuleHasANegativeCase(t *testing.T) {
	covered := map[string]bool{}
	names := map[string]bool{}
	for _, tc := range chainCases {
		covered[tc.rule] = true
		if names[tc.name] {
			t.Errorf("duplicate case name %s", tc.name)
		}
		names[tc.name] = true
	}
	for _, r := range allRules {
		if !covered[r] {
			t.Errorf("rule %q has no negative case", r)
		}
	}
}

// checkChainRule fails tb unless err is an *Error with code EINVALID and rule
// wantRule, or nil when wantRule is "".
func checkChainRule(tb testing.TB, err error, wantRule string) {
	tb.Helper()
	if wantRule == "" {
		if err != nil {
			tb.Fatalf("want success, got %v", err)
		}
		return
	}
	var e *coffer.Error
	if !errors.As(err, &e) {
		tb.Fatalf("want rule %q, got %v", wantRule, err)
	}
	if e.Code != coffer.EINVALID || e.Rule != wantRule {
		tb.Fatalf("want code %s rule %q, got %v", coffer.EINVALID, wantRule, err)
	}
}

func mustMarshalState(tb testing.TB, s *coffer.GroupState) []byte {
	tb.Helper()
	if s.Seq == 0 {
		return nil
	}
	b, err := s.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkChain verifies commits both with VerifyChain and commit by commit
// with Apply, requires both to agree with wantRule, and requires a failing
// Apply to leave the state as it was. It returns the verified state on
// success.
func checkChain(tb testing.TB, commits []coffer.SignedCommit, wantRule string) *coffer.GroupState {
	tb.Helper()
	got, err := coffer.VerifyChain(nil, commits)
	checkChainRule(tb, err, wantRule)
	if wantRule != "" && got != nil {
		tb.Fatalf("VerifyChain returned a state with an error")
	}

	s := new(coffer.GroupState)
	for i, sc := range commits {
		before := mustMarshalState(tb, s)
		err := s.Apply(sc)
		if i < len(commits)-1 {
			if err != nil {
				tb.Fatalf("Apply of commit %d of %d: %v", i+1, len(commits), err)
			}
			continue
		}
		checkChainRule(tb, err, wantRule)
		if err != nil && !bytes.Equal(before, mustMarshalState(tb, s)) {
			tb.Fatalf("a failed Apply changed the state")
		}
	}
	if wantRule == "" {
		if !bytes.Equal(mustMarshalState(tb, got), mustMarshalState(tb, s)) {
			tb.Fatalf("VerifyChain and Apply disagree on the state")
		}
		for _, k := range []int{1, len(commits) / 2, len(commits) - 1} {
			if k <= 0 || k >= len(commits) {
				continue
			}
			trusted, err := coffer.VerifyChain(nil, commits[:k])
			if err != nil {
				tb.Fatal(err)
			}
			next, err := coffer.VerifyChain(trusted, commits[k:])
			if err != nil {
				tb.Fatal(err)
			}
			checkChangedMembers(tb, trusted, next)
		}
	}
	return got
}

// checkChangedMembers requires next, a state verified from prev, to list
// among its ChangedMembers every member whose entry differs from prev's
// (added, removed or replaced): clients check only those again after a
// sync (clientlib's syncOnce), and the server stores only their rows.
func checkChangedMembers(tb testing.TB, prev, next *coffer.GroupState) {
	tb.Helper()
	ids, all := next.ChangedMembers()
	if all {
		tb.Fatalf("a state verified from a trusted one does not know what changed")
	}
	listed := map[coffer.AccountID]bool{}
	for _, id := range ids {
		listed[id] = true
	}
	for id, m := range next.Members {
		if prev.Members[id] != m && !listed[id] {
			tb.Fatalf("member %s (%s) was added or changed at seq %d..%d but is not among the changed members", id, m.Handle, prev.Seq+1, next.Seq)
		}
	}
	for id := range prev.Members {
		if next.Members[id] == nil && !listed[id] {
			tb.Fatalf("member %s was removed at seq %d..%d but is not among the changed members", id, prev.Seq+1, next.Seq)
		}
	}
	// The server writes only the changed accounts' rows (role histories
	// included) of a state stored in rows.
	checkRowsFollow(tb, prev, next)
}

func TestVerifyChainRules(t *testing.T) {
	p := MustChainCast(t)
	for _, tc := range chainCases {
		t.Run(tc.name, func(t *testing.T) {
			checkChain(t, tc.build(t, p), tc.rule)
		})
	}
}

// Vector files hold one case each:
//
//	expect: success | <rule>
//	comment: <what the case shows>
//	seq: <n>          (success only: the head after the chain)
//	epoch: <n>        (success only)
//	head: <hex>       (success only)
//
//	<base64 body> <base64 signature>   (one line per commit, in order)
//
// In a failing vector every commit but the last verifies.
const chainVectorDir = "testdata/chain"

func encodeChainVector(tb testing.TB, tc chainCase, commits []coffer.SignedCommit) []byte {
	tb.Helper()
	var buf bytes.Buffer
	expect := tc.rule
	if expect == "" {
		expect = "success"
	}
	fmt.Fprintf(&buf, "expect: %s\ncomment: %s\n", expect, tc.comment)
	if tc.rule == "" {
		s, err := coffer.VerifyChain(nil, commits)
		if err != nil {
			tb.Fatalf("%s: %v", tc.name, err)
		}
		fmt.Fprintf(&buf, "seq: %d\nepoch: %d\nhead: %x\n", s.Seq, s.Epoch, s.Head)
	}
	buf.WriteString("\n")
	for _, sc := range commits {
		fmt.Fprintf(&buf, "%s %s\n", base64.StdEncoding.EncodeToString(sc.Body), base64.StdEncoding.EncodeToString(sc.Signature))
	}
	return buf.Bytes()
}

type chainVector struct {
	header  map[string]string
	commits []coffer.SignedCommit
}

func parseChainVector(tb testing.TB, data []byte) chainVector {
	tb.Helper()
	v := chainVector{header: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	inHeader := true
	for sc.Scan() {
		line := sc.Text()
		if inHeader {
			if line == "" {
				inHeader = false
				continue
			}
			k, val, ok := strings.Cut(line, ": ")
			if !ok {
				tb.Fatalf("bad header line %q", line)
			}
			v.header[k] = val
			continue
		}
		b64body, b64sig, ok := strings.Cut(line, " ")
		if !ok {
			tb.Fatalf("bad commit line")
		}
		body, err1 := base64.StdEncoding.DecodeString(b64body)
		sig, err2 := base64.StdEncoding.DecodeString(b64sig)
		if err1 != nil || err2 != nil {
			tb.Fatalf("bad base64 in commit line: %v %v", err1, err2)
		}
		v.commits = append(v.commits, coffer.SignedCommit{Body: body, Signature: sig})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestChainVectors checks every vector file on its own (so other
// implementations can use them) and that the files are what chainCases
// generate. Run with -update to rewrite them.
func TestChainVectors(t *testing.T) {
	p := MustChainCast(t)
	want := map[string][]byte{}
	for _, tc := range chainCases {
		want[tc.name+".txt"] = encodeChainVector(t, tc, tc.build(t, p))
	}
	if updateVectors() {
		if err := os.RemoveAll(chainVectorDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(chainVectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			if err := os.WriteFile(filepath.Join(chainVectorDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	files, err := filepath.Glob(filepath.Join(chainVectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no vectors in %s: run go test -run TestChainVectors -update", chainVectorDir)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := want[name]; !ok {
				t.Errorf("%s has no case in chainCases", name)
			} else if !bytes.Equal(data, w) {
				t.Errorf("%s differs from what its case generates: run go test -run TestChainVectors -update", name)
			}
			v := parseChainVector(t, data)
			rule := v.header["expect"]
			if rule == "success" {
				rule = ""
			}
			s := checkChain(t, v.commits, rule)
			if rule == "" {
				if got := strconv.FormatUint(s.Seq, 10); got != v.header["seq"] {
					t.Errorf("seq = %s, vector says %s", got, v.header["seq"])
				}
				if got := strconv.FormatUint(s.Epoch, 10); got != v.header["epoch"] {
					t.Errorf("epoch = %s, vector says %s", got, v.header["epoch"])
				}
				if got := hex.EncodeToString(s.Head[:]); got != v.header["head"] {
					t.Errorf("head = %s, vector says %s", got, v.header["head"])
				}
			}
		})
	}
	for name := range want {
		if _, err := os.Stat(filepath.Join(chainVectorDir, name)); err != nil {
			t.Errorf("case %s has no vector file: run go test -run TestChainVectors -update", name)
		}
	}
}

func TestVerifyChainFromTrusted(t *testing.T) {
	p := MustChainCast(t)
	b := p.base(t).Do(p.owner, addOp(p.m5, coffer.RoleWriter)).Do(p.admin, removeOp(p.reader), rotateOp)
	trusted := checkChain(t, b.commits, "")
	before := mustMarshalState(t, trusted)
	n := len(b.commits)
	b.Do(p.owner, addOp(p.m6, coffer.RoleReader)).
		Do(p.owner, setRoleOp(p.m5, coffer.RoleAdmin)).
		Do(p.m5, removeOp(p.m6), setRoleOp(p.writer, coffer.RoleReader), rotateOp)

	cont, err := coffer.VerifyChain(trusted, b.commits[n:])
	if err != nil {
		t.Fatal(err)
	}
	full := checkChain(t, b.commits, "")
	if !bytes.Equal(mustMarshalState(t, cont), mustMarshalState(t, full)) {
		t.Errorf("continuing from a checkpoint differs from verifying from the genesis")
	}
	if !bytes.Equal(before, mustMarshalState(t, trusted)) || trusted.Members[p.m5.ID].Role != coffer.RoleWriter {
		t.Errorf("VerifyChain modified the trusted state")
	}

	same, err := coffer.VerifyChain(trusted, nil)
	if err != nil || same == trusted || !bytes.Equal(before, mustMarshalState(t, same)) {
		t.Errorf("VerifyChain(trusted, nil) = %p, %v; want an equal copy", same, err)
	}
	_, err = coffer.VerifyChain(trusted, b.commits[n+1:])
	checkChainRule(t, err, coffer.RuleSeq)
	_, err = coffer.VerifyChain(trusted, b.commits)
	checkChainRule(t, err, coffer.RuleSeq)
}

func TestVerifyChainBindsGroup(t *testing.T) {
	p := MustChainCast(t)
	commits := p.base(t).commits
	_, err := coffer.VerifyChain(&coffer.GroupState{Group: testGroupID(2)}, commits)
	checkChainRule(t, err, coffer.RuleGroup)
	s, err := coffer.VerifyChain(&coffer.GroupState{Group: testGroupID(1)}, commits)
	if err != nil || s.Group != testGroupID(1) {
		t.Fatalf("VerifyChain = %v, %v", s, err)
	}
}

// applyChainOneByOne returns the index and error of the first commit that Apply
// rejects, or -1.
func applyChainOneByOne(commits []coffer.SignedCommit) (int, error) {
	s := new(coffer.GroupState)
	for i, sc := range commits {
		if err := s.Apply(sc); err != nil {
			return i, err
		}
	}
	return -1, nil
}

// TestVerifyChainReportsFirstFailure checks that the windowed, parallel
// VerifyChain reports exactly the error that Apply, one commit at a time,
// meets first, across window boundaries.
func TestVerifyChainReportsFirstFailure(t *testing.T) {
	p := MustChainCast(t)
	b := p.base(t)
	for len(b.commits) < 1200 {
		b.Do(p.owner, rotateOp)
	}
	// A forged commit "by the owner" makes an outsider admin; the outsider
	// then authors valid-looking commits.
	b.Push(b.Next(p.owner, addOp(p.m5, coffer.RoleAdmin)), p.m5.Key)
	for len(b.commits) < 3000 {
		b.Do(p.m5, rotateOp)
	}
	forged := b.commits
	valid := p.base(t)
	for len(valid.commits) < 3000 {
		valid.Do(p.admin, rotateOp)
	}

	flipSig := func(cs []coffer.SignedCommit, i int) {
		cs[i].Signature = slices.Clone(cs[i].Signature)
		cs[i].Signature[0] ^= 1
	}
	tests := []struct {
		name     string
		commits  func() []coffer.SignedCommit
		wantRule string
		wantAt   int // index of the failing commit
	}{
		{"valid", func() []coffer.SignedCommit { return valid.commits }, "", -1},
		{"forged-author-then-valid-signatures", func() []coffer.SignedCommit { return forged }, coffer.RuleSignature, 1200},
		{"bad-signature-before-bad-seq", func() []coffer.SignedCommit {
			cs := slices.Clone(valid.commits)
			flipSig(cs, 1500)
			cs[2500] = cs[2499]
			return cs
		}, coffer.RuleSignature, 1500},
		{"bad-seq-in-third-window", func() []coffer.SignedCommit {
			cs := slices.Clone(valid.commits)
			cs[2500] = cs[2499]
			return cs
		}, coffer.RuleSeq, 2500},
		{"bad-signature-and-bad-rule-in-one-commit", func() []coffer.SignedCommit {
			vb := p.base(t)
			for len(vb.commits) < 1100 {
				vb.Do(p.owner, rotateOp)
			}
			vb.Push(vb.Next(p.owner, removeOp(p.reader)), p.writer.Key) // no rotation, and not the owner's signature
			return vb.commits
		}, coffer.RuleSignature, 1100},
		{"bad-rule-at-window-edge", func() []coffer.SignedCommit {
			vb := p.base(t)
			for len(vb.commits) < 1024 {
				vb.Do(p.owner, rotateOp)
			}
			return vb.Do(p.owner, removeOp(p.reader)).commits
		}, coffer.RuleRotation, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			commits := tt.commits()
			_, err := coffer.VerifyChain(nil, commits)
			checkChainRule(t, err, tt.wantRule)
			at, aerr := applyChainOneByOne(commits)
			if at != tt.wantAt {
				t.Fatalf("Apply fails at %d (%v), want %d", at, aerr, tt.wantAt)
			}
			if err != nil {
				if want := fmt.Sprintf("commit %d: ", tt.wantAt+1); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
				checkChainRule(t, aerr, tt.wantRule)
			}
		})
	}
}

// mustRoleHistoryChain is a chain in which member 5 joins, is promoted,
// demoted, removed and added again.
func mustRoleHistoryChain(tb testing.TB, p chainCast) *chainBuilder {
	tb.Helper()
	return p.base(tb).
		Do(p.owner, addOp(p.m5, coffer.RoleReader)).               // epoch 1
		Do(p.admin, setRoleOp(p.m5, coffer.RoleWriter)).           // epoch 1
		Do(p.owner, setRoleOp(p.m5, coffer.RoleReader), rotateOp). // epoch 2
		Do(p.owner, removeOp(p.m5), rotateOp).                     // epoch 3
		Do(p.owner, addOp(p.m5, coffer.RoleAdmin))                 // epoch 3
}

func TestRoleAt(t *testing.T) {
	p := MustChainCast(t)
	s := checkChain(t, mustRoleHistoryChain(t, p).commits, "")
	tests := []struct {
		who   *chainMember
		epoch uint64
		want  coffer.Role
	}{
		{p.m5, 0, coffer.RoleNone},
		{p.m5, 1, coffer.RoleWriter}, // the highest role during epoch 1
		{p.m5, 2, coffer.RoleReader}, // demoted by the commit that started epoch 2
		{p.m5, 3, coffer.RoleAdmin},  // removed when epoch 3 started, then added as admin
		{p.m5, 4, coffer.RoleNone},   // not reached yet
		{p.m6, 1, coffer.RoleNone},
		{p.owner, 1, coffer.RoleOwner},
		{p.writer, 3, coffer.RoleWriter},
		{p.reader, 2, coffer.RoleReader},
	}
	for _, tt := range tests {
		if got := s.RoleAt(tt.who.ID, tt.epoch); got != tt.want {
			t.Errorf("RoleAt(%s, %d) = %s, want %s", tt.who.Handle, tt.epoch, got, tt.want)
		}
	}
	if s.Epoch != 3 || s.Seq != 6 {
		t.Errorf("seq %d epoch %d, want 6 and 3", s.Seq, s.Epoch)
	}
	if j := s.Members[p.m5.ID].JoinedEpoch; j != 3 {
		t.Errorf("JoinedEpoch of a re-added member = %d, want 3", j)
	}
	if j := s.Members[p.writer.ID].JoinedEpoch; j != 1 {
		t.Errorf("JoinedEpoch of a genesis member = %d, want 1", j)
	}
	for e := uint64(1); e <= 3; e++ {
		if kc, ok := s.KeyCommitment(e); !ok || kc != testKeyCommitment(s.Group, e) {
			t.Errorf("KeyCommitment(%d) = %x, %v", e, kc, ok)
		}
	}
	for _, e := range []uint64{0, 4} {
		if _, ok := s.KeyCommitment(e); ok {
			t.Errorf("KeyCommitment(%d) exists", e)
		}
	}
}

func TestSortedMembers(t *testing.T) {
	p := MustChainCast(t)
	s := checkChain(t, mustRoleHistoryChain(t, p).commits, "")
	ms := s.SortedMembers()
	if len(ms) != 5 {
		t.Fatalf("%d members, want 5", len(ms))
	}
	for i := 1; i < len(ms); i++ {
		if bytes.Compare(ms[i-1].ID[:], ms[i].ID[:]) >= 0 {
			t.Errorf("members not sorted by id")
		}
	}
	ms[0].Role = coffer.RoleNone
	if s.Members[ms[0].ID].Role == coffer.RoleNone {
		t.Errorf("SortedMembers returned the state's own members")
	}
}

func TestGroupStateBinaryRoundTrip(t *testing.T) {
	p := MustChainCast(t)
	b := mustRoleHistoryChain(t, p)
	s := checkChain(t, b.commits, "")
	data, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var u coffer.GroupState
	if err := u.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if again := mustMarshalState(t, &u); !bytes.Equal(again, data) {
		t.Fatalf("re-encoding differs")
	}
	if u.Group != s.Group || u.Seq != s.Seq || u.Head != s.Head || u.Epoch != s.Epoch || u.ShareHistory != s.ShareHistory {
		t.Errorf("header differs: %+v", u)
	}
	if !equalChainMembers(u.SortedMembers(), s.SortedMembers()) {
		t.Errorf("members differ")
	}
	for n := 1; n <= 6; n++ {
		id := MustChainMember(t, n).ID
		for e := uint64(0); e <= 4; e++ {
			if u.RoleAt(id, e) != s.RoleAt(id, e) {
				t.Errorf("RoleAt(user-%d, %d) differs", n, e)
			}
		}
	}
	for e := uint64(0); e <= 4; e++ {
		k1, ok1 := u.KeyCommitment(e)
		k2, ok2 := s.KeyCommitment(e)
		if k1 != k2 || ok1 != ok2 {
			t.Errorf("KeyCommitment(%d) differs", e)
		}
	}

	// The restored state verifies the next commits exactly as the original.
	b.Do(p.m5, removeOp(p.writer), rotateOp).Do(p.owner, addOp(p.m6, coffer.RoleWriter))
	next := b.commits[len(b.commits)-2:]
	s1, err1 := coffer.VerifyChain(s, next)
	s2, err2 := coffer.VerifyChain(&u, next)
	if err1 != nil || err2 != nil || !bytes.Equal(mustMarshalState(t, s1), mustMarshalState(t, s2)) {
		t.Errorf("continuations differ: %v, %v", err1, err2)
	}

	// Every truncation fails and leaves the target unchanged.
	for i := range data {
		v := u
		if err := v.UnmarshalBinary(data[:i]); err == nil {
			t.Fatalf("truncation to %d bytes accepted", i)
		}
		if !bytes.Equal(mustMarshalState(t, &v), data) {
			t.Fatalf("failed UnmarshalBinary changed the state")
		}
	}
	if err := new(coffer.GroupState).UnmarshalBinary(append(slices.Clone(data), 0)); err == nil {
		t.Errorf("trailing byte accepted")
	}
	// Any accepted mangling must re-encode to itself (the decoder is strict).
	for i := range data {
		m := slices.Clone(data)
		m[i] ^= 0xff
		var v coffer.GroupState
		if v.UnmarshalBinary(m) == nil && !bytes.Equal(mustMarshalState(t, &v), m) {
			t.Fatalf("flipping byte %d gives a non-canonical state that decodes", i)
		}
	}
	if _, err := new(coffer.GroupState).MarshalBinary(); err == nil {
		t.Errorf("MarshalBinary of the state before genesis succeeded")
	}
}

func equalChainMembers(a, b []*coffer.Member) bool {
	return slices.EqualFunc(a, b, func(x, y *coffer.Member) bool {
		return x.ID == y.ID && x.Handle == y.Handle && x.Role == y.Role && x.JoinedEpoch == y.JoinedEpoch && x.KeyEpoch == y.KeyEpoch &&
			bytes.Equal(x.SigningKey, y.SigningKey) && bytes.Equal(x.EncryptionKey, y.EncryptionKey)
	})
}

// mustLongChain returns a chain of n commits: a genesis with an admin and 16
// members, then members of a pool of 32 added by the owner, promoted by the
// admin, and removed by the admin with a rotation, in turn.
func mustLongChain(tb testing.TB, n int) []coffer.SignedCommit {
	tb.Helper()
	owner, admin := MustChainMember(tb, 1), MustChainMember(tb, 2)
	ops := []coffer.Op{addOp(admin, coffer.RoleAdmin)}
	for i := range 16 {
		ops = append(ops, addOp(MustChainMember(tb, 10+i), coffer.RoleReader))
	}
	b := MustGenesis(tb, owner, ops...)
	for k := 0; len(b.commits) < n; k++ {
		x := MustChainMember(tb, 100+(k/3)%32)
		switch k % 3 {
		case 0:
			b.Do(owner, addOp(x, coffer.RoleReader))
		case 1:
			b.Do(admin, setRoleOp(x, coffer.RoleWriter))
		case 2:
			b.Do(admin, removeOp(x), rotateOp)
		}
	}
	return b.commits
}

func BenchmarkVerifyChain10k(b *testing.B) {
	commits := mustLongChain(b, 10000)
	for b.Loop() {
		s, err := coffer.VerifyChain(nil, commits)
		if err != nil || s.Seq != 10000 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(commits)), "ns/commit")
}

// BenchmarkApply10k applies the same chain one commit at a time, as the
// server does on append, for comparison with the parallel VerifyChain.
func BenchmarkApply10k(b *testing.B) {
	commits := mustLongChain(b, 10000)
	for b.Loop() {
		s := new(coffer.GroupState)
		for _, sc := range commits {
			if err := s.Apply(sc); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(commits)), "ns/commit")
}

// Clone shares members and role histories between states (copy on
// write): two continuations of one trusted state, each changing the same
// member's role in the same epoch and in a later one, must leave the
// trusted state and each other as they would be alone.
func TestCloneIsCopyOnWrite(t *testing.T) {
	p := MustChainCast(t)
	// m5's history ends in the current epoch and has spare capacity.
	b := p.base(t).
		Do(p.owner, addOp(p.m5, coffer.RoleReader)).
		Do(p.owner, setRoleOp(p.m5, coffer.RoleWriter), rotateOp).
		Do(p.owner, setRoleOp(p.m5, coffer.RoleReader), rotateOp)
	trusted := checkChain(t, b.commits, "")
	before := mustMarshalState(t, trusted)
	n := len(b.commits)

	up := *b
	up.commits = slices.Clone(b.commits)
	up.Do(p.owner, setRoleOp(p.m5, coffer.RoleAdmin)).Do(p.owner, setRoleOp(p.writer, coffer.RoleAdmin), rotateOp)
	down := *b
	down.commits = slices.Clone(b.commits)
	down.Do(p.owner, removeOp(p.m5), rotateOp).Do(p.owner, setRoleOp(p.reader, coffer.RoleWriter))

	a, err := coffer.VerifyChain(trusted, up.commits[n:])
	if err != nil {
		t.Fatal(err)
	}
	c, err := coffer.VerifyChain(trusted, down.commits[n:])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, mustMarshalState(t, trusted)) {
		t.Fatal("verifying continuations changed the trusted state")
	}
	for _, tc := range []struct {
		s    *coffer.GroupState
		full []coffer.SignedCommit
	}{{a, up.commits}, {c, down.commits}} {
		if !bytes.Equal(mustMarshalState(t, tc.s), mustMarshalState(t, checkChain(t, tc.full, ""))) {
			t.Error("a continuation of a shared state differs from its chain verified alone")
		}
	}
	if got := a.RoleAt(p.m5.ID, trusted.Epoch); got != coffer.RoleAdmin {
		t.Errorf("RoleAt(m5) after the raise = %s, want admin", got)
	}
	if got := c.RoleAt(p.m5.ID, trusted.Epoch); got != coffer.RoleReader {
		t.Errorf("RoleAt(m5) in the other continuation = %s, want reader", got)
	}
	if got := trusted.Members[p.writer.ID].Role; got != coffer.RoleWriter {
		t.Errorf("the trusted state's writer is now %s", got)
	}
	if c.Members[p.m5.ID] != nil || trusted.Members[p.m5.ID] == nil {
		t.Error("a removal in one continuation reached the trusted state, or did not happen")
	}
}

func TestMemberByHandle(t *testing.T) {
	p := MustChainCast(t)
	b := p.base(t)
	s := checkChain(t, b.commits, "")
	if m := s.MemberByHandle(p.writer.Handle); m == nil || m.ID != p.writer.ID {
		t.Fatalf("MemberByHandle(writer) = %v", m)
	}
	b.Do(p.owner, removeOp(p.writer), rotateOp)
	after := checkChain(t, b.commits, "")
	if m := after.MemberByHandle(p.writer.Handle); m != nil {
		t.Errorf("a removed member is still found by handle: %v", m)
	}
	if m := s.MemberByHandle(p.writer.Handle); m == nil {
		t.Error("the state before the removal lost the member")
	}
	if m := after.MemberByHandle("nobody"); m != nil {
		t.Errorf("MemberByHandle(nobody) = %v", m)
	}
	hand := &coffer.GroupState{Members: map[coffer.AccountID]*coffer.Member{p.reader.ID: {ID: p.reader.ID, Handle: p.reader.Handle}}}
	if m := hand.MemberByHandle(p.reader.Handle); m == nil || m.ID != p.reader.ID {
		t.Errorf("a state built by hand: MemberByHandle = %v", m)
	}
}
