package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/cofferhq/coffer"
)

func (f *resourceFixture) mustStart(t *testing.T, caller coffer.AccountID, id coffer.ResourceID, version uint64, max int64) *coffer.Upload {
	t.Helper()
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: id, Group: f.g, Version: version}
	if err := f.db.CreateUpload(context.Background(), caller, u, max); err != nil {
		t.Fatalf("CreateUpload v%d: %v", version, err)
	}
	return u
}

// TestPendingUploadsCountAgainstGroupLimit: an upload that is never
// finalized takes a place under the group's resource limit, so a member
// cannot park more uploads than the group may hold resources.
func TestPendingUploadsCountAgainstGroupLimit(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	const max = 3
	id := coffer.NewResourceID()
	f.mustUpload(t, f.writer, id, 1, "one") // 1 resource
	a := f.mustStart(t, f.writer, coffer.NewResourceID(), 1, max)
	f.mustStart(t, f.writer2, coffer.NewResourceID(), 1, max) // 1 resource + 2 pending
	newUpload := func(caller coffer.AccountID, version uint64, rid coffer.ResourceID) error {
		return f.db.CreateUpload(ctx, caller, &coffer.Upload{ID: coffer.NewUploadID(), Resource: rid, Group: f.g, Version: version}, max)
	}
	wantStoreCode(t, newUpload(f.writer, 1, coffer.NewResourceID()), coffer.ELIMIT)
	wantStoreCode(t, newUpload(f.admin, 1, coffer.NewResourceID()), coffer.ELIMIT)
	// A replace adds no resource, but its upload is pending too: the
	// group's pending uploads alone are bounded by the same limit.
	r := f.mustStart(t, f.writer, id, 2, max) // 3 pending
	wantStoreCode(t, newUpload(f.writer, 2, id), coffer.ELIMIT)

	// Ending uploads frees their places.
	if _, err := f.db.DeleteUpload(ctx, f.writer, a.ID); err != nil {
		t.Fatal(err)
	}
	wantStoreCode(t, newUpload(f.writer, 1, coffer.NewResourceID()), coffer.ELIMIT) // 1 + 2 pending
	if _, err := f.db.DeleteUpload(ctx, f.writer, r.ID); err != nil {
		t.Fatal(err)
	}
	wantStoreCode(t, newUpload(f.writer, 1, coffer.NewResourceID()), "")

	// Concurrent creations cannot overshoot together.
	f2 := newResourceFixture(t)
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() {
			errs[i] = f2.db.CreateUpload(ctx, f2.writer, &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f2.g, Version: 1}, max)
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
		t.Errorf("%d concurrent uploads were created, want exactly %d", ok, max)
	}
}

// TestPendingBytesPerAccount: reservations and received bytes of one
// account's unfinished uploads never exceed its limit, whatever the order
// or concurrency of its PUTs; other accounts have their own.
func TestPendingBytesPerAccount(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	const limit = 1000
	reserve := func(caller coffer.AccountID, u *coffer.Upload, want int64) int64 {
		t.Helper()
		got, err := f.db.ReserveUpload(ctx, caller, u.ID, want, limit)
		if err != nil {
			t.Fatalf("ReserveUpload: %v", err)
		}
		return got
	}
	a := f.mustStart(t, f.writer, coffer.NewResourceID(), 1, 100)
	b := f.mustStart(t, f.writer, coffer.NewResourceID(), 1, 100)
	if got := reserve(f.writer, a, 600); got != 600 {
		t.Fatalf("granted %d of 600 with nothing pending", got)
	}
	if got := reserve(f.writer, b, 600); got != 400 {
		t.Fatalf("granted %d beside 600 pending, want 400", got)
	}
	// Received content counts instead of the reservation.
	if _, err := f.db.SetUploadContent(ctx, f.writer, a.ID, coffer.NewBlobKey(), 700, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	if got := reserve(f.writer, b, 600); got != 300 {
		t.Fatalf("granted %d beside 700 received, want 300", got)
	}
	// A new reservation replaces the upload's own earlier one.
	if got := reserve(f.writer, b, 200); got != 200 {
		t.Fatalf("granted %d of 200, want 200", got)
	}
	c := f.mustStart(t, f.writer, coffer.NewResourceID(), 1, 100)
	if got := reserve(f.writer, c, 500); got != 100 {
		t.Fatalf("granted %d beside 900 pending, want 100", got)
	}
	// Another account has its own limit.
	o := f.mustStart(t, f.writer2, coffer.NewResourceID(), 1, 100)
	if got := reserve(f.writer2, o, limit); got != limit {
		t.Fatalf("another account was granted %d, want %d", got, limit)
	}
	// Nobody reserves on another's upload.
	_, err := f.db.ReserveUpload(ctx, f.writer2, a.ID, 1, limit)
	wantStoreCode(t, err, coffer.ENOTFOUND)
	// Ending an upload frees its bytes.
	if _, err := f.db.DeleteUpload(ctx, f.writer, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := reserve(f.writer, c, 800); got != 800 {
		t.Fatalf("granted %d after the delete, want 800", got)
	}

	// Concurrent PUTs of one account cannot each see the same room.
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := int64(0)
	for range 8 {
		u := f.mustStart(t, f.admin, coffer.NewResourceID(), 1, 100)
		wg.Go(func() {
			got, err := f.db.ReserveUpload(ctx, f.admin, u.ID, 300, limit)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += got
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != limit {
		t.Errorf("concurrent reservations granted %d in all, want exactly %d", total, limit)
	}
}
