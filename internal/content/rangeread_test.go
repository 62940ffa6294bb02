package content_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/content"
)

// frame is one leaf of a range response, as the server sends it.
type frame struct {
	proof [][32]byte
	data  []byte
}

// serveRange is what an honest server answers for chunks first … first+count-1.
func serveRange(tb testing.TB, s sealed, first, count uint64) []frame {
	tb.Helper()
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	if err := content.WriteRange(&b, bytes.NewReader(s.blob), s.size, s.chunks, hs, first, count); err != nil {
		tb.Fatal(err)
	}
	return parseFrames(tb, b.Bytes())
}

func parseFrames(tb testing.TB, b []byte) []frame {
	tb.Helper()
	var fs []frame
	for len(b) > 0 {
		var f frame
		np := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		for range np {
			f.proof = append(f.proof, [32]byte(b[:32]))
			b = b[32:]
		}
		n := int(binary.BigEndian.Uint32(b))
		f.data = bytes.Clone(b[4 : 4+n])
		b = b[4+n:]
		fs = append(fs, f)
	}
	return fs
}

func encodeFrames(fs []frame) []byte {
	var b []byte
	for _, f := range fs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f.proof)))
		for _, h := range f.proof {
			b = append(b, h[:]...)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(f.data)))
		b = append(b, f.data...)
	}
	return b
}

// readRange decrypts wire as the range [offset, offset+length) of s and
// returns what the caller received before the error.
func readRange(tg target, s sealed, wire []byte, offset, length int64) ([]byte, error) {
	r, err := content.DecryptRange(bytes.NewReader(wire), s.root, s.chunks, s.size, tg.k, tg.g, tg.epoch, tg.r, offset, length)
	if err != nil {
		return nil, err
	}
	return readChunks(r)
}

func TestRangeRoundTrip(t *testing.T) {
	const c = content.ChunkSize
	tg := newTarget()
	plaintext := plaintextOf(40*c + 99) // 41 chunks: several batches
	s := MustEncrypt(t, tg, plaintext)
	n := int64(len(plaintext))
	for _, rg := range [][2]int64{
		{0, 1}, {0, n}, {1, c}, {c - 1, 2}, {c, c}, {5*c + 3, 20*c + 7}, {n - 1, 1}, {n - 99, 99},
		{40 * c, 99}, {39*c + 5, c}, {17 * c, 1}, {3, n - 3},
	} {
		off, l := rg[0], rg[1]
		first, count := content.ChunkSpan(off, l)
		got, err := readRange(tg, s, encodeFrames(serveRange(t, s, first, count)), off, l)
		if err != nil || !bytes.Equal(got, plaintext[off:off+l]) {
			t.Errorf("range %d+%d: %d bytes, %v", off, l, len(got), err)
		}
	}
	// Small files: one short final chunk, exactly one chunk, and the
	// empty final chunk cannot be asked for (no bytes).
	for _, size := range []int{1, 100, c, c + 1} {
		p := plaintextOf(size)
		s := MustEncrypt(t, tg, p)
		first, count := content.ChunkSpan(0, int64(size))
		got, err := readRange(tg, s, encodeFrames(serveRange(t, s, first, count)), 0, int64(size))
		if err != nil || !bytes.Equal(got, p) {
			t.Errorf("size %d: %d bytes, %v", size, len(got), err)
		}
	}
}

func TestRangeOutside(t *testing.T) {
	const c = content.ChunkSize
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(3*c+10))
	wire := encodeFrames(serveRange(t, s, 3, 1))
	for _, rg := range [][2]int64{{3 * c, 11}, {3*c + 10, 1}, {-1, 5}, {0, 0}, {4 * c, 1}} {
		if _, err := readRange(tg, s, wire, rg[0], rg[1]); !errors.Is(err, content.ErrRange) {
			t.Errorf("range %d+%d: %v, want ErrRange", rg[0], rg[1], err)
		}
	}
	hs, _ := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	for _, sp := range [][2]uint64{{4, 1}, {0, 0}, {2, 3}, {1 << 63, 1 << 63}} {
		if err := content.WriteRange(io.Discard, bytes.NewReader(s.blob), s.size, s.chunks, hs, sp[0], sp[1]); !errors.Is(err, content.ErrRange) {
			t.Errorf("serving chunks %d+%d: %v, want ErrRange", sp[0], sp[1], err)
		}
	}
}

// TestRangeTampering serves chunks 2 … 9 of a 41-chunk file for the range
// from the middle of chunk 2 to the middle of chunk 9, mangled in every way
// a server can. Each fails at the chunk concerned, as a typed error naming
// it, after exactly the range's plaintext before that chunk.
func TestRangeTampering(t *testing.T) {
	const c = content.ChunkSize
	tg := newTarget()
	plaintext := plaintextOf(40*c + 99)
	s := MustEncrypt(t, tg, plaintext)
	other := MustEncrypt(t, newTarget(), plaintextOf(40*c+99))
	otherSame := MustEncrypt(t, tg, plaintextOf(40*c+99)) // same resource, another upload
	off, l := int64(2*c+100), int64(7*c)
	first, count := content.ChunkSpan(off, l)
	if first != 2 || count != 8 {
		t.Fatalf("span %d+%d", first, count)
	}
	honest := func() []frame { return serveRange(t, s, first, count) }
	// frames[0] is the header, frames[1+j] chunk first+j.
	at := func(chunk int) int { return 1 + chunk - int(first) }
	tests := []struct {
		name    string
		wire    func() []byte
		chunk   int64 // the chunk that must fail; -1 the header
		wantErr error
	}{
		{"swapped chunks 4 and 5", func() []byte {
			fs := honest()
			fs[at(4)], fs[at(5)] = fs[at(5)], fs[at(4)]
			return encodeFrames(fs)
		}, 4, content.ErrTampered},
		{"chunk 5 swapped in with chunk 4's proof", func() []byte {
			fs := honest()
			fs[at(4)].data = fs[at(5)].data
			return encodeFrames(fs)
		}, 4, content.ErrTampered},
		{"chunk 6 from another resource, with its proof", func() []byte {
			fs := honest()
			fs[at(6)] = serveRange(t, other, 6, 1)[1]
			return encodeFrames(fs)
		}, 6, content.ErrTampered},
		{"chunk 3 from another upload of the same resource, with its proof", func() []byte {
			fs := honest()
			fs[at(3)] = serveRange(t, otherSame, 3, 1)[1]
			return encodeFrames(fs)
		}, 3, content.ErrTampered},
		{"reordered: chunk 8 moved before 5", func() []byte {
			fs := honest()
			c8 := fs[at(8)]
			copy(fs[at(6):at(9)], fs[at(5):at(8)])
			fs[at(5)] = c8
			return encodeFrames(fs)
		}, 5, content.ErrTampered},
		{"chunk 7 repeated as 8", func() []byte {
			fs := honest()
			fs[at(8)] = fs[at(7)]
			return encodeFrames(fs)
		}, 8, content.ErrTampered},
		{"forged tree node in chunk 5's proof", func() []byte {
			fs := honest()
			fs[at(5)].proof[2][7] ^= 1
			return encodeFrames(fs)
		}, 5, content.ErrTampered},
		{"chunk 2's proof one node short", func() []byte {
			fs := honest()
			fs[at(2)].proof = fs[at(2)].proof[:len(fs[at(2)].proof)-1]
			return encodeFrames(fs)
		}, 2, content.ErrTampered},
		{"chunk 9's proof one node long", func() []byte {
			fs := honest()
			fs[at(9)].proof = append(fs[at(9)].proof, fs[at(9)].proof[0])
			return encodeFrames(fs)
		}, 9, content.ErrTampered},
		{"chunk 3 with an absurd proof", func() []byte {
			fs := honest()
			fs[at(3)].proof = make([][32]byte, content.MaxProofHashes+1)
			return encodeFrames(fs)
		}, 3, content.ErrTampered},
		{"flipped bit in chunk 7", func() []byte {
			fs := honest()
			fs[at(7)].data[9] ^= 1
			return encodeFrames(fs)
		}, 7, content.ErrTampered},
		{"chunk 6 one byte short", func() []byte {
			fs := honest()
			fs[at(6)].data = fs[at(6)].data[:len(fs[at(6)].data)-1]
			return encodeFrames(fs)
		}, 6, content.ErrTampered},
		{"the proof is for another offset: chunks 3 … 10 served", func() []byte {
			return encodeFrames(serveRange(t, s, first+1, count))
		}, 2, content.ErrTampered},
		{"the proof is for another offset: chunks 1 … 8 served", func() []byte {
			return encodeFrames(serveRange(t, s, first-1, count))
		}, 2, content.ErrTampered},
		{"truncated after chunk 5", func() []byte {
			return encodeFrames(honest()[:at(6)])
		}, 6, content.ErrTruncated},
		{"truncated inside chunk 6", func() []byte {
			w := encodeFrames(honest()[:at(7)])
			return w[:len(w)-1000]
		}, 6, content.ErrTruncated},
		{"truncated inside chunk 4's proof", func() []byte {
			w := encodeFrames(honest()[:at(4)])
			return append(w, encodeFrames(honest()[at(4):at(5)])[:40]...)
		}, 4, content.ErrTruncated},
		{"no chunks at all", func() []byte { return encodeFrames(honest()[:1]) }, 2, content.ErrTruncated},
		{"the header of another upload, with its proof", func() []byte {
			fs := honest()
			fs[0] = serveRange(t, otherSame, 0, 1)[0]
			return encodeFrames(fs)
		}, -1, content.ErrTampered},
		{"forged tree node in the header's proof", func() []byte {
			fs := honest()
			fs[0].proof[0][0] ^= 1
			return encodeFrames(fs)
		}, -1, content.ErrTampered},
		{"the header served as chunk 2's frame", func() []byte {
			fs := honest()
			fs[at(2)] = fs[0]
			return encodeFrames(fs)
		}, 2, content.ErrTampered},
		{"an overlong header leaf", func() []byte {
			fs := honest()
			fs[0].data = make([]byte, 1<<20)
			return encodeFrames(fs)
		}, -1, content.ErrTampered},
		{"truncated inside the header", func() []byte { return encodeFrames(honest())[:100] }, -1, content.ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readRange(tg, s, tt.wire(), off, l)
			var ce *content.ChunkError
			if !errors.As(err, &ce) || ce.Chunk != tt.chunk || !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v at chunk %d", err, tt.wantErr, tt.chunk)
			}
			if tt.chunk >= 0 && !strings.Contains(err.Error(), fmt.Sprintf("chunk %d", tt.chunk)) {
				t.Errorf("%v does not name the chunk", err)
			}
			want := []byte{}
			if tt.chunk > int64(first) {
				want = plaintext[off : tt.chunk*c]
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the caller received %d bytes, want exactly the %d before chunk %d", len(got), len(want), tt.chunk)
			}
		})
	}
}

// TestRangeAuthorForgedChunk: a member who signs a tree over a chunk that
// does not authenticate under the file key gets no plaintext of it.
func TestRangeAuthorForgedChunk(t *testing.T) {
	const c = content.ChunkSize
	tg := newTarget()
	plaintext := plaintextOf(5*c + 1)
	s := MustEncrypt(t, tg, plaintext)
	ageFile := bytes.Clone(s.age())
	hdr := int(s.size) - 5*(c+16) - 1 - 16
	ageFile[hdr+3*(c+16)+5] ^= 1
	list, root, chunks, ok := content.TreeOf(ageFile)
	if !ok {
		t.Fatal("no tree")
	}
	forged := sealed{blob: append(ageFile, list...), root: root, chunks: chunks, size: s.size}
	got, err := readRange(tg, forged, encodeFrames(serveRange(t, forged, 2, 3)), 2*c, 3*c)
	var ce *content.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != 3 || !errors.Is(err, content.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered at chunk 3", err)
	}
	if !bytes.Equal(got, plaintext[2*c:3*c]) {
		t.Errorf("the caller received %d bytes, want the %d of chunk 2", len(got), c)
	}
}

func TestRangeWrongKey(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(100))
	wrong := tg
	wrong.k[0] ^= 1
	if _, err := readRange(wrong, s, encodeFrames(serveRange(t, s, 0, 1)), 0, 10); !errors.Is(err, content.ErrWrongKey) {
		t.Fatalf("got %v, want ErrWrongKey", err)
	}
}

// TestRangeForgedChunk is the attack the proofs exist for: a member who
// holds the epoch key seals chunk 5 anew, with the honest proof of chunk 5.
// The chunk authenticates under the file key; the proof refuses it before
// any of its plaintext is released.
func TestRangeForgedChunk(t *testing.T) {
	const c = content.ChunkSize
	tg := newTarget()
	var fileKey []byte
	var buf bytes.Buffer
	w, err := content.Encrypt(&buf, tg.k, tg.g, tg.epoch, tg.r, content.WithFileKeyObserver(func(fk []byte) { fileKey = fk }))
	if err != nil {
		t.Fatal(err)
	}
	plaintext := plaintextOf(12 * c)
	w.Write(plaintext)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := sealed{blob: buf.Bytes()}
	s.root, s.chunks, s.size = w.Sum()
	fs := serveRange(t, s, 4, 3)
	nonce := fs[0].data[len(fs[0].data)-16:]
	fs[2].data = content.SealChunk(fileKey, nonce, 5, false, bytes.Repeat([]byte("forged!!"), c/8))
	got, err := readRange(tg, s, encodeFrames(fs), 4*c, 3*c)
	var ce *content.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != 5 || !strings.Contains(err.Error(), "signed chunk tree") {
		t.Fatalf("got %v, want chunk 5 refused by the tree", err)
	}
	if !bytes.Equal(got, plaintext[4*c:5*c]) {
		t.Fatalf("the caller received %d bytes, want the %d of chunk 4", len(got), c)
	}
}

// TestEncryptAgain: a Writer started from another's header writes the same
// blob byte for byte for the same content (what a resumed upload relies
// on), and refuses a header for another binding.
func TestEncryptAgain(t *testing.T) {
	tg := newTarget()
	for _, n := range sizes {
		p := plaintextOf(n)
		var first bytes.Buffer
		w, err := content.Encrypt(&first, tg.k, tg.g, tg.epoch, tg.r)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		w2, err := content.EncryptAgain(&again, w.Header(), tg.k, tg.g, tg.epoch, tg.r)
		if err != nil {
			t.Fatal(err)
		}
		for q := p; len(q) > 0; q = q[min(len(q), 1000):] {
			w2.Write(q[:min(len(q), 1000)]) // other write sizes, same chunks
		}
		if err := w2.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first.Bytes(), again.Bytes()) {
			t.Fatalf("size %d: the blob written again differs", n)
		}
		r1, c1, s1 := w.Sum()
		r2, c2, s2 := w2.Sum()
		if r1 != r2 || c1 != c2 || s1 != s2 {
			t.Fatalf("size %d: sums differ", n)
		}
	}
	var b bytes.Buffer
	w, _ := content.Encrypt(&b, tg.k, tg.g, tg.epoch, tg.r)
	other := newTarget()
	if _, err := content.EncryptAgain(io.Discard, w.Header(), other.k, tg.g, tg.epoch, tg.r); !errors.Is(err, content.ErrWrongKey) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := content.EncryptAgain(io.Discard, w.Header()[:len(w.Header())-1], tg.k, tg.g, tg.epoch, tg.r); !errors.Is(err, content.ErrTampered) {
		t.Fatalf("a cut header: %v", err)
	}
}
