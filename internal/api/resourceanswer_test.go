package api_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

func sampleAnswer(content []byte, checkpoint string) *api.Resource {
	r := &api.Resource{
		Version: 3, Epoch: 2, Size: int64(len(content)),
		Header:     api.SignedHeader{Body: bytes.Repeat([]byte{0x11}, 300), Signature: bytes.Repeat([]byte{0x22}, 64)},
		Meta:       bytes.Repeat([]byte{0x33}, 90),
		CreatedAt:  time.UnixMicro(1_700_000_000_123_456).UTC(),
		UpdatedAt:  time.UnixMicro(1_700_000_100_654_321).UTC(),
		Content:    content,
		Checkpoint: checkpoint,
	}
	for i := range 16 {
		r.ID[i], r.GroupID[i], r.AuthorID[i] = byte(i), byte(0x40+i), byte(0x80+i)
	}
	return r
}

func mustAppendResource(t *testing.T, r *api.Resource) []byte {
	t.Helper()
	b, err := api.AppendResource(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResourceAnswerRoundTrip(t *testing.T) {
	for name, r := range map[string]*api.Resource{
		"content and checkpoint": sampleAnswer(bytes.Repeat([]byte{0x44}, 1500), "log\n5\nroot\n\n— sig\n"),
		"no content":             sampleAnswer(nil, "log\n5\nroot\n\n— sig\n"),
		"empty content":          sampleAnswer([]byte{}, ""),
		"hybrid signature":       func() *api.Resource { r := sampleAnswer(nil, ""); r.Header.Signature = make([]byte, 3373); return r }(),
	} {
		enc := mustAppendResource(t, r)
		got, err := api.ParseResource(enc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s: decoded %+v, want %+v", name, got, r)
		}
		again, err := api.AppendResource([]byte("x"), got)
		if err != nil || !bytes.Equal(again[1:], enc) {
			t.Errorf("%s: re-encoding after a prefix differs (%v)", name, err)
		}
	}
}

// TestResourceAnswerRejects: every truncation, trailing data, an unknown
// version, lengths over their bounds or past the end, and a has_content
// byte other than 0 or 1 are errors, never a partial answer.
func TestResourceAnswerRejects(t *testing.T) {
	enc := mustAppendResource(t, sampleAnswer(bytes.Repeat([]byte{0x44}, 1500), "note\n"))
	for n := range len(enc) {
		if got, err := api.ParseResource(enc[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: parsed %+v", n, got)
		}
	}
	// Offsets of the variable part, after the fixed fields.
	const fixed = 1 + 16 + 16 + 8 + 16 + 8 + 8 + 8 + 8
	hdrLen := fixed
	sigLen := hdrLen + 4 + 300
	metaLen := sigLen + 2 + 64
	hasContent := metaLen + 4 + 90
	set32 := func(off int, v uint32) []byte {
		m := slices.Clone(enc)
		binary.BigEndian.PutUint32(m[off:], v)
		return m
	}
	flip := func(off int, v byte) []byte { m := slices.Clone(enc); m[off] = v; return m }
	neg := slices.Clone(enc)
	binary.BigEndian.PutUint64(neg[1+16+16+8+16+8:], math.MaxInt64+1)
	for name, data := range map[string][]byte{
		"empty":                {},
		"trailing byte":        append(slices.Clone(enc), 0),
		"version 0":            flip(0, 0),
		"version 2":            flip(0, 2),
		"negative size":        neg,
		"header over bound":    set32(hdrLen, api.MaxResourceHeaderBody+1),
		"header past the end":  set32(hdrLen, 1<<15),
		"header one short":     set32(hdrLen, 299),
		"header one long":      set32(hdrLen, 301),
		"signature past end":   func() []byte { m := slices.Clone(enc); binary.BigEndian.PutUint16(m[sigLen:], 0xffff); return m }(),
		"meta over bound":      set32(metaLen, coffer.MaxResourceMetaSize+1),
		"meta huge":            set32(metaLen, math.MaxUint32),
		"has_content 2":        flip(hasContent, 2),
		"has_content 0":        flip(hasContent, 0),
		"content over bound":   set32(hasContent+1, coffer.MaxInlineContentSize+1),
		"content one short":    set32(hasContent+1, 1499),
		"checkpoint too long":  set32(hasContent+1+4+1500, api.MaxCheckpointNote+1),
		"checkpoint past end":  set32(hasContent+1+4+1500, 6),
		"over the whole bound": append([]byte{1}, make([]byte, api.MaxResourceAnswer)...),
	} {
		if got, err := api.ParseResource(data); err == nil {
			t.Errorf("%s: parsed %+v", name, got)
		}
	}
}

func TestAppendResourceBounds(t *testing.T) {
	for name, edit := range map[string]func(*api.Resource){
		"header":     func(r *api.Resource) { r.Header.Body = make([]byte, api.MaxResourceHeaderBody+1) },
		"signature":  func(r *api.Resource) { r.Header.Signature = make([]byte, math.MaxUint16+1) },
		"meta":       func(r *api.Resource) { r.Meta = make([]byte, coffer.MaxResourceMetaSize+1) },
		"content":    func(r *api.Resource) { r.Content = make([]byte, coffer.MaxInlineContentSize+1) },
		"checkpoint": func(r *api.Resource) { r.Checkpoint = string(make([]byte, api.MaxCheckpointNote+1)) },
		"size":       func(r *api.Resource) { r.Size = -1 },
	} {
		r := sampleAnswer(nil, "")
		edit(r)
		if _, err := api.AppendResource(nil, r); err == nil {
			t.Errorf("%s over its bound was encoded", name)
		}
	}
}

func TestAcceptsResource(t *testing.T) {
	for accept, want := range map[string]bool{
		api.ResourceType:                              true,
		"application/json, " + api.ResourceType:       true,
		api.ResourceType + ";q=0.9, application/json": true,
		api.ResourceType + ";q=0":                     false,
		"application/json":                            false,
		"":                                            false,
		api.CommitPageType:                            false,
	} {
		if got := api.AcceptsResource(accept); got != want {
			t.Errorf("AcceptsResource(%q) = %v, want %v", accept, got, want)
		}
	}
}

// FuzzParseResource: whatever parses re-encodes to the same bytes (the
// encoding is canonical), and nothing panics.
func FuzzParseResource(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	for _, r := range []*api.Resource{sampleAnswer(nil, ""), sampleAnswer([]byte("ciphertext"), "note\n")} {
		b, _ := api.AppendResource(nil, r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := api.ParseResource(data)
		if err != nil {
			return
		}
		again, err := api.AppendResource(nil, r)
		if err != nil {
			t.Fatalf("a parsed answer does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, data)
		}
	})
}
