package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

// TestWitnessCLI: keygen writes a private key file and prints the verifier
// key; serve, given that file, cosigns the server's checkpoint under it.
func TestWitnessCLI(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "w.key")
	code, out, stderr := runCLI(t, "witness", "keygen", "--name", "w.example", "--key-file", keyFile)
	if code != exitClean {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	vkey := strings.TrimSpace(out)
	wv, err := translog.NewWitnessVerifier(vkey)
	if err != nil || wv.Name() != "w.example" {
		t.Fatalf("keygen printed %q: %v", out, err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if code, _, _ := runCLI(t, "witness", "keygen", "--name", "w.example", "--key-file", keyFile); code != exitError {
		t.Fatal("keygen overwrote a key file")
	}
	if code, _, _ := runCLI(t, "witness", "serve", "--listen", "127.0.0.1:0"); code != exitError {
		t.Fatal("serve without its flags ran")
	}

	srv := cofferdtest.Start(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"witness", "serve", "--listen", addr, "--state", filepath.Join(dir, "state"),
			"--key-file", keyFile, "--log-key", srv.LogKey(), "--log-url", srv.URL()}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitClean {
			t.Errorf("serve exited %d", code)
		}
	}()

	resp, err := http.Get(srv.URL() + "/v1/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	note, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var line string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		line, err = witness.Push(context.Background(), http.DefaultClient, "http://"+addr, 0, nil, string(note))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := translog.NewVerifier(srv.LogKey())
	c, err := translog.OpenCosigned(translog.AddCosignatures(string(note), line), lv, []*translog.WitnessVerifier{wv})
	if err != nil || len(c.Witnessed) != 1 {
		t.Fatalf("not cosigned by the generated key: %v", err)
	}
}
