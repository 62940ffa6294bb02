package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cofferhq/coffer"
)

// testPassphraseEnv unlocks the profiles of tests: a passphrase, and a
// cheap scrypt so that each run costs a millisecond rather than a second.
var testPassphraseEnv = map[string]string{
	passphraseEnvVar: "test passphrase",
	testScryptEnvVar: "10",
}

// runCoffer runs the CLI in process with an empty environment apart from
// env and testPassphraseEnv (which env may override, with "" to unset),
// and returns the exit code and output.
func runCoffer(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return testPassphraseEnv[k]
	}
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

func TestEveryCommandHasHelp(t *testing.T) {
	root := (&app{}).rootCmd()
	for _, c := range allCommands(root) {
		path := strings.Fields(c.CommandPath())[1:]
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Short == "" {
				t.Error("no Short description")
			}
			code, stdout, stderr := runCoffer(t, nil, append(path, "--help")...)
			if code != exitOK || !strings.Contains(stdout, "Usage:") {
				t.Fatalf("--help: exit %d\n%s%s", code, stdout, stderr)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := runCoffer(t, nil, "completion", shell)
		if code != exitOK || !strings.Contains(stdout, "coffer") {
			t.Errorf("completion %s: exit %d, %d bytes\n%s", shell, code, len(stdout), stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"group", "bogus"},
		{"group", "add", "only-a-group"},
		{"contact", "verify", "bob"},
		{"init", "--server", "http://x"}, // --handle is required
		{"ls", "--no-such-flag", "g"},
		{"whoami", "extra"},
	} {
		code, _, stderr := runCoffer(t, nil, args...)
		if code != exitUsage || !strings.Contains(stderr, "--help") {
			t.Errorf("coffer %s: exit %d, want %d with a pointer to --help\n%s", strings.Join(args, " "), code, exitUsage, stderr)
		}
	}
}

func TestUninitializedProfile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nobody")
	for _, env := range []map[string]string{nil, {"COFFER_PROFILE": dir}} {
		args := []string{"whoami"}
		if env == nil {
			args = []string{"--profile", dir, "whoami"}
		}
		code, _, stderr := runCoffer(t, env, args...)
		if code != exitError || !strings.Contains(stderr, "coffer init --server URL --handle NAME") || !strings.Contains(stderr, dir) {
			t.Errorf("whoami in an empty profile: exit %d\n%s", code, stderr)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a read-only command created the profile directory (%v)", err)
	}
}

func TestInitRejectsBadInputOffline(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCoffer(t, nil, "--profile", dir, "init", "--server", "http://127.0.0.1:1", "--handle", "Not A Handle")
	if code != exitUsage || !strings.Contains(stderr, "3 to 32 characters") {
		t.Errorf("init with a bad handle: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCoffer(t, nil, "--profile", dir, "init", "--server", "ftp://x", "--handle", "alice")
	if code != exitUsage || !strings.Contains(stderr, "http(s)://") {
		t.Errorf("init with a bad URL: exit %d\n%s", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed init left %d files in the profile", len(entries))
	}
}

func TestWriteVerified(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(dest, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stream that fails verification half way: dest keeps its old
	// content and no temporary file is left.
	bad := io.MultiReader(strings.NewReader("unverified plaintext"), iotest.ErrReader(coffer.Security("resource", errors.New("chunk 2 does not authenticate"))))
	if err := writeVerified(dest, bad); !coffer.IsSecurity(err) {
		t.Fatalf("writeVerified = %v, want the security error", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "old" {
		t.Fatalf("dest holds %q after a failed stream", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries in the directory, want only dest", len(entries))
	}
	if err := writeVerified(dest, strings.NewReader("verified")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dest)
	fi, _ := os.Stat(dest)
	if string(b) != "verified" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dest holds %q, mode %v; want the new content, 0600", b, fi.Mode().Perm())
	}
}

func TestHistoryEntries(t *testing.T) {
	alice, bob, carol := coffer.NewAccountID(), coffer.NewAccountID(), coffer.NewAccountID()
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixMilli()
	commits := []*coffer.Commit{
		{Seq: 1, Epoch: 1, Author: alice, Time: at, ShareHistory: true, Ops: []coffer.Op{
			{Kind: coffer.OpAdd, Member: alice, Handle: "alice", Role: coffer.RoleOwner}}},
		{Seq: 2, Epoch: 1, Author: alice, Time: at, ShareHistory: true, Ops: []coffer.Op{
			{Kind: coffer.OpAdd, Member: bob, Handle: "bob", Role: coffer.RoleWriter}}},
		{Seq: 3, Epoch: 2, Author: alice, Time: at, ShareHistory: true, Ops: []coffer.Op{
			{Kind: coffer.OpRemove, Member: bob}, {Kind: coffer.OpRotate}}},
		{Seq: 4, Epoch: 2, Author: alice, Time: at, ShareHistory: true, Ops: []coffer.Op{
			{Kind: coffer.OpAdd, Member: carol, Handle: "carol", Role: coffer.RoleReader}}},
		{Seq: 5, Epoch: 2, Author: alice, Time: at, ShareHistory: true, Ops: []coffer.Op{
			{Kind: coffer.OpSetRole, Member: carol, Role: coffer.RoleAdmin}}},
		{Seq: 6, Epoch: 3, Author: carol, Time: at, ShareHistory: true, Ops: []coffer.Op{{Kind: coffer.OpRotate}}},
		// carol rotated her user key (a revoked device) and moves her entry.
		{Seq: 7, Epoch: 4, Author: carol, Time: at, ShareHistory: true, Ops: []coffer.Op{
			{Kind: coffer.OpUpdateKey, Member: carol}, {Kind: coffer.OpRotate}}},
	}
	want := []string{
		"created the group, joined as owner",
		"added bob as writer",
		// bob is named although he is no longer a member: names come from
		// the whole chain's add ops.
		"removed bob, rotated the key",
		"added carol as reader",
		"made carol admin",
		"rotated the key",
		"updated their keys (self-update), rotated the key",
	}
	got := historyEntries(commits)
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.Summary != want[i] {
			t.Errorf("entry %d: %q, want %q", i+1, e.Summary, want[i])
		}
	}
	if got[5].Author != "carol" || got[2].Ops[0].Member != "bob" || *got[2].Ops[0].MemberID != bob || !got[0].Time.Equal(time.UnixMilli(at)) {
		t.Errorf("entries: %+v", got)
	}
	if op := got[6].Ops[0]; op.Op != "update-key" || op.Member != "carol" || *op.MemberID != carol || got[6].Author != "carol" {
		t.Errorf("self-update entry: %+v, op %+v", got[6], op)
	}
	noHistory := []*coffer.Commit{{Seq: 1, Epoch: 1, Author: alice, Ops: commits[0].Ops}}
	if s := historyEntries(noHistory)[0].Summary; !strings.Contains(s, "history not shared") {
		t.Errorf("genesis without history sharing: %q", s)
	}
}

func TestVersionFlag(t *testing.T) {
	code, stdout, stderr := runCoffer(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "coffer ") || !strings.Contains(stdout, "go1.") {
		t.Fatalf("coffer --version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
