package server_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// TestGetResourceCompact: a reader whose Accept lists api.ResourceType gets
// the answer in that encoding, field for field the JSON answer; Accept with
// q=0, or none, gets JSON; errors stay problem+json.
func TestGetResourceCompact(t *testing.T) {
	w := newResourceWorld(t, nil)
	data := bytes.Repeat([]byte("c"), 1000)
	id := w.mustResource(t, w.writer, data)
	path := w.resourcePath(id) + "?include=content,checkpoint"

	var want api.Resource
	w.ex(t, w.reader, "GET", resourceT, path, nil, 200).Decode(t, &want)
	if want.Content == nil {
		t.Fatal("the JSON answer carries no content")
	}
	for _, accept := range []string{api.ResourceType, "application/json;q=0.5, " + api.ResourceType} {
		r := w.exchange(t, w.req(t, w.reader, "GET", path, nil, "Accept", accept), resourceT, 200)
		if ct := r.Header.Get("Content-Type"); ct != api.ResourceType {
			t.Fatalf("Accept %q: Content-Type %q", accept, ct)
		}
		if r.Header.Get("ETag") == "" {
			t.Error("no ETag on the compact answer")
		}
		got, err := api.ParseResource(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		// The checkpoint may have been re-signed between the two reads.
		got.Checkpoint = want.Checkpoint
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("Accept %q: compact answer %+v differs from JSON %+v", accept, *got, want)
		}
	}
	for _, accept := range []string{"", "application/json", api.ResourceType + ";q=0, application/json"} {
		r := w.exchange(t, w.req(t, w.reader, "GET", path, nil, "Accept", accept), resourceT, 200)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Accept %q: Content-Type %q, want JSON", accept, ct)
		}
	}
	r := w.exchange(t, w.req(t, w.outsider, "GET", path, nil, "Accept", api.ResourceType), resourceT, 404)
	if p := r.Problem(t); p.Code != string(coffer.ENOTFOUND) {
		t.Errorf("an outsider's compact read: %+v", p)
	}
}
