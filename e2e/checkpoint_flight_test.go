package e2e_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// Concurrent reads share the fetch of the latest log checkpoint that each
// needs, but only a fetch sent after the read began. A read's answer
// carries the checkpoint (?include=checkpoint); these tests take it out, as
// a server that could not read it does, so that the reads fetch it.

// checkpointGate is a proxy to cofferd that takes the checkpoint out of
// resource answers, counts the requests for the latest checkpoint and can
// delay their answers.
type checkpointGate struct {
	ps       *httptest.Server
	fetches  atomic.Int64
	delay    atomic.Int64 // nanoseconds each checkpoint answer is held
	mu       sync.Mutex
	hold     chan struct{} // when set, the next checkpoint answer waits for it to close
	fetched  chan struct{} // closed once the held answer came from cofferd
	resource func(r *http.Request)
}

func newCheckpointGate(t *testing.T, serverURL string) *checkpointGate {
	t.Helper()
	target, _ := url.Parse(serverURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	g := &checkpointGate{}
	g.ps = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/log/checkpoint" {
			if isResourceRead(r) {
				serveWithoutCheckpoint(w, r, rp)
			} else {
				rp.ServeHTTP(w, r)
			}
			g.mu.Lock()
			f := g.resource
			g.mu.Unlock()
			if f != nil {
				f(r)
			}
			return
		}
		g.fetches.Add(1)
		g.mu.Lock()
		hold, fetched := g.hold, g.fetched
		g.hold = nil
		g.mu.Unlock()
		// The answer is cofferd's at the time of the request, whenever
		// it is delivered.
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		if hold != nil {
			close(fetched)
			<-hold
		}
		time.Sleep(time.Duration(g.delay.Load()))
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		io.Copy(w, rec.Body)
	}))
	t.Cleanup(g.ps.Close)
	return g
}

// serveWithoutCheckpoint forwards r and takes the checkpoint out of the
// answer.
func serveWithoutCheckpoint(w http.ResponseWriter, r *http.Request, rp http.Handler) {
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		body = editResourceAnswer(body, func(ar *api.Resource) { ar.Checkpoint = "" })
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// TestConcurrentReadsShareCheckpointFetch: 16 reads at once of a reader
// that has the group's proof cached ask for the latest checkpoint a few
// times, not once each one after the other.
func TestConcurrentReadsShareCheckpointFetch(t *testing.T) {
	f := newInlineTamper(t)
	g := newCheckpointGate(t, f.srv.URL())
	reader, err := clientlib.New(g.ps.URL, KeyStore(t, f.carol), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustReadResource(t, reader, f.g, f.a.ID)
	mustReadResource(t, reader, f.g, f.b.ID)
	const readers = 16
	g.delay.Store(int64(300 * time.Millisecond))
	before := g.fetches.Load()
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Go(func() {
			id, want := f.a.ID, f.dataA
			if i%2 == 1 {
				id, want = f.b.ID, f.dataB
			}
			got, err := readResource(reader, f.g, id)
			if err == nil && !bytes.Equal(got, want) {
				t.Error("read differs")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One fetch under way when most reads ask, and the one queued behind
	// it; a slow start under load may add a few.
	if n := g.fetches.Load() - before; n > readers/2 || n == 0 {
		t.Fatalf("%d concurrent reads fetched the latest checkpoint %d times", readers, n)
	}
}

// TestReadDoesNotShareOlderCheckpointFetch: a read that begins after a
// delete finished does not take the answer of a checkpoint fetch sent
// before the delete, which a concurrent read is still waiting for. A server
// serving the deleted resource again is caught.
func TestReadDoesNotShareOlderCheckpointFetch(t *testing.T) {
	ctx := context.Background()
	f := newResourceLog(t)
	g := newCheckpointGate(t, f.url)
	carol, err := clientlib.New(g.ps.URL, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustReadResource(t, carol, f.g, f.a.ID)
	mustReadResource(t, carol, f.g, f.b.ID)
	saved := f.saveRow(t, f.a.ID)

	// Read b; its checkpoint is fetched now and delivered later.
	hold, fetched := make(chan struct{}), make(chan struct{})
	g.mu.Lock()
	g.hold, g.fetched = hold, fetched
	g.mu.Unlock()
	first := make(chan error, 1)
	go func() {
		_, err := carol.Head(ctx, f.g, f.b.ID)
		first <- err
	}()
	select {
	case <-fetched:
	case err := <-first:
		t.Fatalf("the first read ended before its checkpoint was delivered: %v", err)
	}
	if err := f.bob.Delete(ctx, f.g, f.a.ID); err != nil {
		t.Fatal(err)
	}
	f.restoreRow(t, f.a.ID, saved)

	// Read a, deleted and served again; the held answer is released once
	// the server has answered for a and the read had time to ask for a
	// checkpoint (if it has not asked by then, it asks after the release
	// and the test checks less, never wrongly).
	aPath := "/v1/groups/" + f.g.String() + "/resources/" + f.a.ID.String()
	servedA := make(chan struct{})
	var once sync.Once
	g.mu.Lock()
	g.resource = func(r *http.Request) {
		if r.URL.Path == aPath {
			once.Do(func() { close(servedA) })
		}
	}
	g.mu.Unlock()
	second := make(chan error, 1)
	go func() {
		_, err := carol.Head(ctx, f.g, f.a.ID)
		second <- err
	}()
	select {
	case <-servedA:
		time.Sleep(200 * time.Millisecond)
	case err := <-second:
		close(hold)
		t.Fatalf("the read of the deleted resource ended before it was served: %v", err)
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatalf("read of b: %v", err)
	}
	wantCheck(t, <-second, "deleted")
}
