package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestGroupLeave drives `coffer group leave` against a real cofferd: a
// writer leaves without a rotation, the owner's next sync rotates, and the
// only owner is told to hand over first.
func TestGroupLeave(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	profiles := t.TempDir()
	cli := func(handle string, wantCode int, args ...string) string {
		t.Helper()
		env := map[string]string{"COFFER_PROFILE": filepath.Join(profiles, handle), "HOME": profiles}
		code, stdout, stderr := runCoffer(t, env, args...)
		if code != wantCode {
			t.Fatalf("%s$ coffer %s: exit %d, want %d\n%s%s", handle, strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		return stdout + stderr
	}
	cli("alice", exitOK, "init", "--server", srv.URL(), "--handle", "alice")
	cli("bob", exitOK, "init", "--server", srv.URL(), "--handle", "bob")
	var bob struct {
		SafetyNumber string `json:"safety_number"`
	}
	if err := json.Unmarshal([]byte(cli("bob", exitOK, "whoami", "--json")), &bob); err != nil {
		t.Fatal(err)
	}
	cli("alice", exitOK, "contact", "verify", "bob", bob.SafetyNumber)
	cli("alice", exitOK, "group", "create", "team")
	cli("alice", exitOK, "group", "add", "team", "bob")

	if out := cli("bob", exitOK, "group", "leave", "team"); !strings.Contains(out, "left the group") {
		t.Errorf("leave said:\n%s", out)
	}
	out := cli("alice", exitOK, "group", "log", "team")
	if !strings.Contains(out, "left the group") {
		t.Errorf("the log does not show the leave:\n%s", out)
	}
	// alice's command synced, and as the owner she rotated.
	var log []struct {
		Epoch uint64
		Ops   []struct{ Op string }
	}
	if err := json.Unmarshal([]byte(cli("alice", exitOK, "group", "log", "team", "--json")), &log); err != nil {
		t.Fatal(err)
	}
	if n := len(log); n != 4 || log[2].Ops[0].Op != "leave" || log[2].Epoch != 1 || log[3].Ops[0].Op != "rotate" || log[3].Epoch != 2 {
		t.Fatalf("log after the leave: %+v; want add, add, leave (epoch 1), rotate (epoch 2)", log)
	}
	if out := cli("alice", exitError, "group", "leave", "team"); !strings.Contains(out, "only owner") {
		t.Errorf("the only owner's leave said:\n%s", out)
	}
}
