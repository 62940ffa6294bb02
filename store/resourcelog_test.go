package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// header returns a well-formed, unsigned header of version of id by author
// that chains to the header the database holds for the resource (or names
// some previous header when it holds none, so that the store's own checks
// answer first). The store does not check signatures: the server does.
func (f *resourceFixture) header(t *testing.T, id coffer.ResourceID, version uint64, author coffer.AccountID) coffer.SignedHeader {
	t.Helper()
	h := &coffer.ResourceHeader{Resource: id, Group: f.g, Epoch: 1, Author: author, Version: version,
		Chunks: 1, ContentSize: 100, Created: 1}
	if version > 1 {
		var cur []byte
		err := f.pool.QueryRow(context.Background(), `SELECT header FROM resources WHERE id = $1`, id).Scan(&cur)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			h.Prev = [32]byte{1}
		case err != nil:
			t.Fatal(err)
		default:
			h.Prev = coffer.HeaderHash(cur)
		}
	}
	return coffer.SignedHeader{Body: h.Marshal(), Signature: make([]byte, 64)}
}

// del returns an unsigned delete of version of id by deleter.
func (f *resourceFixture) del(t *testing.T, deleter coffer.AccountID, id coffer.ResourceID, version uint64) coffer.SignedDelete {
	t.Helper()
	d := &coffer.ResourceDelete{Group: f.g, Resource: id, Version: max(version, 1), Deleter: deleter}
	return coffer.SignedDelete{Body: d.Marshal(), Signature: make([]byte, 64)}
}

// version returns the stored version of id, 0 if none.
func (f *resourceFixture) version(t *testing.T, id coffer.ResourceID) uint64 {
	t.Helper()
	var v int64
	err := f.pool.QueryRow(context.Background(), `SELECT version FROM resources WHERE id = $1`, id).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return uint64(v)
}

// resourceLeaves returns the log leaves of resource id, in log order.
func (f *resourceFixture) resourceLeaves(t *testing.T, id coffer.ResourceID) []*translog.Leaf {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT leaf FROM log_entries WHERE group_id = $1 AND resource_id = $2 ORDER BY id`, f.g, id)
	if err != nil {
		t.Fatal(err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	var out []*translog.Leaf
	for _, raw := range raws {
		l, err := translog.ParseLeaf(raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// Every finalized version and every delete is logged, in order, and the
// leaves replay under the log's rules.
func TestResourceVersionsAndDeletesAreLogged(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	id := coffer.NewResourceID()
	r1, _ := f.mustUpload(t, f.writer, id, 1, "one")
	r2, _ := f.mustUpload(t, f.writer, id, 2, "two")
	sd := f.del(t, f.writer, id, 2)
	if _, err := f.db.DeleteResource(ctx, f.writer, f.g, id, sd); err != nil {
		t.Fatal(err)
	}
	leaves := f.resourceLeaves(t, id)
	if len(leaves) != 3 {
		t.Fatalf("%d leaves for the resource, want 3 (two versions and a tombstone)", len(leaves))
	}
	for i, r := range []*coffer.Resource{r1, r2} {
		h, err := coffer.ParseResourceHeader(r.Header.Body)
		if err != nil {
			t.Fatal(err)
		}
		if l := leaves[i]; l.Kind != translog.KindResourceVersion || l.Version != coffer.LoggedVersionOf(h, r.Header.Body) {
			t.Fatalf("leaf %d is %+v, want the version leaf of %+v", i, l, h)
		}
	}
	if l := leaves[2]; l.Kind != translog.KindResourceDelete || string(l.Delete.Body) != string(sd.Body) {
		t.Fatalf("leaf 2 is %+v, want the tombstone", l)
	}

	// A deleted resource's id is not created again: the log's tombstone
	// is final.
	_, _, err := f.upload(t, f.writer, id, 1, "again")
	wantStoreCode(t, err, coffer.ECONFLICT)
}

// The store refuses what the log's rules would refuse, so that it never
// logs a leaf a witness must reject.
func TestResourceLogRefusals(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	id := coffer.NewResourceID()
	f.mustUpload(t, f.writer, id, 1, "one")

	t.Run("replace that does not chain", func(t *testing.T) {
		u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: id, Group: f.g, Version: 2}
		if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
			t.Fatal(err)
		}
		key := coffer.NewBlobKey()
		if _, err := f.db.SetUploadContent(ctx, f.writer, u.ID, key, 1, [32]byte{1}); err != nil {
			t.Fatal(err)
		}
		h := &coffer.ResourceHeader{Resource: id, Group: f.g, Epoch: 1, Author: f.writer, Version: 2,
			Prev: [32]byte{9}, Chunks: 1, ContentSize: 100, Created: 1}
		_, err := f.db.FinalizeUpload(ctx, f.writer, u.ID, &coffer.Resource{ID: id, Group: f.g, Version: 2, Author: f.writer, Epoch: 1,
			Header: coffer.SignedHeader{Body: h.Marshal(), Signature: make([]byte, 64)}, Meta: []byte("m"),
			BlobKey: key, Size: 1, ContentHash: [32]byte{1}}, 100)
		wantStoreCode(t, err, coffer.EINVALID)
	})
	t.Run("delete naming another deleter", func(t *testing.T) {
		_, err := f.db.DeleteResource(ctx, f.writer, f.g, id, f.del(t, f.admin, id, 1))
		wantStoreCode(t, err, coffer.EINVALID)
	})
	t.Run("delete naming another resource", func(t *testing.T) {
		_, err := f.db.DeleteResource(ctx, f.writer, f.g, id, f.del(t, f.writer, coffer.NewResourceID(), 1))
		wantStoreCode(t, err, coffer.EINVALID)
	})
	t.Run("malformed delete", func(t *testing.T) {
		_, err := f.db.DeleteResource(ctx, f.writer, f.g, id, coffer.SignedDelete{Body: []byte("x"), Signature: make([]byte, 64)})
		wantStoreCode(t, err, coffer.EINVALID)
	})
	if n := len(f.resourceLeaves(t, id)); n != 1 {
		t.Fatalf("%d leaves after refused writes, want 1", n)
	}
}

// A row put back by hand after its delete gets no further version: the log
// holds the tombstone.
func TestResourceTombstoneIsFinal(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	id := coffer.NewResourceID()
	f.mustUpload(t, f.writer, id, 1, "one")
	var header, sig []byte
	if err := f.pool.QueryRow(ctx, `SELECT header, header_signature FROM resources WHERE id = $1`, id).Scan(&header, &sig); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.DeleteResource(ctx, f.writer, f.g, id, f.del(t, f.writer, id, 1)); err != nil {
		t.Fatal(err)
	}
	f.exec(t, `INSERT INTO resources (id, group_id, version, author_id, epoch, header, header_signature, meta, content_hash, size, blob_key, created_at, updated_at)
		VALUES ($1, $2, 1, $3, 1, $4, $5, 'm', $6, 1, $7, now(), now())`, id, f.g, f.writer, header, sig, make([]byte, 32), coffer.NewBlobKey())
	_, _, err := f.upload(t, f.writer, id, 2, "two")
	wantStoreCode(t, err, coffer.ENOTFOUND)
	if n := len(f.resourceLeaves(t, id)); n != 2 {
		t.Fatalf("%d leaves, want the version and its tombstone only", n)
	}
}
