package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// TestCLIAccountDevices is issue 13's story through the CLI: three
// profiles for alice's devices (laptop, phone, tablet) and one for bob.
//
//  1. alice links her phone, and it reads her groups;
//  2. bob's verified contact of alice stays verified throughout;
//  3. the phone revokes the laptop: content put afterwards is unreadable
//     with everything the laptop holds, its key store and a copy of the
//     database included;
//  4. alice recovers on a tablet from the words alone, and reads
//     everything, old and new;
//  5. a device link of the server's own making is refused by every client.
func TestCLIAccountDevices(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs cofferd -dev with its own PostgreSQL")
	}
	bins := mustBuildCLI(t)
	srv := startCLIServer(t, bins)
	files := t.TempDir()

	laptop := srv.profile(t, "alice", false)
	phone := srv.profile(t, "alice", false)
	tablet := srv.profile(t, "alice", false)
	bob := srv.profile(t, "bob", false)
	kit1 := filepath.Join(files, "kit1.txt")
	laptop.ok(t, "init", "--server", srv.url, "--handle", "alice", "--device-name", "laptop", "--recovery-kit", kit1)
	recordKit(t, kit1)
	if fi, err := os.Stat(kit1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the recovery kit file: %v, mode %v; want 0600", err, fi.Mode())
	}
	bob.ok(t, "init", "--server", srv.url, "--handle", "bob", "--device-name", "bob-laptop")
	aliceID, bobID := laptop.whoami(t), bob.whoami(t)
	laptop.ok(t, "contact", "verify", "bob", bobID.SafetyNumber)
	bob.ok(t, "contact", "verify", "alice", aliceID.SafetyNumber)

	g := mustParseGroupID(t, laptop.ok(t, "group", "create", "trip"))
	laptop.ok(t, "group", "add", "trip", "bob")
	before := mustWriteRandom(t, files, "before.bin", 90<<10)
	rBefore := mustParseResourceID(t, laptop.ok(t, "put", "trip", before))

	// 1. The phone links with a code the laptop approves.
	linkDevice(t, phone, laptop, "phone")
	if got := phone.ok(t, "get", g.String(), rBefore.String()); got != mustRead(t, before) {
		t.Fatal("the phone reads something else than what the laptop put")
	}
	var devices []struct {
		Name    string
		ID      coffer.DeviceID
		Current bool
	}
	phone.okJSON(t, &devices, "device", "ls", "--json")
	if len(devices) != 2 || !hasDevice(devices, "laptop", false) || !hasDevice(devices, "phone", true) {
		t.Fatalf("the phone lists %+v, want laptop and phone (current)", devices)
	}
	if w := phone.whoami(t); w.SafetyNumber != aliceID.SafetyNumber || w.AccountID != aliceID.AccountID {
		t.Fatalf("the phone shows %+v; the laptop showed %+v", w, aliceID)
	}

	// 2. bob's contact of alice is still verified, and bob still writes.
	mustContactVerified(t, bob, "alice")
	fromBob := mustWriteRandom(t, files, "bob1.bin", 20<<10)
	rBob1 := mustParseResourceID(t, bob.ok(t, "put", "trip", fromBob))

	// 3. The phone revokes the laptop. The laptop's keys are copied first,
	// as a thief would, and the database after everything is written.
	laptopKeys := laptop.keyStore(t)
	laptop.ok(t, "ls", "trip") // the laptop still works up to the revocation
	phone.ok(t, "device", "revoke", "laptop", "--yes")
	mustContactVerified(t, bob, "alice")
	after := mustWriteRandom(t, files, "after.bin", 40<<10)
	rAfter := mustParseResourceID(t, bob.ok(t, "put", "trip", after))
	afterPhone := mustWriteRandom(t, files, "after-phone.bin", 30<<10)
	rAfterPhone := mustParseResourceID(t, phone.ok(t, "put", "trip", afterPhone))
	for _, r := range []coffer.ResourceID{rAfter, rAfterPhone} {
		out := filepath.Join(files, "laptop-"+r.String())
		code, _, stderr := laptop.run(t, "get", g.String(), r.String(), "-o", out)
		wantExit(t, code, cliError, stderr)
		if !strings.Contains(stderr, "this device was revoked") {
			t.Fatalf("the revoked laptop's get said:\n%s", stderr)
		}
		mustNotExist(t, out)
	}
	mustNotOpenWithKeys(t, srv, laptopKeys, g, aliceID.AccountID)
	mustBeSuiteV2Group(t, srv, g)
	phone.okJSON(t, &devices, "device", "ls", "--json")
	if len(devices) != 1 || !hasDevice(devices, "phone", true) {
		t.Fatalf("after the revocation the phone lists %+v", devices)
	}

	// 4. The tablet recovers from the words alone and reads everything.
	kit2 := filepath.Join(files, "kit2.txt")
	tablet.stdin = mustOpen(t, kit1)
	tablet.ok(t, "recover", "--server", srv.url, "--handle", "alice", "--device-name", "tablet", "--recovery-kit", kit2)
	recordKit(t, kit2)
	for r, file := range map[coffer.ResourceID]string{rBefore: before, rBob1: fromBob, rAfter: after, rAfterPhone: afterPhone} {
		if got := tablet.ok(t, "get", g.String(), r.String()); got != mustRead(t, file) {
			t.Fatalf("the tablet reads %s differently", filepath.Base(file))
		}
	}
	if w := tablet.whoami(t); w.SafetyNumber != aliceID.SafetyNumber {
		t.Fatalf("the tablet shows safety number %s, want %s", w.SafetyNumber, aliceID.SafetyNumber)
	}
	// The old words were replaced by the recovery.
	other := srv.profile(t, "alice", false)
	other.stdin = mustOpen(t, kit1)
	code, _, stderr := other.run(t, "recover", "--server", srv.url, "--handle", "alice", "--device-name", "thief")
	wantExit(t, code, cliError, stderr)
	mustContactVerified(t, bob, "alice")
	bob.ok(t, "put", "trip", mustWriteRandom(t, files, "bob2.bin", 1<<10))

	// 5. A device link of the server's making: every client refuses it.
	forgeDeviceLink(t, srv, "alice")
	for _, p := range []*cliProfile{phone, tablet} {
		code, _, stderr := p.run(t, "device", "ls")
		wantExit(t, code, cliSecurity, stderr)
	}
	code, _, stderr = bob.run(t, "contact", "verify", "alice", aliceID.SafetyNumber)
	wantExit(t, code, cliSecurity, stderr)
}

func hasDevice(ds []struct {
	Name    string
	ID      coffer.DeviceID
	Current bool
}, name string, current bool) bool {
	for _, d := range ds {
		if d.Name == name && d.Current == current {
			return true
		}
	}
	return false
}

// linkDevice runs coffer device link in p, reads the code from its first
// line of stdout, approves it from approver and waits for link to exit 0.
func linkDevice(t *testing.T, p, approver *cliProfile, name string) {
	t.Helper()
	env := append(append([]string{"HOME=" + p.srv.home}, cliPassphraseEnv...), p.env...)
	cmd := exec.Command(p.srv.bins.coffer, "--profile", p.dir, "device", "link", "--server", p.srv.url, "--handle", p.handle,
		"--device-name", name, "--timeout", "2m")
	cmd.Env = cleanEnv(env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("device link printed no code: %v\n%s", err, errb.Bytes())
	}
	code := strings.TrimSpace(line)
	RecordSecret("pairing code", []byte(code))
	go func() {
		rest, _ := bufio.NewReader(rd).ReadString(0)
		p.srv.output.Write([]byte(rest))
		done <- cmd.Wait()
	}()
	approver.ok(t, "device", "approve", code)
	select {
	case err := <-done:
		p.srv.output.Write(errb.Bytes())
		if err != nil {
			t.Fatalf("device link: %v\n%s", err, errb.Bytes())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("device link did not finish 2 minutes after the approval\n%s", errb.Bytes())
	}
	p.recordSecrets(t)
}

func mustContactVerified(t *testing.T, p *cliProfile, handle string) {
	t.Helper()
	var contacts []struct{ Handle, State string }
	p.okJSON(t, &contacts, "contact", "list", "--json")
	for _, c := range contacts {
		if c.Handle == handle {
			if c.State != "verified" {
				t.Fatalf("%s's contact %s is %s, want verified", p.handle, handle, c.State)
			}
			return
		}
	}
	t.Fatalf("%s has no contact %s", p.handle, handle)
}

func recordKit(t *testing.T, file string) {
	t.Helper()
	rk, err := coffer.ParseRecoveryWords(mustRead(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	RecordSecret("recovery key", rk[:])
}

func mustOpen(t *testing.T, file string) *os.File {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// mustNotOpenWithKeys tries every private key in ks (the revoked laptop's
// key store) on the newest epoch's wrap for the account, read straight
// from the database: none may open it.
func mustNotOpenWithKeys(t *testing.T, srv *cliServer, ks clientlib.KeyStore, g coffer.GroupID, member coffer.AccountID) {
	t.Helper()
	conn := srv.conn(t)
	var (
		epoch uint64
		wrap  []byte
	)
	err := conn.QueryRow(context.Background(),
		`SELECT epoch, wrap FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 ORDER BY epoch DESC LIMIT 1`, g, member).Scan(&epoch, &wrap)
	if err != nil {
		t.Fatal(err)
	}
	var tried int
	try := func(seed []byte) {
		dk, err := coffer.KEM().NewPrivateKey(seed)
		if err != nil {
			return
		}
		tried++
		if _, err := groupkey.Unwrap(dk, g, epoch, member, wrap); err == nil {
			t.Fatalf("a key the revoked laptop holds opens the epoch %d wrap", epoch)
		}
	}
	for _, name := range []string{"identity", "device", "user-keys"} {
		b, err := ks.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+32 <= len(b); i++ { // every 32-byte window: no layout assumed
			try(b[i : i+32])
		}
		if name == "device" {
			_, dk, err := coffer.DeviceKeysFromSeed(b[len(b)-32:])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := groupkey.Unwrap(dk, g, epoch, member, wrap); err == nil {
				t.Fatal("the revoked laptop's device key opens the newest wrap")
			}
		}
	}
	if tried == 0 {
		t.Fatal("no key of the laptop was tried")
	}
}

// conn opens the server's database as its owner.
func (s *cliServer) conn(t *testing.T) *pgx.Conn {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "database-url"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// forgeDeviceLink plays a malicious server: it appends to handle's chain,
// straight in the database, an add-device link for a device of its own,
// claiming a current device as author but signed with a key the server
// made, and co-signed by the new device.
func forgeDeviceLink(t *testing.T, srv *cliServer, handle string) {
	t.Helper()
	resp, err := http.Get(srv.url + "/v1/handles/" + handle + "/links?after=0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page api.AccountLinks
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	var links []coffer.SignedLink
	for _, l := range page.Links {
		links = append(links, l.Link())
	}
	s, err := coffer.VerifyAccountChain(nil, links)
	if err != nil {
		t.Fatal(err)
	}
	var author coffer.DeviceID
	for id := range s.Devices {
		author = id
	}
	seed := bytes.Repeat([]byte{0x5e}, coffer.DeviceSeedSize)
	sk, dk, err := coffer.DeviceKeysFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	fakeAuthor, _, err := coffer.DeviceKeysFromSeed(bytes.Repeat([]byte{0x77}, coffer.DeviceSeedSize))
	if err != nil {
		t.Fatal(err)
	}
	id := coffer.NewDeviceID()
	l := &coffer.AccountLink{Account: s.Account, Seq: s.Seq + 1, Prev: s.Head, Time: time.Now().UnixMilli(),
		Kind: coffer.LinkAddDevice, AuthorKind: coffer.AuthorDevice, AuthorDevice: author,
		Device:      coffer.DeviceKeys{ID: id, Name: "server's device", SigningKey: sk.Public(), EncryptionKey: dk.PublicKey().Bytes()},
		DeviceWraps: []coffer.DeviceWrap{{Device: id, Wrap: bytes.Repeat([]byte{1}, coffer.WrapSize)}}}
	sl := coffer.SignLink(l, fakeAuthor, sk)
	h := sl.Hash()
	srv.psql(t, fmt.Sprintf(`BEGIN;
INSERT INTO account_links (account_id, seq, body, signature, device_signature, hash, created_at)
  VALUES ('%s', %d, '\x%s', '\x%s', '\x%s', '\x%s', now());
UPDATE accounts SET chain_seq = %d WHERE id = '%s';
COMMIT;`, s.Account, l.Seq, hex.EncodeToString(sl.Body), hex.EncodeToString(sl.Signature), hex.EncodeToString(sl.DeviceSignature),
		hex.EncodeToString(h[:]), l.Seq, s.Account))
}

// TestCLIDeviceLinkStateRefused: the server corrupts the account's device
// state. The new device is linked all the same, and says so, and reports
// the refusal as a security error (exit 3); its profile works afterwards.
func TestCLIDeviceLinkStateRefused(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs cofferd -dev with its own PostgreSQL")
	}
	bins := mustBuildCLI(t)
	srv := startCLIServer(t, bins)
	laptop := srv.profile(t, "alice", false)
	phone := srv.profile(t, "alice", false)
	bob := srv.profile(t, "bob", false)
	laptop.ok(t, "init", "--server", srv.url, "--handle", "alice", "--device-name", "laptop", "--recovery-kit", filepath.Join(t.TempDir(), "kit"))
	bob.ok(t, "init", "--server", srv.url, "--handle", "bob", "--device-name", "b", "--recovery-kit", filepath.Join(t.TempDir(), "kit"))
	laptop.ok(t, "contact", "verify", "bob", bob.whoami(t).SafetyNumber) // saves the device state
	srv.psql(t, `UPDATE device_states SET ciphertext = set_byte(ciphertext, 20, get_byte(ciphertext, 20) # 1)`)

	env := append(append([]string{"HOME=" + srv.home}, cliPassphraseEnv...), phone.env...)
	cmd := exec.Command(srv.bins.coffer, "--profile", phone.dir, "device", "link", "--server", srv.url, "--handle", "alice",
		"--device-name", "phone", "--timeout", "2m")
	cmd.Env = cleanEnv(env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("device link printed no code: %v\n%s", err, errb.Bytes())
	}
	RecordSecret("pairing code", []byte(strings.TrimSpace(line)))
	laptop.ok(t, "device", "approve", strings.TrimSpace(line))
	err = cmd.Wait()
	srv.output.Write(errb.Bytes())
	if code := cmd.ProcessState.ExitCode(); code != cliSecurity {
		t.Fatalf("device link with a corrupted device state: exit %d (%v), want %d\n%s", code, err, cliSecurity, errb.Bytes())
	}
	if !strings.Contains(string(errb.Bytes()), "is now a device of alice") {
		t.Fatalf("device link did not say the device is linked:\n%s", errb.Bytes())
	}
	phone.recordSecrets(t)
	if w := phone.whoami(t); w.AccountID != laptop.whoami(t).AccountID {
		t.Fatalf("the phone's profile is another account: %+v", w)
	}
	phone.ok(t, "device", "ls")
}

// mustBeSuiteV2Group checks, in the database, that every commit of g is a
// suite v2 commit with a hybrid signature and every resource header a
// version 3 header with one: the CLI's accounts make suite v2 groups.
func mustBeSuiteV2Group(t *testing.T, srv *cliServer, g coffer.GroupID) {
	t.Helper()
	conn := srv.conn(t)
	ctx := context.Background()
	var commits, resources int
	rows, err := conn.Query(ctx, `SELECT body, signature FROM commits WHERE group_id = $1`, g)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var body, sig []byte
		if err := rows.Scan(&body, &sig); err != nil {
			t.Fatal(err)
		}
		if body[0] != coffer.SuiteV2 || len(sig) != coffer.HybridSignatureSize {
			t.Fatalf("a commit of version %d with a %d-byte signature in the CLI's group", body[0], len(sig))
		}
		commits++
	}
	rows, err = conn.Query(ctx, `SELECT header, header_signature FROM resources WHERE group_id = $1`, g)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var header, sig []byte
		if err := rows.Scan(&header, &sig); err != nil {
			t.Fatal(err)
		}
		if header[0] != coffer.ResourceSuiteHybrid || len(sig) != coffer.HybridSignatureSize {
			t.Fatalf("a resource header of version %d with a %d-byte signature in the CLI's group", header[0], len(sig))
		}
		resources++
	}
	if commits == 0 || resources == 0 {
		t.Fatalf("%d commits and %d resources checked", commits, resources)
	}
}
