package store_test

import (
	"context"
	"crypto/sha256"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/blobtest"
	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// resourceFixture is a database with one group at epoch 1 whose members
// have every role, and a blob store. The group rows are written directly:
// these tests are about resources, and the store does not re-verify chains.
type resourceFixture struct {
	db                                              *store.DB
	pool                                            *pgxpool.Pool
	blobs                                           *fsblob.Store
	g                                               coffer.GroupID
	owner, admin, writer, writer2, reader, outsider coffer.AccountID
}

func newResourceFixture(t *testing.T) *resourceFixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	blobs, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &resourceFixture{
		db: store.New(pool), pool: pool, blobs: blobs, g: coffer.NewGroupID(),
		owner: coffer.NewAccountID(), admin: coffer.NewAccountID(), writer: coffer.NewAccountID(),
		writer2: coffer.NewAccountID(), reader: coffer.NewAccountID(), outsider: coffer.NewAccountID(),
	}
	f.exec(t, `INSERT INTO groups (id, head_seq, head_hash, epoch, state, created_at, updated_at)
		VALUES ($1, 1, $2, 1, '\x00', now(), now())`, f.g, make([]byte, 32))
	for id, role := range map[coffer.AccountID]coffer.Role{
		f.owner: coffer.RoleOwner, f.admin: coffer.RoleAdmin, f.writer: coffer.RoleWriter,
		f.writer2: coffer.RoleWriter, f.reader: coffer.RoleReader,
	} {
		f.exec(t, `INSERT INTO group_members (group_id, account_id, role) VALUES ($1, $2, $3)`, f.g, id, int16(role))
	}
	return f
}

func (f *resourceFixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// upload runs the whole protocol as the server would: create the upload,
// write and record a blob, finalize. It returns the finalized resource.
func (f *resourceFixture) upload(t *testing.T, caller coffer.AccountID, id coffer.ResourceID, version uint64, data string) (*coffer.Resource, string, error) {
	t.Helper()
	ctx := context.Background()
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: id, Group: f.g, Version: version}
	if err := f.db.CreateUpload(ctx, caller, u, 100); err != nil {
		return nil, "", err
	}
	key := coffer.NewBlobKey()
	blobtest.MustPut(t, f.blobs, key, []byte(data))
	hash := sha256.Sum256([]byte(data))
	if _, err := f.db.SetUploadContent(ctx, caller, u.ID, key, int64(len(data)), hash); err != nil {
		t.Fatal(err)
	}
	r := &coffer.Resource{
		ID: id, Group: f.g, Version: version, Author: caller, Epoch: 1,
		Header: f.header(t, id, version, caller),
		Meta:   []byte("sealed meta"), ContentHash: hash, Size: int64(len(data)), BlobKey: key,
	}
	replaced, err := f.db.FinalizeUpload(ctx, caller, u.ID, r, 100)
	return r, replaced, err
}

func (f *resourceFixture) mustUpload(t *testing.T, caller coffer.AccountID, id coffer.ResourceID, version uint64, data string) (*coffer.Resource, string) {
	t.Helper()
	r, replaced, err := f.upload(t, caller, id, version, data)
	if err != nil {
		t.Fatalf("upload v%d: %v", version, err)
	}
	return r, replaced
}

func wantStoreCode(t *testing.T, err error, code coffer.Code) {
	t.Helper()
	if got := coffer.ErrorCode(err); got != code {
		t.Fatalf("got %v (code %q), want %q", err, got, code)
	}
}

func TestResourceLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	id := coffer.NewResourceID()
	r, _ := f.mustUpload(t, f.writer, id, 1, "version one")

	got, err := f.db.Resource(ctx, f.reader, f.g, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.Author != f.writer || got.BlobKey != r.BlobKey || got.ContentHash != r.ContentHash ||
		got.Size != r.Size || string(got.Meta) != "sealed meta" || got.Created.IsZero() || !got.Created.Equal(got.Updated) {
		t.Fatalf("stored resource %+v differs from %+v", got, r)
	}
	_, err = f.db.Resource(ctx, f.outsider, f.g, id)
	wantStoreCode(t, err, coffer.ENOTFOUND)

	// Replace: the old blob is handed back for deletion.
	r2, replaced := f.mustUpload(t, f.writer, id, 2, "version two")
	if replaced != r.BlobKey {
		t.Fatalf("replace returned blob %q, want the old %q", replaced, r.BlobKey)
	}
	got, err = f.db.Resource(ctx, f.writer, f.g, id)
	if err != nil || got.Version != 2 || got.BlobKey != r2.BlobKey || !got.Created.Equal(r.Created) {
		t.Fatalf("after replace: %+v, %v", got, err)
	}

	key, err := f.db.DeleteResource(ctx, f.writer, f.g, id, f.del(t, f.writer, id, 2))
	if err != nil || key != r2.BlobKey {
		t.Fatalf("delete: %q, %v", key, err)
	}
	_, err = f.db.Resource(ctx, f.writer, f.g, id)
	wantStoreCode(t, err, coffer.ENOTFOUND)
	var count int64
	f.pool.QueryRow(ctx, `SELECT resource_count FROM groups WHERE id = $1`, f.g).Scan(&count)
	if count != 0 {
		t.Fatalf("resource_count is %d after delete, want 0", count)
	}
}

func TestResourceAuthorization(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	id := coffer.NewResourceID()
	f.mustUpload(t, f.writer, id, 1, "x")

	tests := []struct {
		name    string
		fn      func() error
		wantErr coffer.Code
	}{
		{"reader cannot create", func() error {
			_, _, err := f.upload(t, f.reader, coffer.NewResourceID(), 1, "r")
			return err
		}, coffer.EFORBIDDEN},
		{"outsider cannot create", func() error {
			_, _, err := f.upload(t, f.outsider, coffer.NewResourceID(), 1, "o")
			return err
		}, coffer.ENOTFOUND},
		{"outsider cannot list", func() error {
			_, err := f.db.Resources(ctx, f.outsider, f.g, coffer.ResourceCursor{}, 10)
			return err
		}, coffer.ENOTFOUND},
		{"outsider cannot delete", func() error {
			_, err := f.db.DeleteResource(ctx, f.outsider, f.g, id, f.del(t, f.outsider, id, f.version(t, id)))
			return err
		}, coffer.ENOTFOUND},
		{"reader cannot delete", func() error {
			_, err := f.db.DeleteResource(ctx, f.reader, f.g, id, f.del(t, f.reader, id, f.version(t, id)))
			return err
		}, coffer.EFORBIDDEN},
		{"another writer cannot delete", func() error {
			_, err := f.db.DeleteResource(ctx, f.writer2, f.g, id, f.del(t, f.writer2, id, f.version(t, id)))
			return err
		}, coffer.EFORBIDDEN},
		{"another writer cannot replace", func() error {
			_, _, err := f.upload(t, f.writer2, id, 2, "y")
			return err
		}, coffer.EFORBIDDEN},
		{"duplicate id", func() error {
			_, _, err := f.upload(t, f.writer2, id, 1, "y")
			return err
		}, coffer.ECONFLICT},
		{"replace of a stale version", func() error {
			_, _, err := f.upload(t, f.writer, id, 3, "y")
			return err
		}, coffer.EPRECONDITION},
		{"delete of a stale version", func() error {
			_, err := f.db.DeleteResource(ctx, f.writer, f.g, id, f.del(t, f.writer, id, 7))
			return err
		}, coffer.EPRECONDITION},
		{"replace of a missing resource", func() error {
			_, _, err := f.upload(t, f.writer, coffer.NewResourceID(), 2, "y")
			return err
		}, coffer.ENOTFOUND},
		{"delete of a missing resource", func() error {
			missing := coffer.NewResourceID()
			_, err := f.db.DeleteResource(ctx, f.writer, f.g, missing, f.del(t, f.writer, missing, f.version(t, missing)))
			return err
		}, coffer.ENOTFOUND},
		{"someone else's upload", func() error {
			u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
			if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
				return err
			}
			_, err := f.db.Upload(ctx, f.writer2, u.ID)
			return err
		}, coffer.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantStoreCode(t, tt.fn(), tt.wantErr) })
	}
	// An admin may replace and delete anyone's resource.
	f.mustUpload(t, f.admin, id, 2, "admin's")
	if _, err := f.db.DeleteResource(ctx, f.admin, f.g, id, f.del(t, f.admin, id, f.version(t, id))); err != nil {
		t.Fatal(err)
	}
}

func TestFinalizeUploadChecks(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
		t.Fatal(err)
	}
	r := func() *coffer.Resource {
		return &coffer.Resource{ID: u.Resource, Group: f.g, Version: 1, Author: f.writer, Epoch: 1,
			Header: f.header(t, u.Resource, 1, f.writer),
			Meta:   []byte("m")}
	}
	_, err := f.db.FinalizeUpload(ctx, f.writer, u.ID, r(), 100)
	wantStoreCode(t, err, coffer.EINVALID) // no content yet

	key := coffer.NewBlobKey()
	hash := sha256.Sum256([]byte("abc"))
	if _, err := f.db.SetUploadContent(ctx, f.writer, u.ID, key, 3, hash); err != nil {
		t.Fatal(err)
	}
	good := r()
	good.BlobKey, good.Size, good.ContentHash = key, 3, hash
	for name, mangle := range map[string]func(r *coffer.Resource){
		"size":     func(r *coffer.Resource) { r.Size = 4 },
		"hash":     func(r *coffer.Resource) { r.ContentHash[0] ^= 1 },
		"blob":     func(r *coffer.Resource) { r.BlobKey = coffer.NewBlobKey() },
		"version":  func(r *coffer.Resource) { r.Version = 2 },
		"resource": func(r *coffer.Resource) { r.ID = coffer.NewResourceID() },
		"author":   func(r *coffer.Resource) { r.Author = f.writer2 },
	} {
		bad := *good
		mangle(&bad)
		_, err := f.db.FinalizeUpload(ctx, f.writer, u.ID, &bad, 100)
		if coffer.ErrorCode(err) != coffer.EINVALID {
			t.Errorf("finalize with a wrong %s: %v, want EINVALID", name, err)
		}
	}
	stale := *good
	stale.Epoch = 2
	_, err = f.db.FinalizeUpload(ctx, f.writer, u.ID, &stale, 100)
	wantStoreCode(t, err, coffer.ESTALEKEY)

	// Demoted mid-upload: the role is checked again at the end.
	f.exec(t, `UPDATE group_members SET role = 1 WHERE group_id = $1 AND account_id = $2`, f.g, f.writer)
	_, err = f.db.FinalizeUpload(ctx, f.writer, u.ID, good, 100)
	wantStoreCode(t, err, coffer.EFORBIDDEN)
	f.exec(t, `UPDATE group_members SET role = 2 WHERE group_id = $1 AND account_id = $2`, f.g, f.writer)
	if _, err := f.db.FinalizeUpload(ctx, f.writer, u.ID, good, 100); err != nil {
		t.Fatal(err)
	}
	// Finalizing consumed the upload.
	_, err = f.db.FinalizeUpload(ctx, f.writer, u.ID, good, 100)
	wantStoreCode(t, err, coffer.ENOTFOUND)
}

func TestResourceLimitPerGroup(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	const max = 3
	// More concurrent uploads than the limit allows: exactly max land.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
			if errs[i] = f.db.CreateUpload(ctx, f.writer, u, max); errs[i] != nil {
				return
			}
			key := coffer.NewBlobKey()
			if _, errs[i] = f.db.SetUploadContent(ctx, f.writer, u.ID, key, 1, [32]byte{1}); errs[i] != nil {
				return
			}
			_, errs[i] = f.db.FinalizeUpload(ctx, f.writer, u.ID, &coffer.Resource{
				ID: u.Resource, Group: f.g, Version: 1, Author: f.writer, Epoch: 1,
				Header: f.header(t, u.Resource, 1, f.writer),
				Meta:   []byte("m"), BlobKey: key, Size: 1, ContentHash: [32]byte{1},
			}, max)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch coffer.ErrorCode(err) {
		case "":
			ok++
		case coffer.ELIMIT:
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != max {
		t.Fatalf("%d uploads landed, want exactly %d", ok, max)
	}
	err := f.db.CreateUpload(ctx, f.writer, &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}, max)
	wantStoreCode(t, err, coffer.ELIMIT)
}

func TestResourceListing(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	clock := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	f.db.Now = func() time.Time { return clock }
	var ids []coffer.ResourceID
	for i := range 25 {
		id := coffer.NewResourceID()
		f.mustUpload(t, f.writer, id, 1, "x")
		ids = append(ids, id)
		if i%3 != 0 { // some share a timestamp: the id breaks the tie
			clock = clock.Add(time.Millisecond)
		}
	}
	var seen []coffer.Resource
	cursor := coffer.ResourceCursor{}
	for {
		page, err := f.db.Resources(ctx, f.reader, f.g, cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, page...)
		if len(page) < 7 {
			break
		}
		last := page[len(page)-1]
		cursor = coffer.ResourceCursor{Created: last.Created, ID: last.ID}
	}
	if len(seen) != len(ids) {
		t.Fatalf("listed %d resources, want %d", len(seen), len(ids))
	}
	have := map[coffer.ResourceID]bool{}
	for i, r := range seen {
		have[r.ID] = true
		if i > 0 && r.Created.After(seen[i-1].Created) {
			t.Fatalf("listing is not newest first at %d", i)
		}
	}
	if len(have) != len(ids) {
		t.Fatalf("listing has duplicates")
	}
}

// TestCollectUploads: an upload abandoned after its content arrived, and
// another abandoned mid-stream, both go; a live one and a finished resource
// stay.
func TestCollectUploads(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	kept, _ := f.mustUpload(t, f.writer, coffer.NewResourceID(), 1, "kept")

	abandoned := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, abandoned, 100); err != nil {
		t.Fatal(err)
	}
	abandonedKey := coffer.NewBlobKey()
	blobtest.MustPut(t, f.blobs, abandonedKey, []byte("never finalized"))
	if _, err := f.db.SetUploadContent(ctx, f.writer, abandoned.ID, abandonedKey, 15, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	empty := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, empty, 100); err != nil {
		t.Fatal(err)
	}

	// Nothing is old yet.
	if n, err := f.db.CollectUploads(ctx, f.blobs, time.Hour); err != nil || n != 0 {
		t.Fatalf("collected %d fresh uploads (%v)", n, err)
	}
	f.db.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	live := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, live, 100); err != nil {
		t.Fatal(err)
	}
	n, err := f.db.CollectUploads(ctx, f.blobs, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("collected %d uploads (%v), want 2", n, err)
	}
	if _, err := os.Stat(f.blobs.Path(abandonedKey)); !os.IsNotExist(err) {
		t.Fatalf("the abandoned upload's blob survived: %v", err)
	}
	if _, err := f.db.Upload(ctx, f.writer, live.ID); err != nil {
		t.Fatalf("the live upload was collected: %v", err)
	}
	if _, err := os.Stat(f.blobs.Path(kept.BlobKey)); err != nil {
		t.Fatalf("a resource's blob was collected: %v", err)
	}
}

func TestSweepBlobs(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	kept, _ := f.mustUpload(t, f.writer, coffer.NewResourceID(), 1, "kept")
	pending := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, pending, 100); err != nil {
		t.Fatal(err)
	}
	pendingKey := coffer.NewBlobKey()
	blobtest.MustPut(t, f.blobs, pendingKey, []byte("pending"))
	if _, err := f.db.SetUploadContent(ctx, f.writer, pending.ID, pendingKey, 7, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	orphan := coffer.NewBlobKey()
	blobtest.MustPut(t, f.blobs, orphan, []byte("crashed before its row"))

	// Within the grace period even an orphan stays: its row may be on the way.
	if n, err := f.db.SweepBlobs(ctx, f.blobs, time.Hour); err != nil || n != 0 {
		t.Fatalf("swept %d young blobs (%v)", n, err)
	}
	f.db.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if n, err := f.db.SweepBlobs(ctx, f.blobs, time.Hour); err != nil || n != 1 {
		t.Fatalf("swept %d blobs (%v), want 1", n, err)
	}
	if _, err := os.Stat(f.blobs.Path(orphan)); !os.IsNotExist(err) {
		t.Fatal("the orphan survived")
	}
	for _, k := range []string{kept.BlobKey, pendingKey} {
		if _, err := os.Stat(f.blobs.Path(k)); err != nil {
			t.Fatalf("a referenced blob was swept: %v", err)
		}
	}
}

// A second PUT of an upload's content replaces the first; the store hands
// back the first blob for deletion.
func TestSetUploadContentTwice(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
		t.Fatal(err)
	}
	first, second := coffer.NewBlobKey(), coffer.NewBlobKey()
	if old, err := f.db.SetUploadContent(ctx, f.writer, u.ID, first, 1, [32]byte{1}); err != nil || old != "" {
		t.Fatalf("first: %q, %v", old, err)
	}
	if old, err := f.db.SetUploadContent(ctx, f.writer, u.ID, second, 2, [32]byte{2}); err != nil || old != first {
		t.Fatalf("second: %q, %v; want the first blob back", old, err)
	}
	got, err := f.db.Upload(ctx, f.writer, u.ID)
	if err != nil || got.BlobKey != second || got.Size != 2 || got.ContentHash != [32]byte{2} {
		t.Fatalf("upload %+v, %v", got, err)
	}
	_, err = f.db.SetUploadContent(ctx, f.writer2, u.ID, coffer.NewBlobKey(), 1, [32]byte{})
	wantStoreCode(t, err, coffer.ENOTFOUND)
	if key, err := f.db.DeleteUpload(ctx, f.writer, u.ID); err != nil || key != second {
		t.Fatalf("delete: %q, %v", key, err)
	}
}
