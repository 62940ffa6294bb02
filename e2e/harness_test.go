package e2e_test

// The e2e harness runs real cofferd servers (internal/cofferd, in process,
// on 127.0.0.1:0, each on a fresh migrated database) and real clients
// (clientlib) against them. Tests use only these helpers and clientlib's
// API:
//
//	srv := MustServer(t)            // a running cofferd; srv.URL(), srv.DatabaseURL(), srv.Logs()
//	alice := MustClient(t, srv, "alice") // registered and logged in
//	ks := KeyStore(t, alice)        // its key store, readable by the test
//
// Every byte a server logs goes to a per-server buffer and to one buffer for
// the whole suite. Every secret the harness sees (clients' private key seeds
// and refresh tokens, the servers' signing keys) is recorded, and when the
// suite ends TestMain searches the suite's log for each of them in every
// encoding, and for anything shaped like a JWT. A hit fails the run.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/pgtest"
)

// suiteLog holds everything every server logged during the suite.
var suiteLog lockedBuffer

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes returns a copy of the contents.
func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// LogSink is where a server writes its log: a buffer of its own, teed into
// the suite's log. Servers write from many goroutines, and a sink outlives
// its test (a server logs while shutting down), so it never calls t.Log.
type LogSink struct {
	own lockedBuffer
}

// NewLogSink returns a sink for one server or process.
func NewLogSink() *LogSink { return &LogSink{} }

func (s *LogSink) Write(p []byte) (int, error) {
	s.own.Write(p)
	suiteLog.Write(p)
	return len(p), nil
}

// String returns what was logged to this sink.
func (s *LogSink) String() string { return string(s.own.Bytes()) }

// Server is a cofferd running in this process. The methods of the embedded
// cofferd.Main are available to tests that need more of it: URL (the base
// URL, http://127.0.0.1:PORT), DataDir, and the operator hooks.
type Server struct {
	*cofferd.Main
	databaseURL string
	log         *LogSink
}

// DatabaseURL is the server's database, for tests that play a malicious
// server or database.
func (s *Server) DatabaseURL() string { return s.databaseURL }

// Logs returns everything the server logged so far.
func (s *Server) Logs() string { return s.log.String() }

// MustServer starts cofferd on 127.0.0.1:0 with a fresh database, fresh
// keys and debug logging, and stops it when the test ends. The auth rate
// limit is effectively off: e2e tests register many clients from one IP.
func MustServer(tb testing.TB) *Server {
	tb.Helper()
	return MustServerWith(tb, nil)
}

// MustServerWith is MustServer with the configuration changed by tweak
// (when not nil) before the server starts.
func MustServerWith(tb testing.TB, tweak func(*cofferd.Config)) *Server {
	tb.Helper()
	dbURL := pgtest.NewURL(tb)
	dir := tb.TempDir()
	sink := NewLogSink()
	m := cofferd.NewMain()
	m.Stderr = sink
	// The port is taken first so that it can be named in -origin, which
	// cofferd requires outside dev mode.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	m.Listener = ln
	m.Config = cofferd.Config{
		Addr:          ln.Addr().String(),
		Origins:       "http://" + ln.Addr().String(),
		DatabaseURL:   dbURL,
		Migrate:       true,
		JWTKeyFiles:   MustKeyFile(tb, dir, "jwt.key", "server JWT signing key"),
		LogKeyFile:    MustKeyFile(tb, dir, "log.key", "server transparency log key"),
		LogOrigin:     "coffer.e2e",
		DataDir:       dir,
		BlobDir:       filepath.Join(dir, "blobs"),
		AuthRateLimit: 1_000_000,
		LogLevel:      "debug",
	}
	if tweak != nil {
		tweak(&m.Config)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		tb.Fatalf("start cofferd: %v\nlog:\n%s", err, sink)
	}
	srv := &Server{Main: m, databaseURL: dbURL, log: sink}
	// Registered after pgtest's cleanup, so the server stops before its
	// database is dropped.
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("stop cofferd: %v", err)
		}
		sink.Check(tb)
	})
	return srv
}

// Check fails tb if the sink holds a secret recorded so far, naming the
// test that leaked (TestMain checks the whole suite again at the end), and
// prints the log if tb failed, unless that would print the secrets.
func (s *LogSink) Check(tb testing.TB) {
	tb.Helper()
	findings := ScanForSecrets(s.own.Bytes(), Secrets())
	for _, f := range findings {
		tb.Errorf("the server log contains a secret: %s", f)
	}
	switch {
	case len(findings) > 0:
		tb.Log("server log withheld: it contains secrets")
	case tb.Failed():
		tb.Logf("server log:\n%s", s)
	}
}

// RequestCount returns how many requests the server answered for the route
// pattern with method, from its Prometheus metrics, summed over statuses.
func (s *Server) RequestCount(tb testing.TB, method, route string) int {
	tb.Helper()
	resp, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	prefix := fmt.Sprintf(`coffer_http_requests_total{method=%q,route=%q,status=`, method, route)
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			tb.Fatalf("metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}

// MustKeyFile writes a fresh Ed25519 PKCS#8 PEM key into dir and records
// its seed as a secret of the given kind.
func MustKeyFile(tb testing.TB, dir, name, kind string) string {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	RecordSecret(kind, k.Seed())
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

// RecordKeyFileSecret records the seed of an Ed25519 PKCS#8 PEM key file
// that a server generated itself (dev mode).
func RecordKeyFileSecret(tb testing.TB, file, kind string) {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		tb.Fatalf("%s: no PEM block", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		tb.Fatalf("%s: %T, want an Ed25519 key", file, k)
	}
	RecordSecret(kind, ek.Seed())
}

// CanaryKeyStore is a clientlib.MemoryKeyStore that records, as secrets
// for the suite's log scan, every value a client writes under a name that
// holds one: the private identity and the refresh token.
type CanaryKeyStore struct {
	*clientlib.MemoryKeyStore
}

// NewCanaryKeyStore returns an empty recording key store.
func NewCanaryKeyStore() *CanaryKeyStore {
	return &CanaryKeyStore{MemoryKeyStore: clientlib.NewMemoryKeyStore()}
}

func (k *CanaryKeyStore) Put(name string, value []byte) error {
	found, err := keyStoreSecrets(name, value)
	if err != nil {
		return err
	}
	for _, s := range found {
		RecordSecret(s.Kind, s.Value)
	}
	return k.MemoryKeyStore.Put(name, value)
}

// keyStoreSecrets returns the secrets a key store blob holds. The identity
// blob is version (1 byte), handle length L (1 byte), the handle, the
// 32-byte Ed25519 seed and the 32-byte X-Wing seed.
func keyStoreSecrets(name string, value []byte) ([]Secret, error) {
	switch name {
	case "identity":
		if len(value) < 2 || len(value) != 2+int(value[1])+32+32 {
			return nil, fmt.Errorf("e2e canary: the identity blob is %d bytes, not version|len|handle|seed|seed: update keyStoreSecrets", len(value))
		}
		handle, rest := string(value[2:2+int(value[1])]), value[2+int(value[1]):]
		return []Secret{
			{"identity Ed25519 seed of " + handle, rest[:32]},
			{"identity X-Wing seed of " + handle, rest[32:64]},
		}, nil
	case "device":
		// version | device id [16] | name length | name | seed [32]
		if len(value) < 18 || len(value) != 18+int(value[17])+32 {
			return nil, fmt.Errorf("e2e canary: the device blob is %d bytes, not version|id|len|name|seed: update keyStoreSecrets", len(value))
		}
		return []Secret{{"device seed", value[len(value)-32:]}}, nil
	case "user-keys":
		// version | count [2] | count × (generation [8] | seed [32])
		if len(value) < 3 || (len(value)-3)%40 != 0 {
			return nil, fmt.Errorf("e2e canary: the user-keys blob is %d bytes: update keyStoreSecrets", len(value))
		}
		var out []Secret
		for rest := value[3:]; len(rest) > 0; rest = rest[40:] {
			out = append(out, Secret{"user key seed", rest[8:40]})
		}
		return out, nil
	case "account-pending":
		// version | genesis | signature | recovery key [32]
		if len(value) < 33 {
			return nil, fmt.Errorf("e2e canary: the account-pending blob is %d bytes: update keyStoreSecrets", len(value))
		}
		return []Secret{{"recovery key of an unfinished registration", value[len(value)-32:]}}, nil
	case "session/refresh":
		if len(value) == 0 {
			return nil, nil
		}
		out := []Secret{{"refresh token", value}}
		// It is base64url of 256 random bits; the bits themselves, in any
		// encoding, must not appear either.
		if raw, err := base64.RawURLEncoding.DecodeString(string(value)); err == nil && len(raw) >= minSecretLen {
			out = append(out, Secret{"refresh token bits", raw})
		}
		return out, nil
	}
	return nil, nil
}

var clientStores sync.Map // *clientlib.Client → *CanaryKeyStore

// MustNewClient returns a client of the server at url, keeping its state in
// ks, without registering it.
func MustNewClient(tb testing.TB, url string, ks *CanaryKeyStore) *clientlib.Client {
	tb.Helper()
	return MustNewClientWith(tb, url, ks, nil)
}

// MustNewClientWith is MustNewClient with options. Every epoch key and file
// key the client makes or unwraps is recorded for the canary through
// clientlib's auditing hook, so the suite proves the server never logs one.
func MustNewClientWith(tb testing.TB, url string, ks *CanaryKeyStore, opts *clientlib.Options) *clientlib.Client {
	tb.Helper()
	var o clientlib.Options
	if opts != nil {
		o = *opts
	}
	o.SecretObserver = func(kind string, secret []byte) {
		if len(secret) >= minSecretLen {
			RecordSecret(kind, secret)
		}
	}
	c, err := clientlib.New(url, ks, &o)
	if err != nil {
		tb.Fatal(err)
	}
	clientStores.Store(c, ks)
	return c
}

// MustClient registers and logs in a client for handle, with a fresh
// in-memory key store whose secrets the suite's log scan looks for.
func MustClient(tb testing.TB, srv *Server, handle string) *clientlib.Client {
	tb.Helper()
	ks := NewCanaryKeyStore()
	c := MustNewClient(tb, srv.URL(), ks)
	if err := c.Register(context.Background(), handle); err != nil {
		tb.Fatalf("register %s: %v", handle, err)
	}
	for _, name := range []string{"identity", "session/refresh"} {
		if _, err := ks.Get(name); err != nil {
			tb.Fatalf("after registering, the key store has no %s (%v): the canary would miss it", name, err)
		}
	}
	return c
}

// KeyStore returns the key store of a client made by MustClient or
// MustNewClient.
func KeyStore(tb testing.TB, c *clientlib.Client) *CanaryKeyStore {
	tb.Helper()
	ks, ok := clientStores.Load(c)
	if !ok {
		tb.Fatal("KeyStore: the client was not made by MustClient or MustNewClient")
	}
	return ks.(*CanaryKeyStore)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// errNoRoot is returned by helpers that cannot find the module root.
var errNoRoot = errors.New("e2e: cannot find the module root (go.mod)")

// moduleRoot returns the directory of go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errNoRoot
		}
		dir = parent
	}
}
