package e2e_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// A read of one resource gets the log's latest checkpoint with its answer
// (?include=checkpoint) and checks the version's place in the log against
// it, with no request of its own. The note is verified and adopted as a
// fetched one: a forged note is a security error, and an older note than
// one the reader verified before is checked against the newer one, so a
// server cannot bring back a deleted version by showing an old checkpoint.

// currentNote is the server's checkpoint note now.
func currentNote(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/v1/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("checkpoint: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// isResourceRead reports whether r is the GET of one resource.
func isResourceRead(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/groups/")
	return ok && r.Method == http.MethodGet && strings.Count(rest, "/") == 2 && strings.Contains(rest, "/resources/")
}

func TestReadCarriesCheckpoint(t *testing.T) {
	f := newResourceTamper(t)
	var logRequests, withCheckpoint atomic.Int64
	proxy := lyingProxy(t, f.srv, func(r *http.Request, body []byte) []byte {
		if strings.HasPrefix(r.URL.Path, "/v1/log/") {
			logRequests.Add(1)
		}
		if isResourceRead(r) && strings.Contains(r.URL.RawQuery, "checkpoint") {
			editResourceAnswer(body, func(ar *api.Resource) {
				if ar.Checkpoint != "" {
					withCheckpoint.Add(1)
				}
			})
		}
		return body
	})
	carol, err := clientlib.New(proxy, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustReadResource(t, carol, f.g, f.a.ID)
	logRequests.Store(0)
	withCheckpoint.Store(0)
	for range 5 {
		mustReadResource(t, carol, f.g, f.a.ID)
	}
	if n := logRequests.Load(); n != 0 {
		t.Fatalf("5 reads with a known version made %d log requests, want 0 (the checkpoint comes with the answer)", n)
	}
	if n := withCheckpoint.Load(); n != 5 {
		t.Fatalf("%d of 5 read answers carried a checkpoint", n)
	}
}

func TestTamperReadCheckpoint(t *testing.T) {
	ctx := context.Background()
	f := newResourceTamper(t)
	other := MustServer(t) // another log, another key
	otherNote := currentNote(t, other.URL())
	before := currentNote(t, f.srv.URL())

	read := func(t *testing.T, edit func(string) string) error {
		t.Helper()
		proxy := lyingProxy(t, f.srv, func(r *http.Request, body []byte) []byte {
			if !isResourceRead(r) {
				return body
			}
			return editResourceAnswer(body, func(ar *api.Resource) { ar.Checkpoint = edit(ar.Checkpoint) })
		})
		c, err := clientlib.New(proxy, f.carolKS, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = readResource(c, f.g, f.a.ID)
		return err
	}
	cases := []struct {
		name string
		edit func(string) string
	}{
		{"signature of another key", func(string) string { return otherNote }},
		{"body changed under the signature", func(n string) string {
			lines := strings.SplitN(n, "\n", 3)
			lines[1] = lines[1] + "0"
			return strings.Join(lines, "\n")
		}},
		{"signature cut", func(n string) string { return n[:strings.Index(n, "\n\n")+2] }},
		{"not a note", func(string) string { return "checkpoint\n" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCheck(t, read(t, tc.edit), "log")
		})
	}

	// bob deletes a; the server serves it again with the checkpoint from
	// before the delete. carol has verified a later one (reading b), so
	// her read is checked against that one, which holds the tombstone.
	saved := f.held().saveRow(t, f.a.ID)
	if err := f.bob.Delete(ctx, f.g, f.a.ID); err != nil {
		t.Fatal(err)
	}
	f.held().restoreRow(t, f.a.ID, saved)
	mustReadResource(t, f.carol, f.g, f.b.ID)
	err := read(t, func(string) string { return before })
	wantCheck(t, err, "deleted")
}
