package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/server"
)

// These tests drive the resource endpoints with hand-made requests: the
// server cannot decrypt, so the "ciphertext" here is any bytes, and the
// headers are signed directly with the test identities' keys.

func withResources(tb testing.TB, mutate func(*server.Config)) serverOption {
	blobs, err := fsblob.New(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return func(c *server.Config, s *server.Services) {
		s.Resources, s.Blobs = s.Groups.(coffer.ResourceService), blobs
		if mutate != nil {
			mutate(c)
		}
	}
}

// member is a logged-in account of the test group.
type member struct {
	id    *testIdentity
	acct  api.Account
	token string
}

type resourceWorld struct {
	ts                    *testServer
	c                     *openAPIChecker
	g                     coffer.GroupID
	owner, writer, reader member
	outsider              member
}

// newResourceWorld makes a group whose genesis adds an owner, a writer and
// a reader, and an outsider who is in no group.
func newResourceWorld(t *testing.T, mutate func(*server.Config)) *resourceWorld {
	t.Helper()
	return newResourceWorldOn(t, MustServer(t, withResources(t, mutate)))
}

// newResourceWorldOn is newResourceWorld on ts, which stores resources.
func newResourceWorldOn(t *testing.T, ts *testServer) *resourceWorld {
	t.Helper()
	w := &resourceWorld{ts: ts, c: &openAPIChecker{doc: MustOpenAPI(t)}}
	mk := func(handle string) member {
		id, a, tok := MustAccount(t, w.ts, handle)
		return member{id, a, tok.AccessToken}
	}
	w.owner, w.writer, w.reader, w.outsider = mk("owner"), mk("writer"), mk("reader"), mk("outsider")

	w.g = w.mustGroup(t, []member{w.owner, w.writer, w.reader}, []coffer.Role{coffer.RoleOwner, coffer.RoleWriter, coffer.RoleReader})
	return w
}

// mustGroup creates a group whose genesis adds members with roles; the
// first member must be the owner and authors it.
func (w *resourceWorld) mustGroup(t *testing.T, members []member, roles []coffer.Role) coffer.GroupID {
	t.Helper()
	g := coffer.NewGroupID()
	owner := members[0]
	k := groupkey.NewEpochKey()
	commit := &coffer.Commit{Group: g, Seq: 1, Epoch: 1, Author: owner.acct.ID, Time: time.Now().UnixMilli(),
		ShareHistory: true, KeyCommitment: groupkey.Commitment(k, g, 1)}
	var wraps []api.Wrap
	for i, m := range members {
		commit.Ops = append(commit.Ops, coffer.Op{Kind: coffer.OpAdd, Member: m.acct.ID, Handle: m.id.Public.Handle, Role: roles[i],
			SigningKey: m.id.Public.SigningKey, EncryptionKey: m.id.Public.EncryptionKey})
		wrap, err := groupkey.Wrap(m.id.Public.EncryptionKey, g, 1, m.acct.ID, k)
		if err != nil {
			t.Fatal(err)
		}
		wraps = append(wraps, api.Wrap{Member: m.acct.ID, Epoch: 1, Wrap: wrap})
	}
	sc := coffer.SignCommit(commit, owner.id.Key)
	w.ts.Do(t, "POST", "/v1/groups", owner.token, api.CommitRequest{
		Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature}, Wraps: wraps,
	}).Check(t, 201, "")
	return g
}

// exchange sends req and checks the response against the operation at
// template in docs/openapi.yaml, like openAPIChecker.Exchange, for requests
// that need headers or a non-JSON body.
func (w *resourceWorld) exchange(t *testing.T, req *http.Request, template string, wantStatus int) *response {
	t.Helper()
	op := w.c.operation(t, req.Method, template)
	r := w.ts.Send(t, req)
	if r.Status != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, r.Status, wantStatus, r.Body)
	}
	ref := op.Responses.Status(r.Status)
	if ref == nil {
		ref = op.Responses.Default()
	}
	if r.Status == http.StatusNoContent {
		return r
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	mt := ref.Value.Content.Get(ct)
	if mt == nil {
		t.Fatalf("%s %s: status %d with %s is not documented", req.Method, template, r.Status, ct)
	}
	if strings.HasSuffix(ct, "json") {
		var v any
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatal(err)
		}
		if err := mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
			t.Errorf("%s %s: body %s does not match the documented schema: %v", req.Method, template, r.Body, err)
		}
	}
	return r
}

func (w *resourceWorld) ex(t *testing.T, m member, method, template, path string, body any, wantStatus int) *response {
	t.Helper()
	r := w.c.Exchange(t, w.ts, method, template, path, m.token, body)
	if r.Status != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, wantStatus, r.Body)
	}
	return r
}

func (w *resourceWorld) req(t *testing.T, m member, method, path string, body io.Reader, header ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, w.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

const (
	resourcesT = "/v1/groups/{groupID}/resources"
	resourceT  = "/v1/groups/{groupID}/resources/{resourceID}"
	contentT   = "/v1/groups/{groupID}/resources/{resourceID}/content"
	versionsT  = "/v1/groups/{groupID}/resources/{resourceID}/versions"
	uploadT    = "/v1/uploads/{uploadID}"
	putT       = "/v1/uploads/{uploadID}/content"
	finalizeT  = "/v1/uploads/{uploadID}/finalize"
)

func (w *resourceWorld) resourcePath(id coffer.ResourceID) string {
	return "/v1/groups/" + w.g.String() + "/resources/" + id.String()
}

// start begins an upload of a new resource.
func (w *resourceWorld) start(t *testing.T, m member, id coffer.ResourceID) api.Upload {
	t.Helper()
	var up api.Upload
	w.ex(t, m, "POST", resourcesT, "/v1/groups/"+w.g.String()+"/resources", api.CreateResourceRequest{ResourceID: id}, 201).Decode(t, &up)
	if up.ResourceID != id || up.GroupID != w.g || up.Version != 1 || up.Epoch != 1 || up.MaxSize <= 0 {
		t.Fatalf("upload %+v", up)
	}
	return up
}

func (w *resourceWorld) put(t *testing.T, m member, up api.Upload, data []byte, wantStatus int) *response {
	t.Helper()
	return w.exchange(t, w.req(t, m, "PUT", "/v1/uploads/"+up.ID.String()+"/content", bytes.NewReader(blobOf(data).blob),
		"Content-Type", "application/octet-stream"), putT, wantStatus)
}

// testBlob stands in for a resource blob: an "age file" (data, padded with
// zeros to the smallest size a header accepts) and a chunk hash list of as
// many chunks as the size needs. The server checks only the sizes and the
// list's root.
type testBlob struct {
	blob   []byte
	root   [32]byte
	chunks uint64
	size   int64
}

func blobOf(data []byte) testBlob {
	b := testBlob{size: max(48, int64(len(data)))}
	b.chunks = max(1, (uint64(b.size)+64<<10+15)/(64<<10+16))
	b.blob = append(bytes.Clone(data), make([]byte, b.size-int64(len(data)))...)
	leaves := make([][32]byte, b.chunks+1)
	for i := range leaves {
		leaves[i] = sha256.Sum256(append(data, byte(i)))
		b.blob = append(b.blob, leaves[i][:]...)
	}
	b.root = content.TreeRoot(leaves)
	return b
}

// signedHeaders holds the header finalized for each (group, resource,
// version), for the next version to chain to.
var signedHeaders sync.Map

// finalizeRequest signs a header for data as the upload's content. A
// replace names the header finalized for the version before (or, if the
// test finalized none, some other header).
func finalizeRequest(m member, up api.Upload, data []byte, mutate func(*coffer.ResourceHeader)) api.FinalizeRequest {
	meta := bytes.Repeat([]byte{0xee}, 40) // stands in for sealed metadata
	b := blobOf(data)
	h := &coffer.ResourceHeader{Resource: up.ResourceID, Group: up.GroupID, Epoch: up.Epoch, Author: m.acct.ID,
		Version: up.Version, TreeRoot: b.root, Chunks: b.chunks, ContentSize: b.size,
		MetaHash: sha256.Sum256(meta), Created: time.Now().UnixMilli()}
	if up.Version > 1 {
		h.Prev = [32]byte{1}
		if prev, ok := signedHeaders.Load(fmt.Sprint(up.GroupID, up.ResourceID, up.Version-1)); ok {
			h.Prev = coffer.HeaderHash(prev.([]byte))
		}
	}

	if mutate != nil {
		mutate(h)
	}
	sh := coffer.SignResourceHeader(h, m.id.Key)
	return api.FinalizeRequest{Header: api.SignedHeader{Body: sh.Body, Signature: sh.Signature}, Meta: meta}
}

// deleteBody is m's signed delete of version of resource id, as a
// request body.
func (w *resourceWorld) deleteBody(t *testing.T, m member, id coffer.ResourceID, version uint64) io.Reader {
	t.Helper()
	sd := coffer.SignResourceDelete(&coffer.ResourceDelete{Group: w.g, Resource: id, Version: version, Deleter: m.acct.ID}, m.id.Key)
	b, err := json.Marshal(api.DeleteResourceRequest{Delete: api.SignedHeader{Body: sd.Body, Signature: sd.Signature}})
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

func (w *resourceWorld) finalize(t *testing.T, m member, up api.Upload, req api.FinalizeRequest, wantStatus int) *response {
	t.Helper()
	r := w.ex(t, m, "POST", finalizeT, "/v1/uploads/"+up.ID.String()+"/finalize", req, wantStatus)
	if wantStatus == http.StatusCreated {
		signedHeaders.Store(fmt.Sprint(up.GroupID, up.ResourceID, up.Version), req.Header.Body)
	}
	return r
}

// mustResource stores data as a new resource by m.
func (w *resourceWorld) mustResource(t *testing.T, m member, data []byte) coffer.ResourceID {
	t.Helper()
	id := coffer.NewResourceID()
	up := w.start(t, m, id)
	w.put(t, m, up, data, 200)
	w.finalize(t, m, up, finalizeRequest(m, up, data, nil), 201)
	return id
}

func TestResourceEndpoints(t *testing.T) {
	w := newResourceWorld(t, nil)
	data := bytes.Repeat([]byte("ciphertext "), 20_000)
	id := coffer.NewResourceID()
	up := w.start(t, w.writer, id)

	// Nothing is visible before finalize.
	w.ex(t, w.writer, "GET", resourceT, w.resourcePath(id), nil, 404)
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data, nil), 400) // no content yet

	var got api.UploadContent
	w.put(t, w.writer, up, data, 200).Decode(t, &got)
	if sum := sha256.Sum256(blobOf(data).blob); got.Size != int64(len(blobOf(data).blob)) || !bytes.Equal(got.ContentHash, sum[:]) {
		t.Fatalf("the server reports %d bytes hashing to %x", got.Size, got.ContentHash)
	}
	w.ex(t, w.writer, "GET", resourceT, w.resourcePath(id), nil, 404)
	var res api.Resource
	r := w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data, nil), 201)
	r.Decode(t, &res)
	if res.ID != id || res.Version != 1 || res.Size != int64(len(blobOf(data).blob)) || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("finalized %+v, ETag %s", res, r.Header.Get("ETag"))
	}
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data, nil), 404) // consumed

	// Readers read: header, content, a range.
	r = w.ex(t, w.reader, "GET", resourceT, w.resourcePath(id), nil, 200)
	if r.Header.Get("ETag") != `"1"` {
		t.Fatalf("ETag %q", r.Header.Get("ETag"))
	}
	r = w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(id)+"/content", nil, "If-Match", `"1"`), contentT, 200)
	if !bytes.Equal(r.Body, blobOf(data).blob) {
		t.Fatal("downloaded content differs")
	}
	r = w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(id)+"/content", nil, "Range", "bytes=11-21"), contentT, 206)
	if string(r.Body) != "ciphertext " {
		t.Fatalf("range returned %q", r.Body)
	}
	w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(id)+"/content", nil, "If-Match", `"2"`), contentT, 412)
	w.exchange(t, w.req(t, w.outsider, "GET", w.resourcePath(id)+"/content", nil), contentT, 404)

	// Replace under If-Match; a stale If-Match is refused.
	replace := func(m member, ifMatch string, wantStatus int) *response {
		return w.exchange(t, w.req(t, m, "POST", w.resourcePath(id)+"/versions", nil, "If-Match", ifMatch), versionsT, wantStatus)
	}
	replace(w.writer, `"7"`, 412)
	replace(w.reader, `"1"`, 403)
	replace(w.outsider, `"1"`, 404)
	var up2 api.Upload
	replace(w.writer, `"1"`, 201).Decode(t, &up2)
	if up2.Version != 2 || up2.ResourceID != id {
		t.Fatalf("replace upload %+v", up2)
	}
	data2 := []byte("second version")
	w.put(t, w.writer, up2, data2, 200)
	w.finalize(t, w.writer, up2, finalizeRequest(w.writer, up2, data2, nil), 201)
	r = w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(id)+"/content", nil), contentT, 200)
	if !bytes.Equal(r.Body, blobOf(data2).blob) || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("after replace: %q, ETag %s", r.Body, r.Header.Get("ETag"))
	}

	// Listing, newest first, with a cursor.
	w.ts.Clock.Advance(time.Second) // the test clock stands still otherwise
	other := w.mustResource(t, w.owner, []byte("owner's"))
	var page api.ResourceList
	w.ex(t, w.reader, "GET", resourcesT, "/v1/groups/"+w.g.String()+"/resources?limit=1", nil, 200).Decode(t, &page)
	if len(page.Resources) != 1 || page.Resources[0].ID != other || page.NextCursor == "" {
		t.Fatalf("first page %+v", page)
	}
	w.ex(t, w.reader, "GET", resourcesT, "/v1/groups/"+w.g.String()+"/resources?limit=1&cursor="+page.NextCursor, nil, 200).Decode(t, &page)
	if len(page.Resources) != 1 || page.Resources[0].ID != id || page.Resources[0].Version != 2 {
		t.Fatalf("second page %+v", page)
	}
	w.ex(t, w.reader, "GET", resourcesT, "/v1/groups/"+w.g.String()+"/resources?cursor=bogus", nil, 400)
	w.ex(t, w.outsider, "GET", resourcesT, "/v1/groups/"+w.g.String()+"/resources", nil, 404)

	// Delete: not by readers, outsiders, or another writer's stale If-Match.
	w.exchange(t, w.req(t, w.reader, "DELETE", w.resourcePath(id), w.deleteBody(t, w.reader, id, 2)), resourceT, 403)
	w.exchange(t, w.req(t, w.outsider, "DELETE", w.resourcePath(id), w.deleteBody(t, w.outsider, id, 2)), resourceT, 404)
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), w.deleteBody(t, w.writer, id, 1), "If-Match", `"1"`), resourceT, 412)
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), w.deleteBody(t, w.writer, id, 1), "If-Match", `"2"`), resourceT, 400)
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), w.deleteBody(t, w.owner, id, 2)), resourceT, 400)
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), nil), resourceT, 400)
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), w.deleteBody(t, w.writer, id, 2), "If-Match", `"2"`), resourceT, 204)
	w.ex(t, w.writer, "GET", resourceT, w.resourcePath(id), nil, 404)
	// An admin (here the owner) deletes anyone's; the writer cannot delete the owner's.
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(other), w.deleteBody(t, w.writer, other, 1)), resourceT, 403)
	w.exchange(t, w.req(t, w.owner, "DELETE", w.resourcePath(other), w.deleteBody(t, w.owner, other, 1)), resourceT, 204)
}

func TestResourceWriteAuthorization(t *testing.T) {
	w := newResourceWorld(t, nil)
	path := "/v1/groups/" + w.g.String() + "/resources"
	w.ex(t, w.reader, "POST", resourcesT, path, api.CreateResourceRequest{ResourceID: coffer.NewResourceID()}, 403)
	w.ex(t, w.outsider, "POST", resourcesT, path, api.CreateResourceRequest{ResourceID: coffer.NewResourceID()}, 404)
	w.ex(t, w.writer, "POST", resourcesT, path, `{}`, 400)
	id := w.mustResource(t, w.writer, []byte("x"))
	w.ex(t, w.writer, "POST", resourcesT, path, api.CreateResourceRequest{ResourceID: id}, 409)

	// Someone else's upload is invisible.
	up := w.start(t, w.writer, coffer.NewResourceID())
	w.put(t, w.owner, up, []byte("x"), 404)
	w.finalize(t, w.owner, up, finalizeRequest(w.owner, up, []byte("x"), nil), 404)
	w.exchange(t, w.req(t, w.owner, "DELETE", "/v1/uploads/"+up.ID.String(), nil), uploadT, 404)
	w.exchange(t, w.req(t, w.writer, "DELETE", "/v1/uploads/"+up.ID.String(), nil), uploadT, 204)
	w.put(t, w.writer, up, []byte("x"), 404)
}

// TestFinalizeChecks: the server refuses a header that does not describe
// what it received, or that the author's key in the log did not sign.
func TestFinalizeChecks(t *testing.T) {
	w := newResourceWorld(t, nil)
	data := []byte("the content")
	up := w.start(t, w.writer, coffer.NewResourceID())
	w.put(t, w.writer, up, data, 200)
	tests := []struct {
		name       string
		req        api.FinalizeRequest
		wantStatus int
	}{
		{"tree root", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.TreeRoot[0] ^= 1 }), 400},
		{"content size", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.ContentSize++ }), 400},
		{"content size and count", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.ContentSize -= 32; h.Chunks++ }), 400},
		{"chunk count", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.Chunks++ }), 400},
		{"meta hash", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.MetaHash[0] ^= 1 }), 400},
		{"version", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.Version = 2 }), 400},
		{"resource", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.Resource = coffer.NewResourceID() }), 400},
		{"group", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.Group = coffer.NewGroupID() }), 400},
		{"future epoch", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.Epoch = 2 }), 409},
		{"another author", finalizeRequest(w.writer, up, data, func(h *coffer.ResourceHeader) { h.Author = w.owner.acct.ID }), 403},
		{"signed by another key", func() api.FinalizeRequest {
			req := finalizeRequest(w.writer, up, data, nil)
			req.Header.Signature = coffer.Sign(w.owner.id.Key, coffer.LabelResourceHeader, req.Header.Body)
			return req
		}(), 400},
		{"signed under another label", func() api.FinalizeRequest {
			req := finalizeRequest(w.writer, up, data, nil)
			req.Header.Signature = coffer.Sign(w.writer.id.Key, coffer.LabelCommit, req.Header.Body)
			return req
		}(), 400},
		{"malformed header", func() api.FinalizeRequest {
			req := finalizeRequest(w.writer, up, data, nil)
			req.Header.Body = req.Header.Body[1:]
			return req
		}(), 400},
		{"version 3 header signed with Ed25519", func() api.FinalizeRequest {
			req := finalizeRequest(w.writer, up, data, nil)
			req.Header.Body[0] = coffer.ResourceSuiteHybrid
			req.Header.Signature = coffer.Sign(w.writer.id.Key, coffer.LabelResourceHeader, req.Header.Body)
			return req
		}(), 400},
		{"meta too short", func() api.FinalizeRequest {
			req := finalizeRequest(w.writer, up, data, nil)
			req.Meta = req.Meta[:10]
			return req
		}(), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { w.finalize(t, w.writer, up, tt.req, tt.wantStatus) })
	}
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data, nil), 201)
}

func TestResourceLimits(t *testing.T) {
	w := newResourceWorld(t, func(c *server.Config) {
		c.MaxResourceSize = 1000 + 64 // put adds a 64-byte chunk hash list (see blobOf)
		c.MaxResourcesPerGroup = 2
	})
	up := w.start(t, w.writer, coffer.NewResourceID())
	w.put(t, w.writer, up, make([]byte, 1001), 413)
	// Without a Content-Length the cap applies while streaming.
	req := w.req(t, w.writer, "PUT", "/v1/uploads/"+up.ID.String()+"/content",
		io.MultiReader(bytes.NewReader(make([]byte, 600)), bytes.NewReader(make([]byte, 600))),
		"Content-Type", "application/octet-stream")
	req.ContentLength = -1
	w.exchange(t, req, putT, 413)
	w.put(t, w.writer, up, make([]byte, 1000), 200)
	w.exchange(t, w.req(t, w.writer, "PUT", "/v1/uploads/"+up.ID.String()+"/content", strings.NewReader("x"),
		"Content-Type", "text/plain"), putT, 400)

	// The pending upload takes one of the two places.
	w.mustResource(t, w.writer, []byte("1"))
	r := w.ex(t, w.writer, "POST", resourcesT, "/v1/groups/"+w.g.String()+"/resources",
		api.CreateResourceRequest{ResourceID: coffer.NewResourceID()}, 422)
	if p := r.Problem(t); p.Code != string(coffer.ELIMIT) || !strings.Contains(p.Detail, fmt.Sprint(2)) {
		t.Fatalf("problem %+v", p)
	}
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, make([]byte, 1000), nil), 201)
	r = w.ex(t, w.writer, "POST", resourcesT, "/v1/groups/"+w.g.String()+"/resources",
		api.CreateResourceRequest{ResourceID: coffer.NewResourceID()}, 422)
	if p := r.Problem(t); p.Code != string(coffer.ELIMIT) || !strings.Contains(p.Detail, fmt.Sprint(2)) {
		t.Fatalf("problem %+v", p)
	}
}

func TestResourcesNotConfigured(t *testing.T) {
	ts := MustServer(t)
	_, _, tok := MustAccount(t, ts, "alice")
	r := ts.Do(t, "GET", "/v1/groups/"+coffer.NewGroupID().String()+"/resources", tok.AccessToken, nil)
	r.Check(t, 503, coffer.EUNAVAILABLE)
}
