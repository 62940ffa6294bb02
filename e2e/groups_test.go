package e2e_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// mustVerify has a verify b's keys the way a person would: b reads out
// its safety number, a types it in.
func mustVerify(tb testing.TB, a, b *clientlib.Client) {
	tb.Helper()
	if _, err := a.Verify(context.Background(), string(b.Identity().Handle()), b.Identity().SafetyNumber()); err != nil {
		tb.Fatalf("verify %s: %v", b.Identity().Handle(), err)
	}
}

func mustGroup(tb testing.TB, c *clientlib.Client, name string, opts *clientlib.GroupOptions) coffer.GroupID {
	tb.Helper()
	g, err := c.CreateGroup(context.Background(), name, opts)
	if err != nil {
		tb.Fatalf("create group: %v", err)
	}
	return g
}

func mustAdd(tb testing.TB, owner, member *clientlib.Client, g coffer.GroupID, role coffer.Role) {
	tb.Helper()
	mustVerify(tb, owner, member)
	if err := owner.AddMember(context.Background(), g, string(member.Identity().Handle()), role); err != nil {
		tb.Fatalf("add %s: %v", member.Identity().Handle(), err)
	}
}

func mustEpoch(tb testing.TB, c *clientlib.Client, g coffer.GroupID) uint64 {
	tb.Helper()
	e, err := c.CurrentEpoch(context.Background(), g)
	if err != nil {
		tb.Fatalf("%s: current epoch: %v", c.Identity().Handle(), err)
	}
	return e
}

func wantCode(tb testing.TB, err error, code coffer.Code) {
	tb.Helper()
	if got := coffer.ErrorCode(err); got != code {
		tb.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
}

func wantSecurity(tb testing.TB, err error) {
	tb.Helper()
	if !coffer.IsSecurity(err) {
		tb.Fatalf("got %v, want a *coffer.SecurityError", err)
	}
	tb.Logf("detected: %v", err)
}

func mustDB(tb testing.TB, srv *Server) *pgx.Conn {
	tb.Helper()
	return mustDBAt(tb, srv.DatabaseURL())
}

// mustDBAt connects to the database at url until the test ends.
func mustDBAt(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(tb testing.TB, db *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

func TestGroupStory(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob, carol := MustClient(t, srv, "alice"), MustClient(t, srv, "bob"), MustClient(t, srv, "carol")

	g := mustGroup(t, alice, "project x", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	mustAdd(t, alice, carol, g, coffer.RoleReader)

	// Each member unwraps its own wrap and checks the key against the one
	// signed commitment: equal commitments mean equal keys.
	for _, c := range []*clientlib.Client{alice, bob, carol} {
		if e := mustEpoch(t, c, g); e != 1 {
			t.Fatalf("%s sees epoch %d, want 1", c.Identity().Handle(), e)
		}
	}
	members, err := carol.Members(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("carol sees %d members, want 3", len(members))
	}
	gr, err := bob.Group(ctx, g)
	if err != nil || gr.Name != "project x" || gr.Role != coffer.RoleWriter {
		t.Fatalf("bob's view of the group: %+v, %v", gr, err)
	}

	if err := alice.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	if e := mustEpoch(t, alice, g); e != 2 {
		t.Fatalf("after removal epoch is %d, want 2", e)
	}
	if e := mustEpoch(t, carol, g); e != 2 {
		t.Fatalf("carol sees epoch %d after removal, want 2", e)
	}
	db := mustDB(t, srv)
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 AND epoch = 2`,
		g, bob.AccountID()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("bob has %d wraps for epoch 2 (err %v), want 0", n, err)
	}
	_, err = bob.Sync(ctx, g)
	wantCode(t, err, coffer.ENOTFOUND)
	_, err = bob.Group(ctx, g)
	wantCode(t, err, coffer.ENOTFOUND)
	groups, err := bob.Groups(ctx)
	if err != nil || len(groups) != 0 {
		t.Fatalf("bob still lists %d groups (err %v)", len(groups), err)
	}

	// A member added later reads old epochs only when the group shares history.
	dave := MustClient(t, srv, "dave")
	mustAdd(t, alice, dave, g, coffer.RoleReader)
	epochs, err := dave.ReadableEpochs(ctx, g)
	if err != nil || fmt.Sprint(epochs) != "[1 2]" {
		t.Fatalf("dave reads epochs %v (err %v), want [1 2]", epochs, err)
	}
	private := mustGroup(t, alice, "no history", &clientlib.GroupOptions{NoHistory: true})
	if err := alice.Rotate(ctx, private); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, private, "dave", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	// In a no-history group the add itself rotates: dave holds only the
	// key of the epoch his add started.
	epochs, err = dave.ReadableEpochs(ctx, private)
	if err != nil || fmt.Sprint(epochs) != "[3]" {
		t.Fatalf("dave reads epochs %v of a no-history group (err %v), want [3]", epochs, err)
	}

	history, err := alice.History(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 5 { // genesis, add bob, add carol, remove bob, add dave
		t.Fatalf("history has %d commits, want 5", len(history))
	}
}

func TestAddUnverifiedRefused(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob := MustClient(t, srv, "alice"), MustClient(t, srv, "bob")
	g := mustGroup(t, alice, "g", nil)
	err := alice.AddMember(ctx, g, "bob", coffer.RoleWriter)
	wantCode(t, err, coffer.EUNVERIFIED)
	if _, err := alice.Verify(ctx, "bob", "12345 67890"); coffer.ErrorCode(err) != coffer.EINVALID {
		t.Fatalf("a wrong safety number was accepted: %v", err)
	}
	mustVerify(t, alice, bob)
	if err := alice.AddMember(ctx, g, "bob", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
}

func TestTrustOnFirstUseIsOptIn(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	MustClient(t, srv, "bob")
	tofu, _ := newClient(t, srv, "alice", &clientlib.Options{TrustOnFirstUse: true})
	g := mustGroup(t, tofu, "g", nil)
	if err := tofu.AddMember(ctx, g, "bob", coffer.RoleReader); err != nil {
		t.Fatalf("with trust on first use: %v", err)
	}
	ct, err := tofu.Contact("bob")
	if err != nil || ct.State != clientlib.Verified {
		t.Fatalf("bob's contact after first use: %+v, %v", ct, err)
	}
}

func TestSyncReportsUnverifiedMembers(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob, carol := MustClient(t, srv, "alice"), MustClient(t, srv, "bob"), MustClient(t, srv, "carol")
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleAdmin)
	mustAdd(t, bob, carol, g, coffer.RoleReader) // bob verified carol; alice did not
	res, err := alice.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unverified) != 1 || res.Unverified[0].Handle != "carol" {
		t.Fatalf("alice's sync reports unverified %v, want [carol]", res.Unverified)
	}
}

// newClient registers a client with options; its key store is returned so
// tests can play an insider who holds that member's keys.
func newClient(tb testing.TB, srv *Server, handle string, opts *clientlib.Options) (*clientlib.Client, *clientlib.MemoryKeyStore) {
	tb.Helper()
	ks := NewCanaryKeyStore()
	c := MustNewClientWith(tb, srv.URL(), ks, opts)
	if err := c.Register(context.Background(), handle); err != nil {
		tb.Fatalf("register %s: %v", handle, err)
	}
	return c, ks.MemoryKeyStore
}

// signingKeyOf extracts the Ed25519 key from a client's key store blob
// (version, handle length, handle, 32-byte seed, …): the attacker here is
// an insider who stole that member's device keys.
func signingKeyOf(tb testing.TB, ks clientlib.KeyStore) ed25519.PrivateKey {
	tb.Helper()
	b, err := ks.Get("identity")
	if err != nil {
		tb.Fatal(err)
	}
	l := int(b[1])
	return ed25519.NewKeyFromSeed(b[2+l : 2+l+32])
}

func TestConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	owner, _ := newClient(t, srv, "owner", &clientlib.Options{TrustOnFirstUse: true})
	g := mustGroup(t, owner, "busy", nil)
	const writers = 20
	admins := make([]*clientlib.Client, writers)
	for i := range admins {
		admins[i], _ = newClient(t, srv, fmt.Sprintf("admin%02d", i), &clientlib.Options{TrustOnFirstUse: true})
		if err := owner.AddMember(ctx, g, fmt.Sprintf("admin%02d", i), coffer.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		newClient(t, srv, fmt.Sprintf("new%02d", i), nil)
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i, a := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.AddMember(ctx, g, fmt.Sprintf("new%02d", i), coffer.RoleReader)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var heads []string
	for _, c := range append(admins, owner) {
		res, err := c.Sync(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, fmt.Sprintf("%d/%x", res.State.Seq, res.State.Head))
		if len(res.State.Members) != 1+2*writers {
			t.Fatalf("%d members, want %d", len(res.State.Members), 1+2*writers)
		}
	}
	for _, h := range heads {
		if h != heads[0] {
			t.Fatalf("clients disagree on the head: %v", heads)
		}
	}
	db := mustDB(t, srv)
	var count, distinct, maxSeq int
	if err := db.QueryRow(ctx, `SELECT count(*), count(DISTINCT seq), max(seq) FROM commits WHERE group_id = $1`, g).
		Scan(&count, &distinct, &maxSeq); err != nil {
		t.Fatal(err)
	}
	if want := 1 + 2*writers; count != want || distinct != want || maxSeq != want {
		t.Fatalf("commits: %d rows, %d distinct seqs, max %d; want %d of each", count, distinct, maxSeq, want)
	}
	_ = time.Now
}
