package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/translog"
)

// Resources in the verified history: a malicious server that keeps serving
// a deleted resource, serves a second signed header for a version the log
// holds, or helps a removed writer publish, is caught by readers through
// the transparency log and its heads map.

// wantCheck requires a security error of the given check.
func wantCheck(t *testing.T, err error, check string) {
	t.Helper()
	wantSecurity(t, err)
	var se *coffer.SecurityError
	if !errors.As(err, &se) || se.Check != check {
		t.Fatalf("security error %v, want the check %q", err, check)
	}
}

// resourceServer is what a malicious server holds of a group's resources:
// the database and the blob store (cofferd's own, or the directory of a
// cofferd process).
type resourceServer struct {
	db    *pgx.Conn
	blobs *fsblob.Store
	g     coffer.GroupID
}

// held is the server's hold on the fixture's group.
func (f *tamperFixture) held() *resourceServer {
	return &resourceServer{db: f.db, blobs: f.srv.Blobs(), g: f.g}
}

// resourceLogFixture: bob (writer) uploads two resources of several age
// chunks each to alice's group, carol is a reader, and alice has read
// both. The attacks run against an in-process cofferd without witnesses
// (newResourceLog) and against cofferd and two witness processes, every
// client requiring a quorum of 2 (newWitnessedResourceLog).
type resourceLogFixture struct {
	*resourceServer
	url               string // where clients reach the server
	alice, bob, carol *clientlib.Client
	aliceKS, carolKS  *clientlib.MemoryKeyStore
	a, b              *clientlib.Resource
	dataA, dataB      []byte
	// newClient registers another member's device, with the fixture's
	// client options changed by edit.
	newClient func(t *testing.T, handle string, edit func(*clientlib.Options)) (*clientlib.Client, *clientlib.MemoryKeyStore)
	// dep is the deployment of a witnessed fixture, nil otherwise.
	dep *deployment
}

func newResourceLog(t *testing.T) *resourceLogFixture {
	t.Helper()
	srv := MustServer(t)
	f := &resourceLogFixture{url: srv.URL(),
		newClient: func(t *testing.T, handle string, edit func(*clientlib.Options)) (*clientlib.Client, *clientlib.MemoryKeyStore) {
			var o clientlib.Options
			if edit != nil {
				edit(&o)
			}
			return newClient(t, srv, handle, &o)
		}}
	f.setup(t, mustDB(t, srv), srv.Blobs())
	return f
}

// newWitnessedResourceLog is the fixture of newResourceLog on a
// deployment of three processes (newFreshFixture).
func newWitnessedResourceLog(t *testing.T) *resourceLogFixture {
	t.Helper()
	ff := newFreshFixture(t)
	f := &resourceLogFixture{url: ff.proxy.url, dep: ff.dep,
		newClient: func(t *testing.T, handle string, edit func(*clientlib.Options)) (*clientlib.Client, *clientlib.MemoryKeyStore) {
			c := ff.client(t, handle, edit)
			return c, KeyStore(t, c).MemoryKeyStore
		}}
	f.setup(t, mustDBAt(t, ff.dep.DatabaseURL), ff.dep.Blobs(t))
	return f
}

func (f *resourceLogFixture) setup(t *testing.T, db *pgx.Conn, blobs *fsblob.Store) {
	t.Helper()
	f.alice, f.aliceKS = f.newClient(t, "alice", nil)
	f.bob, _ = f.newClient(t, "bob", nil)
	f.carol, f.carolKS = f.newClient(t, "carol", nil)
	g := mustGroup(t, f.alice, "tamper", nil)
	mustAdd(t, f.alice, f.bob, g, coffer.RoleWriter)
	mustAdd(t, f.alice, f.carol, g, coffer.RoleReader)
	for _, c := range []*clientlib.Client{f.alice, f.bob, f.carol} {
		mustEpoch(t, c, g) // everyone has verified the honest chain
	}
	f.resourceServer = &resourceServer{db: db, blobs: blobs, g: g}
	f.dataA, f.dataB = randomContent(t, 150_000), randomContent(t, 160_000)
	f.a = mustPut(t, f.bob, g, "a.bin", f.dataA)
	f.b = mustPut(t, f.bob, g, "b.bin", f.dataB)
	mustReadResource(t, f.alice, g, f.a.ID)
	mustReadResource(t, f.alice, g, f.b.ID)
}

// readBefore has each reader read resource a, as a reader who read the
// group moments before an attack: its view of the group is the current
// head (with witnesses, proven against a cosigned checkpoint and cached).
// On a witnessed fixture that view is what lets a reader go on to check a
// leaf the witnesses then refuse: without it, the reader must prove the
// head again first, which no cosigned checkpoint allows any more
// (ESTALECHECKPOINT, retryable: nothing is accepted either way).
func (f *resourceLogFixture) readBefore(t *testing.T, readers ...*clientlib.Client) {
	t.Helper()
	for _, c := range readers {
		if got := mustReadResource(t, c, f.g, f.a.ID); !bytes.Equal(got, f.dataA) {
			t.Fatalf("%s read resource a wrong", c.Identity().Handle())
		}
	}
}

// resourceRow is a resources row and its blob, as a server keeps them.
type resourceRow struct {
	version, epoch          int64
	author                  coffer.AccountID
	header, sig, meta, hash []byte
	size                    int64
	blobKey                 string
	blob                    []byte
}

func (f *resourceServer) saveRow(t *testing.T, id coffer.ResourceID) resourceRow {
	t.Helper()
	var r resourceRow
	// Small resources keep their content in the row, others in a blob.
	if err := f.db.QueryRow(context.Background(), `SELECT version, author_id, epoch, header, header_signature, meta, content_hash, size,
		COALESCE(blob_key, ''), content FROM resources WHERE id = $1`, id).Scan(&r.version, &r.author, &r.epoch, &r.header, &r.sig, &r.meta,
		&r.hash, &r.size, &r.blobKey, &r.blob); err != nil {
		t.Fatal(err)
	}
	if r.blob == nil {
		b, err := os.ReadFile(f.blobs.Path(r.blobKey))
		if err != nil {
			t.Fatal(err)
		}
		r.blob = b
	}
	return r
}

// restoreRow puts r back as the row of id (inserting it if the resource was
// deleted) with its blob under a fresh key.
func (f *resourceServer) restoreRow(t *testing.T, id coffer.ResourceID, r resourceRow) {
	t.Helper()
	key := f.putBlob(t, r.blob)
	mustExec(t, f.db, `DELETE FROM resources WHERE id = $1`, id)
	mustExec(t, f.db, `INSERT INTO resources (id, group_id, version, author_id, epoch, header, header_signature,
		meta, content_hash, size, blob_key, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), now())`,
		id, f.g, r.version, r.author, r.epoch, r.header, r.sig, r.meta, r.hash, r.size, key)
}

func (f *resourceServer) putBlob(t *testing.T, data []byte) string {
	t.Helper()
	key := coffer.NewBlobKey()
	bw, err := f.blobs.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(data)
	if err := bw.Commit(); err != nil {
		t.Fatal(err)
	}
	return key
}

// signedVersion makes a complete version of resource id as its author's
// client would (content under epochKey at epoch, metadata, signed header
// chained to prev), without the server: what a malicious server holding
// the author's second signature, or helping the author, can store.
func (f *resourceServer) signedVersion(t *testing.T, id coffer.ResourceID, version, epoch uint64, prev [32]byte,
	author coffer.AccountID, key ed25519.PrivateKey, epochKey groupkey.EpochKey, data []byte) (resourceRow, *coffer.ResourceHeader) {
	t.Helper()
	var ct bytes.Buffer
	w, err := content.Encrypt(&ct, epochKey, f.g, epoch, id)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	root, chunks, size := w.Sum()
	meta := groupkey.SealMetadata(epochKey, f.g, epoch, coffer.LabelResourceMeta,
		binary.BigEndian.AppendUint64(append([]byte(nil), id[:]...), version), []byte(`{"name":"forged.bin","size":`+strconv.Itoa(len(data))+`}`))
	h := &coffer.ResourceHeader{Resource: id, Group: f.g, Epoch: epoch, Author: author, Version: version, Prev: prev,
		TreeRoot: root, Chunks: chunks, ContentSize: size, MetaHash: sha256.Sum256(meta), Created: time.Now().UnixMilli()}
	sh := coffer.SignResourceHeader(h, key)
	blob := ct.Bytes() // the age file and its chunk hash list
	hash := sha256.Sum256(blob)
	return resourceRow{version: int64(version), epoch: int64(epoch), author: author, header: sh.Body, sig: sh.Signature,
		meta: meta, hash: hash[:], size: int64(len(blob)), blob: blob}, h
}

// logLeaf appends the version leaf of h (body) to the transparency log
// directly, as a server helping a writer would; the sequencer integrates
// it. It returns the leaf's log_entries row.
func (f *resourceServer) logLeaf(t *testing.T, h *coffer.ResourceHeader, body []byte) int64 {
	t.Helper()
	leaf := translog.ResourceVersionLeaf(coffer.LoggedVersionOf(h, body))
	lh := translog.RecordHash(leaf)
	var id int64
	if err := f.db.QueryRow(context.Background(), `INSERT INTO log_entries (leaf, leaf_hash, group_id, resource_id, created_at)
		VALUES ($1, $2, $3, $4, now()) RETURNING id`, leaf, lh[:], f.g, h.Resource).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// Deletion: bob deletes his resource and the server keeps serving it, the
// row and blob exactly as they were. Every reader, whether it read the
// resource before (alice) or not (a new device of carol's), refuses it:
// the log holds the tombstone.
func TestResourceLogDeletedServedAgain(t *testing.T) {
	testResourceLogDeletedServedAgain(t, newResourceLog(t))
}

func testResourceLogDeletedServedAgain(t *testing.T, f *resourceLogFixture) {
	ctx := context.Background()
	saved := f.saveRow(t, f.a.ID)
	if err := f.bob.Delete(ctx, f.g, f.a.ID); err != nil {
		t.Fatal(err)
	}
	f.restoreRow(t, f.a.ID, saved)
	_, err := readResource(f.alice, f.g, f.a.ID)
	wantCheck(t, err, "deleted")
	_, err = f.carol.Head(ctx, f.g, f.a.ID)
	wantCheck(t, err, "deleted")
	// The deleter's own device knows without asking the log.
	_, err = readResource(f.bob, f.g, f.a.ID)
	wantCheck(t, err, "deleted")
	// The other resource is unaffected.
	if got := mustReadResource(t, f.carol, f.g, f.b.ID); !bytes.Equal(got, f.dataB) {
		t.Fatal("resource b changed")
	}
}

// Deletion by an admin of another member's resource, served again to its
// author.
func TestResourceLogDeletedByAdminServedToAuthor(t *testing.T) {
	testResourceLogDeletedByAdminServedToAuthor(t, newResourceLog(t))
}

func testResourceLogDeletedByAdminServedToAuthor(t *testing.T, f *resourceLogFixture) {
	ctx := context.Background()
	saved := f.saveRow(t, f.b.ID)
	if err := f.alice.Delete(ctx, f.g, f.b.ID); err != nil {
		t.Fatal(err)
	}
	f.restoreRow(t, f.b.ID, saved)
	_, err := readResource(f.bob, f.g, f.b.ID)
	wantCheck(t, err, "deleted")
	// Nor can the author replace it: a deleted resource stays deleted.
	if _, err := f.bob.Replace(ctx, f.g, f.b.ID, 1, bytes.NewReader([]byte("again")), clientlib.Meta{Name: "b.bin"}, nil); err == nil {
		t.Fatal("a replace of a deleted resource succeeded")
	}
}

// Two signed versions k: alice's resource at version 1 (and, after a
// replace, version 2) is swapped for another header alice also signed for
// the same version. A reader that never saw the version (no pin to
// compare) refuses it, because the log holds the other one.
func TestResourceLogSecondSignedVersion(t *testing.T) {
	testResourceLogSecondSignedVersion(t, newResourceLog(t))
}

func testResourceLogSecondSignedVersion(t *testing.T, f *resourceLogFixture) {
	ctx := context.Background()
	dave, _ := f.newClient(t, "dave", nil)
	mustAdd(t, f.alice, dave, f.g, coffer.RoleReader)
	aliceKey := signingKeyOf(t, f.aliceKS)
	r := mustPut(t, f.alice, f.g, "x.bin", []byte("alice's version one"))
	honest1 := f.saveRow(t, r.ID)
	h1, err := coffer.ParseResourceHeader(honest1.header)
	if err != nil {
		t.Fatal(err)
	}
	k := f.epochKeyAt(t, f.aliceKS, f.alice.AccountID(), h1.Epoch)

	other1, _ := f.signedVersion(t, r.ID, 1, h1.Epoch, [32]byte{}, f.alice.AccountID(), aliceKey, k, []byte("a second version one"))
	f.restoreRow(t, r.ID, other1)
	_, err = readResource(f.carol, f.g, r.ID)
	wantCheck(t, err, "header")

	// The same one version later: alice replaces, and the server serves
	// another version 2 alice signed, chained to the right version 1.
	f.restoreRow(t, r.ID, honest1)
	if _, err := f.alice.Replace(ctx, f.g, r.ID, 1, bytes.NewReader([]byte("alice's version two")), clientlib.Meta{Name: "x.bin"}, nil); err != nil {
		t.Fatal(err)
	}
	honest2 := f.saveRow(t, r.ID)
	other2, _ := f.signedVersion(t, r.ID, 2, h1.Epoch, coffer.HeaderHash(honest1.header), f.alice.AccountID(), aliceKey, k, []byte("a second version two"))
	f.restoreRow(t, r.ID, other2)
	_, err = readResource(dave, f.g, r.ID)
	wantCheck(t, err, "header")
	_, err = readResource(f.bob, f.g, r.ID)
	wantCheck(t, err, "header")
	// The honest version 2, restored, reads.
	f.restoreRow(t, r.ID, honest2)
	if got := mustReadResource(t, dave, f.g, r.ID); string(got) != "alice's version two" {
		t.Fatalf("version 2 reads %q", got)
	}
}

// epochKeyAt recovers a member's key of epoch from their key store and the
// database.
func (f *resourceServer) epochKeyAt(t *testing.T, ks *clientlib.MemoryKeyStore, member coffer.AccountID, epoch uint64) groupkey.EpochKey {
	t.Helper()
	var wrap []byte
	if err := f.db.QueryRow(context.Background(), `SELECT wrap FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 AND epoch = $3`,
		f.g, member, int64(epoch)).Scan(&wrap); err != nil {
		t.Fatal(err)
	}
	k, err := groupkey.Unwrap(decryptionKeyOf(t, ks), f.g, epoch, member, wrap)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Backdating: dave, a writer, is removed (a new epoch). With the server's
// help he publishes a resource under the epoch whose key he still holds,
// signed with his key, as if written before his removal: stored directly,
// without a log leaf, or with a leaf the server appends to the log. No
// reader accepts it; before resources were logged, every check passed
// (his role at that epoch, his signature, metadata under that key).
func TestResourceLogBackdatedByRemovedWriter(t *testing.T) {
	testResourceLogBackdatedByRemovedWriter(t, newResourceLog(t))
}

func testResourceLogBackdatedByRemovedWriter(t *testing.T, f *resourceLogFixture) {
	ctx := context.Background()
	dave, daveKS := f.newClient(t, "dave", nil)
	mustAdd(t, f.alice, dave, f.g, coffer.RoleWriter)
	epoch := mustEpoch(t, dave, f.g)
	k := f.epochKeyAt(t, daveKS, dave.AccountID(), epoch)
	honest := mustPut(t, dave, f.g, "before.bin", []byte("written before the removal"))
	if err := f.alice.RemoveMember(ctx, f.g, "dave"); err != nil {
		t.Fatal(err)
	}
	mustEpoch(t, f.carol, f.g)
	reader, _ := f.newClient(t, "erin", func(o *clientlib.Options) { o.LogWait = 700 * time.Millisecond })
	mustAdd(t, f.alice, reader, f.g, coffer.RoleReader)

	// What dave wrote while a writer stays readable, to old and new readers.
	for _, c := range []*clientlib.Client{f.carol, reader, f.alice} {
		if got := mustReadResource(t, c, f.g, honest.ID); string(got) != "written before the removal" {
			t.Fatalf("dave's honest resource reads %q", got)
		}
	}

	inject := func(t *testing.T, logged bool) coffer.ResourceID {
		id := coffer.NewResourceID()
		row, h := f.signedVersion(t, id, 1, epoch, [32]byte{}, dave.AccountID(), signingKeyOf(t, daveKS), k, []byte("backdated"))
		f.restoreRow(t, id, row)
		if logged {
			f.refusedByWitnesses(t, f.logLeaf(t, h, row.header))
		}
		return id
	}
	t.Run("stored without a log leaf", func(t *testing.T) {
		id := inject(t, false)
		_, err := readResource(reader, f.g, id)
		if coffer.ErrorCode(err) != coffer.EUNAVAILABLE {
			t.Fatalf("read of an unlogged version: %v, want EUNAVAILABLE (not in the log)", err)
		}
	})
	t.Run("with a log leaf after the removal", func(t *testing.T) {
		f.readBefore(t, f.carol, reader, f.alice)
		id := inject(t, true)
		for _, c := range []*clientlib.Client{f.carol, reader, f.alice} {
			_, err := readResource(c, f.g, id)
			wantCheck(t, err, "header")
		}
	})
}

// Backdating by a member who left: the leave does not start an epoch (the
// next admin commit rotates), so the leaver holds the current key and its
// role at that epoch was writer; a leaf logged after the leave is refused.
func TestResourceLogBackdatedByLeaver(t *testing.T) {
	testResourceLogBackdatedByLeaver(t, newResourceLog(t))
}

func testResourceLogBackdatedByLeaver(t *testing.T, f *resourceLogFixture) {
	ctx := context.Background()
	dave, daveKS := f.newClient(t, "dave", nil)
	mustAdd(t, f.alice, dave, f.g, coffer.RoleWriter)
	epoch := mustEpoch(t, dave, f.g)
	k := f.epochKeyAt(t, daveKS, dave.AccountID(), epoch)
	honest := mustPut(t, dave, f.g, "before.bin", []byte("written before leaving"))
	if err := dave.Leave(ctx, f.g); err != nil {
		t.Fatal(err)
	}
	// What dave wrote while a member stays readable.
	if got := mustReadResource(t, f.carol, f.g, honest.ID); string(got) != "written before leaving" {
		t.Fatalf("dave's honest resource reads %q", got)
	}
	f.readBefore(t, f.carol)
	id := coffer.NewResourceID()
	row, h := f.signedVersion(t, id, 1, epoch, [32]byte{}, dave.AccountID(), signingKeyOf(t, daveKS), k, []byte("after leaving"))
	f.restoreRow(t, id, row)
	f.refusedByWitnesses(t, f.logLeaf(t, h, row.header))
	_, err := readResource(f.carol, f.g, id)
	wantCheck(t, err, "header")
}

// Backdating by a writer demoted to reader (a demotion starts an epoch):
// under the old epoch, or under the new one whose key a reader holds, a
// version logged after the demotion is refused.
func TestResourceLogBackdatedByDemotedWriter(t *testing.T) {
	testResourceLogBackdatedByDemotedWriter(t, newResourceLog(t))
}

func testResourceLogBackdatedByDemotedWriter(t *testing.T, f *resourceLogFixture) {
	ctx := context.Background()
	dave, daveKS := f.newClient(t, "dave", nil)
	mustAdd(t, f.alice, dave, f.g, coffer.RoleWriter)
	old := mustEpoch(t, dave, f.g)
	kOld := f.epochKeyAt(t, daveKS, dave.AccountID(), old)
	if err := f.alice.ChangeRole(ctx, f.g, "dave", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	cur := mustEpoch(t, dave, f.g)
	if cur == old {
		t.Fatal("the demotion did not start an epoch")
	}
	kCur := f.epochKeyAt(t, daveKS, dave.AccountID(), cur)
	f.readBefore(t, f.carol)
	for _, tc := range []struct {
		name  string
		epoch uint64
		key   groupkey.EpochKey
	}{{"old epoch", old, kOld}, {"current epoch", cur, kCur}} {
		t.Run(tc.name, func(t *testing.T) {
			id := coffer.NewResourceID()
			row, h := f.signedVersion(t, id, 1, tc.epoch, [32]byte{}, dave.AccountID(), signingKeyOf(t, daveKS), tc.key, []byte("demoted"))
			f.restoreRow(t, id, row)
			f.refusedByWitnesses(t, f.logLeaf(t, h, row.header))
			_, err := readResource(f.carol, f.g, id)
			if tc.epoch == cur && f.dep != nil {
				// carol's view names dave a reader at this epoch: before
				// calling the header forged she catches up with the group
				// once, which no cosigned checkpoint allows since the
				// witnesses refused the leaf. Retryable; nothing accepted.
				wantCode(t, err, coffer.ESTALECHECKPOINT)
				return
			}
			wantSecurity(t, err)
		})
	}
}

// A delete that races a read is not an attack: carol's device asks for the
// header before bob's delete and checks the log after it, so the log holds
// the tombstone of what the server served. Asked again, the server no
// longer serves the resource: not found, no security error. (The answer in
// flight is replayed without the checkpoint it carried, so that carol
// fetches the latest one; with it, the read is simply ordered before the
// delete, and succeeds.)
func TestResourceLogDeleteRacingRead(t *testing.T) {
	ctx := context.Background()
	f := newResourceLog(t)
	path := "/v1/groups/" + f.g.String() + "/resources/" + f.a.ID.String()
	var (
		mu          sync.Mutex
		stale       bool
		current     []byte
		currentType string
	)
	target, _ := url.Parse(f.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.Request.URL.Path != path || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		stripped := editResourceAnswer(b, func(ar *api.Resource) { ar.Checkpoint = "" })
		if bytes.Equal(stripped, b) {
			return errors.New("the read answer does not parse")
		}
		mu.Lock()
		current, currentType = stripped, resp.Header.Get("Content-Type")
		mu.Unlock()
		return nil
	}
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		serveStale := stale && r.Method == http.MethodGet && r.URL.Path == path
		if serveStale {
			stale = false // once: the answer in flight when the delete landed
		}
		body, ct := current, currentType
		mu.Unlock()
		if serveStale {
			w.Header().Set("Content-Type", ct)
			w.Write(body)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer ps.Close()
	carol, err := clientlib.New(ps.URL, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Head(ctx, f.g, f.a.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.bob.Delete(ctx, f.g, f.a.ID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	stale = true
	mu.Unlock()
	_, err = carol.Head(ctx, f.g, f.a.ID)
	if coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("a read racing a delete: %v, want not found", err)
	}
}
