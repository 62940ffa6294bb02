package store_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// TestCommitsPageBytes: a page of commits stops before the commit that
// would take it past store.CommitPageBytes, holds at least one commit
// however large, and the pages together list every commit once, in order.
// (A 100,000-member tree group's bulk adds made a single 250 MB page.)
func TestCommitsPageBytes(t *testing.T) {
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db := store.New(pool)

	g, member := coffer.NewGroupID(), coffer.NewAccountID()
	now := time.Now()
	// The store does not verify: rows are written as a verified chain
	// would have left them, with bodies only as large as the test needs.
	big := store.CommitPageBytes / 3
	sizes := []int{big, big, 100, big + 1, store.CommitPageBytes + 5, 100, 100}
	if _, err := pool.Exec(ctx, `INSERT INTO groups (id, head_seq, head_hash, epoch, state, created_at, updated_at)
		VALUES ($1, $2, $3, 1, '\x00', $4, $4)`, g, len(sizes), make([]byte, 32), now); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO group_members (group_id, account_id, role) VALUES ($1, $2, 1)`, g, member); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		body := bytes.Repeat([]byte{byte(i + 1)}, n)
		if _, err := pool.Exec(ctx, `INSERT INTO commits (group_id, seq, body, signature, hash, author_id, epoch, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, 1, $7)`, g, i+1, body, make([]byte, 64), make([]byte, 32), member, now); err != nil {
			t.Fatal(err)
		}
	}

	var pages [][]int // the seqs of each page
	for after := uint64(0); after < uint64(len(sizes)); {
		page, err := db.Commits(ctx, member, g, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			t.Fatalf("an empty page after seq %d of %d", after, len(sizes))
		}
		var seqs []int
		total := 0
		for _, sc := range page {
			after++
			if len(sc.Body) != sizes[after-1] || sc.Body[0] != byte(after) {
				t.Fatalf("seq %d: a body of %d bytes starting %d", after, len(sc.Body), sc.Body[0])
			}
			seqs = append(seqs, int(after))
			total += len(sc.Body) + len(sc.Signature)
		}
		if len(page) > 1 && total > store.CommitPageBytes {
			t.Errorf("page %v holds %d bytes, over the %d bound", seqs, total, store.CommitPageBytes)
		}
		pages = append(pages, seqs)
	}
	want := [][]int{{1, 2, 3}, {4}, {5}, {6, 7}}
	if !slices.EqualFunc(pages, want, slices.Equal) {
		t.Fatalf("pages %v, want %v", pages, want)
	}

	// The count limit still holds under the byte bound.
	page, err := db.Commits(ctx, member, g, 5, 1)
	if err != nil || len(page) != 1 {
		t.Fatalf("limit 1: %d commits, %v", len(page), err)
	}
	// A non-member sees no such group.
	if _, err := db.Commits(ctx, coffer.NewAccountID(), g, 0, 1000); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("non-member: %v", err)
	}
}
