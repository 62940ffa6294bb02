package content

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// A verified range read fetches only the chunks that hold a plaintext range,
// each with its RFC 6962 inclusion proof (tlog.ProveRecord) against the
// signed chunk tree, and the age header leaf with its own proof, since the
// file key and payload nonce are in it. The server sends frames, in order:
// leaf 0 (the age header and payload nonce), then the leaves of chunks
// first … first+count-1. A frame is
//
//	uint16 big-endian  P, the number of proof hashes (at most MaxProofHashes)
//	P × 32 bytes       the tlog.RecordProof of the leaf in the tree of
//	                   chunks+1 leaves
//	uint32 big-endian  L, the leaf's length
//	L bytes            the leaf: the age header and nonce, or the chunk as
//	                   stored (ciphertext and tag)
//
// The reader checks every length against what the signed header allows
// before it reads or allocates, proves each leaf with tlog.CheckRecord at
// the index it asked for (so a frame of another chunk, resource or offset
// does not prove), and only then decrypts it. Seeking anywhere in a 1 GiB
// resource costs one chunk, the header and two proofs of 15 hashes.

// ChunkSize is the plaintext size of every STREAM chunk but the final one.
const ChunkSize = chunkSize

// MaxProofHashes bounds the proof of one leaf: a tree of 2^63 leaves needs
// 63 hashes.
const MaxProofHashes = 64

// maxLeaf0 bounds the age header leaf of a frame.
const maxLeaf0 = maxAgeHeader + nonceSize

// ErrRange means a range read asked for chunks the signed header does not
// have: a caller error, not tampering.
var ErrRange = errors.New("content: the range is outside the resource")

// ChunkSpan returns the chunks that hold plaintext bytes [offset,
// offset+length): the first and how many. length must be positive.
func ChunkSpan(offset, length int64) (first, count uint64) {
	first = uint64(offset / chunkSize)
	last := uint64((offset + length - 1) / chunkSize)
	return first, last - first + 1
}

// CheckSpan reports whether chunks first … first+count-1 exist in a file of
// chunks STREAM chunks. Errors match ErrRange.
func CheckSpan(first, count, chunks uint64) error {
	if count == 0 || first >= chunks || count > chunks-first {
		return fmt.Errorf("%w: chunks %d to %d of %d", ErrRange, first, first+count, chunks)
	}
	return nil
}

// CheckChunkProof checks that data is leaf n of the tree of leaves leaves
// whose root is root, with tlog.CheckRecord, as the reader does with every
// frame. It is exported for the test vectors.
func CheckChunkProof(proof [][32]byte, root [32]byte, leaves, n int64, data []byte) bool {
	p := make(tlog.RecordProof, len(proof))
	for i := range proof {
		p[i] = tlog.Hash(proof[i])
	}
	return tlog.CheckRecord(p, leaves, tlog.Hash(root), n, leafHash(data)) == nil
}

// WriteRange writes the frames of chunks first … first+count-1 of the blob
// (the age file of size bytes and then its list) to dst, a file of chunks
// STREAM chunks, with proofs from proofs: the verified list itself, or the
// stored tree (NewStoredProver). The span must pass CheckSpan. The server
// calls it; the reader trusts none of it.
func WriteRange(dst io.Writer, blob io.ReadSeeker, size int64, chunks uint64, proofs Prover, first, count uint64) error {
	if err := CheckSpan(first, count, chunks); err != nil {
		return err
	}
	if _, err := blob.Seek(0, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(io.LimitReader(blob, size), 512)
	hdr, err := readAgeHeader(br)
	if err != nil {
		return err
	}
	leaf0 := append(hdr, make([]byte, nonceSize)...)
	if _, err := io.ReadFull(br, leaf0[len(hdr):]); err != nil {
		return err
	}
	// The header's proof is asked for with the first batch's, so that a
	// short range costs one read of the stored tree.
	leaves := make([]int64, 0, 1+min(count, proofBatch))
	leaves = append(leaves, 0)
	for i := first; i < first+min(count, proofBatch); i++ {
		leaves = append(leaves, int64(i)+1)
	}
	ps, err := proofs.Proofs(leaves)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(dst, 256<<10)
	if err := writeFrame(bw, ps[0], leaf0); err != nil {
		return err
	}
	ps = ps[1:]
	pos := int64(len(leaf0)) + int64(first)*encChunkSize
	if _, err := blob.Seek(pos, io.SeekStart); err != nil {
		return err
	}
	src := bufio.NewReaderSize(io.LimitReader(blob, size-pos), 256<<10)
	chunk := make([]byte, encChunkSize)
	for i := first; i < first+count; i++ {
		if len(ps) == 0 {
			leaves = leaves[:0]
			for j := i; j < first+count && len(leaves) < proofBatch; j++ {
				leaves = append(leaves, int64(j)+1)
			}
			if ps, err = proofs.Proofs(leaves); err != nil {
				return err
			}
		}
		n, err := io.ReadFull(src, chunk)
		if err != nil && (err != io.ErrUnexpectedEOF || i != chunks-1) {
			return fmt.Errorf("content: reading chunk %d: %w", i, err)
		}
		if err := writeFrame(bw, ps[0], chunk[:n]); err != nil {
			return err
		}
		ps = ps[1:]
	}
	return bw.Flush()
}

// proofBatch is how many chunks' proofs WriteRange asks for at a time:
// one read of the stored tree per 16 MiB of content sent.
const proofBatch = 256

func writeFrame(w io.Writer, proof tlog.RecordProof, data []byte) error {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(proof)))
	for _, h := range proof {
		b = append(b, h[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	if _, err := w.Write(b); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// RangeReader is the plaintext of a range of a resource, released one chunk
// at a time and only after that chunk has been proven against the signed
// chunk tree and has authenticated.
//
// What a caller has seen when Read returns an error: exactly the range's
// plaintext up to the start of the chunk that ChunkError.Chunk names, all
// of it proven and authentic, and nothing of that chunk or later. io.EOF
// comes only once the whole range has been returned.
type RangeReader struct {
	src     *bufio.Reader
	root    tlog.Hash
	leaves  int64 // chunks + 1
	aead    cipher.AEAD
	chunks  uint64
	lastLen int
	next    uint64 // the next chunk to read
	end     uint64 // one past the last chunk of the range
	skip    int    // plaintext of chunk next to drop before the range starts
	remain  int64  // plaintext of the range not yet queued
	ct, pt  []byte
	proofs  []tlog.RecordProof
	pending []byte
	err     error
}

// DecryptRange returns a reader of plaintext bytes [offset, offset+length)
// of resource r at epoch of group g, encrypted under k, from src, the
// frames of chunks ChunkSpan(offset, length) as WriteRange sends them. root,
// chunks and size are the signed header's TreeRoot, Chunks and ContentSize.
// length must be positive.
//
// It reads and proves the age header leaf before it returns. Errors match
// ErrWrongKey, ErrTampered or ErrTruncated (security failures; *ChunkError
// names the chunk), ErrRange when the signed file has no such range, or
// wrap the I/O error of src.
func DecryptRange(src io.Reader, root [32]byte, chunks uint64, size int64, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID, offset, length int64, opts ...Option) (*RangeReader, error) {
	return decryptRange(src, root, chunks, size, &identity{binding{k, g, epoch, r}, newOptions(opts)}, offset, length)
}

func decryptRange(src io.Reader, root [32]byte, chunks uint64, size int64, id age.Identity, offset, length int64) (*RangeReader, error) {
	if offset < 0 || length <= 0 || chunks == 0 || chunks > uint64(size) {
		return nil, fmt.Errorf("%w: offset %d, length %d", ErrRange, offset, length)
	}
	first, count := ChunkSpan(offset, length)
	if err := CheckSpan(first, count, chunks); err != nil {
		return nil, err
	}
	rr := &RangeReader{src: bufio.NewReaderSize(src, 256<<10), root: tlog.Hash(root), leaves: int64(chunks) + 1,
		chunks: chunks, next: first, end: first + count, skip: int(offset - int64(first)*chunkSize), remain: length}
	proof, leaf0, err := rr.readFrame(-1, maxLeaf0, nil)
	if err != nil {
		return nil, err
	}
	if tlog.CheckRecord(proof, rr.leaves, rr.root, 0, leafHash(leaf0)) != nil {
		return nil, &ChunkError{Chunk: -1, Err: ErrTampered, Why: "not proven against the signed chunk tree at leaf 0"}
	}
	hdr, err := readAgeHeader(bufio.NewReaderSize(bytes.NewReader(leaf0), 512))
	if err != nil || len(leaf0)-len(hdr) != nonceSize {
		return nil, &ChunkError{Chunk: -1, Err: ErrTampered, Why: "not an age header followed by the payload nonce"}
	}
	lastLen := size - int64(len(leaf0)) - int64(chunks-1)*encChunkSize
	if lastLen < chacha20poly1305.Overhead || lastLen > encChunkSize || (chunks > 1 && lastLen == chacha20poly1305.Overhead) {
		return nil, fmt.Errorf("%w: the signed size %d and %d chunks do not fit an age payload", ErrTampered, size, chunks)
	}
	rr.lastLen = int(lastLen)
	if plain := int64(chunks-1)*chunkSize + lastLen - chacha20poly1305.Overhead; offset+length > plain {
		return nil, fmt.Errorf("%w: bytes %d to %d of %d", ErrRange, offset, offset+length, plain)
	}
	fileKey, err := age.DecryptHeader(hdr, id)
	if err != nil {
		if errors.Is(err, ErrWrongKey) {
			return nil, wrongKeyError(err)
		}
		return nil, fmt.Errorf("%w: age header: %v", ErrTampered, err)
	}
	rr.aead = payloadAEAD(fileKey, leaf0[len(hdr):])
	clear(fileKey)
	n := min(uint64(batchChunks()), count)
	rr.ct = make([]byte, int(n)*encChunkSize)
	rr.pt = make([]byte, int(n)*chunkSize)
	rr.proofs = make([]tlog.RecordProof, n)
	return rr, nil
}

// readFrame reads one frame of chunk (-1 for the age header): its proof,
// and its leaf into dst, which is as long as the signed tree says the leaf
// is, or, when dst is nil, into a new slice of at most maxLen bytes.
func (r *RangeReader) readFrame(chunk int64, maxLen int, dst []byte) (tlog.RecordProof, []byte, error) {
	var p [2]byte
	if _, err := io.ReadFull(r.src, p[:]); err != nil {
		return nil, nil, sourceError(chunk, err)
	}
	np := int(binary.BigEndian.Uint16(p[:]))
	if np > MaxProofHashes {
		return nil, nil, &ChunkError{Chunk: chunk, Err: ErrTampered, Why: fmt.Sprintf("served with a proof of %d hashes", np)}
	}
	proof := make(tlog.RecordProof, np)
	for i := range proof {
		if _, err := io.ReadFull(r.src, proof[i][:]); err != nil {
			return nil, nil, sourceError(chunk, err)
		}
	}
	var l [4]byte
	if _, err := io.ReadFull(r.src, l[:]); err != nil {
		return nil, nil, sourceError(chunk, err)
	}
	n := int64(binary.BigEndian.Uint32(l[:]))
	switch {
	case dst == nil && n > int64(maxLen):
		return nil, nil, &ChunkError{Chunk: chunk, Err: ErrTampered, Why: fmt.Sprintf("served as %d bytes, more than an age header", n)}
	case dst != nil && n != int64(len(dst)):
		return nil, nil, &ChunkError{Chunk: chunk, Err: ErrTampered, Why: fmt.Sprintf("served as %d bytes, the signed tree has %d", n, len(dst))}
	}
	if dst == nil {
		dst = make([]byte, n)
	}
	if _, err := io.ReadFull(r.src, dst); err != nil {
		return nil, nil, sourceError(chunk, err)
	}
	return proof, dst, nil
}

// Read returns plaintext of the range from proven, authenticated chunks only.
func (r *RangeReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.remain == 0 {
			r.err = io.EOF
			return 0, io.EOF
		}
		r.readBatch()
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// readBatch reads up to a batch of frames, proves and opens their chunks in
// parallel, and queues the range's plaintext of those before the first
// failure.
func (r *RangeReader) readBatch() {
	count := min(uint64(len(r.proofs)), r.end-r.next)
	var after error
	want := 0
	got := uint64(0)
	for ; got < count; got++ {
		i := r.next + got
		l := encChunkSize
		if i == r.chunks-1 {
			l = r.lastLen
		}
		proof, _, err := r.readFrame(int64(i), 0, r.ct[want:want+l])
		if err != nil {
			after = err
			break
		}
		r.proofs[got] = proof
		want += l
	}
	if got > 0 {
		first, proofs := int64(r.next)+1, r.proofs
		proven := func(j int, chunk []byte) bool {
			return tlog.CheckRecord(proofs[j], r.leaves, r.root, first+int64(j), leafHash(chunk)) == nil
		}
		final := r.next+got == r.chunks
		good, ptLen, hashBad := openBatch(r.aead, proven, r.next, r.ct[:want], r.pt, int(got), final)
		pt := r.pt[:ptLen]
		if good > 0 {
			pt = pt[min(r.skip, len(pt)):]
			r.skip = 0
			pt = pt[:min(int64(len(pt)), r.remain)]
			r.remain -= int64(len(pt))
		}
		r.pending = pt
		if good < int(got) {
			why := "does not authenticate under the file key"
			if hashBad {
				why = "not proven against the signed chunk tree at its index"
			}
			after = &ChunkError{Chunk: int64(r.next) + int64(good), Err: ErrTampered, Why: why}
		}
		r.next += uint64(good)
	}
	r.err = after
	if after == nil && r.remain == 0 {
		r.err = io.EOF
	}
}
