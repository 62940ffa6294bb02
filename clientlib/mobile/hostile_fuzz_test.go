package mobile_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/clientlib/mobile"
)

// FuzzHostileServer drives the facade's byte-returning calls against a
// hostile server: an httptest server that answers every request as the
// real server answered it in a recorded honest session, except one, which
// gets the fuzzed body. Whatever it sends, a call returns an error or a
// result, never a panic (which the facade would turn into an "internal"
// error naming it), and never hangs.
func FuzzHostileServer(f *testing.F) {
	s := recordHonestSession(f)
	for i, k := range s.keys {
		f.Add(uint8(i), s.answers[k].body)
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		target := s.keys[int(which)%len(s.keys)]
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			markBody(r)
			k := requestKey(r)
			a, ok := s.answers[k]
			if !ok {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"status":404,"code":"not_found","detail":"not recorded"}`))
				return
			}
			if k == target {
				a.status, a.body = http.StatusOK, body
			}
			w.Header().Set("Content-Type", a.contentType)
			w.WriteHeader(a.status)
			_, _ = w.Write(a.body)
		}))
		defer srv.Close()
		// The recorded answer itself replays the honest session.
		honest := bytes.Equal(body, s.answers[target].body) && s.answers[target].status == http.StatusOK
		runVictim(t, srv.URL, s.snapshot(), s.group, s.resource, func(call string, err error) {
			if err != nil && strings.Contains(mobile.ErrorMessage(err), "panic in coffer") {
				t.Fatalf("%s with a fuzzed answer to %s panicked: %v", call, target, err)
			}
			if honest && err != nil {
				t.Fatalf("%s in a replay of the honest session: %v", call, err)
			}
		})
	})
}

type answer struct {
	status      int
	contentType string
	body        []byte
}

type honestSession struct {
	store           map[string][]byte
	group, resource string
	keys            []string // the recorded requests, sorted
	answers         map[string]answer
}

func (s *honestSession) snapshot() *memStore {
	ks := newMemStore()
	for k, v := range s.store {
		ks.m[k] = bytes.Clone(v)
	}
	return ks
}

// requestKey names a request by method, path, query and Range (a get reads
// the chunk hash list and the age file as two ranges of one blob): the
// victim's requests, from one snapshot, are the same in every run.
func requestKey(r *http.Request) string {
	return r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery + " " + r.Header.Get("Range") + " " + r.Header.Get(bodyDigestHeader)
}

// bodyDigestHeader carries the digest of a request's body into its key:
// one endpoint (a log proof request, say) is asked different questions in
// one session.
const bodyDigestHeader = "X-Test-Body-Digest"

// markBody reads r's body, leaves a copy in its place, and names it in
// bodyDigestHeader.
func markBody(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	d := sha256.Sum256(b)
	r.Header.Set(bodyDigestHeader, hex.EncodeToString(d[:]))
}

// recordHonestSession sets up alice with a group and a resource on a real
// server, snapshots her key store, and records every answer the server
// gives a client on that snapshot while it runs the victim's calls.
func recordHonestSession(f *testing.F) *honestSession {
	f.Helper()
	srv := MustServer(f)
	alice, store := MustClient(f, srv, "alice")
	bob, _ := MustClient(f, srv, "bob")
	g := MustGroup(f, alice, bob)
	r, err := alice.PutBytes(g, randomBytes(100_000), &mobile.Meta{Name: "r"}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	// A read waits until the log holds the resource, so that the log does
	// not grow during the recording: the replay answers every checkpoint
	// request with the last one recorded.
	if _, err := alice.GetBytes(g, r.ID, nil, nil); err != nil {
		f.Fatal(err)
	}
	s := &honestSession{group: g, resource: r.ID, answers: map[string]answer{}, store: map[string][]byte{}}
	// The snapshot is of a device that has not read the group yet, so the
	// victim's calls go through every check.
	for k, v := range store.m {
		if !strings.HasPrefix(k, "group/") && !strings.HasPrefix(k, "resource/") {
			s.store[k] = bytes.Clone(v)
		}
	}

	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	rp.ModifyResponse = func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		mu.Lock()
		s.answers[requestKey(resp.Request)] = answer{resp.StatusCode, resp.Header.Get("Content-Type"), b}
		mu.Unlock()
		return nil
	}
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		markBody(r)
		rp.ServeHTTP(w, r)
	}))
	defer rec.Close()
	runVictim(f, rec.URL, s.snapshot(), g, r.ID, func(call string, err error) {
		if err != nil {
			f.Fatalf("honest %s: %v", call, err)
		}
	})
	for k := range s.answers {
		s.keys = append(s.keys, k)
	}
	slices.Sort(s.keys)
	return s
}

// runVictim runs the facade's byte-returning calls on a client of url
// with store, handing each call's error to check.
func runVictim(tb testing.TB, url string, store *memStore, g, r string, check func(call string, err error)) {
	tb.Helper()
	c, err := mobile.NewClientWithOptions(url, store, &mobile.Options{TimeoutMillis: 5000, LogWaitMillis: 300})
	if err != nil {
		tb.Fatal(err)
	}
	cancel := mobile.NewCancel()
	t := time.AfterFunc(20*time.Second, cancel.Cancel)
	defer t.Stop()
	_, err = c.GetBytes(g, r, nil, cancel)
	check("GetBytes", err)
	_, err = c.Head(g, r)
	check("Head", err)
	if l, err := c.List(g); err != nil {
		check("List", err)
	} else {
		_, err = l.JSON()
		check("List.JSON", err)
	}
	if l, err := c.Groups(); err != nil {
		check("Groups", err)
	} else {
		_, err = l.JSON()
		check("Groups.JSON", err)
	}
	if l, err := c.Members(g); err != nil {
		check("Members", err)
	} else {
		_, err = l.JSON()
		check("Members.JSON", err)
	}
}
