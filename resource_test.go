package coffer_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/cofferhq/coffer"
)

func MustResourceHeader(tb testing.TB) *coffer.ResourceHeader {
	tb.Helper()
	return &coffer.ResourceHeader{
		Resource:    coffer.NewResourceID(),
		Group:       coffer.NewGroupID(),
		Epoch:       3,
		Author:      coffer.NewAccountID(),
		Version:     1,
		TreeRoot:    sha256.Sum256([]byte("ciphertext")),
		Chunks:      3,
		ContentSize: 2*(64<<10+16) + 1234,
		MetaHash:    sha256.Sum256([]byte("metadata")),
		Created:     1_795_000_000_000,
	}
}

func MustHeaderSigner(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, priv
}

func TestResourceHeaderRoundTrip(t *testing.T) {
	h := MustResourceHeader(t)
	b := h.Marshal()
	if len(b) != coffer.ResourceHeaderSize {
		t.Fatalf("encoding is %d bytes, want %d", len(b), coffer.ResourceHeaderSize)
	}
	if b[0] != coffer.ResourceSuite || coffer.ResourceSuite != 2 {
		t.Fatalf("encoding starts with %d, want the suite version", b[0])
	}
	got, err := coffer.ParseResourceHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("round trip changed the header:\n got %+v\nwant %+v", got, h)
	}
}

func TestParseResourceHeaderRejects(t *testing.T) {
	valid := MustResourceHeader(t)
	tests := []struct {
		name   string
		mangle func(h *coffer.ResourceHeader, b []byte) []byte
	}{
		{"empty", func(_ *coffer.ResourceHeader, _ []byte) []byte { return nil }},
		{"short", func(_ *coffer.ResourceHeader, b []byte) []byte { return b[:len(b)-1] }},
		{"trailing byte", func(_ *coffer.ResourceHeader, b []byte) []byte { return append(b, 0) }},
		{"version 0 encoding", func(_ *coffer.ResourceHeader, b []byte) []byte { b[0] = 0; return b }},
		{"suite 1 encoding", func(_ *coffer.ResourceHeader, b []byte) []byte { b[0] = 1; return b }},
		{"suite 4 encoding", func(_ *coffer.ResourceHeader, b []byte) []byte { b[0] = 4; return b }},
		{"version 255 encoding", func(_ *coffer.ResourceHeader, b []byte) []byte { b[0] = 255; return b }},
		{"no chunks", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Chunks = 0; return h.Marshal() }},
		{"more chunks than the size holds", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Chunks = 4; return h.Marshal() }},
		{"huge chunk count", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Chunks = 1<<64 - 1; return h.Marshal() }},
		{"fewer chunks than the size needs", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Chunks = 1; return h.Marshal() }},
		{"empty file", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Chunks, h.ContentSize = 1, 0; return h.Marshal() }},
		{"zero resource", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Resource = coffer.ResourceID{}; return h.Marshal() }},
		{"zero group", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Group = coffer.GroupID{}; return h.Marshal() }},
		{"zero author", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Author = coffer.AccountID{}; return h.Marshal() }},
		{"version 0", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Version = 0; return h.Marshal() }},
		{"negative size", func(h *coffer.ResourceHeader, _ []byte) []byte { h.ContentSize = -1; return h.Marshal() }},
		{"negative time", func(h *coffer.ResourceHeader, _ []byte) []byte { h.Created = -1; return h.Marshal() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := *valid
			_, err := coffer.ParseResourceHeader(tt.mangle(&h, h.Marshal()))
			if coffer.ErrorCode(err) != coffer.EINVALID {
				t.Fatalf("got %v, want an EINVALID error", err)
			}
		})
	}
}

func TestSignedHeader(t *testing.T) {
	pub, priv := MustHeaderSigner(t)
	otherPub, otherPriv := MustHeaderSigner(t)
	h := MustResourceHeader(t)
	sh := coffer.SignResourceHeader(h, priv)
	got, err := sh.Verify(pub)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("verified header differs:\n got %+v\nwant %+v", got, h)
	}

	// A signature over the same body by another member: the forgery the
	// header exists to stop.
	forged := coffer.SignResourceHeader(h, otherPriv)
	// The same signature over a body in which the author is someone else.
	h2 := *h
	h2.Author = coffer.NewAccountID()
	reattributed := coffer.SignedHeader{Body: h2.Marshal(), Signature: sh.Signature}
	// A signature made for another purpose over the same bytes.
	crossLabel := coffer.SignedHeader{Body: sh.Body, Signature: coffer.Sign(priv, coffer.LabelCommit, sh.Body)}

	tests := []struct {
		name string
		sh   coffer.SignedHeader
		key  ed25519.PublicKey
	}{
		{"other author's key", sh, otherPub},
		{"forged by another member", forged, pub},
		{"reattributed", reattributed, pub},
		{"signature for another label", crossLabel, pub},
		{"no signature", coffer.SignedHeader{Body: sh.Body}, pub},
		{"short key", sh, pub[:31]},
		{"nil key", sh, nil},
	}
	for _, tt := range tests {
		if _, err := tt.sh.Verify(tt.key); coffer.ErrorCode(err) != coffer.EINVALID {
			t.Errorf("%s: got %v, want an EINVALID error", tt.name, err)
		}
	}
}

// TestSignedHeaderMangling flips every bit of body and signature in turn;
// each variant must fail to verify.
func TestSignedHeaderMangling(t *testing.T) {
	pub, priv := MustHeaderSigner(t)
	sh := coffer.SignResourceHeader(MustResourceHeader(t), priv)
	for _, field := range []*[]byte{&sh.Body, &sh.Signature} {
		for i := range *field {
			for bit := range 8 {
				(*field)[i] ^= 1 << bit
				if _, err := sh.Verify(pub); err == nil {
					t.Fatalf("verified with byte %d bit %d flipped", i, bit)
				}
				(*field)[i] ^= 1 << bit
			}
		}
	}
	if _, err := sh.Verify(pub); err != nil {
		t.Fatalf("unmangled header no longer verifies: %v", err)
	}
}

func FuzzParseResourceHeader(f *testing.F) {
	h := MustResourceHeader(f)
	f.Add(h.Marshal())
	h.ContentSize, h.Chunks, h.Created, h.Epoch, h.Version = 200, 1, 0, 0, 1<<64-1
	f.Add(h.Marshal())
	h.Suite = coffer.ResourceSuiteHybrid
	f.Add(h.Marshal())
	f.Add(MustResourceHeader(f).Marshal()[:coffer.ResourceHeaderSize-1])
	f.Add([]byte{coffer.ResourceSuite})
	f.Add([]byte{coffer.ResourceSuiteHybrid})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := coffer.ParseResourceHeader(b)
		if err != nil {
			var e *coffer.Error
			if !errors.As(err, &e) || e.Code != coffer.EINVALID {
				t.Fatalf("error %v is not an EINVALID *coffer.Error", err)
			}
			return
		}
		// The chunk count bounds the hash list a reader allocates.
		if h.Chunks == 0 || h.Chunks > uint64(h.ContentSize)/(64<<10+16)+1 {
			t.Fatalf("accepted %d chunks for %d bytes", h.Chunks, h.ContentSize)
		}
		if got := h.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Marshal(Parse(b)) != b:\n got %x\nwant %x", got, b)
		}
	})
}
