package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/audit"
)

// auditStory is the e2e group story with resources: three people, a group
// that shares history and one that does not, adds, uploads, a rotation, a
// removal and a late joiner.
func auditStory(t *testing.T, srv *Server) {
	t.Helper()
	ctx := context.Background()
	alice, bob, carol := MustClient(t, srv, "alice"), MustClient(t, srv, "bob"), MustClient(t, srv, "carol")
	g := mustGroup(t, alice, "project x", &clientlib.GroupOptions{Description: "the plan"})
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	if _, err := bob.Put(ctx, g, strings.NewReader("minutes of the first meeting"), clientlib.Meta{Name: "minutes.txt"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Put(ctx, g, strings.NewReader("after bob left"), clientlib.Meta{Name: "later.txt"}); err != nil {
		t.Fatal(err)
	}
	dave := MustClient(t, srv, "dave")
	mustAdd(t, alice, dave, g, coffer.RoleReader)
	if _, err := dave.ReadableEpochs(ctx, g); err != nil {
		t.Fatal(err)
	}
	private := mustGroup(t, alice, "no history", &clientlib.GroupOptions{NoHistory: true})
	if err := alice.Rotate(ctx, private); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, alice, carol, private, coffer.RoleAdmin)
	if _, err := carol.Group(ctx, private); err != nil {
		t.Fatal(err)
	}
}

func reportText(r *audit.Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// TestAuditAfterStory: on the database the e2e story produces, the db audit
// is clean, the witness is clean, and the canary (which runs a workload of
// its own on the same server) finds none of its secrets in the database
// dump, the blobs or the server's log.
func TestAuditAfterStory(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	auditStory(t, srv)

	r, err := audit.DB(ctx, srv.DatabaseURL(), audit.DBOptions{LogKey: srv.LogKey()})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Clean || r.Stats["resources"] == 0 || r.Stats["commits"] == 0 {
		t.Fatalf("db audit after the story:\n%s", reportText(r))
	}

	state := t.TempDir()
	w, err := audit.Witness(ctx, audit.WitnessOptions{Server: srv.URL(), StateDir: state, LogKey: srv.LogKey()})
	if err != nil {
		t.Fatal(err)
	}
	if !w.Clean {
		t.Fatalf("witness after the story:\n%s", reportText(w))
	}

	// The harness keeps the server log in memory; the canary searches it
	// as a file, written once its workload is done.
	logFile := filepath.Join(t.TempDir(), "cofferd.log")
	c, err := audit.Canary(ctx, audit.CanaryOptions{
		Server: srv.URL(), DatabaseURL: srv.DatabaseURL(), DataDir: srv.DataDir(), LogKey: srv.LogKey(),
		ExtraFiles:   []string{logFile},
		BeforeSearch: func() error { return os.WriteFile(logFile, []byte(srv.Logs()), 0o600) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Clean || c.Stats["secrets_file-key"] == 0 {
		t.Fatalf("canary:\n%s", reportText(c))
	}

	// The witness follows the canary's appends, and the database, now with
	// the canary's data too, is still clean.
	if w, err = audit.Witness(ctx, audit.WitnessOptions{Server: srv.URL(), StateDir: state}); err != nil || !w.Clean {
		t.Fatalf("witness after the canary: %v\n%s", err, reportText(w))
	}
	if r, err = audit.DB(ctx, srv.DatabaseURL(), audit.DBOptions{LogKey: srv.LogKey()}); err != nil || !r.Clean {
		t.Fatalf("db audit after the canary: %v\n%s", err, reportText(r))
	}
}
