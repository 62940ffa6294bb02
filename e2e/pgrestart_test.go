package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/pgcluster"
)

// TestPostgresRestartUnderLoad stops PostgreSQL under a running cofferd
// with clients writing and reading, then starts it again. While it is down,
// requests fail with 503 unavailable, never 500, and /readyz is red; once it
// is back, the server recovers by itself (/readyz green, writes succeed),
// and every write that was acknowledged is there.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs its own PostgreSQL cluster and stops it")
	}
	ctx := context.Background()
	base := t.TempDir()
	// A socket directory of our own, so that the restarted cluster listens
	// where the server's pool looks.
	sock, err := os.MkdirTemp("/tmp", "coffer-pgr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	opts := pgcluster.Options{DataDir: filepath.Join(base, "pg"), SocketDir: sock}
	cluster, err := pgcluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE coffer"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	sink := NewLogSink()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := cofferd.NewMain()
	m.Stderr = sink
	m.Listener = ln
	m.Config = cofferd.Config{
		Addr: ln.Addr().String(), Origins: "http://" + ln.Addr().String(),
		DatabaseURL: cluster.URL("coffer"), Migrate: true,
		JWTKeyFiles: MustKeyFile(t, dir, "jwt.key", "server JWT signing key"),
		LogKeyFile:  MustKeyFile(t, dir, "log.key", "server transparency log key"),
		LogOrigin:   "coffer.e2e", DataDir: dir, BlobDir: filepath.Join(dir, "blobs"),
		AuthRateLimit: 1_000_000, LogLevel: "info",
	}
	if err := m.Run(ctx); err != nil {
		t.Fatalf("start cofferd: %v\n%s", err, sink)
	}
	t.Cleanup(func() {
		m.Close()
		sink.Check(t)
	})
	url := m.URL()

	alice := MustNewClient(t, url, NewCanaryKeyStore())
	if err := alice.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	g := mustGroup(t, alice, "through the outage", nil)

	// The load: writers put small resources and remember the acknowledged
	// ones; readers list groups. Every failure must be EUNAVAILABLE.
	var (
		mu       sync.Mutex
		acked    = map[coffer.ResourceID][]byte{}
		badErrs  []error
		failures atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	check := func(err error) {
		if err == nil {
			return
		}
		failures.Add(1)
		if code := coffer.ErrorCode(err); code != coffer.EUNAVAILABLE {
			mu.Lock()
			badErrs = append(badErrs, err)
			mu.Unlock()
		}
	}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				content := []byte(fmt.Sprintf("writer %d item %d", w, i))
				res, err := alice.Put(ctx, g, bytes.NewReader(content), clientlib.Meta{Name: fmt.Sprintf("w%d-%d", w, i)})
				check(err)
				if err == nil {
					mu.Lock()
					acked[res.ID] = content
					mu.Unlock()
				}
				_, err = alice.Groups(ctx)
				check(err)
			}
		}()
	}
	// Readiness, polled throughout; 500 anywhere is a failure.
	var sawRed, saw500 atomic.Bool
	ready := func() int {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			switch ready() {
			case 503:
				sawRed.Store(true)
			case 500:
				saw500.Store(true)
			}
		}
	}()

	time.Sleep(2 * time.Second) // load before the outage
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !sawRed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never went red while PostgreSQL was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // load during the outage
	if cluster, err = pgcluster.Start(ctx, opts); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for ready() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still not green 60 s after PostgreSQL came back\n%s", sink)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Recovered by itself: writes succeed again.
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	if len(badErrs) > 0 {
		t.Errorf("%d failures were not 'unavailable', e.g. %v", len(badErrs), badErrs[0])
	}
	if saw500.Load() {
		t.Error("/readyz answered 500")
	}
	if n := statusCount(t, url, "500"); n > 0 {
		t.Errorf("the server answered %d requests with 500", n)
	}
	// The outage reached the clients' requests: the server answered them
	// 503. (clientlib retries 503, so most of them succeeded in the end;
	// failures counts those that ran out of retries.)
	if n := statusCount(t, url, "503"); n == 0 {
		t.Error("no request was answered 503 while PostgreSQL was down: the outage did not happen")
	}
	t.Logf("%d client operations failed (all unavailable) during the outage", failures.Load())
	if len(acked) <= before {
		t.Errorf("no write succeeded after PostgreSQL came back (%d acknowledged before, %d after)", before, len(acked))
	}
	// Nothing acknowledged is lost.
	for id, want := range acked {
		r, err := alice.Get(ctx, g, id)
		if err != nil {
			t.Fatalf("acknowledged resource %s: %v", id, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("acknowledged resource %s reads back %q, %v", id, got, err)
		}
	}
}

// statusCount counts the answers with status in the server's request
// metrics, /readyz (polled by the test) left out.
func statusCount(t *testing.T, url, status string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "coffer_http_requests_total{") && strings.Contains(line, `status="`+status+`"`) &&
			!strings.Contains(line, `route="/readyz"`) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			n += int(v)
		}
	}
	return n
}
