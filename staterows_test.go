package coffer_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// storedTree is the loadTree of a store that keeps s's tree one row per
// node.
func storedTree(s *coffer.GroupState) func(uint32) (*ratchettree.Tree, error) {
	return func(n uint32) (*ratchettree.Tree, error) {
		var rows []ratchettree.NodeRow
		if s.Tree != nil {
			for x := range ratchettree.Width(s.Tree.Leaves()) {
				if r := s.Tree.Node(x); r.PublicKey != nil {
					rows = append(rows, r)
				}
			}
		}
		return ratchettree.TreeFromRows(n, rows)
	}
}

func mustStateRows(tb testing.TB, s *coffer.GroupState) ([]byte, []coffer.StateAccount) {
	tb.Helper()
	header, err := s.MarshalBinaryRows()
	if err != nil {
		tb.Fatal(err)
	}
	rows, err := s.StateAccounts()
	if err != nil {
		tb.Fatal(err)
	}
	return header, rows
}

// checkRowsRoundTrip requires s, stored as a header and rows (given in a
// shuffled order), to restore the state MarshalBinary encodes, and that
// state to store the same header and rows.
func checkRowsRoundTrip(tb testing.TB, s *coffer.GroupState) {
	tb.Helper()
	header, rows := mustStateRows(tb, s)
	shuffled := slices.Clone(rows)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var r coffer.GroupState
	if err := r.UnmarshalBinaryRows(header, shuffled, storedTree(s)); err != nil {
		tb.Fatalf("seq %d: %v", s.Seq, err)
	}
	if !bytes.Equal(mustMarshalState(tb, &r), mustMarshalState(tb, s)) {
		tb.Fatalf("seq %d: the stored rows restore another state", s.Seq)
	}
	h2, rows2 := mustStateRows(tb, &r)
	if !bytes.Equal(h2, header) || !slices.EqualFunc(rows, rows2, equalStateAccount) {
		tb.Fatalf("seq %d: the restored state stores other rows", s.Seq)
	}
	if len(rows) == 0 || len(header) > 200+32*int(s.Epoch) {
		tb.Fatalf("seq %d: a header of %d bytes and %d rows: the members are not in the rows", s.Seq, len(header), len(rows))
	}
}

func equalStateAccount(a, b coffer.StateAccount) bool {
	return a.ID == b.ID && bytes.Equal(a.Member, b.Member) && (a.Member == nil) == (b.Member == nil) && bytes.Equal(a.Roles, b.Roles)
}

// checkRowsFollow requires that next, verified from prev, is what a store
// holds after writing, over prev's rows, next's header and the rows of
// next's changed members only: the rows of every other account are
// prev's, byte for byte.
func checkRowsFollow(tb testing.TB, prev, next *coffer.GroupState) {
	tb.Helper()
	if prev.Seq == 0 {
		return
	}
	ids, all := next.ChangedMembers()
	if all {
		tb.Fatalf("a state verified from a trusted one does not know what changed")
	}
	_, prevRows := mustStateRows(tb, prev)
	header, nextRows := mustStateRows(tb, next)
	changed, err := next.StateAccountsOf(ids)
	if err != nil {
		tb.Fatal(err)
	}
	stored := map[coffer.AccountID]coffer.StateAccount{}
	for _, r := range prevRows {
		stored[r.ID] = r
	}
	for _, r := range changed {
		stored[r.ID] = r
	}
	for _, want := range nextRows {
		if !equalStateAccount(stored[want.ID], want) {
			tb.Fatalf("seq %d..%d: the row of account %s changed but the account is not among the changed members", prev.Seq+1, next.Seq, want.ID)
		}
	}
	var r coffer.GroupState
	rows := make([]coffer.StateAccount, 0, len(stored))
	for _, row := range stored {
		rows = append(rows, row)
	}
	if err := r.UnmarshalBinaryRows(header, rows, storedTree(next)); err != nil {
		tb.Fatalf("seq %d..%d: the rows written for the changed members: %v", prev.Seq+1, next.Seq, err)
	}
	if !bytes.Equal(mustMarshalState(tb, &r), mustMarshalState(tb, next)) {
		tb.Fatalf("seq %d..%d: the rows written for the changed members restore another state", prev.Seq+1, next.Seq)
	}
}

// TestStateRowsTree: a tree group's state survives storage in rows after
// every step of the lifecycle (adds, removals, role changes, self-updates,
// a leave and its pending rotation).
func TestStateRowsTree(t *testing.T) {
	p := mustTreeCast(t)
	steps := 0
	p.lifecycle(t, func(b *treeChain) {
		t.Helper()
		checkRowsRoundTrip(t, b.state)
		steps++
	})
	if steps < 8 {
		t.Fatalf("%d steps checked", steps)
	}
}

// TestStateRowsPairwise: suite v2 pairwise states (adds, a demotion,
// removals, a self-update, a leave and the pending rotation) and a suite
// v1 state with a role history survive storage in rows, at every commit,
// and the rows of each commit's changed members suffice.
func TestStateRowsPairwise(t *testing.T) {
	p := mustV2Cast(t)
	for _, c := range v2Cases {
		if c.rule != "" {
			continue
		}
		commits, keys := c.build(t, p)
		if keys == nil {
			t.Fatalf("%s: no keys", c.name)
		}
		var prev *coffer.GroupState
		for cut := 1; cut <= len(commits); cut++ {
			s, err := coffer.VerifyChainWith(prev, commits[cut-1:cut], keys)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			checkRowsRoundTrip(t, s)
			if prev != nil {
				checkRowsFollow(t, prev, s)
			}
			prev = s
		}
	}
	cast := MustChainCast(t)
	checkRowsRoundTrip(t, checkChain(t, mustRoleHistoryChain(t, cast).commits, ""))
}

// TestStateRowsMalformed: a header or row that is cut, extended, missing,
// repeated or edited to disagree with the rest is refused, and a refused
// restore leaves the state as it was.
func TestStateRowsMalformed(t *testing.T) {
	p := mustTreeCast(t)
	var s *coffer.GroupState
	p.lifecycle(t, func(b *treeChain) {
		if b.state.PendingRotation {
			s = b.state // with a departure listed in the header
		}
	})
	if s == nil {
		t.Fatal("no state with a pending rotation")
	}
	header, rows := mustStateRows(t, s)
	load := storedTree(s)
	var target coffer.GroupState
	if err := target.UnmarshalBinaryRows(header, rows, load); err != nil {
		t.Fatal(err)
	}
	before := mustMarshalState(t, &target)
	refused := func(what string, header []byte, rows []coffer.StateAccount) {
		t.Helper()
		v := target
		err := v.UnmarshalBinaryRows(header, rows, load)
		if err == nil {
			t.Fatalf("%s: restored", what)
		}
		if coffer.ErrorCode(err) != coffer.EINVALID {
			t.Fatalf("%s: %v, want EINVALID", what, err)
		}
		if !bytes.Equal(mustMarshalState(t, &v), before) {
			t.Fatalf("%s: a refused restore changed the state", what)
		}
	}
	for i := range header {
		refused("a header cut", header[:i], rows)
	}
	refused("a header with a trailing byte", append(slices.Clone(header), 0), rows)
	// Any accepted flip of a header byte restores a state that stores
	// that header: the decoder is strict.
	for i := range header {
		m := slices.Clone(header)
		m[i] ^= 0xff
		var v coffer.GroupState
		if v.UnmarshalBinaryRows(m, rows, load) == nil {
			if again, _ := v.MarshalBinaryRows(); !bytes.Equal(again, m) {
				t.Fatalf("flipping header byte %d gives a non-canonical state that restores", i)
			}
		}
	}
	if (&coffer.GroupState{}).UnmarshalBinaryRows(header, rows, nil) == nil {
		t.Fatal("a tree group restored without its tree")
	}
	mk := func(f func(rows []coffer.StateAccount) []coffer.StateAccount) []coffer.StateAccount {
		c := make([]coffer.StateAccount, len(rows))
		for i, r := range rows {
			c[i] = coffer.StateAccount{ID: r.ID, Member: slices.Clone(r.Member), Roles: slices.Clone(r.Roles)}
		}
		return f(c)
	}
	var member, former int
	for i, r := range rows {
		if r.Member == nil {
			former = i
		} else if s.Members[r.ID].Role != coffer.RoleOwner {
			member = i
		}
	}
	if rows[former].Member != nil || rows[member].Member == nil {
		t.Fatal("the state has no former member")
	}
	refused("a row missing", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount { return r[1:] }))
	refused("a former member's row missing", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount { return slices.Delete(r, former, former+1) }))
	refused("a row repeated", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount { return append(r[1:], r[1]) }))
	refused("an extra row", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount {
		return append(r, coffer.StateAccount{ID: MustChainMember(t, 40).ID, Roles: r[former].Roles})
	}))
	refused("a member entry on a former member", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount {
		r[former].Member = r[member].Member
		return r
	}))
	refused("a member entry dropped", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount {
		r[member].Member = nil
		return r
	}))
	refused("a zero account id", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount {
		r[member].ID = coffer.AccountID{}
		return r
	}))
	for _, part := range []string{"member", "roles"} {
		pick := func(r []coffer.StateAccount) *[]byte {
			if part == "member" {
				return &r[member].Member
			}
			return &r[member].Roles
		}
		n := len(*pick(rows))
		for i := range n {
			refused(part+" cut", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount {
				b := pick(r)
				*b = (*b)[:i]
				if part == "member" && i == 0 {
					*b = []byte{} // empty, not absent
				}
				return r
			}))
		}
		refused(part+" with a trailing byte", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount {
			b := pick(r)
			*b = append(*b, 0)
			return r
		}))
		for i := range n {
			m := mk(func(r []coffer.StateAccount) []coffer.StateAccount {
				b := pick(r)
				(*b)[i] ^= 0xff
				return r
			})
			var v coffer.GroupState
			if v.UnmarshalBinaryRows(header, m, load) == nil {
				_, again := mustStateRows(t, &v)
				if !slices.EqualFunc(again, sortedRows(m), equalStateAccount) {
					t.Fatalf("flipping %s byte %d gives a non-canonical state that restores", part, i)
				}
			}
		}
	}
	// The role byte of a member entry must agree with its history.
	refused("a role edited", header, mk(func(r []coffer.StateAccount) []coffer.StateAccount {
		h := len(s.Members[r[member].ID].Handle)
		r[member].Member[1+h+32] = byte(coffer.RoleOwner)
		return r
	}))
	// A header of another group kind.
	pb := mustV2Cast(t).base(t)
	pairwise, err := coffer.VerifyChainWith(nil, pb.commits, pb.keys)
	if err != nil {
		t.Fatal(err)
	}
	ph, prows := mustStateRows(t, pairwise)
	if (&coffer.GroupState{}).UnmarshalBinaryRows(ph, rows, load) == nil {
		t.Fatal("a pairwise header restored with a tree group's rows")
	}
	if err := (&coffer.GroupState{}).UnmarshalBinaryRows(ph, prows, nil); err != nil {
		t.Fatalf("a pairwise state: %v", err)
	}
	if (&coffer.GroupState{}).UnmarshalBinaryRows(mustMarshalState(t, s), rows, load) == nil {
		t.Fatal("a version 5 checkpoint restored as a header")
	}
	if (&coffer.GroupState{}).UnmarshalBinary(header) == nil {
		t.Fatal("a header restored as a checkpoint")
	}
}

func sortedRows(rows []coffer.StateAccount) []coffer.StateAccount {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b coffer.StateAccount) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return rows
}

// FuzzGroupStateRows: the server restores a group's state from a header
// and a row per account. A corrupt header or row must be refused, never
// panic, and whatever is accepted must store the same header and rows.
func FuzzGroupStateRows(f *testing.F) {
	p := mustV2Cast(f)
	commits, keys := v2Cases[1].build(f, p)
	s, err := coffer.VerifyChainWith(nil, commits, keys)
	if err != nil {
		f.Fatal(err)
	}
	header, rows := mustStateRows(f, s)
	first := 0
	for first < len(rows) && rows[first].Member == nil {
		first++
	}
	f.Add(header, rows[first].Member, rows[first].Roles)
	f.Add([]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, header, member, roles []byte) {
		in := slices.Clone(rows)
		in[first] = coffer.StateAccount{ID: rows[first].ID, Member: member, Roles: roles}
		var st coffer.GroupState
		if err := st.UnmarshalBinaryRows(header, in, nil); err != nil {
			return
		}
		h, again := mustStateRows(t, &st)
		if !bytes.Equal(h, header) || !slices.EqualFunc(again, sortedRows(in), equalStateAccount) {
			t.Fatal("an accepted state stores another header or rows")
		}
		if _, err := st.MarshalBinary(); err != nil {
			t.Fatalf("an accepted state does not encode: %v", err)
		}
	})
}
