package cofferdtest

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"

	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

// Witness is a cosigning witness (internal/witness) served in this process.
type Witness struct {
	Name     string
	URL      string
	Key      string // cosignature/v1 verifier key
	StateDir string
	stop     func()
}

// Stop stops the witness (tests of a witness that is down); it is also
// stopped when the test ends.
func (w *Witness) Stop() { w.stop() }

// StartWitness serves a new witness of the log with verifier key logKey,
// fetching leaves from logURL, on a loopback port until the test ends.
func StartWitness(tb testing.TB, name, logKey, logURL string) *Witness {
	tb.Helper()
	skey, vkey, err := translog.GenerateWitnessKey(name)
	if err != nil {
		tb.Fatal(err)
	}
	w := &Witness{Name: name, Key: vkey, StateDir: tb.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- witness.Serve(ctx, witness.Config{LogKey: logKey, LogURL: logURL, SignerKey: skey, StateDir: w.StateDir},
			"127.0.0.1:0", func(addr string) { ready <- addr })
	}()
	select {
	case addr := <-ready:
		w.URL = "http://" + addr
	case err := <-done:
		cancel()
		tb.Fatalf("witness %s: %v", name, err)
	}
	stopped := false
	w.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	tb.Cleanup(w.stop)
	return w
}

func logVerifierKey(tb testing.TB, keyFile, origin string) string {
	tb.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		tb.Fatalf("%s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := translog.NewSigner(origin, k.(ed25519.PrivateKey))
	if err != nil {
		tb.Fatal(err)
	}
	return s.VerifierKey()
}
