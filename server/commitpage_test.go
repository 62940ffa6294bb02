package server_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer/internal/api"
)

// TestListCommitsCompact: a client that accepts api.CommitPageType gets the
// same commits, byte for byte, in the compact encoding; any other client
// gets JSON.
func TestListCommitsCompact(t *testing.T) {
	w := newResourceWorld(t, nil)
	path := "/v1/groups/" + w.g.String() + "/commits?after=0"
	var list api.CommitList
	w.ts.Do(t, "GET", path, w.owner.token, nil).Decode(t, &list)
	if len(list.Commits) == 0 {
		t.Fatal("no commits")
	}
	for _, accept := range []string{api.CommitPageType, "application/json;q=0.5, " + api.CommitPageType} {
		req := w.ts.NewRequest(t, "GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+w.owner.token)
		req.Header.Set("Accept", accept)
		r := w.ts.Send(t, req)
		if r.Status != 200 || r.Header.Get("Content-Type") != api.CommitPageType {
			t.Fatalf("Accept %q: status %d, Content-Type %q", accept, r.Status, r.Header.Get("Content-Type"))
		}
		page, err := api.ParseCommitPage(r.Body, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != len(list.Commits) {
			t.Fatalf("%d commits, JSON lists %d", len(page), len(list.Commits))
		}
		for i := range page {
			if !bytes.Equal(page[i].Body, list.Commits[i].Body) || !bytes.Equal(page[i].Signature, list.Commits[i].Signature) {
				t.Errorf("commit %d differs from the JSON listing", i)
			}
		}
	}
	req := w.ts.NewRequest(t, "GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+w.owner.token)
	req.Header.Set("Accept", api.CommitPageType+";q=0, application/json")
	w.ts.Send(t, req).Decode(t, &list)
}
