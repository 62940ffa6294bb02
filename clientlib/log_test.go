package clientlib_test

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func mustLogClient(tb testing.TB, url, logKey, handle string) *clientlib.Client {
	tb.Helper()
	c, err := clientlib.New(url, clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: logKey, TrustOnFirstUse: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Register(context.Background(), handle); err != nil {
		tb.Fatal(err)
	}
	return c
}

// logStory makes a client register, look up a peer and run a group, so
// that it verifies several log entries and holds a checkpoint.
func logStory(tb testing.TB, c *clientlib.Client, peer string) coffer.GroupID {
	tb.Helper()
	ctx := context.Background()
	g, err := c.CreateGroup(ctx, "log story", nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.AddMember(ctx, g, peer, coffer.RoleWriter); err != nil {
		tb.Fatal(err)
	}
	if err := c.Rotate(ctx, g); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Sync(ctx, g); err != nil {
		tb.Fatal(err)
	}
	return g
}

func TestLogInclusionAndCheckpointExchange(t *testing.T) {
	ctx := context.Background()
	srv := cofferdtest.Start(t, nil)
	alice := mustLogClient(t, srv.URL(), srv.LogKey(), "alice")
	bob := mustLogClient(t, srv.URL(), "", "bob") // pins the key on first use
	g := logStory(t, alice, "bob")
	if _, err := bob.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	na, err := alice.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	nb, err := bob.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.CheckCheckpoint(ctx, na); err != nil {
		t.Fatalf("honest checkpoints from one log: %v", err)
	}
	if err := alice.CheckCheckpoint(ctx, nb); err != nil {
		t.Fatalf("honest checkpoints from one log: %v", err)
	}
	// A checkpoint signed by another key is refused.
	other := cofferdtest.Start(t, nil)
	carol := mustLogClient(t, other.URL(), "", "carol")
	if _, err := carol.Lookup(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	nc, _ := carol.Checkpoint()
	if err := alice.CheckCheckpoint(ctx, nc); !coffer.IsSecurity(err) {
		t.Fatalf("a checkpoint of another log: got %v, want a security error", err)
	}
	// A client pinned to one key refuses a server with another.
	wrong, err := clientlib.New(other.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: srv.LogKey()})
	if err != nil {
		t.Fatal(err)
	}
	// Registering proves the new identity in the log, so the other key
	// is caught already there.
	if err := wrong.Register(ctx, "dave"); !coffer.IsSecurity(err) {
		t.Fatalf("registering with a server signing with another key: got %v, want a security error", err)
	}
	if _, err := wrong.Lookup(ctx, "carol"); !coffer.IsSecurity(err) {
		t.Fatalf("a server signing with another key: got %v, want a security error", err)
	}
}

// TestLogForkDetectedByCheckpointExchange plays a server that shows two
// clients two different logs: two backends share the log key and origin but
// not their data. Each client alone sees a consistent, validly signed log;
// once they exchange checkpoints, each detects the fork.
func TestLogForkDetectedByCheckpointExchange(t *testing.T) {
	ctx := context.Background()
	key := cofferdtest.WriteKey(t, t.TempDir(), "log.key")
	viewA := cofferdtest.Start(t, &cofferdtest.Options{LogKeyFile: key, LogOrigin: "coffer.fork"})
	viewB := cofferdtest.Start(t, &cofferdtest.Options{LogKeyFile: key, LogOrigin: "coffer.fork"})
	if viewA.LogKey() != viewB.LogKey() {
		t.Fatal("the two views must share a log key")
	}
	alice := mustLogClient(t, viewA.URL(), viewA.LogKey(), "alice")
	mustLogClient(t, viewA.URL(), viewA.LogKey(), "bob")
	logStory(t, alice, "bob")
	bob := mustLogClient(t, viewB.URL(), viewB.LogKey(), "bob")
	mustLogClient(t, viewB.URL(), viewB.LogKey(), "alice")
	logStory(t, bob, "alice")

	na, err := alice.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	nb, err := bob.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.CheckCheckpoint(ctx, na); !coffer.IsSecurity(err) {
		t.Fatalf("bob checking alice's checkpoint: got %v, want a security error", err)
	}
	if err := alice.CheckCheckpoint(ctx, nb); !coffer.IsSecurity(err) {
		t.Fatalf("alice checking bob's checkpoint: got %v, want a security error", err)
	}
}
