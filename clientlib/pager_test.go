package clientlib

import (
	"testing"

	"github.com/cofferhq/coffer"
)

// TestPager checks each refusal of the pager on its own: the e2e tests
// (TestTamperPaging) play them against every paged endpoint.
func TestPager(t *testing.T) {
	wantSec := func(t *testing.T, err error) {
		t.Helper()
		if !coffer.IsSecurity(err) {
			t.Fatalf("got %v, want a security error", err)
		}
	}
	t.Run("honest", func(t *testing.T) {
		p := newPager[int]("test", 10)
		for page, cursor := range []string{"a", "b", ""} {
			if err := p.page(2, 2); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if err := p.item(page*2 + i); err != nil {
					t.Fatal(err)
				}
			}
			more, err := p.next(cursor, 2)
			if err != nil || more != (cursor != "") {
				t.Fatalf("next(%q) = %v, %v", cursor, more, err)
			}
		}
	})
	t.Run("cursor-seen-before", func(t *testing.T) {
		p := newPager[int]("test", 10)
		p.next("a", 1)
		p.next("b", 1)
		_, err := p.next("a", 1)
		wantSec(t, err)
	})
	t.Run("cursor-is-the-start", func(t *testing.T) {
		p := newPager[int]("test", 10)
		p.start("s")
		_, err := p.next("s", 1)
		wantSec(t, err)
	})
	t.Run("empty-page-with-cursor", func(t *testing.T) {
		_, err := newPager[int]("test", 10).next("more", 0)
		wantSec(t, err)
	})
	t.Run("repeated-item", func(t *testing.T) {
		p := newPager[int]("test", 10)
		p.item(1)
		wantSec(t, p.item(1))
	})
	t.Run("oversized-page", func(t *testing.T) {
		wantSec(t, newPager[int]("test", 10).page(3, 2))
	})
	t.Run("bound", func(t *testing.T) {
		p := newPager[int]("test", 3)
		for i := range 3 {
			if err := p.item(i); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.item(3); coffer.ErrorCode(err) != coffer.ELIMIT {
			t.Fatalf("item beyond the bound: %v, want %s", err, coffer.ELIMIT)
		}
		if err := newPager[int]("test", 3).page(4, 10); coffer.ErrorCode(err) != coffer.ELIMIT {
			t.Fatalf("page beyond the bound: %v, want %s", err, coffer.ELIMIT)
		}
	})
}
