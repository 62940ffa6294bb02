package server_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// TestResourceIDsPerGroup: a resource id is scoped to its group. The
// outsider, who is in no group of the world, makes a group of its own and
// uses ids that exist in the world's group: every answer is the one a
// fresh id gets (after the ids themselves are blanked out), and both
// groups' resources with the same id work side by side.
func TestResourceIDsPerGroup(t *testing.T) {
	w := newResourceWorld(t, nil)
	a := w.mustResource(t, w.writer, []byte("group A's content"))
	taken := w.mustResource(t, w.writer, []byte("group A's other content"))

	b := *w
	b.g = w.mustGroup(t, []member{w.outsider}, []coffer.Role{coffer.RoleOwner})
	fresh := coffer.NewResourceID()
	blank := func(body []byte, ids ...coffer.ResourceID) string {
		s := string(body)
		for _, id := range ids {
			s = strings.ReplaceAll(s, id.String(), "<id>")
		}
		return s
	}
	same := func(what string, x, y *response, ids ...coffer.ResourceID) {
		t.Helper()
		if x.Status != y.Status || blank(x.Body, ids...) != blank(y.Body, ids...) {
			t.Errorf("%s: an id that exists in another group gets %d %s, a fresh id %d %s", what, x.Status, x.Body, y.Status, y.Body)
		}
	}

	// Reads, deletes and replaces of an id absent from B, present in A.
	for _, tt := range []struct {
		name, method, suffix string
		header               []string
		template             string
	}{
		{"get", "GET", "", nil, resourceT},
		{"content", "GET", "/content", nil, contentT},
		{"content if-match", "GET", "/content", []string{"If-Match", `"1"`}, contentT},
		{"delete", "DELETE", "", nil, resourceT},
		{"delete if-match", "DELETE", "", []string{"If-Match", `"1"`}, resourceT},
		{"replace", "POST", "/versions", []string{"If-Match", `"1"`}, versionsT},
	} {
		var bx, by io.Reader
		if tt.method == "DELETE" {
			bx, by = b.deleteBody(t, w.outsider, taken, 1), b.deleteBody(t, w.outsider, fresh, 1)
		}
		x := b.exchange(t, b.req(t, w.outsider, tt.method, b.resourcePath(taken)+tt.suffix, bx, tt.header...), tt.template, 404)
		y := b.exchange(t, b.req(t, w.outsider, tt.method, b.resourcePath(fresh)+tt.suffix, by, tt.header...), tt.template, 404)
		same(tt.name, x, y, taken, fresh)
	}

	// Creating it: every step answers as for a fresh id, and the content
	// is B's own.
	var upA, upF api.Upload
	x := b.ex(t, w.outsider, "POST", resourcesT, "/v1/groups/"+b.g.String()+"/resources", api.CreateResourceRequest{ResourceID: a}, 201)
	y := b.ex(t, w.outsider, "POST", resourcesT, "/v1/groups/"+b.g.String()+"/resources", api.CreateResourceRequest{ResourceID: fresh}, 201)
	x.Decode(t, &upA)
	y.Decode(t, &upF)
	if upA.ResourceID != a || upA.GroupID != b.g || upA.Version != upF.Version || upA.Epoch != upF.Epoch || upA.MaxSize != upF.MaxSize {
		t.Fatalf("uploads differ: %+v and %+v", upA, upF)
	}
	data := []byte("group B's content")
	same("put", b.put(t, w.outsider, upA, data, 200), b.put(t, w.outsider, upF, data, 200))
	rx := b.finalize(t, w.outsider, upA, finalizeRequest(w.outsider, upA, data, nil), 201)
	ry := b.finalize(t, w.outsider, upF, finalizeRequest(w.outsider, upF, data, nil), 201)
	var resA, resF api.Resource
	rx.Decode(t, &resA)
	ry.Decode(t, &resF)
	if resA.ID != a || resA.GroupID != b.g || resA.Version != 1 || resF.Version != 1 || rx.Header.Get("ETag") != ry.Header.Get("ETag") {
		t.Fatalf("finalized %+v and %+v", resA, resF)
	}

	// Both resources with id a work, each in its group, each its own.
	for _, tt := range []struct {
		world *resourceWorld
		m     member
		want  string
	}{{w, w.reader, "group A's content"}, {&b, w.outsider, "group B's content"}} {
		r := tt.world.exchange(t, tt.world.req(t, tt.m, "GET", tt.world.resourcePath(a)+"/content", nil), contentT, 200)
		if !bytes.Equal(r.Body, blobOf([]byte(tt.want)).blob) {
			t.Errorf("group %s, resource %s: content %q, want %q", tt.world.g, a, r.Body, tt.want)
		}
	}
	// Replacing and deleting in one group leaves the other alone.
	var up2 api.Upload
	b.exchange(t, b.req(t, w.outsider, "POST", b.resourcePath(a)+"/versions", nil, "If-Match", `"1"`), versionsT, 201).Decode(t, &up2)
	b.put(t, w.outsider, up2, []byte("B v2"), 200)
	b.finalize(t, w.outsider, up2, finalizeRequest(w.outsider, up2, []byte("B v2"), nil), 201)
	b.exchange(t, b.req(t, w.outsider, "DELETE", b.resourcePath(a), b.deleteBody(t, w.outsider, a, 2), "If-Match", `"2"`), resourceT, 204)
	r := w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(a)+"/content", nil, "If-Match", `"1"`), contentT, 200)
	if !bytes.Equal(r.Body, blobOf([]byte("group A's content")).blob) {
		t.Errorf("group A's resource changed with group B's: %q", r.Body)
	}

	// The other way round: an id B took first stays free in A.
	var upW api.Upload
	w.ex(t, w.writer, "POST", resourcesT, "/v1/groups/"+w.g.String()+"/resources", api.CreateResourceRequest{ResourceID: fresh}, 201).Decode(t, &upW)
	w.put(t, w.writer, upW, []byte("A's"), 200)
	w.finalize(t, w.writer, upW, finalizeRequest(w.writer, upW, []byte("A's"), nil), 201)
}
