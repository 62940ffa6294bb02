package e2e_test

// The CLI story: the coffer binary, driven the way a person would drive it,
// against the cofferd binary in dev mode. Three profiles (alice, bob,
// carol) live side by side on one machine; nothing here uses clientlib
// directly, so the test sees exactly what a user sees: stdout, stderr and
// exit codes.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/keyvault"
)

// Exit codes of the coffer CLI (cmd/coffer/errors.go).
const (
	cliOK       = 0
	cliError    = 1
	cliUsage    = 2
	cliSecurity = 3
)

func TestCLIStory(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs cofferd -dev with its own PostgreSQL")
	}
	bins := mustBuildCLI(t)
	srv := startCLIServer(t, bins)
	files := t.TempDir()

	alice := srv.profile(t, "alice", false)
	bob := srv.profile(t, "bob", false)
	carol := srv.profile(t, "carol", true) // chosen through COFFER_PROFILE
	for _, p := range []*cliProfile{alice, bob, carol} {
		p.ok(t, "init", "--server", srv.url, "--handle", p.handle)
	}
	// One profile holds one identity.
	code, _, stderr := alice.run(t, "init", "--server", srv.url, "--handle", "alice2")
	wantExit(t, code, cliError, stderr)
	if !strings.Contains(stderr, "already holds the identity alice") {
		t.Errorf("a second init in alice's profile said:\n%s", stderr)
	}
	bobID := bob.whoami(t)
	carolID := carol.whoami(t)

	// alice creates a group; GROUP is its id or its (unique) name from now on.
	g := mustParseGroupID(t, alice.ok(t, "group", "create", "project x"))

	// Adding bob before verifying him is refused, with the fix in the message.
	code, _, stderr = alice.run(t, "group", "add", "project x", "bob")
	wantExit(t, code, cliError, stderr)
	const fix = "bob's keys are not verified: compare safety numbers with bob, then run: coffer contact verify bob <number>"
	if !strings.Contains(stderr, fix) {
		t.Fatalf("adding unverified bob printed\n%s\nwant it to contain\n%s", stderr, fix)
	}

	// bob reads his safety number out; alice types it as the shell splits it.
	alice.ok(t, append([]string{"contact", "verify", "bob"}, strings.Fields(bobID.SafetyNumber)...)...)
	var contacts []struct{ Handle, State string }
	alice.okJSON(t, &contacts, "contact", "list", "--json")
	if len(contacts) != 1 || contacts[0].Handle != "bob" || contacts[0].State != "verified" {
		t.Fatalf("alice's contacts: %+v, want bob verified", contacts)
	}
	alice.ok(t, "group", "add", "project x", "bob")

	// bob puts a file; alice gets it back, byte-identical, by id and by name.
	plan := mustWriteRandom(t, files, "plan.bin", 300<<10)
	r1 := mustParseResourceID(t, bob.ok(t, "put", g.String(), plan))
	got := filepath.Join(files, "alice-plan.bin")
	alice.ok(t, "get", "project x", r1.String(), "-o", got)
	mustSameFile(t, plan, got)
	if out := alice.ok(t, "get", "project x", "plan.bin"); out != mustRead(t, plan) {
		t.Fatal("alice's get of plan.bin to stdout differs from what bob put")
	}
	// Verified range reads, inclusive as HTTP ranges, or to the end.
	if out := alice.ok(t, "get", "project x", "plan.bin", "--range", "70000-200000"); out != mustRead(t, plan)[70000:200001] {
		t.Fatal("alice's get --range 70000-200000 differs from those bytes of what bob put")
	}
	if out := alice.ok(t, "get", "project x", "plan.bin", "--range", "300000-"); out != mustRead(t, plan)[300000:] {
		t.Fatal("alice's get --range 300000- differs from the end of what bob put")
	}
	code, _, stderr = alice.run(t, "get", "project x", "plan.bin", "--range", "9-3")
	wantExit(t, code, cliUsage, stderr)

	// alice removes bob, then puts a new file that bob must not read.
	alice.ok(t, "group", "remove", "project x", "bob", "--yes")
	notes := mustWriteRandom(t, files, "notes.bin", 70<<10)
	r2 := mustParseResourceID(t, alice.ok(t, "put", "project x", notes, "--name", "notes after bob"))
	bobGot := filepath.Join(files, "bob-notes.bin")
	code, _, stderr = bob.run(t, "get", g.String(), r2.String(), "-o", bobGot)
	wantExit(t, code, cliError, stderr)
	mustNotExist(t, bobGot)
	code, _, stderr = bob.run(t, "ls", g.String())
	wantExit(t, code, cliError, stderr)

	// carol, verified and added after bob left, reads the whole history.
	alice.ok(t, append([]string{"contact", "verify", "carol"}, carolID.SafetyNumber)...) // quoted: one argument
	alice.ok(t, "group", "add", "project x", "carol", "--role", "reader")
	var listing []struct {
		ID     coffer.ResourceID
		Name   string
		Author string
		Epoch  uint64
	}
	carol.okJSON(t, &listing, "ls", "project x", "--json")
	if len(listing) != 2 {
		t.Fatalf("carol lists %d resources, want 2: %+v", len(listing), listing)
	}
	for _, r := range listing {
		switch r.ID {
		case r1:
			if r.Name != "plan.bin" || r.Author != "bob" || r.Epoch != 1 {
				t.Errorf("carol sees bob's file as %+v", r)
			}
		case r2:
			if r.Name != "notes after bob" || r.Author != "alice" || r.Epoch != 2 {
				t.Errorf("carol sees alice's file as %+v", r)
			}
		default:
			t.Errorf("carol lists an unknown resource %+v", r)
		}
	}
	carolPlan, carolNotes := filepath.Join(files, "carol-plan.bin"), filepath.Join(files, "carol-notes.bin")
	carol.ok(t, "get", g.String(), "plan.bin", "-o", carolPlan)
	carol.ok(t, "get", "project x", "notes after bob", "-o", carolNotes)
	mustSameFile(t, plan, carolPlan)
	mustSameFile(t, notes, carolNotes)

	// carol cannot write: she is a reader.
	code, _, stderr = carol.run(t, "put", "project x", notes)
	wantExit(t, code, cliError, stderr)

	// The log shows every step, as anyone in the group verifies it.
	type logOp struct{ Op, Member, Role string }
	type logEntry struct {
		Seq, Epoch uint64
		Author     string
		Ops        []logOp
	}
	want := []logEntry{
		{1, 1, "alice", []logOp{{"add", "alice", "owner"}}},
		{2, 1, "alice", []logOp{{"add", "bob", "writer"}}},
		{3, 2, "alice", []logOp{{"remove", "bob", ""}, {"rotate", "", ""}}},
		{4, 2, "alice", []logOp{{"add", "carol", "reader"}}},
	}
	for _, p := range []*cliProfile{alice, carol} {
		var log []logEntry
		p.okJSON(t, &log, "group", "log", "project x", "--json")
		if fmt.Sprint(log) != fmt.Sprint(want) {
			t.Errorf("%s's group log:\n%v\nwant\n%v", p.handle, log, want)
		}
	}
	text := alice.ok(t, "group", "log", g.String())
	for _, s := range []string{"created the group", "added bob as writer", "removed bob, rotated the key", "added carol as reader"} {
		if !strings.Contains(text, s) {
			t.Errorf("group log does not say %q:\n%s", s, text)
		}
	}
	var members []struct{ Handle, Role, Keys string }
	alice.okJSON(t, &members, "group", "members", "project x", "--json")
	if fmt.Sprint(members) != "[{alice owner verified} {carol reader verified}]" {
		t.Errorf("members: %+v, want alice (owner) and carol (reader), both verified", members)
	}

	// Shell completion offers group and resource names, verified and
	// decrypted like any listing.
	if out := alice.ok(t, "__complete", "get", ""); !strings.Contains(out, "project x\t"+g.String()) {
		t.Errorf("completing GROUP:\n%s", out)
	}
	if out := alice.ok(t, "__complete", "get", "project x", "no"); !strings.Contains(out, "notes after bob\t") || strings.Contains(out, "plan.bin") {
		t.Errorf("completing RESOURCE after \"no\":\n%s", out)
	}

	// A usage error is exit code 2.
	code, _, stderr = alice.run(t, "group", "add", "project x")
	wantExit(t, code, cliUsage, stderr)

	// The server flips a byte near the end of every stored ciphertext. The
	// first chunks of plan.bin still authenticate, so get has written
	// plaintext before it finds the bad chunk: with -o, none of it may reach
	// the destination; to stdout, the user is told to discard it.
	srv.flipBlobs(t)
	flipped := filepath.Join(files, "flipped.bin")
	code, _, stderr = carol.run(t, "get", g.String(), r1.String(), "-o", flipped)
	wantExit(t, code, cliSecurity, stderr)
	mustNotExist(t, flipped)
	code, stdout, stderr := carol.run(t, "get", g.String(), r1.String())
	wantExit(t, code, cliSecurity, stderr)
	if len(stdout) == 0 || len(stdout) >= len(mustRead(t, plan)) || !strings.Contains(stderr, "discard") {
		t.Errorf("a get to stdout that failed verification after %d bytes said:\n%s", len(stdout), stderr)
	}

	// The server swaps alice's and carol's wraps of the current key. The
	// next command that unwraps catches it: exit 3, saying so plainly, and
	// no plaintext reaches the destination.
	srv.psql(t, fmt.Sprintf(`UPDATE wrapped_keys w SET wrap = o.wrap FROM wrapped_keys o
		WHERE w.group_id = '%s' AND o.group_id = w.group_id AND w.epoch = 2 AND o.epoch = 2
		AND w.member_id <> o.member_id`, g))
	code, _, stderr = carol.run(t, "ls", g.String())
	wantExit(t, code, cliSecurity, stderr)
	if !strings.Contains(stderr, "server misbehaved") || !strings.Contains(stderr, `"wrap"`) {
		t.Errorf("the security error does not say what was detected:\n%s", stderr)
	}
	tampered := filepath.Join(files, "tampered.bin")
	code, _, stderr = alice.run(t, "get", g.String(), r1.String(), "-o", tampered)
	wantExit(t, code, cliSecurity, stderr)
	mustNotExist(t, tampered)
	if leftovers, _ := filepath.Glob(filepath.Join(files, ".*coffer*")); len(leftovers) > 0 {
		t.Errorf("get left temporary files behind: %v", leftovers)
	}

	// Nothing the CLI printed is a secret of any profile.
	for _, p := range []*cliProfile{alice, bob, carol} {
		p.recordSecrets(t)
	}
	if f := ScanForSecrets(srv.output.Bytes(), Secrets()); len(f) > 0 {
		t.Errorf("the CLI printed secrets: %v", f)
	}
	// Nor does any profile keep a secret in the clear: its seeds, its
	// refresh and access tokens, the epoch and file keys of its groups.
	for _, p := range []*cliProfile{alice, bob, carol} {
		p.mustHoldNoSecret(t)
	}
}

// mustHoldNoSecret fails if any file of the profile holds a secret the
// suite recorded, in any encoding, or a JWT: the keys are encrypted at
// rest.
func (p *cliProfile) mustHoldNoSecret(t *testing.T) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(p.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if f := ScanForSecrets(b, Secrets()); len(f) > 0 {
			t.Errorf("%s of %s's profile holds secrets: %v", path[len(p.dir):], p.handle, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("%s's profile is empty", p.handle)
	}
}

// cliBinaries are coffer and cofferd, freshly built.
type cliBinaries struct{ coffer, cofferd string }

func mustBuildCLI(tb testing.TB) cliBinaries {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/coffer", "./cmd/cofferd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/coffer ./cmd/cofferd: %v\n%s", err, out)
	}
	return cliBinaries{coffer: filepath.Join(dir, "coffer"), cofferd: filepath.Join(dir, "cofferd")}
}

// cliServer is a cofferd -dev child process and what the CLI needs of it.
type cliServer struct {
	bins   cliBinaries
	url    string
	data   string
	home   string     // HOME of every coffer run: no profile falls back to the real one
	output syncBuffer // everything every coffer run printed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// startCLIServer runs cofferd -dev on a free port with a fresh data
// directory, waits for /readyz, and stops it with SIGINT when the test
// ends. Its log goes to the suite's secret canary.
func startCLIServer(t *testing.T, bins cliBinaries, extraArgs ...string) *cliServer {
	t.Helper()
	s := &cliServer{bins: bins, data: filepath.Join(t.TempDir(), "data"), home: t.TempDir()}
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	s.url = "http://" + addr
	sink := NewLogSink()
	// Every CLI run refreshes its session, an auth request: lift the
	// per-IP limit that a fast test would otherwise hit.
	args := append([]string{"-dev", "-data", s.data, "-addr", addr, "-auth-rate-limit", "100000"}, extraArgs...)
	cmd := exec.Command(bins.cofferd, args...)
	cmd.Env = cleanEnv(nil)
	cmd.Stdout, cmd.Stderr = sink, sink
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("cofferd -dev after SIGINT: %v", err)
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Errorf("cofferd -dev still running 60 s after SIGINT")
		}
		sink.Check(t)
	})

	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := hc.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("cofferd -dev exited before it was ready: %v\n%s", err, sink)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("cofferd -dev not ready after 90 s\n%s", sink)
		}
	}
	for file, kind := range map[string]string{"jwt.key": "dev JWT signing key", "log.key": "dev transparency log key"} {
		if _, err := os.Stat(filepath.Join(s.data, file)); err == nil {
			RecordKeyFileSecret(t, filepath.Join(s.data, file), kind)
		}
	}
	return s
}

// cleanEnv is the environment without COFFER_* variables (so that neither
// binary picks up the developer's configuration), plus extra.
func cleanEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// psql runs sql against the server's database as the attacker who owns
// it, with the psql client and the URL cofferd -dev wrote.
func (s *cliServer) psql(t *testing.T, sql string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "database-url"))
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(string(b))
	if bin, err := exec.LookPath("psql"); err == nil {
		out, err := exec.Command(bin, url, "-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		t.Logf("psql: %s", bytes.TrimSpace(out))
		return
	}
	// No psql client installed: the same statement through pgx.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// flipBlobs corrupts one byte, 100 bytes before the end, of every blob the
// server stores: an attacker with the disk.
func (s *cliServer) flipBlobs(t *testing.T) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(s.data, "blobs"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) < 100 {
			return err
		}
		// A blob is the age file and then its chunk hash list (32 bytes
		// per chunk and one for the header): flip a byte of the final
		// chunk, not of the list, so that the chunks before it still
		// prove and reach the reader.
		hdr := bytes.Index(b, []byte("\n--- "))
		hdr += bytes.IndexByte(b[hdr+1:], '\n') + 2 + 16
		for chunks := 1; ; chunks++ {
			ageLen := len(b) - 32*(chunks+1)
			if payload := ageLen - hdr; payload <= chunks*(64<<10+16) && payload > (chunks-1)*(64<<10+16) {
				b[ageLen-100] ^= 1
				break
			}
			if ageLen < hdr {
				return fmt.Errorf("%s is not a resource blob", path)
			}
		}
		n++
		return os.WriteFile(path, b, 0o600)
	})
	if err != nil || n == 0 {
		t.Fatalf("flipped %d blobs: %v", n, err)
	}
}

// cliProfile is one identity: a profile directory the coffer binary uses.
type cliProfile struct {
	srv    *cliServer
	handle string
	dir    string
	viaEnv bool     // pass the profile as COFFER_PROFILE instead of --profile
	env    []string // more environment, such as COFFER_SERVER
	stdin  *os.File // standard input of the next run (default: none)
}

func (s *cliServer) profile(t *testing.T, handle string, viaEnv bool) *cliProfile {
	return &cliProfile{srv: s, handle: handle, dir: filepath.Join(t.TempDir(), handle), viaEnv: viaEnv}
}

// run runs coffer with args in this profile and returns its exit code,
// stdout and stderr.
func (p *cliProfile) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env := append(append([]string{"HOME=" + p.srv.home}, cliPassphraseEnv...), p.env...)
	if p.viaEnv {
		env = append(env, "COFFER_PROFILE="+p.dir)
	} else {
		args = append([]string{"--profile", p.dir}, args...)
	}
	cmd := exec.Command(p.srv.bins.coffer, args...)
	cmd.Env = cleanEnv(env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if p.stdin != nil {
		cmd.Stdin = p.stdin
	}
	err := cmd.Run()
	p.srv.output.Write(out.Bytes())
	p.srv.output.Write(errb.Bytes())
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("coffer %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("%s$ coffer %s → %d\n%s", p.handle, strings.Join(args, " "), code, errb.String())
	p.recordSecrets(t)
	return code, out.String(), errb.String()
}

// ok runs coffer, requires exit code 0 and returns stdout.
func (p *cliProfile) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := p.run(t, args...)
	if code != cliOK {
		t.Fatalf("%s$ coffer %s: exit code %d\n%s", p.handle, strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// okJSON runs coffer and decodes its stdout into v.
func (p *cliProfile) okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := p.ok(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("coffer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

type cliWhoami struct {
	Handle       string           `json:"handle"`
	AccountID    coffer.AccountID `json:"account_id"`
	SafetyNumber string           `json:"safety_number"`
}

// whoami reads the profile's identity from coffer whoami --json.
func (p *cliProfile) whoami(t *testing.T) cliWhoami {
	t.Helper()
	var w cliWhoami
	p.okJSON(t, &w, "whoami", "--json")
	if w.Handle != p.handle || w.AccountID.IsZero() || len(strings.ReplaceAll(w.SafetyNumber, " ", "")) != 60 {
		t.Fatalf("whoami of %s: %+v", p.handle, w)
	}
	return w
}

// cliPassphraseEnv unlocks the profiles' encrypted keys: a passphrase, and
// scrypt at a test-only cost, so that each run of coffer spends about a
// millisecond unlocking rather than a second.
var cliPassphraseEnv = []string{"COFFER_PASSPHRASE=" + cliPassphrase, "COFFER_TEST_SCRYPT_WORK_FACTOR=10"}

const cliPassphrase = "e2e passphrase"

// keyStore opens the profile's encrypted key store as coffer does.
func (p *cliProfile) keyStore(t *testing.T) clientlib.KeyStore {
	t.Helper()
	ks, _, err := keyvault.Open(p.dir, keyvault.Options{
		Passphrase: func(bool) ([]byte, error) { return []byte(cliPassphrase), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// recordSecrets adds the profile's private keys and current refresh token,
// read from its encrypted key store, to the suite's secret canary.
func (p *cliProfile) recordSecrets(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(p.dir, "vault.json")); os.IsNotExist(err) {
		return // no key stored yet
	}
	ks := p.keyStore(t)
	for _, name := range []string{"identity", "session/refresh", "device", "user-keys", "account-pending"} {
		b, err := ks.Get(name)
		if errors.Is(err, clientlib.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		found, err := keyStoreSecrets(name, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range found {
			RecordSecret(s.Kind, s.Value)
		}
	}
}

func wantExit(t *testing.T, got, want int, stderr string) {
	t.Helper()
	if got != want {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", got, want, stderr)
	}
}

func mustParseGroupID(t *testing.T, out string) coffer.GroupID {
	t.Helper()
	g, err := coffer.ParseGroupID(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("stdout %q is not a group id: %v", out, err)
	}
	return g
}

func mustParseResourceID(t *testing.T, out string) coffer.ResourceID {
	t.Helper()
	id, err := coffer.ParseResourceID(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("stdout %q is not a resource id: %v", out, err)
	}
	return id
}

func mustWriteRandom(t *testing.T, dir, name string, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustSameFile(t *testing.T, want, got string) {
	t.Helper()
	if mustRead(t, want) != mustRead(t, got) {
		t.Fatalf("%s differs from %s", got, want)
	}
}

func mustNotExist(t *testing.T, file string) {
	t.Helper()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("%s exists (%v): a failed get must leave nothing at the destination", file, err)
	}
}
