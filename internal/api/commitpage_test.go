package api_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

func samplePage() []coffer.SignedCommit {
	var out []coffer.SignedCommit
	for i := range 5 {
		out = append(out, coffer.SignedCommit{
			Body:      bytes.Repeat([]byte{byte(i + 1)}, 100+i*37),
			Signature: bytes.Repeat([]byte{byte(0x80 + i)}, 64),
		})
	}
	return out
}

func TestCommitPageRoundTrip(t *testing.T) {
	for _, page := range [][]coffer.SignedCommit{nil, samplePage()} {
		enc := api.AppendCommitPage(nil, page)
		got, err := api.ParseCommitPage(enc, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(page) {
			t.Fatalf("%d commits, want %d", len(got), len(page))
		}
		for i := range page {
			if !bytes.Equal(got[i].Body, page[i].Body) || !bytes.Equal(got[i].Signature, page[i].Signature) {
				t.Errorf("commit %d differs", i)
			}
		}
		if prefixed := api.AppendCommitPage([]byte("x"), page); !bytes.Equal(prefixed[1:], enc) {
			t.Errorf("appending to a prefix changes the encoding")
		}
	}
}

// TestCommitPageRejects: every truncation, trailing data, a count over the
// caller's bound or past what the data holds, an oversized body length and
// an unknown version are errors, never a partial page.
func TestCommitPageRejects(t *testing.T) {
	enc := api.AppendCommitPage(nil, samplePage())
	for n := range len(enc) {
		if got, err := api.ParseCommitPage(enc[:n], 1000); err == nil {
			t.Errorf("truncated to %d bytes: parsed %d commits", n, len(got))
		}
	}
	bad := map[string][]byte{
		"trailing":     append(slices.Clone(enc), 0),
		"version-0":    append([]byte{0}, enc[1:]...),
		"version-2":    append([]byte{2}, enc[1:]...),
		"huge-count":   binary.BigEndian.AppendUint32([]byte{1}, 1<<31),
		"count-unfit":  binary.BigEndian.AppendUint32([]byte{1}, 100),
		"huge-body":    binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{1}, 1), coffer.MaxCommitSize+1),
		"body-too-far": binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{1}, 1), 1<<20),
	}
	for name, data := range bad {
		if got, err := api.ParseCommitPage(data, 1000); err == nil {
			t.Errorf("%s: parsed %d commits", name, len(got))
		}
	}
	if _, err := api.ParseCommitPage(enc, 4); err == nil {
		t.Errorf("a page of 5 commits was accepted with a bound of 4")
	}
	// Each length field, mangled, breaks the page.
	for _, off := range []int{1, 2, 3, 4, 5, 6, 7, 8} {
		m := slices.Clone(enc)
		m[off] ^= 0x40
		if _, err := api.ParseCommitPage(m, 1000); err == nil {
			t.Errorf("mangled byte %d: accepted", off)
		}
	}
}

func TestAcceptsCommitPage(t *testing.T) {
	for accept, want := range map[string]bool{
		api.CommitPageType:                              true,
		"application/json, " + api.CommitPageType:       true,
		api.CommitPageType + ";q=0.9, application/json": true,
		api.CommitPageType + ";q=0":                     false,
		"application/json":                              false,
		"":                                              false,
		"application/vnd.coffer.commit-page-other":      false,
	} {
		if got := api.AcceptsCommitPage(accept); got != want {
			t.Errorf("AcceptsCommitPage(%q) = %t, want %t", accept, got, want)
		}
	}
}

// FuzzCommitPage: whatever parses re-encodes to the same bytes, so a page
// has one encoding.
func FuzzCommitPage(f *testing.F) {
	f.Add(api.AppendCommitPage(nil, samplePage()))
	f.Add(api.AppendCommitPage(nil, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		page, err := api.ParseCommitPage(data, 1000)
		if err != nil {
			return
		}
		if !bytes.Equal(api.AppendCommitPage(nil, page), data) {
			t.Errorf("re-encoding differs")
		}
	})
}

// TestCommitPageWide: a page with a suite v2 (hybrid, 3,373-byte) signature
// is written as version 2 and reads back as written; a page of Ed25519
// signatures stays version 1; every cut of a wide page fails.
func TestCommitPageWide(t *testing.T) {
	narrow := []coffer.SignedCommit{{Body: []byte{1, 2, 3}, Signature: bytes.Repeat([]byte{7}, 64)}}
	wide := append(slices.Clone(narrow), coffer.SignedCommit{Body: []byte{2, 9}, Signature: bytes.Repeat([]byte{8}, coffer.HybridSignatureSize)})
	if b := api.AppendCommitPage(nil, narrow); b[0] != 1 {
		t.Fatalf("an Ed25519 page is version %d", b[0])
	}
	b := api.AppendCommitPage(nil, wide)
	if b[0] != 2 {
		t.Fatalf("a page with a hybrid signature is version %d", b[0])
	}
	got, err := api.ParseCommitPage(b, 10)
	if err != nil || len(got) != 2 || !bytes.Equal(got[1].Signature, wide[1].Signature) || !bytes.Equal(got[0].Body, wide[0].Body) {
		t.Fatalf("round trip: %v", err)
	}
	for cut := range len(b) {
		if _, err := api.ParseCommitPage(b[:cut], 10); err == nil {
			t.Fatalf("a page cut at %d of %d bytes parsed", cut, len(b))
		}
	}
}
