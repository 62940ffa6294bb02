package cofferd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestValidateBeforeSideEffects: a configuration error is found before
// cofferd creates its data directory, takes a port or starts PostgreSQL.
func TestValidateBeforeSideEffects(t *testing.T) {
	for name, mutate := range map[string]func(c *cofferd.Config){
		"bad log format":      func(c *cofferd.Config) { c.LogFormat = "xml" },
		"bad log level":       func(c *cofferd.Config) { c.LogLevel = "loud" },
		"bad trusted proxies": func(c *cofferd.Config) { c.TrustedProxies = "10.0.0.0/8,not-a-cidr" },
		"bad origin":          func(c *cofferd.Config) { c.Origins = "coffer.example.com" },
		"tls key without cert": func(c *cofferd.Config) {
			c.TLSKey = "key.pem"
		},
		"missing jwt key file": func(c *cofferd.Config) { c.Dev = false; c.JWTKeyFiles = "/nonexistent/jwt.key" },
		"negative pool":        func(c *cofferd.Config) { c.DBMaxConns = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			m := cofferd.NewMain()
			m.Stderr = io.Discard
			m.Config = cofferd.Config{Dev: true, DataDir: data, Addr: addr, LogLevel: "info", LogFormat: "text"}
			mutate(&m.Config)
			if err := m.Run(context.Background()); err == nil {
				m.Close()
				t.Fatal("Run succeeded")
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused start created the data directory: %v", err)
			}
			if ln, err := net.Listen("tcp", addr); err != nil {
				t.Errorf("the refused start holds the port: %v", err)
			} else {
				ln.Close()
			}
		})
	}
}

// TestDevLockRefusesSecondStart: the dev-mode data directory lock refuses a
// second holder, names the first, and is released on Close.
func TestDevLockRefusesSecondStart(t *testing.T) {
	dir := t.TempDir()
	first, err := cofferd.LockDataDirForTest(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cofferd.LockDataDirForTest(dir)
	if err == nil {
		t.Fatal("a second lock on the data directory succeeded")
	}
	if pid := strconv.Itoa(os.Getpid()); !strings.Contains(err.Error(), "pid "+pid) && !strings.Contains(err.Error(), "process "+pid) {
		t.Errorf("the refusal does not name the holder (pid %s): %v", pid, err)
	}
	first()
	again, err := cofferd.LockDataDirForTest(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}

// TestDifferentLogKeyRefuses: a start with another log key or origin on a
// database whose log is signed refuses, naming both; -log-replace-key with
// the old verifier key moves the log on purpose, and a wrong one refuses.
func TestDifferentLogKeyRefuses(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	dir := t.TempDir()
	keyA := cofferdtest.WriteKey(t, dir, "a.key")
	keyB := cofferdtest.WriteKey(t, dir, "b.key")
	first := cofferdtest.Start(t, &cofferdtest.Options{DatabaseURL: dbURL, LogKeyFile: keyA, LogOrigin: "coffer.one"})
	oldKey := first.LogKey()
	if err := first.Main.Close(); err != nil {
		t.Fatal(err)
	}

	start := func(key, origin, replace string) (*cofferd.Main, error) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m := cofferd.NewMain()
		var log bytes.Buffer
		m.Stderr = &log
		m.Listener = ln
		d := t.TempDir()
		m.Config = cofferd.Config{
			Addr: ln.Addr().String(), Origins: "http://" + ln.Addr().String(), DatabaseURL: dbURL,
			JWTKeyFiles: cofferdtest.WriteKey(t, d, "jwt.key"), LogKeyFile: key, LogOrigin: origin, LogReplaceKey: replace,
			DataDir: d, BlobDir: filepath.Join(d, "blobs"), LogLevel: "info",
		}
		err = m.Run(context.Background())
		if err == nil {
			t.Cleanup(func() { m.Close() })
		}
		return m, err
	}

	newKey := verifierKey(t, keyB, "coffer.one")
	for name, c := range map[string]struct{ key, origin, want string }{
		"another key":    {keyB, "coffer.one", newKey},
		"another origin": {keyA, "coffer.two", verifierKey(t, keyA, "coffer.two")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := start(c.key, c.origin, "")
			if err == nil {
				t.Fatal("cofferd started and would re-sign the log")
			}
			oldName, oldHash, _ := strings.Cut(oldKey, "+")
			oldHash, _, _ = strings.Cut(oldHash, "+")
			for _, want := range []string{oldName + "+" + oldHash, c.want, "-log-replace-key"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not name %q: %v", want, err)
				}
			}
		})
	}
	// The log is still signed under the old key: nothing was re-signed.
	if m, err := start(keyA, "coffer.one", ""); err != nil {
		t.Fatalf("the original key no longer starts: %v", err)
	} else {
		m.Close()
	}
	// A wrong -log-replace-key refuses too.
	if _, err := start(keyB, "coffer.one", verifierKey(t, keyB, "coffer.one")); err == nil {
		t.Fatal("-log-replace-key naming the new key moved the log")
	}
	// On purpose: the old verifier key named.
	m, err := start(keyB, "coffer.one", oldKey)
	if err != nil {
		t.Fatalf("-log-replace-key with the old key: %v", err)
	}
	if m.LogKey() != newKey {
		t.Fatalf("log key %q, want %q", m.LogKey(), newKey)
	}
	m.Close()
	if _, err := start(keyA, "coffer.one", ""); err == nil {
		t.Fatal("after the move, the old key started and would re-sign the log back")
	}
}

func verifierKey(t *testing.T, keyFile, origin string) string {
	t.Helper()
	var out bytes.Buffer
	if err := cofferd.LogKeyCommand([]string{"-log-key", keyFile, "-log-origin", origin}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	v, err := translog.NewVerifier(out.String())
	if err != nil {
		t.Fatal(err)
	}
	return v.Key()
}

// TestMetricsAddr: with -metrics-addr the metrics are served there, and not
// on the API's address.
func TestMetricsAddr(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	d := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := cofferd.NewMain()
	m.Stderr = io.Discard
	m.Listener = ln
	m.Config = cofferd.Config{
		Addr: ln.Addr().String(), Origins: "http://" + ln.Addr().String(), DatabaseURL: dbURL,
		JWTKeyFiles: cofferdtest.WriteKey(t, d, "jwt.key"), LogKeyFile: cofferdtest.WriteKey(t, d, "log.key"), LogOrigin: "coffer.test",
		DataDir: d, BlobDir: filepath.Join(d, "blobs"), LogLevel: "info", MetricsAddr: "127.0.0.1:0", LogFormat: "json",
		DBMaxConns: 7, LogFile: filepath.Join(d, "cofferd.log"),
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if resp, err := http.Get(m.URL() + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the API address: %v %v, want 404", resp.Status, err)
	}
	http.Get(m.URL() + "/healthz")
	resp, err := http.Get(m.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "coffer_http_requests_total") {
		t.Fatalf("metrics listener: %d\n%.500s", resp.StatusCode, body)
	}
	// The daemon's own metrics, on the same listener.
	for _, want := range []string{
		"coffer_db_pool_max_connections 7", "coffer_db_pool_acquires_total ", "coffer_log_scrape_ok 1",
		"coffer_log_pending_leaves ", "coffer_log_sequencer_lag_seconds ", "coffer_log_checkpoint_age_seconds ",
		"coffer_gc_blobs_collected_total ", "coffer_gc_uploads_collected_total ", "coffer_auth_failures_total{",
		"coffer_uploads_in_flight ", "coffer_upload_bytes_total ", "coffer_request_body_bytes_in_flight ",
	} {
		if !strings.Contains(string(body), "\n"+want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// -log-format json: every log line is a JSON object.
	logged, err := os.ReadFile(filepath.Join(d, "cofferd.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(logged)), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("a log line is not JSON: %q", line)
		}
	}
}
