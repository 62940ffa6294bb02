package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/cofferhq/coffer/internal/translog"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tests of the command line's own rules (issue 11, item 9) that need no
// server: suggestions, usage exits for bad values, confirmation, --json
// errors, COFFER_SERVER and the TLS flags. The commands against a real
// server are in e2e/cli_ops_test.go.

// TestSuggestionsForEveryMistypedSubcommand mistypes every subcommand of
// every command, by one transposition (which is no prefix), and requires a
// "did you mean" naming it with a usage exit.
func TestSuggestionsForEveryMistypedSubcommand(t *testing.T) {
	root := (&app{}).rootCmd()
	n := 0
	for _, parent := range allCommands(root) {
		for _, sub := range parent.Commands() {
			name := sub.Name()
			if !sub.IsAvailableCommand() || len(name) < 3 || name == "help" {
				continue
			}
			// Swap the 2nd and 3rd letters: edit distance 2, not a prefix.
			b := []byte(name)
			if b[1] == b[2] {
				continue
			}
			b[1], b[2] = b[2], b[1]
			typo := string(b)
			path := append(strings.Fields(parent.CommandPath())[1:], typo)
			code, _, stderr := runCoffer(t, nil, path...)
			if code != exitUsage || !strings.Contains(strings.ToLower(stderr), "did you mean") || !strings.Contains(stderr, name) {
				t.Errorf("coffer %s: exit %d, want %d with a suggestion of %q\n%s", strings.Join(path, " "), code, exitUsage, name, stderr)
			}
			n++
		}
	}
	if n < 15 {
		t.Fatalf("only %d subcommands tried", n)
	}
}

func TestInvalidValuesAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "add", "g", "bob", "--role", "boss"}, `invalid role "boss"`},
		{[]string{"group", "add", "g", "bob", "--role", "owner"}, `invalid role "owner"`},
		{[]string{"group", "role", "g", "bob", "king"}, `invalid role "king"`},
		{[]string{"replace", "g", "r", "f", "--if-version", "-1"}, "if-version"},
		{[]string{"ls", "g", "--json=maybe"}, "json"},
		{[]string{"init", "--handle", "alice", "--server", "http://127.0.0.1:1", "--cacert", filepath.Join(dir, "missing.pem")}, "--cacert"},
		{[]string{"init", "--handle", "alice", "--server", "http://127.0.0.1:1", "--cacert", notPEM}, "no PEM certificate"},
		{[]string{"init", "--handle", "alice", "--server", "http://127.0.0.1:1", "--cert", notPEM}, "--cert and --key go together"},
		{[]string{"init", "--handle", "alice", "--server", "http://127.0.0.1:1", "--cert", notPEM, "--key", notPEM}, "--cert"},
		{[]string{"init", "--handle", "alice"}, "COFFER_SERVER"},
		{[]string{"init", "--handle", "alice", "--server", "http://127.0.0.1:1", "--witness", "not a key"}, "Options.Witnesses"},
		{[]string{"init", "--handle", "alice", "--server", "http://127.0.0.1:1", "--witness", testWitnessKey, "--quorum", "2"}, "Options.Quorum"},
		{[]string{"init", "--handle", "alice", "--server", "http://127.0.0.1:1", "--quorum", "-1"}, "Options.Quorum"},
		{[]string{"group", "heal", "my group"}, "the group's id"},
	} {
		args := append([]string{"--profile", filepath.Join(dir, "p")}, tc.args...)
		code, _, stderr := runCoffer(t, nil, args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("coffer %s: exit %d, want %d mentioning %q\n%s", strings.Join(tc.args, " "), code, exitUsage, tc.want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "p")); !os.IsNotExist(err) {
		t.Errorf("a refused command created the profile (%v)", err)
	}
}

func TestServerFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	// The variable is used: its (bad) value is what init complains about.
	code, _, stderr := runCoffer(t, map[string]string{"COFFER_SERVER": "ftp://from-env"}, "--profile", dir, "init", "--handle", "alice")
	if code != exitUsage || !strings.Contains(stderr, "ftp://from-env") {
		t.Errorf("init with COFFER_SERVER=ftp://from-env: exit %d\n%s", code, stderr)
	}
	// --server wins over the variable.
	code, _, stderr = runCoffer(t, map[string]string{"COFFER_SERVER": "ftp://from-env"}, "--profile", dir, "init", "--handle", "alice", "--server", "gopher://flag")
	if code != exitUsage || !strings.Contains(stderr, "gopher://flag") {
		t.Errorf("init with --server and COFFER_SERVER: exit %d\n%s", code, stderr)
	}
}

func TestConfirm(t *testing.T) {
	saved := stdinIsTerminal
	defer func() { stdinIsTerminal = saved }()
	for _, tc := range []struct {
		terminal bool
		yes      bool
		input    string
		want     error // nil, errDeclined, or a usage error (checked by code)
		usage    bool
	}{
		{terminal: true, input: "y\n"},
		{terminal: true, input: "YES\n"},
		{terminal: true, input: "n\n", want: errDeclined},
		{terminal: true, input: "\n", want: errDeclined},
		{terminal: true, input: "", want: errDeclined},       // EOF: no answer is no
		{terminal: true, input: "yess\n", want: errDeclined}, // only y or yes
		{terminal: false, input: "y\n", usage: true},         // a pipe saying y is not a person
		{terminal: false, yes: true},
		{terminal: true, yes: true},
	} {
		stdinIsTerminal = func(io.Reader) bool { return tc.terminal }
		var stderr bytes.Buffer
		a := &app{stdin: strings.NewReader(tc.input), stderr: &stderr}
		err := a.confirm(tc.yes, "Delete x from group g?")
		switch {
		case tc.usage:
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--yes") {
				t.Errorf("%+v: err = %v, want a usage error naming --yes", tc, err)
			}
		case !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil):
			t.Errorf("%+v: err = %v, want %v", tc, err, tc.want)
		}
		asked := strings.Contains(stderr.String(), "[y/N]")
		if asked != (tc.terminal && !tc.yes) {
			t.Errorf("%+v: asked = %v (%q)", tc, asked, stderr.String())
		}
	}
}

func TestJSONErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nobody")
	for _, tc := range []struct {
		args []string
		exit int
		code string
	}{
		{[]string{"--json", "--profile", dir, "whoami"}, exitError, "error"},
		{[]string{"--json", "group", "rmeove"}, exitUsage, "usage"},
		{[]string{"--json", "--profile", dir, "group", "add", "g", "bob", "--role", "boss"}, exitUsage, "usage"},
	} {
		code, stdout, stderr := runCoffer(t, nil, tc.args...)
		var e errorJSON
		if err := json.Unmarshal([]byte(stderr), &e); err != nil {
			t.Errorf("coffer %s: stderr is not JSON (%v):\n%s", strings.Join(tc.args, " "), err, stderr)
			continue
		}
		if code != tc.exit || e.Error.Exit != tc.exit || e.Error.Code != tc.code || e.Error.Message == "" || stdout != "" {
			t.Errorf("coffer %s: exit %d, %+v, stdout %q", strings.Join(tc.args, " "), code, e, stdout)
		}
	}
}

// TestEveryCommandTakesJSON: --json is accepted everywhere, before or
// after the command.
func TestEveryCommandTakesJSON(t *testing.T) {
	root := (&app{}).rootCmd()
	for _, c := range allCommands(root) {
		if c.Flags().Lookup("json") == nil && c.InheritedFlags().Lookup("json") == nil && c.PersistentFlags().Lookup("json") == nil {
			t.Errorf("%s has no --json", c.CommandPath())
		}
	}
	code, _, stderr := runCoffer(t, nil, "group", "ls", "--json", "--help")
	if code != exitOK {
		t.Errorf("group ls --json --help: exit %d\n%s", code, stderr)
	}
}

// testWitnessKey is a well-formed cosignature/v1 witness verifier key.
var testWitnessKey = func() string {
	_, vkey, err := translog.GenerateWitnessKey("witness.test")
	if err != nil {
		panic(err)
	}
	return vkey
}()
