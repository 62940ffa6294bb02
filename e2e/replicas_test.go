package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/s3test"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/jackc/pgx/v5"
)

// replicaSet is a deployment of two in-process cofferd replicas on one
// database and one S3 bucket, for tests that drive a replica's operator
// hooks directly (its collector); TestReplicasStory runs real processes. They share the access-token key, the log key and the
// origin, as replicas behind one load balancer do.
type replicaSet struct {
	a, b  *Server
	dbURL string
}

// replicaOptions adjust one replica's configuration.
type replicaOptions func(*cofferd.Config)

// mustReplicas starts the two replicas. origin, when set, is the one
// origin clients log in to (a load balancer's).
func mustReplicas(t *testing.T, origin string, optA, optB replicaOptions) *replicaSet {
	t.Helper()
	s3 := s3test.Start(t)
	bucket := s3.NewBucket(t)
	// cofferd takes S3 credentials from the standard AWS variables.
	s3.SetEnv(t)
	dbURL := pgtest.NewURL(t)
	keys := t.TempDir()
	jwtKey := MustKeyFile(t, keys, "jwt.key", "replicas' JWT signing key")
	logKey := MustKeyFile(t, keys, "log.key", "replicas' transparency log key")
	start := func(name string, opt replicaOptions) *Server {
		dir := t.TempDir()
		sink := NewLogSink()
		m := cofferd.NewMain()
		m.Stderr = sink
		// The port is taken first so that it can be named in -origin,
		// which cofferd requires outside dev mode.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m.Listener = ln
		origins := origin
		if origins == "" {
			origins = "http://" + ln.Addr().String()
		}
		m.Config = cofferd.Config{
			Addr:          ln.Addr().String(),
			DatabaseURL:   dbURL,
			Migrate:       true,
			JWTKeyFiles:   jwtKey,
			LogKeyFile:    logKey,
			LogOrigin:     "coffer.e2e-replicas",
			Origins:       origins,
			DataDir:       dir,
			BlobURL:       s3.URL(bucket, "blobs") + fmt.Sprintf("&part-size=%d", 5<<20),
			AuthRateLimit: 1_000_000,
			LogLevel:      "debug",
			GCInterval:    0,
		}
		if opt != nil {
			opt(&m.Config)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := m.Run(ctx); err != nil {
			t.Fatalf("start replica %s: %v\nlog:\n%s", name, err, sink)
		}
		t.Cleanup(func() {
			if err := m.Close(); err != nil {
				t.Errorf("stop replica %s: %v", name, err)
			}
			sink.Check(t)
		})
		return &Server{Main: m, databaseURL: dbURL, log: sink}
	}
	rs := &replicaSet{dbURL: dbURL}
	rs.a = start("A", optA)
	rs.b = start("B", optB)
	return rs
}

// replicaProcesses are two cofferd processes on one database and one S3
// bucket, sharing the access-token key, the log key and the origin, as
// replicas behind one load balancer do.
type replicaProcesses struct {
	a, b   *cofferdtest.Process
	dbURL  string
	logKey string // note verifier key of the shared log key
}

// mustReplicaProcesses builds cofferd and starts it twice with production
// flags (no -dev), each process on its own loopback port. origin is the
// one origin clients log in to (the load balancer's). The test stops both
// processes when it ends, if it has not already.
func mustReplicaProcesses(t *testing.T, origin string) *replicaProcesses {
	t.Helper()
	const logOrigin = "coffer.e2e-replicas"
	bin := cofferdtest.BuildCofferd(t)
	s3 := s3test.Start(t)
	bucket := s3.NewBucket(t)
	dbURL := pgtest.NewURL(t)
	keys := t.TempDir()
	jwtKey := MustKeyFile(t, keys, "jwt.key", "replicas' JWT signing key")
	logKeyFile := MustKeyFile(t, keys, "log.key", "replicas' transparency log key")
	pemBytes, err := os.ReadFile(logKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := translog.NewSigner(logOrigin, key.(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	rs := &replicaProcesses{dbURL: dbURL, logKey: signer.VerifierKey()}
	start := func(name string) *cofferdtest.Process {
		sink := NewLogSink()
		// Registered before the process's own cleanup, so it runs after
		// the process has stopped and written its last line.
		t.Cleanup(func() { sink.Check(t) })
		p := cofferdtest.StartProcess(t, bin, cofferdtest.ProcessOptions{
			Args: []string{
				"-database-url", dbURL,
				"-data", t.TempDir(),
				"-jwt-key", jwtKey,
				"-log-key", logKeyFile,
				"-log-origin", logOrigin,
				"-origin", origin,
				"-blob-url", s3.URL(bucket, "blobs") + fmt.Sprintf("&part-size=%d", 5<<20),
				// Every client of the test comes from 127.0.0.1.
				"-auth-rate-limit", "1000000",
				"-log-level", "debug",
			},
			// cofferd takes S3 credentials from the standard AWS variables.
			Env:          s3.Env(),
			Output:       sink,
			ReadyTimeout: 3 * time.Minute,
			StopTimeout:  time.Minute,
		})
		t.Logf("replica %s: pid %d at %s", name, p.Pid, p.URL)
		return p
	}
	rs.a = start("A")
	rs.b = start("B")
	return rs
}

// balancer is a load balancer in front of two replicas. Requests that
// start an upload go to replica `starter`, and finalizations to the other
// one, so every upload is started on one replica and finalized on the
// other; everything else alternates request by request.
type balancer struct {
	srv      *httptest.Server
	backends [2]*url.URL
	starter  atomic.Int32
	next     atomic.Int32
	mu       sync.Mutex
	served   map[string][2]int // "start" and "finalize": requests per replica
}

var (
	uploadStartRE    = regexp.MustCompile(`^/v1/groups/[^/]+/resources(/[^/]+/versions)?/?$`)
	uploadFinalizeRE = regexp.MustCompile(`^/v1/uploads/[^/]+/finalize$`)
)

func newBalancer(t *testing.T) *balancer {
	lb := &balancer{served: map[string][2]int{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			i := lb.pick(r.In)
			r.SetURL(lb.backends[i])
		},
		FlushInterval: -1,
	}
	lb.srv = httptest.NewServer(proxy)
	t.Cleanup(lb.srv.Close)
	return lb
}

func (lb *balancer) pick(r *http.Request) int {
	var i int
	kind := ""
	switch {
	case r.Method == http.MethodPost && uploadStartRE.MatchString(r.URL.Path):
		i, kind = int(lb.starter.Load()), "start"
	case r.Method == http.MethodPost && uploadFinalizeRE.MatchString(r.URL.Path):
		i, kind = 1-int(lb.starter.Load()), "finalize"
	default:
		i = int(lb.next.Add(1) % 2)
	}
	if kind != "" {
		lb.mu.Lock()
		c := lb.served[kind]
		c[i]++
		lb.served[kind] = c
		lb.mu.Unlock()
	}
	return i
}

func (lb *balancer) counts(kind string) [2]int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.served[kind]
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestReplicasStory: two cofferd processes, built from ./cmd/cofferd and
// configured as an operator would (production flags, S3 credentials from
// the AWS variables), on one database and one S3 store serve the
// three-person story, with every request alternating between them.
// Uploads started on one replica finalize on the other, in both
// directions; every client's checkpoint is consistent with every other's
// and with a witness that followed both replicas.
func TestReplicasStory(t *testing.T) {
	ctx := context.Background()
	lb := newBalancer(t)
	rs := mustReplicaProcesses(t, lb.srv.URL)
	lb.backends = [2]*url.URL{mustURL(t, rs.a.URL), mustURL(t, rs.b.URL)}

	client := func(handle string) *clientlib.Client {
		c := MustNewClient(t, lb.srv.URL, NewCanaryKeyStore())
		if err := c.Register(ctx, handle); err != nil {
			t.Fatalf("register %s: %v", handle, err)
		}
		return c
	}
	alice, bob, carol := client("alice"), client("bob"), client("carol")

	g := mustGroup(t, alice, "shared", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	// More than two parts: a multipart upload whose parts one replica
	// wrote and another finalized.
	report := randomContent(t, 11<<20+123)
	r1 := mustPut(t, bob, g, "report.pdf", report)
	if got := mustReadResource(t, alice, g, r1.ID); !bytes.Equal(got, report) {
		t.Fatal("alice read back different bytes")
	}

	lb.starter.Store(1) // from now on uploads start on B and finalize on A
	if err := alice.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	after := randomContent(t, 100_000)
	r2 := mustPut(t, alice, g, "after-removal.txt", after)
	if r2.Epoch != 2 {
		t.Fatalf("alice wrote at epoch %d after the removal, want 2", r2.Epoch)
	}
	for _, id := range []coffer.ResourceID{r1.ID, r2.ID} {
		_, err := readResource(bob, g, id)
		wantCode(t, err, coffer.ENOTFOUND)
	}
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	if got := mustReadResource(t, carol, g, r1.ID); !bytes.Equal(got, report) {
		t.Fatal("carol read bob's report differently")
	}
	if got := mustReadResource(t, carol, g, r2.ID); !bytes.Equal(got, after) {
		t.Fatal("carol read alice's resource differently")
	}
	if list, err := carol.List(ctx, g); err != nil || len(list) != 2 {
		t.Fatalf("carol lists %v (%v), want 2 resources", list, err)
	}
	for _, kind := range []string{"start", "finalize"} {
		if c := lb.counts(kind); c[0] == 0 || c[1] == 0 {
			t.Fatalf("upload %s requests per replica: %v; want both replicas to have served some", kind, c)
		}
	}

	// Many writes at once through both replicas: both sequencers race to
	// integrate them. Each new user registers and creates a group (an
	// identity leaf and a commit leaf).
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			c, err := clientlib.New(lb.srv.URL, clientlib.NewMemoryKeyStore(), nil)
			if err == nil {
				err = c.Register(ctx, fmt.Sprintf("user%02d", i))
			}
			if err == nil {
				_, err = c.CreateGroup(ctx, "own", nil)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every entry integrated exactly once, densely: one sequencer at a
	// time, never two assigning the same positions.
	db, err := pgx.Connect(ctx, rs.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var n, pending, minIdx, maxIdx, treeSize int64
	deadline := time.Now().Add(time.Minute)
	for {
		if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE leaf_index IS NULL),
			COALESCE(min(leaf_index), -1), COALESCE(max(leaf_index), -1), (SELECT tree_size FROM log_head) FROM log_entries`).
			Scan(&n, &pending, &minIdx, &maxIdx, &treeSize); err != nil {
			t.Fatal(err)
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pending != 0 || minIdx != 0 || maxIdx != n-1 || treeSize != n {
		t.Fatalf("log: %d entries, %d pending, indices %d..%d, tree size %d", n, pending, minIdx, maxIdx, treeSize)
	}

	// A witness that follows replica A, then B, then A again sees one log.
	state := t.TempDir()
	for _, p := range []*cofferdtest.Process{rs.a, rs.b, rs.a} {
		w, err := audit.Witness(ctx, audit.WitnessOptions{Server: p.URL, StateDir: state, LogKey: rs.logKey})
		if err != nil || !w.Clean {
			t.Fatalf("witness of %s: %+v, %v", p.URL, w, err)
		}
	}
	witnessed, err := audit.WitnessCheckpoint(state)
	if err != nil {
		t.Fatal(err)
	}
	// Each client syncs (through both replicas), and accepts everyone
	// else's checkpoint and the witness's.
	for _, c := range []*clientlib.Client{alice, carol} {
		if _, err := c.Sync(ctx, g); err != nil {
			t.Fatalf("%s: sync: %v", c.Identity().Handle(), err)
		}
	}
	notes := []string{witnessed}
	for _, c := range []*clientlib.Client{alice, bob, carol} {
		note, err := c.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		notes = append(notes, note)
	}
	for _, c := range []*clientlib.Client{alice, bob, carol} {
		for _, note := range notes {
			if err := c.CheckCheckpoint(ctx, note); err != nil {
				t.Fatalf("%s refuses a checkpoint: %v", c.Identity().Handle(), err)
			}
		}
	}
	// Both processes exit cleanly on SIGTERM.
	for _, p := range []*cofferdtest.Process{rs.a, rs.b} {
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// tricklingReader yields its data in small pieces with pauses, as a client on a
// slow link does.
type tricklingReader struct {
	data  []byte
	chunk int
	pause time.Duration
	// stall, when set, is waited once, after the first chunk: the
	// server then holds a body that has not yet shown whether it is
	// small enough to keep in the row.
	stall time.Duration
	reads int
}

func (s *tricklingReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	if s.reads++; s.reads == 2 {
		time.Sleep(s.stall)
	}
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestReplicasGCSparesUploadInProgress: while a slow upload streams into
// replica A, replica B's collector runs every few milliseconds with an
// upload TTL far shorter than the upload, and sweeps unreferenced blobs
// with no grace at all. The upload still finalizes, and its content is
// intact.
func TestReplicasGCSparesUploadInProgress(t *testing.T) {
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	rs := mustReplicas(t, "", nil, func(c *cofferd.Config) {
		c.GCInterval = 10 * time.Millisecond
		c.UploadTTL = ttl
	})
	alice := MustClient(t, rs.a, "alice")
	g := mustGroup(t, alice, "g", nil)

	stop := make(chan struct{})
	gcDone := make(chan error, 1)
	go func() {
		// The sweep with zero grace, besides the collector's own loop.
		for {
			select {
			case <-stop:
				gcDone <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := rs.b.CollectGarbage(ctx, ttl, 0); err != nil {
				gcDone <- err
				return
			}
		}
	}()
	// About 12 MiB over about 4 seconds: three parts of a multipart
	// upload, ten times the TTL, with a stall of three TTLs before the
	// body has passed the size kept inline.
	data := randomContent(t, 12<<20)
	slow := &tricklingReader{data: data, chunk: 16 << 10, pause: 4 * time.Millisecond, stall: 3 * ttl}
	r, err := alice.Put(ctx, g, slow, clientlib.Meta{Name: "slow.bin"})
	close(stop)
	if gerr := <-gcDone; gerr != nil {
		t.Fatalf("collector on B: %v", gerr)
	}
	if err != nil {
		t.Fatalf("slow upload on A while B collected: %v", err)
	}
	if err := rs.b.CollectGarbage(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustReadResource(t, alice, g, r.ID); !bytes.Equal(got, data) {
		t.Fatal("the slow upload reads back different bytes")
	}
}
