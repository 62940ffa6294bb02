package e2e_test

// The CLI's operational commands (issue 11, item 9) against cofferd -dev:
// replace, group rename, logout, checkpoint show|check, confirmation of
// rm and group remove, COFFER_SERVER, --json on every command, and the TLS
// flags against a server that requires client certificates.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
)

type cliResource struct {
	ID          coffer.ResourceID `json:"id"`
	Name        string            `json:"name"`
	ContentType string            `json:"content_type"`
	Size        int64             `json:"size"`
	Version     uint64            `json:"version"`
	Epoch       uint64            `json:"epoch"`
	Author      string            `json:"author"`
}

type cliChange struct {
	Group  coffer.GroupID `json:"group"`
	Action string         `json:"action"`
	Name   string         `json:"name"`
	Member string         `json:"member"`
	Role   string         `json:"role"`
	Epoch  uint64         `json:"epoch"`
}

type cliCheckpoint struct {
	Origin string `json:"origin"`
	Size   int64  `json:"size"`
	Root   string `json:"root"`
	Note   string `json:"note"`
}

func TestCLIOperations(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs two cofferd -dev with their own PostgreSQL")
	}
	bins := mustBuildCLI(t)
	srv := startCLIServer(t, bins)
	files := t.TempDir()

	// COFFER_SERVER is init's default server.
	alice := srv.profile(t, "alice", false)
	alice.env = []string{"COFFER_SERVER=" + srv.url}
	bob := srv.profile(t, "bob", false)
	var w cliWhoami
	alice.okJSON(t, &w, "init", "--handle", "alice", "--json")
	if w.Handle != "alice" || w.AccountID.IsZero() {
		t.Fatalf("init --json: %+v", w)
	}
	bob.ok(t, "init", "--server", srv.url, "--handle", "bob")
	bobID := bob.whoami(t)

	var created cliChange
	alice.okJSON(t, &created, "group", "create", "plans", "--json")
	g := created.Group
	if g.IsZero() || created.Action != "create" || created.Name != "plans" {
		t.Fatalf("group create --json: %+v", created)
	}
	var ct struct{ Handle, State string }
	alice.okJSON(t, &ct, append([]string{"contact", "verify", "bob", "--json"}, strings.Fields(bobID.SafetyNumber)...)...)
	if ct.Handle != "bob" || ct.State != "verified" {
		t.Fatalf("contact verify --json: %+v", ct)
	}
	var added cliChange
	alice.okJSON(t, &added, "group", "add", "plans", "bob", "--role", "admin", "--json")
	if added.Action != "add" || added.Member != "bob" || added.Role != "admin" {
		t.Fatalf("group add --json: %+v", added)
	}

	// put and replace: same id, version 2, bob reads the new content.
	v1 := mustWriteRandom(t, files, "report.txt", 40<<10)
	v2 := mustWriteRandom(t, files, "report-v2.bin", 50<<10)
	var put cliResource
	alice.okJSON(t, &put, "put", "plans", v1, "--json")
	if put.Name != "report.txt" || put.Version != 1 || put.Size != 40<<10 {
		t.Fatalf("put --json: %+v", put)
	}
	var replaced cliResource
	bob.okJSON(t, &replaced, "replace", g.String(), "report.txt", v2, "--json")
	if replaced.ID != put.ID || replaced.Version != 2 || replaced.Name != "report.txt" ||
		replaced.ContentType != put.ContentType || replaced.Size != 50<<10 || replaced.Author != "bob" {
		t.Fatalf("replace --json: %+v, first version %+v", replaced, put)
	}
	got := filepath.Join(files, "got.bin")
	var gotRes struct {
		cliResource
		Output string `json:"output"`
	}
	alice.okJSON(t, &gotRes, "get", "plans", put.ID.String(), "-o", got, "--json")
	mustSameFile(t, v2, got)
	if gotRes.Version != 2 || gotRes.Output != got {
		t.Errorf("get --json: %+v", gotRes)
	}
	// A stale --if-version is refused and changes nothing.
	code, _, stderr := alice.run(t, "replace", "plans", "report.txt", v1, "--if-version", "1")
	wantExit(t, code, cliError, stderr)
	if !strings.Contains(stderr, "version 2, not 1") {
		t.Errorf("stale replace said:\n%s", stderr)
	}
	alice.ok(t, "get", "plans", "report.txt", "-o", got)
	mustSameFile(t, v2, got)
	// --name renames the resource with the new version.
	alice.okJSON(t, &replaced, "replace", "plans", "report.txt", v1, "--name", "final.txt", "--if-version", "2", "--json")
	if replaced.Version != 3 || replaced.Name != "final.txt" {
		t.Fatalf("replace --name: %+v", replaced)
	}

	// group rename: bob sees the new name, at a new epoch.
	var renamed cliChange
	alice.okJSON(t, &renamed, "group", "rename", "plans", "plans 2027", "--description", "next year", "--json")
	if renamed.Action != "rename" || renamed.Name != "plans 2027" || renamed.Epoch != 2 {
		t.Fatalf("group rename --json: %+v", renamed)
	}
	var groups []struct {
		ID          coffer.GroupID
		Name        string
		Description string
		Epoch       uint64
	}
	bob.okJSON(t, &groups, "group", "ls", "--json")
	if len(groups) != 1 || groups[0].Name != "plans 2027" || groups[0].Description != "next year" || groups[0].Epoch != 2 {
		t.Fatalf("bob's groups after the rename: %+v", groups)
	}
	bob.ok(t, "group", "rename", "plans 2027", "plans 2028") // an admin may; the description stays
	bob.okJSON(t, &groups, "group", "ls", "--json")
	if groups[0].Name != "plans 2028" || groups[0].Description != "next year" {
		t.Fatalf("after bob's rename: %+v", groups)
	}

	// rm and group remove refuse without --yes when stdin is not a
	// terminal, and change nothing.
	code, _, stderr = alice.run(t, "rm", "plans 2028", "final.txt")
	wantExit(t, code, cliUsage, stderr)
	if !strings.Contains(stderr, "--yes") {
		t.Errorf("rm without --yes said:\n%s", stderr)
	}
	var listing []cliResource
	alice.okJSON(t, &listing, "ls", "plans 2028", "--json")
	if len(listing) != 1 {
		t.Fatalf("rm without --yes deleted: %+v", listing)
	}
	code, _, stderr = alice.run(t, "group", "remove", "plans 2028", "bob")
	wantExit(t, code, cliUsage, stderr)
	var members []struct{ Handle string }
	alice.okJSON(t, &members, "group", "members", "plans 2028", "--json")
	if len(members) != 2 {
		t.Fatalf("group remove without --yes removed: %+v", members)
	}
	var deleted struct {
		Group   coffer.GroupID    `json:"group"`
		Deleted coffer.ResourceID `json:"deleted"`
	}
	alice.okJSON(t, &deleted, "rm", "plans 2028", "final.txt", "--yes", "--json")
	if deleted.Deleted != put.ID || deleted.Group != g {
		t.Errorf("rm --json: %+v", deleted)
	}
	alice.okJSON(t, &listing, "ls", "plans 2028", "--json")
	if len(listing) != 0 {
		t.Fatalf("after rm --yes: %+v", listing)
	}

	// checkpoint show | check: alice and bob see the same log.
	var cp cliCheckpoint
	alice.okJSON(t, &cp, "checkpoint", "show", "--json")
	if cp.Size == 0 || cp.Origin == "" || !strings.Contains(cp.Note, "\n\n— ") {
		t.Fatalf("checkpoint show --json: %+v", cp)
	}
	noteA := filepath.Join(files, "alice-checkpoint.txt")
	if err := os.WriteFile(noteA, []byte(alice.ok(t, "checkpoint", "show")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := bob.ok(t, "checkpoint", "check", noteA); !strings.Contains(out, "consistent") {
		t.Errorf("checkpoint check said %q", out)
	}
	var check struct {
		Consistent   bool
		Theirs, Ours cliCheckpoint
	}
	bob.okJSON(t, &check, "checkpoint", "check", noteA, "--json")
	if !check.Consistent || check.Theirs.Size != cp.Size || check.Ours.Size < cp.Size {
		t.Errorf("checkpoint check --json: %+v", check)
	}
	// Garbage is an error, not a fork.
	junk := mustWriteRandom(t, files, "junk.txt", 100)
	code, _, stderr = bob.run(t, "checkpoint", "check", junk)
	wantExit(t, code, cliError, stderr)

	// A split view: a second server signs a different log with the same
	// log key and origin. Its checkpoint verifies under alice's pinned key,
	// but alice's server cannot prove it consistent with hers: exit 3.
	fork := startCLIServer(t, bins, "-log-key", filepath.Join(srv.data, "log.key"))
	carol := fork.profile(t, "carol", false)
	carol.ok(t, "init", "--server", fork.url, "--handle", "carol")
	carol.ok(t, "group", "create", "elsewhere")
	carol.ok(t, "group", "create", "elsewhere too")
	var forkCP cliCheckpoint
	carol.okJSON(t, &forkCP, "checkpoint", "show", "--json")
	if forkCP.Origin != cp.Origin {
		t.Fatalf("the second server's log origin %q differs from %q: not a split view", forkCP.Origin, cp.Origin)
	}
	noteB := filepath.Join(files, "fork-checkpoint.txt")
	if err := os.WriteFile(noteB, []byte(forkCP.Note), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = alice.run(t, "checkpoint", "check", noteB)
	wantExit(t, code, cliSecurity, stderr)
	if !strings.Contains(stderr, "SECURITY ERROR") {
		t.Errorf("a split view said:\n%s", stderr)
	}
	code, _, stderr = alice.run(t, "checkpoint", "check", noteB, "--json")
	wantExit(t, code, cliSecurity, stderr)
	if !strings.Contains(stderr, `"code": "security"`) || !strings.Contains(stderr, `"check": "log"`) {
		t.Errorf("a split view with --json said:\n%s", stderr)
	}
	// And from stdin the other way round: carol's server cannot prove
	// alice's checkpoint either.
	code, _, stderr = carol.runStdin(t, alice.ok(t, "checkpoint", "show"), "checkpoint", "check", "-")
	wantExit(t, code, cliSecurity, stderr)

	// logout revokes the session: the stored refresh token is gone and the
	// server no longer honours it; the identity stays and the next command
	// logs in again.
	refreshFile := filepath.Join(alice.dir, "keys", "session", "refresh")
	oldRefresh, err := alice.keyStore(t).Get("session/refresh")
	if err != nil {
		t.Fatalf("no session stored before logout: %v", err)
	}
	var out struct {
		LoggedOut bool `json:"logged_out"`
	}
	alice.okJSON(t, &out, "logout", "--json")
	if !out.LoggedOut {
		t.Errorf("logout --json: %+v", out)
	}
	if _, err := os.Stat(refreshFile); !os.IsNotExist(err) {
		t.Errorf("the refresh token is still stored after logout (%v)", err)
	}
	resp, err := http.Post(srv.url+"/v1/auth/refresh", "application/json",
		strings.NewReader(`{"refresh_token":"`+strings.TrimSpace(string(oldRefresh))+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the logged-out refresh token still refreshes: %s", resp.Status)
	}
	alice.okJSON(t, &groups, "group", "ls", "--json")
	if len(groups) != 1 {
		t.Errorf("after logout and a new login: %+v", groups)
	}
}

// TestCLIMutualTLS puts cofferd behind a TLS front end that requires a
// client certificate from a private CA: init with --cacert, --cert and
// --key works and stores them in the profile, so later commands need no
// flags; without the client certificate or the CA the connection fails.
func TestCLIMutualTLS(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs cofferd -dev with its own PostgreSQL")
	}
	dir := t.TempDir()
	ca, caKey := mustCA(t)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	serverCert := mustLeaf(t, ca, caKey, x509.ExtKeyUsageServerAuth)
	clientCert := mustLeaf(t, ca, caKey, x509.ExtKeyUsageClientAuth)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "client-key.pem", "PRIVATE KEY", keyDER)

	var backend *url.URL
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httputil.NewSingleHostReverseProxy(backend).ServeHTTP(w, r)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	front.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	frontURL := "https://" + front.Listener.Addr().String()

	bins := mustBuildCLI(t)
	srv := startCLIServer(t, bins, "-origin", frontURL)
	backend, _ = url.Parse(srv.url)
	front.StartTLS()
	defer front.Close()

	// No CA: the server's certificate is not trusted.
	p := srv.profile(t, "dave", false)
	code, _, stderr := p.run(t, "init", "--server", frontURL, "--handle", "dave")
	wantExit(t, code, cliError, stderr)
	// The CA but no client certificate: the front end refuses.
	code, _, stderr = p.run(t, "init", "--server", frontURL, "--handle", "dave", "--cacert", caFile)
	wantExit(t, code, cliError, stderr)
	// Both: registered, and the files are remembered.
	p.ok(t, "init", "--server", frontURL, "--handle", "dave", "--cacert", caFile, "--cert", certFile, "--key", keyFile)
	p.ok(t, "group", "create", "over tls")
	var groups []struct{ Name string }
	p.okJSON(t, &groups, "group", "ls", "--json")
	if len(groups) != 1 || groups[0].Name != "over tls" {
		t.Fatalf("groups over mTLS: %+v", groups)
	}
	// A flag overrides the stored file: a CA that did not sign the server.
	other, _ := mustCA(t)
	otherFile := writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw)
	code, _, stderr = p.run(t, "--cacert", otherFile, "group", "ls")
	wantExit(t, code, cliError, stderr)
}

// runStdin is run with stdin.
func (p *cliProfile) runStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(f, []byte(stdin), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p.stdin = in
	defer func() { p.stdin = nil }()
	return p.run(t, args...)
}

func mustCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "coffer test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func mustLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "coffer test " + usageName(usage)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "server"
	}
	return "client"
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
