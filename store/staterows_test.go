package store_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// rowsMember is a suite v1 member of the state-rows tests.
type rowsMember struct {
	id     coffer.AccountID
	handle coffer.Handle
	key    ed25519.PrivateKey
	xwing  []byte
}

func mustXWing(tb testing.TB, n int) []byte {
	tb.Helper()
	ikm := sha256.Sum256(fmt.Appendf(nil, "coffer store rows %d", n))
	dk, err := coffer.KEM().DeriveKeyPair(ikm[:])
	if err != nil {
		tb.Fatal(err)
	}
	return dk.PublicKey().Bytes()
}

func newRowsMembers(tb testing.TB, n int, xwing []byte) []*rowsMember {
	ms := make([]*rowsMember, n)
	for i := range ms {
		seed := sha256.Sum256(fmt.Appendf(nil, "coffer store rows member %d", i))
		ms[i] = &rowsMember{id: coffer.NewAccountID(), handle: coffer.Handle(fmt.Sprintf("rows-%d", i)), key: ed25519.NewKeyFromSeed(seed[:]), xwing: xwing}
	}
	return ms
}

func (m *rowsMember) add(r coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpAdd, Member: m.id, Handle: m.handle, SigningKey: m.key.Public().(ed25519.PublicKey), EncryptionKey: m.xwing, Role: r}
}

// rowsChain commits to a group through the store as the server does:
// the state from GroupState, the commit applied to it, AppendCommit.
type rowsChain struct {
	tb       testing.TB
	db       *store.DB
	pool     *pgxpool.Pool
	g        coffer.GroupID
	owner    *rowsMember
	head     *coffer.Commit
	headHash [32]byte
	verified *coffer.GroupState // verified from the commits alone
}

func (c *rowsChain) commit(author *rowsMember, ops ...coffer.Op) {
	c.tb.Helper()
	ctx := context.Background()
	cm := &coffer.Commit{Group: c.g, Seq: 1, Epoch: 1, Author: author.id, ShareHistory: true, Ops: ops}
	if c.head != nil {
		cm.Seq, cm.Prev, cm.Epoch = c.head.Seq+1, c.headHash, c.head.Epoch
		if cm.Rotates() {
			cm.Epoch++
		}
	}
	cm.Time = time.Now().UnixMilli()
	cm.KeyCommitment = sha256.Sum256(fmt.Appendf(c.g[:], "epoch %d", cm.Epoch))
	sc := coffer.SignCommit(cm, author.key)
	parsed, err := coffer.ParseCommit(sc.Body)
	if err != nil {
		c.tb.Fatal(err)
	}
	state := new(coffer.GroupState)
	if c.head != nil {
		if state, err = c.db.GroupState(ctx, c.owner.id, c.g); err != nil {
			c.tb.Fatal(err)
		}
	}
	prevSeq := state.Seq
	if err := state.Apply(sc); err != nil {
		c.tb.Fatalf("commit %d: %v", cm.Seq, err)
	}
	if c.verified, err = coffer.VerifyChain(c.verified, []coffer.SignedCommit{sc}); err != nil {
		c.tb.Fatal(err)
	}
	a := &coffer.GroupAppend{Commit: sc, Parsed: parsed, State: state, PrevSeq: prevSeq, Received: time.Now()}
	if c.head == nil {
		err = c.db.CreateGroup(ctx, a)
	} else {
		_, err = c.db.AppendCommit(ctx, author.id, a)
	}
	if err != nil {
		c.tb.Fatalf("commit %d: %v", cm.Seq, err)
	}
	c.head, c.headHash = cm, sc.Hash()
}

// rowVersions is each group_state_accounts row of the group with the
// transaction that wrote it.
func (c *rowsChain) rowVersions() map[coffer.AccountID]string {
	c.tb.Helper()
	rows, err := c.pool.Query(context.Background(), `SELECT account_id, xmin::text FROM group_state_accounts WHERE group_id = $1`, c.g)
	if err != nil {
		c.tb.Fatal(err)
	}
	out := map[coffer.AccountID]string{}
	for rows.Next() {
		var (
			id   coffer.AccountID
			xmin string
		)
		if err := rows.Scan(&id, &xmin); err != nil {
			c.tb.Fatal(err)
		}
		out[id] = xmin
	}
	if err := rows.Err(); err != nil {
		c.tb.Fatal(err)
	}
	return out
}

// step commits and requires it to write exactly the rows of want, and the
// state a process without a cache reads back to be the verified one.
func (c *rowsChain) step(what string, want []coffer.AccountID, author *rowsMember, ops ...coffer.Op) {
	c.tb.Helper()
	before := c.rowVersions()
	c.commit(author, ops...)
	after := c.rowVersions()
	var written []coffer.AccountID
	for id, x := range after {
		if before[id] != x {
			written = append(written, id)
		}
	}
	for id := range before {
		if _, ok := after[id]; !ok {
			c.tb.Fatalf("%s: the row of %s was deleted", what, id)
		}
	}
	sortIDs(written)
	want = slices.Clone(want)
	sortIDs(want)
	if !slices.Equal(written, want) {
		c.tb.Fatalf("%s: wrote %d rows, want %d (the changed accounts')", what, len(written), len(want))
	}
	c.checkStored(what)
}

// checkStored requires what the database holds to restore the verified
// state, read by a process whose state cache is off.
func (c *rowsChain) checkStored(what string) {
	c.tb.Helper()
	fresh := store.New(c.pool)
	fresh.StateCacheBytes = -1
	got, err := fresh.GroupState(context.Background(), c.owner.id, c.g)
	if err != nil {
		c.tb.Fatalf("%s: %v", what, err)
	}
	g, err1 := got.MarshalBinary()
	w, err2 := c.verified.MarshalBinary()
	if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
		c.tb.Fatalf("%s: the stored state is not the verified one (%v, %v)", what, err1, err2)
	}
	var (
		header []byte
		inRows bool
	)
	if err := c.pool.QueryRow(context.Background(), `SELECT state, state_rows FROM groups WHERE id = $1`, c.g).Scan(&header, &inRows); err != nil {
		c.tb.Fatal(err)
	}
	if inRows && len(header) > 200+32*int(c.verified.Epoch) {
		c.tb.Fatalf("%s: groups.state is %d bytes: it holds the members", what, len(header))
	}
}

func sortIDs(ids []coffer.AccountID) {
	slices.SortFunc(ids, func(a, b coffer.AccountID) int { return bytes.Compare(a[:], b[:]) })
}

func idsOf(ms ...*rowsMember) []coffer.AccountID {
	ids := make([]coffer.AccountID, len(ms))
	for i, m := range ms {
		ids[i] = m.id
	}
	return ids
}

func newRowsChain(t *testing.T, cache bool) (*rowsChain, []*rowsMember) {
	pool := pgtest.NewPool(t)
	const n = 1500
	ms := newRowsMembers(t, n, mustXWing(t, 1))
	db := store.New(pool)
	if !cache {
		db.StateCacheBytes = -1
	}
	return &rowsChain{tb: t, db: db, pool: pool, g: coffer.NewGroupID(), owner: ms[0]}, ms
}

// TestGroupStateRows: a commit to a group of 1,500 writes the rows of the
// accounts it changed and no other (counted by the transaction that last
// wrote each row), and the state read back without the cache is the
// verified one, through a genesis, a bulk add, a removal, a promotion, a
// leave and its rotation, a self-update and a re-add; each commit
// applied to the state served from the cache, and to the state read from
// the rows.
func TestGroupStateRows(t *testing.T) {
	for _, cache := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) { testGroupStateRows(t, cache) })
	}
}

func testGroupStateRows(t *testing.T, cache bool) {
	c, ms := newRowsChain(t, cache)
	owner, admin := ms[0], ms[1]
	first, bulk := ms[1:1000], ms[1000:1400]

	ops := []coffer.Op{owner.add(coffer.RoleOwner), admin.add(coffer.RoleAdmin)}
	for _, m := range first[1:] {
		ops = append(ops, m.add(coffer.RoleWriter))
	}
	c.step("genesis", idsOf(ms[:1000]...), owner, ops...)

	ops = nil
	for _, m := range bulk {
		ops = append(ops, m.add(coffer.RoleReader))
	}
	c.step("bulk add", idsOf(bulk...), admin, ops...)

	gone := first[5]
	c.step("removal", idsOf(gone), admin, coffer.Op{Kind: coffer.OpRemove, Member: gone.id}, coffer.Op{Kind: coffer.OpRotate})
	c.step("set role", idsOf(first[6]), owner, coffer.Op{Kind: coffer.OpSetRole, Member: first[6].id, Role: coffer.RoleAdmin})
	leaver := bulk[7]
	c.step("leave", idsOf(leaver), leaver, coffer.Op{Kind: coffer.OpLeave, Member: leaver.id})
	if !c.verified.PendingRotation {
		t.Fatal("no rotation pending after a leave")
	}
	c.step("rotation", nil, owner, coffer.Op{Kind: coffer.OpRotate})

	updater := first[9]
	seed := sha256.Sum256([]byte("coffer store rows new key"))
	nk := ed25519.NewKeyFromSeed(seed[:])
	c.step("update-key", idsOf(updater), updater, coffer.Op{Kind: coffer.OpUpdateKey, Member: updater.id,
		SigningKey: nk.Public().(ed25519.PublicKey), EncryptionKey: mustXWing(t, 2)}, coffer.Op{Kind: coffer.OpRotate})
	updater.key = nk
	c.step("re-add", idsOf(gone), owner, gone.add(coffer.RoleReader), coffer.Op{Kind: coffer.OpRotate})

	if got := len(c.rowVersions()); got != 1400 {
		t.Fatalf("%d rows, want one per account ever a member (1,400)", got)
	}
}

// TestGroupStateRowsFromOlderCheckpoint: a group whose groups.state is a
// checkpoint of before migration 00020 (and no rows) is read from it, and
// its next commit stores it in rows, every row; a process that still
// serves it from its cache is refused once and then writes every row.
func TestGroupStateRowsFromOlderCheckpoint(t *testing.T) {
	ctx := context.Background()
	c, ms := newRowsChain(t, true)
	owner := ms[0]
	ops := []coffer.Op{owner.add(coffer.RoleOwner)}
	for _, m := range ms[1:50] {
		ops = append(ops, m.add(coffer.RoleWriter))
	}
	c.commit(owner, ops...)
	toOlder := func() {
		t.Helper()
		old, err := c.verified.MarshalBinaryDetached()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.pool.Exec(ctx, `UPDATE groups SET state = $2, state_rows = false WHERE id = $1`, c.g, old); err != nil {
			t.Fatal(err)
		}
		if _, err := c.pool.Exec(ctx, `DELETE FROM group_state_accounts WHERE group_id = $1`, c.g); err != nil {
			t.Fatal(err)
		}
	}
	toOlder()
	fresh := store.New(c.pool)
	fresh.StateCacheBytes = -1
	c.db = fresh
	c.checkStored("an older checkpoint")
	c.step("the first commit after", idsOf(ms[:51]...), owner, ms[50].add(coffer.RoleReader))

	// A cache that holds the state while another process (of older code)
	// rewrote it as an older checkpoint.
	c.db = store.New(c.pool)
	c.checkStored("before caching")
	if _, err := c.db.GroupState(ctx, owner.id, c.g); err != nil {
		t.Fatal(err)
	}
	toOlder()
	state, err := c.db.GroupState(ctx, owner.id, c.g)
	if err != nil {
		t.Fatal(err)
	}
	if _, all := state.ChangedMembers(); all {
		t.Fatal("the cached state is not served as a Clone")
	}
	cm := &coffer.Commit{Group: c.g, Seq: c.head.Seq + 1, Prev: c.headHash, Epoch: c.head.Epoch, Author: owner.id, ShareHistory: true,
		Time: time.Now().UnixMilli(), KeyCommitment: c.head.KeyCommitment, Ops: []coffer.Op{ms[51].add(coffer.RoleReader)}}
	sc := coffer.SignCommit(cm, owner.key)
	parsed, _ := coffer.ParseCommit(sc.Body)
	if err := state.Apply(sc); err != nil {
		t.Fatal(err)
	}
	a := &coffer.GroupAppend{Commit: sc, Parsed: parsed, State: state, PrevSeq: c.head.Seq, Received: time.Now()}
	if _, err := c.db.AppendCommit(ctx, owner.id, a); coffer.ErrorCode(err) != coffer.ECONFLICT {
		t.Fatalf("a partial write over an older checkpoint: %v, want ECONFLICT", err)
	}
	if n := len(c.rowVersions()); n != 0 {
		t.Fatalf("the refused commit wrote %d rows", n)
	}
	c.step("the retry", idsOf(ms[:52]...), owner, ms[51].add(coffer.RoleReader))
	if got := slices.Collect(maps.Keys(c.rowVersions())); len(got) != 52 {
		t.Fatalf("%d rows, want 52", len(got))
	}
}
