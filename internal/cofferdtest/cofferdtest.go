// Package cofferdtest starts a real cofferd (internal/cofferd) on a random
// port against a fresh pgtest database, for tests outside the e2e suite that
// need a whole server: the transparency log's client checks and the
// auditor. A package that uses it calls pgtest.Main from its TestMain.
package cofferdtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/pgtest"
)

// Server is a running cofferd.
type Server struct {
	Main        *cofferd.Main
	DatabaseURL string
	DataDir     string
	Witnesses   []*Witness
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.Main.URL() }

// LogKey is the note verifier key of the server's log.
func (s *Server) LogKey() string { return s.Main.LogKey() }

// Options configure Start.
type Options struct {
	// LogKeyFile and LogOrigin configure the log; by default each server
	// has its own key under its data directory. Two servers given the same
	// key and origin but different databases are a forked log.
	LogKeyFile, LogOrigin string
	// DatabaseURL reuses a database instead of a fresh one.
	DatabaseURL string
	// Stderr receives the server log (default: discarded; the log file is
	// DataDir/cofferd.log either way).
	Stderr io.Writer
	// Witnesses is how many witnesses to start (in this process, each with
	// its own key and state) and configure cofferd with (-witness).
	Witnesses int
	// WithWitnesses configures running witnesses too (another server's,
	// for a replica of the same log).
	WithWitnesses []*Witness
}

// WriteKey writes a fresh Ed25519 PKCS#8 PEM key file in dir.
func WriteKey(tb testing.TB, dir, name string) string {
	tb.Helper()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

// Start runs a cofferd until the test ends.
func Start(tb testing.TB, opts *Options) *Server {
	tb.Helper()
	if opts == nil {
		opts = &Options{}
	}
	url := opts.DatabaseURL
	if url == "" {
		url = pgtest.NewURL(tb)
	}
	dir := tb.TempDir()
	m := cofferd.NewMain()
	m.Stderr = io.Discard
	if opts.Stderr != nil {
		m.Stderr = opts.Stderr
	}
	// The port is taken first so that it can be named in -origin, which
	// cofferd requires outside dev mode.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	m.Listener = ln
	m.Config = cofferd.Config{
		Addr: ln.Addr().String(), Origins: "http://" + ln.Addr().String(), DatabaseURL: url, Migrate: true,
		JWTKeyFiles: WriteKey(tb, dir, "jwt.key"), LogLevel: "info", AuthRateLimit: 1_000_000,
		DataDir: dir, LogFile: filepath.Join(dir, "cofferd.log"), BlobDir: filepath.Join(dir, "blobs"),
		LogKeyFile: opts.LogKeyFile, LogOrigin: opts.LogOrigin,
	}
	if m.Config.LogKeyFile == "" {
		m.Config.LogKeyFile = WriteKey(tb, dir, "log.key")
	}
	if m.Config.LogOrigin == "" {
		m.Config.LogOrigin = "coffer.test"
	}
	ws := append([]*Witness(nil), opts.WithWitnesses...)
	for _, w := range opts.WithWitnesses {
		m.Config.Witnesses = append(m.Config.Witnesses, cofferd.WitnessFlag{URL: w.URL, Key: w.Key})
	}
	if opts.Witnesses > 0 {
		logKey := logVerifierKey(tb, m.Config.LogKeyFile, m.Config.LogOrigin)
		for i := range opts.Witnesses {
			w := StartWitness(tb, fmt.Sprintf("witness-%d.test", i+1), logKey, "http://"+ln.Addr().String())
			ws = append(ws, w)
			m.Config.Witnesses = append(m.Config.Witnesses, cofferd.WitnessFlag{URL: w.URL, Key: w.Key})
		}
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return &Server{Main: m, DatabaseURL: url, DataDir: dir, Witnesses: ws}
}
