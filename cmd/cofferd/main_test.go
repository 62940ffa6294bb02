package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/translog"
)

func runCofferd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	// Only the arguments configure it, not the environment of the test run.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "COFFER_") {
			t.Setenv(k, "") // restored when the test ends
			os.Unsetenv(k)
		}
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, args, &out, &errb)
	return out.String(), errb.String(), err
}

// TestUsageErrorsExit2 covers the command lines that must exit 2 (a usage
// error) before cofferd does anything: unknown positional arguments and bad
// flags, for the server and each subcommand.
func TestUsageErrorsExit2(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{
		{"bogus"},
		{"-dev", "-data", data, "extra"},
		{"-no-such-flag"},
		{"-shutdown-timeout", "soon"},
		{"migrate", "-no-such-flag"},
		{"migrate", "-dev", "extra"},
		{"logkey", "-no-such-flag"},
		{"logkey", "extra"},
		{"healthcheck", "-no-such-flag"},
		{"healthcheck", "extra"},
		{"version", "extra"},
		{"genkey"},
	} {
		_, _, err := runCofferd(t, args...)
		if !cofferd.IsUsage(err) {
			t.Errorf("cofferd %s: %v, want a usage error (exit 2)", strings.Join(args, " "), err)
		}
	}
	if entries, _ := os.ReadDir(data); len(entries) > 0 {
		t.Errorf("a refused command line left files in the data directory: %v", entries)
	}
}

// TestHelpListsSubcommands checks that -help lists every subcommand and
// that each subcommand has a help of its own.
func TestHelpListsSubcommands(t *testing.T) {
	for _, h := range []string{"-help", "--help", "-h"} {
		_, stderr, err := runCofferd(t, h)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("cofferd %s: %v", h, err)
		}
		for _, sub := range cofferd.Subcommands {
			if !strings.Contains(stderr, "cofferd "+sub) {
				t.Errorf("cofferd %s does not list %q:\n%s", h, sub, stderr)
			}
		}
	}
	for _, sub := range cofferd.Subcommands {
		_, stderr, err := runCofferd(t, sub, "-help")
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "Usage: cofferd "+sub) {
			t.Errorf("cofferd %s -help: %v\n%s", sub, err, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"-dev", "--version"}} {
		stdout, _, err := runCofferd(t, args...)
		if err != nil || !strings.HasPrefix(stdout, "cofferd ") || !strings.Contains(stdout, "go1.") {
			t.Errorf("cofferd %s: %v, %q", strings.Join(args, " "), err, stdout)
		}
	}
}

// TestDoubleDashFlags keeps Go flag syntax: -dev and --dev are one flag.
func TestDoubleDashFlags(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "log.key")
	if _, err := cofferd.GenerateKeyFiles(key); err != nil {
		t.Fatal(err)
	}
	out1, _, err1 := runCofferd(t, "logkey", "-log-key", key, "-log-origin", "a.example")
	out2, _, err2 := runCofferd(t, "logkey", "--log-key", key, "--log-origin=a.example")
	if err1 != nil || err2 != nil || out1 != out2 {
		t.Fatalf("one and two dashes differ: %v %q / %v %q", err1, out1, err2, out2)
	}
}

func TestLogKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "log.key")
	if _, err := cofferd.GenerateKeyFiles(keyFile); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCofferd(t, "logkey", "-log-key", keyFile, "-log-origin", "coffer.example.com")
	if err != nil {
		t.Fatal(err)
	}
	v, err := translog.NewVerifier(strings.TrimSpace(stdout))
	if err != nil {
		t.Fatalf("cofferd logkey printed %q, not a verifier key: %v", stdout, err)
	}
	if v.Origin() != "coffer.example.com" {
		t.Errorf("origin %q", v.Origin())
	}
	// The dev-mode key under -data, which logkey must not create.
	_, _, err = runCofferd(t, "logkey", "-dev", "-data", filepath.Join(dir, "none"))
	if err == nil {
		t.Error("logkey -dev on a data directory without a key succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Errorf("logkey created the data directory: %v", err)
	}
	if _, _, err := runCofferd(t, "logkey"); !cofferd.IsUsage(err) {
		t.Errorf("logkey without a key: %v, want a usage error", err)
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if _, _, err := runCofferd(t, "healthcheck", "-addr", addr); err != nil {
		t.Errorf("ready server: %v", err)
	}
	status = http.StatusServiceUnavailable
	if _, _, err := runCofferd(t, "healthcheck", "-addr", addr); err == nil || cofferd.IsUsage(err) {
		t.Errorf("unready server: %v, want a failure (exit 1)", err)
	}
	srv.Close()
	if _, _, err := runCofferd(t, "healthcheck", "-addr", addr, "-timeout", "2s"); err == nil {
		t.Error("no server: healthcheck succeeded")
	}
}

// TestProductionRequiresFlags: outside dev mode, every flag that names the
// deployment to clients is required, and cofferd refuses before it touches
// anything.
func TestProductionRequiresFlags(t *testing.T) {
	dir := t.TempDir()
	full := productionArgs(t, dir)
	for _, flagName := range []string{"-database-url", "-jwt-key", "-log-key", "-log-origin", "-origin", "-blob-dir"} {
		var args []string
		for i := 0; i < len(full); i += 2 {
			if full[i] != flagName {
				args = append(args, full[i], full[i+1])
			}
		}
		_, _, err := runCofferd(t, args...)
		if err == nil || !strings.Contains(err.Error(), flagName+" ") || !strings.Contains(err.Error(), "is required") {
			t.Errorf("without %s: %v", flagName, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs")); !os.IsNotExist(err) {
		t.Errorf("a refused start created the blob directory: %v", err)
	}
}

// TestREADMEProductionLine runs the README's production command line
// through cofferd's configuration check, with its files made real: it must
// name every required flag.
func TestREADMEProductionLine(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "cofferd -database-url") {
			line = strings.TrimSpace(l)
			break
		}
	}
	if line == "" {
		t.Fatal("README.md has no line starting with `cofferd -database-url`")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := cofferd.GenerateKeyFiles("jwt.key", "log.key"); err != nil {
		t.Fatal(err)
	}
	writeCert(t, "cert.pem", "key.pem")
	m := cofferd.NewMain()
	m.Stderr = &bytes.Buffer{}
	if err := m.ParseFlags(strings.Fields(line)[1:]); err != nil {
		t.Fatalf("README line %q: %v", line, err)
	}
	if err := m.Config.Validate(); err != nil {
		t.Fatalf("README line %q does not configure cofferd: %v", line, err)
	}
}

// productionArgs is a complete production command line with real files.
func productionArgs(t *testing.T, dir string) []string {
	jwt, logKey := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "log.key")
	if _, err := cofferd.GenerateKeyFiles(jwt, logKey); err != nil {
		t.Fatal(err)
	}
	return []string{
		"-database-url", "postgres://coffer@127.0.0.1:1/coffer",
		"-jwt-key", jwt, "-log-key", logKey, "-log-origin", "coffer.example.com",
		"-origin", "https://coffer.example.com", "-blob-dir", filepath.Join(dir, "blobs"),
		"-addr", "127.0.0.1:0",
	}
}

func writeCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "coffer.example.com"},
		DNSNames: []string{"coffer.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
}
