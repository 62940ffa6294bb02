package audit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

func mustWitness(t *testing.T, server, state, key string) *audit.Report {
	t.Helper()
	r, err := audit.Witness(context.Background(), audit.WitnessOptions{Server: server, StateDir: state, LogKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantClean(t *testing.T, r *audit.Report) {
	t.Helper()
	if !r.Clean {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("not clean:\n%s", b.String())
	}
}

func wantFinding(t *testing.T, r *audit.Report, check, want string) {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check && strings.Contains(f.Object+" "+f.Message, want) {
			return
		}
	}
	var b strings.Builder
	r.WriteText(&b)
	t.Fatalf("no %s finding naming %q:\n%s", check, want, b.String())
}

func TestWitnessFollowsAppends(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	state := t.TempDir()
	// An empty log is a valid first checkpoint.
	r := mustWitness(t, srv.URL(), state, srv.LogKey())
	wantClean(t, r)
	story(t, srv)
	r = mustWitness(t, srv.URL(), state, "") // the key is pinned now
	wantClean(t, r)
	if r.Stats["new_leaves"] == 0 || r.Stats["commit_entries"] == 0 || r.Stats["identity_entries"] == 0 {
		t.Fatalf("witness verified nothing new: %v", r.Stats)
	}
	// No change: still clean, nothing new.
	r = mustWitness(t, srv.URL(), state, "")
	wantClean(t, r)
	if r.Stats["new_leaves"] != 0 {
		t.Fatalf("%d new leaves in an unchanged log", r.Stats["new_leaves"])
	}
	// A different key for the same state is refused.
	other := cofferdtest.Start(t, nil)
	r = mustWitness(t, srv.URL(), state, other.LogKey())
	wantFinding(t, r, "witness", "pinned by earlier runs")
}

// switchProxy is the malicious server's front door: one URL whose backend
// the test switches, or chooses per client, to show different logs.
type switchProxy struct {
	backends []*httputil.ReverseProxy
	current  atomic.Int32
}

func newSwitchProxy(t *testing.T, urls ...string) (*switchProxy, *httptest.Server) {
	p := &switchProxy{}
	for _, u := range urls {
		target, _ := url.Parse(u)
		p.backends = append(p.backends, httputil.NewSingleHostReverseProxy(target))
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.backends[p.current.Load()].ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return p, ts
}

// forkedLog starts two backends that share a log key and origin but not
// their databases: a server that can show two different, validly signed
// logs. Each gets the story (the same handles, different accounts).
func forkedLog(t *testing.T) (a, b *cofferdtest.Server) {
	t.Helper()
	key := cofferdtest.WriteKey(t, t.TempDir(), "log.key")
	a = cofferdtest.Start(t, &cofferdtest.Options{LogKeyFile: key, LogOrigin: "coffer.fork"})
	b = cofferdtest.Start(t, &cofferdtest.Options{LogKeyFile: key, LogOrigin: "coffer.fork"})
	story(t, a)
	story(t, b)
	return a, b
}

func TestWitnessDetectsFork(t *testing.T) {
	a, b := forkedLog(t)
	proxy, front := newSwitchProxy(t, a.URL(), b.URL())
	state := t.TempDir()
	wantClean(t, mustWitness(t, front.URL, state, a.LogKey()))
	before, err := audit.WitnessCheckpoint(state)
	if err != nil {
		t.Fatal(err)
	}

	proxy.current.Store(1) // the server now shows the other log
	r := mustWitness(t, front.URL, state, "")
	wantFinding(t, r, "witness", "forked")
	after, _ := audit.WitnessCheckpoint(state)
	if after != before {
		t.Fatal("the witness stored the checkpoint of a fork")
	}

	proxy.current.Store(0) // back to the first view: still consistent
	wantClean(t, mustWitness(t, front.URL, state, ""))
}

// TestForkDetectedThroughWitness: the server shows bob's device one log and
// everyone else (here, the witness) another. (Bob talks to the second
// backend directly, standing in for a server that recognizes who asks.)
// Bob alone is satisfied; the witness's checkpoint, which bob's client
// checks, exposes the fork, and so does the witness when it is shown bob's
// log.
func TestForkDetectedThroughWitness(t *testing.T) {
	ctx := context.Background()
	a, b := forkedLog(t)
	proxy, front := newSwitchProxy(t, a.URL(), b.URL())
	bob, err := clientlib.New(b.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: b.LogKey(), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Register(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Lookup(ctx, "carol"); err != nil {
		t.Fatal(err)
	}

	state := t.TempDir()
	wantClean(t, mustWitness(t, front.URL, state, a.LogKey())) // the witness sees the other log
	note, err := audit.WitnessCheckpoint(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.CheckCheckpoint(ctx, note); !coffer.IsSecurity(err) {
		t.Fatalf("bob checking the witness's checkpoint: got %v, want a security error", err)
	}

	// The witness, shown bob's log, fails too.
	proxy.current.Store(1)
	wantFinding(t, mustWitness(t, front.URL, state, ""), "witness", "forked")
}
