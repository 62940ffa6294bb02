package e2e_test

// Restore from an older backup, and the way back (issue 11, item 7; see
// docs/OPERATIONS.md, "Restoring an older backup"). The database is
// snapshotted with CREATE DATABASE ... TEMPLATE, the group moves on, the old
// snapshot is restored: every member refuses the shorter chain as a
// rollback naming the group, and the log as one that cannot be proven
// consistent. Then the members whose devices made the lost commits append
// them again (clientlib.HealGroup, through the ordinary append endpoint
// and its verifier), in turn when several authors are involved, and
// everyone sees the whole chain again, the log included, with no security
// error.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/pgtest"
)

// restorableServer is one deployment whose cofferd can be stopped and
// started again on the same address, keys, blob directory and database
// name, with the database snapshotted and restored in between.
type restorableServer struct {
	t      *testing.T
	cfg    cofferd.Config
	admin  string // URL of the cluster's postgres database
	dbName string
	srv    *Server
}

func newRestorableServer(t *testing.T) *restorableServer {
	dbURL := pgtest.NewURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &restorableServer{t: t, dbName: strings.TrimPrefix(u.Path, "/")}
	u.Path = "/postgres"
	r.admin = u.String()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	r.cfg = cofferd.Config{
		Addr:          addr,
		Origins:       "http://" + addr, // required outside dev mode
		DatabaseURL:   dbURL,
		Migrate:       true,
		JWTKeyFiles:   MustKeyFile(t, dir, "jwt.key", "server JWT signing key"),
		LogKeyFile:    MustKeyFile(t, dir, "log.key", "server transparency log key"),
		LogOrigin:     "coffer.e2e-restore",
		DataDir:       dir,
		BlobDir:       filepath.Join(dir, "blobs"),
		AuthRateLimit: 1_000_000,
		LogLevel:      "debug",
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restorableServer) start() {
	r.t.Helper()
	sink := NewLogSink()
	m := cofferd.NewMain()
	m.Stderr = sink
	m.Config = r.cfg
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		r.t.Fatalf("start cofferd: %v\n%s", err, sink)
	}
	r.srv = &Server{Main: m, databaseURL: r.cfg.DatabaseURL, log: sink}
}

func (r *restorableServer) stop() {
	if r.srv == nil {
		return
	}
	if err := r.srv.Close(); err != nil {
		r.t.Errorf("stop cofferd: %v", err)
	}
	r.srv.log.Check(r.t)
	r.srv = nil
}

func (r *restorableServer) adminExec(sql string) {
	r.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.admin)
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		r.t.Fatalf("%s: %v", sql, err)
	}
}

// snapshot stops the server, copies its database, and starts it again: a
// consistent backup, as pg_dump or a base backup would give.
func (r *restorableServer) snapshot() string {
	r.t.Helper()
	r.stop()
	name := r.dbName + "_backup"
	r.adminExec(fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{r.dbName}.Sanitize()))
	r.t.Cleanup(func() { r.adminExec("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)") })
	r.start()
	return name
}

// restore stops the server, replaces its database with the backup, and
// starts it again on the same address.
func (r *restorableServer) restore(backup string) {
	r.t.Helper()
	r.stop()
	db := pgx.Identifier{r.dbName}.Sanitize()
	r.adminExec("DROP DATABASE " + db + " WITH (FORCE)")
	r.adminExec(fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", db, pgx.Identifier{backup}.Sanitize()))
	r.start()
}

func TestRestoreAndHeal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := newRestorableServer(t)
	alice := MustClient(t, rs.srv, "alice")
	bob := MustClient(t, rs.srv, "bob")
	carol := MustClient(t, rs.srv, "carol")

	g := mustGroup(t, alice, "before the backup", nil)
	mustAdd(t, alice, bob, g, coffer.RoleAdmin)
	before := putText(t, bob, g, "before.txt", "written before the backup")
	other := mustGroup(t, alice, "untouched", nil) // no commit after the backup

	backup := rs.snapshot()

	// After the backup: three commits by two authors, interleaved.
	// Everyone verifies the new head and a newer checkpoint. (No resource:
	// a version finalized after the backup is lost with the restore, and
	// so is its log leaf, which no heal brings back; see OPERATIONS.md.)
	mustVerify(t, alice, carol)
	if err := alice.AddMember(ctx, g, "carol", coffer.RoleReader); err != nil { // seq 3, alice
		t.Fatal(err)
	}
	if err := bob.Rotate(ctx, g); err != nil { // seq 4, bob
		t.Fatal(err)
	}
	if err := alice.RenameGroup(ctx, g, "after the backup", nil); err != nil { // seq 5, alice
		t.Fatal(err)
	}
	heads := map[string][32]byte{}
	for name, c := range map[string]*clientlib.Client{"alice": alice, "bob": bob, "carol": carol} {
		res, err := c.Sync(ctx, g)
		if err != nil || res.State.Seq != 5 {
			t.Fatalf("%s before the restore: %v", name, err)
		}
		heads[name] = res.State.Head
		if _, err := c.LatestCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}

	rs.restore(backup)

	// Every member who verified the lost commits refuses the rollback as a
	// security error that names the group; the log cannot be proven
	// consistent with what they pinned either.
	for name, c := range map[string]*clientlib.Client{"alice": alice, "bob": bob} {
		_, err := c.Sync(ctx, g)
		var se *coffer.SecurityError
		if !errors.As(err, &se) || se.Check != "rollback" || !strings.Contains(err.Error(), g.String()) {
			t.Fatalf("%s syncing the restored group: %v; want a rollback security error naming %s", name, err, g)
		}
		// The listing goes on, with the rolled-back group beside the others.
		groups, err := c.Groups(ctx)
		if err != nil {
			t.Fatalf("%s listing groups after the restore: %v", name, err)
		}
		var listErr error
		for _, gr := range groups {
			if gr.ID == g {
				listErr = gr.Err
			}
		}
		if !coffer.IsSecurity(listErr) || !strings.Contains(listErr.Error(), g.String()) {
			t.Fatalf("%s listing groups after the restore: the group's error is %v", name, listErr)
		}
		if _, err := c.LatestCheckpoint(ctx); !coffer.IsSecurity(err) {
			t.Fatalf("%s's log check after the restore: %v, want a security error", name, err)
		}
	}
	// carol was added after the backup: the restored server does not show
	// her the group at all (as it would after a removal).
	if _, err := carol.Sync(ctx, g); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("carol after the restore: %v", err)
	}
	// She cannot heal it: she made none of its commits.
	if _, err := carol.HealGroup(ctx, g); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("carol healing: %v", err)
	}

	// The way back: each author's device appends its own lost commits, in
	// turn. alice holds seq 3 but not bob's seq 4.
	res, err := alice.HealGroup(ctx, g)
	if err != nil || res.Pushed != 1 || res.ServerHead != 3 || res.Waiting != 4 || res.Complete() {
		t.Fatalf("alice's first heal: %+v, %v", res, err)
	}
	res, err = bob.HealGroup(ctx, g)
	if err != nil || res.Pushed != 1 || res.ServerHead != 4 || res.Waiting != 5 {
		t.Fatalf("bob's heal: %+v, %v", res, err)
	}
	res, err = alice.HealGroup(ctx, g)
	if err != nil || res.Pushed != 1 || !res.Complete() {
		t.Fatalf("alice's second heal: %+v, %v", res, err)
	}
	// Healing a whole group again does nothing.
	if res, err := bob.HealGroup(ctx, g); err != nil || res.Pushed != 0 || !res.Complete() {
		t.Fatalf("a heal of a healed group: %+v, %v", res, err)
	}

	// Every member sees the healed chain, exactly the one verified before
	// the restore, with no security error; the log is whole again too.
	for name, c := range map[string]*clientlib.Client{"alice": alice, "bob": bob, "carol": carol} {
		res, err := c.Sync(ctx, g)
		if err != nil {
			t.Fatalf("%s after the heal: %v", name, err)
		}
		if res.State.Seq != 5 || res.State.Head != heads[name] || res.State.Epoch != 3 {
			t.Fatalf("%s after the heal: seq %d epoch %d, want the head verified before the restore", name, res.State.Seq, res.State.Epoch)
		}
		gr, err := c.Group(ctx, g)
		if err != nil || gr.Name != "after the backup" {
			t.Fatalf("%s's view of the healed group: %+v, %v", name, gr, err)
		}
		if _, err := c.LatestCheckpoint(ctx); err != nil {
			t.Fatalf("%s's log check after the heal: %v", name, err)
		}
		groups, err := c.Groups(ctx)
		if err != nil {
			t.Fatalf("%s's groups after the heal: %v", name, err)
		}
		if name == "alice" && len(groups) != 2 {
			t.Errorf("alice's groups after the heal: %d, want %d (with %s)", len(groups), 2, other)
		}
		// What was stored before the backup reads with the healed keys,
		// carol's history links included.
		if got := getText(t, c, g, before); got != "written before the backup" {
			t.Errorf("%s reads %q", name, got)
		}
	}
	note, err := bob.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.CheckCheckpoint(ctx, note); err != nil {
		t.Fatalf("carol checking bob's checkpoint after the heal: %v", err)
	}
	// Resources written after the backup are not part of any chain: they
	// are gone with the restore (docs/OPERATIONS.md says how to re-upload).
	rsList, err := alice.List(ctx, g)
	if err != nil || len(rsList) != 1 || rsList[0].ID != before {
		t.Fatalf("resources after the heal: %v, %v", rsList, err)
	}
	// And the group keeps working.
	putText(t, bob, g, "healed.txt", "written after the heal")
}

// TestHealRefusesAFork: a server whose restored head is not the commit the
// device verified at that seq is a fork, which healing must not paper over.
func TestHealRefusesAFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := newRestorableServer(t)
	alice := MustClient(t, rs.srv, "alice")
	bob := MustClient(t, rs.srv, "bob")
	g := mustGroup(t, alice, "forked", nil)
	backup := rs.snapshot()
	mustAdd(t, alice, bob, g, coffer.RoleAdmin)  // seq 2, then lost
	if err := alice.Rotate(ctx, g); err != nil { // seq 3, then lost
		t.Fatal(err)
	}
	rs.restore(backup)
	// Another device of the server's making appends a different seq 2: a
	// fresh alice device (same account, new key store) cannot sign as
	// alice, so the fork is written to the database directly, as a
	// malicious operator would.
	db := mustDB(t, rs.srv)
	mustExec(t, db, `UPDATE groups SET head_hash = decode(repeat('ab', 32), 'hex') WHERE id = $1`, g)
	_, err := alice.HealGroup(ctx, g)
	var se *coffer.SecurityError
	if !errors.As(err, &se) || se.Check != "fork" {
		t.Fatalf("healing onto a forked head: %v, want a fork security error", err)
	}
}

func putText(tb testing.TB, c *clientlib.Client, g coffer.GroupID, name, content string) coffer.ResourceID {
	tb.Helper()
	res, err := c.Put(context.Background(), g, strings.NewReader(content), clientlib.Meta{Name: name, Size: int64(len(content))})
	if err != nil {
		tb.Fatalf("put %s: %v", name, err)
	}
	return res.ID
}

func getText(tb testing.TB, c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID) string {
	tb.Helper()
	rr, err := c.Get(context.Background(), g, id)
	if err != nil {
		tb.Fatalf("get %s: %v", id, err)
	}
	defer rr.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, rr); err != nil {
		tb.Fatalf("get %s: %v", id, err)
	}
	return b.String()
}

// TestHealOutOfOrderLogStaysForked backs the documented limit: when the
// commits lost in a restore touched several groups, and the groups are
// healed in another order than the commits were first made, the log grows
// back to a different tree. Every chain heals, but a client that pinned a
// checkpoint from before the restore refuses the log: a security error, as
// any log that cannot be proven consistent must be.
func TestHealOutOfOrderLogStaysForked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := newRestorableServer(t)
	opts := &clientlib.Options{LogWait: 3 * time.Second} // short: the first heal waits it out; long enough for a loaded machine
	alice, _ := newClient(t, rs.srv, "alice", opts)
	bob, _ := newClient(t, rs.srv, "bob", opts)
	g1 := mustGroup(t, alice, "one", nil)
	g2 := mustGroup(t, alice, "two", nil)
	mustVerify(t, alice, bob)
	backup := rs.snapshot()
	// Lost leaves, in this order: g1 seq 2, g2 seq 2.
	if err := alice.AddMember(ctx, g1, "bob", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, g2, "bob", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	for _, g := range []coffer.GroupID{g1, g2} {
		if _, err := bob.Sync(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*clientlib.Client{alice, bob} {
		if _, err := c.LatestCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rs.restore(backup)

	// Healed the other way round: g2 first. Its chain is whole, but the
	// log is still shorter than what alice pinned.
	res, err := alice.HealGroup(ctx, g2)
	if coffer.ErrorCode(err) != coffer.EUNAVAILABLE || res == nil || res.Pushed != 1 {
		t.Fatalf("healing g2 first: %+v, %v; want the commit appended and the log reported short", res, err)
	}
	// Then g1: the log has its size back, with another root.
	_, err = alice.HealGroup(ctx, g1)
	var se *coffer.SecurityError
	if !errors.As(err, &se) || se.Check != "log" {
		t.Fatalf("healing g1 second: %v, want a log security error", err)
	}
	if _, err := bob.LatestCheckpoint(ctx); !coffer.IsSecurity(err) {
		t.Fatalf("bob's log check after an out-of-order heal: %v, want a security error", err)
	}
}
