// Package content encrypts and decrypts resource content as an age v1 stream
// under a group epoch key.
//
// The construction, in plain words:
//
//   - age picks a fresh random 16-byte file key for every upload (every
//     version of every resource) and encrypts the content with it in 64 KiB
//     ChaCha20-Poly1305 chunks (age's STREAM). We use age unchanged.
//   - The file key is wrapped in a single age recipient stanza of type
//     "coffer-v1", whose body is AES-256-GCM of the file key with a random
//     96-bit nonce prepended, under
//     HKDF-SHA256(epoch key, info = "coffer/v1/resource-key" ‖ 0 ‖ group ‖
//     epoch ‖ resource id). Content moved to another group, epoch or resource
//     id does not decrypt. The nonce is random, not fixed, because Replace
//     wraps a new file key under the same derived key.
//   - The stanza's arguments repeat group, epoch and resource id in clear. They
//     are hints for diagnostics only: the binding is in the derived key, so a
//     reader that trusted a rewritten argument would still fail to unwrap.
//   - The age payload is age's STREAM, sealed and opened many chunks at a
//     time on all cores (stream.go), byte for byte what age writes and reads.
//   - The author signs the root of a Merkle tree over the age header and each
//     chunk (tree.go), the chunk count and the size. A reader proves the list
//     of leaf hashes against the root first, then each chunk against its leaf
//     before decrypting it: no plaintext of a chunk is released before it is
//     proven. This is what stops a group member who knows the epoch key from
//     passing off content as another member's: age's MAC only proves the
//     writer knew the file key.
//
// An upload holds one batch of chunks (see batchChunks) of plaintext and
// of ciphertext, a download at most a ring of them (see ringChunks), plus
// 32 bytes of leaf hash per chunk.
package content

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// Errors of Decrypt and of the reader it returns, and ErrChunkHashes. Each
// of them means the server (or a member who is not the header's author)
// served content other than what the author signed: clients report them as
// coffer.Security("content", err).
var (
	// ErrWrongKey means the file key is not wrapped for the expected group,
	// epoch and resource under this epoch key.
	ErrWrongKey = errors.New("content: not encrypted for this group, epoch and resource")
	// ErrTampered means a chunk or the age header does not match its leaf in
	// the signed chunk tree, or age rejected the header, or a chunk does not
	// authenticate.
	ErrTampered = errors.New("content: ciphertext was tampered with")
	// ErrTruncated means the ciphertext ended before the last chunk the
	// signed header counts.
	ErrTruncated = errors.New("content: ciphertext is truncated")
)

// stanzaType names the recipient stanza. The version is in the name, as in
// every coffer label: a future suite gets a new type and never reuses this.
const stanzaType = "coffer-v1"

// wrappedKeySize is the stanza body: nonce, 16-byte file key, tag.
const wrappedKeySize = 12 + 16 + 16

// binding identifies what a file key is wrapped for.
type binding struct {
	key      groupkey.EpochKey
	group    coffer.GroupID
	epoch    uint64
	resource coffer.ResourceID
}

// aead returns AES-256-GCM with random prepended nonces under the key
// derived for this group, epoch and resource. The AEAD needs no additional
// data: the key itself carries the whole context.
func (b *binding) aead() cipher.AEAD {
	info := make([]byte, 0, 16+8+16)
	info = append(info, b.group[:]...)
	info = binary.BigEndian.AppendUint64(info, b.epoch)
	info = append(info, b.resource[:]...)
	key, err := hkdf.Key(sha256.New, b.key[:], nil, string(coffer.SignedMessage(coffer.LabelResourceKey, info)), 32)
	if err != nil {
		panic("content: HKDF failed: " + err.Error()) // only for huge outputs
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("content: " + err.Error()) // the key is always 32 bytes
	}
	a, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic("content: " + err.Error())
	}
	return a
}

func (b *binding) args() []string {
	return []string{b.group.String(), strconv.FormatUint(b.epoch, 10), b.resource.String()}
}

// An Option adjusts Encrypt or Decrypt.
type Option func(*options)

type options struct {
	observe func(fileKey []byte)
}

// WithFileKeyObserver is an AUDITING HOOK for coffer-audit canary (through
// clientlib's Options.SecretObserver): Encrypt calls f with a copy of the
// file key it generates, and Decrypt with a copy of the file key it unwraps,
// before any content is processed. Nothing else may use it.
func WithFileKeyObserver(f func(fileKey []byte)) Option {
	return func(o *options) { o.observe = f }
}

func (o *options) observeFileKey(fileKey []byte) {
	if o.observe != nil {
		o.observe(append([]byte(nil), fileKey...))
	}
}

func newOptions(opts []Option) *options {
	o := &options{}
	for _, f := range opts {
		f(o)
	}
	return o
}

// recipient is the age.Recipient of a resource. It is unexported on purpose:
// the only way to use it is Encrypt, which also hashes the output for the
// signed header.
type recipient struct {
	binding
	opts *options
}

// WrapWithLabels implements age.RecipientWithLabels with a random label, so
// age refuses to add any other recipient to the file: a second recipient
// would let someone outside the group read the content.
func (r *recipient) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	s, err := r.Wrap(fileKey)
	if err != nil {
		return nil, nil, err
	}
	label := make([]byte, 16)
	rand.Read(label)
	return s, []string{hex.EncodeToString(label)}, nil
}

func (r *recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	r.opts.observeFileKey(fileKey)
	return []*age.Stanza{{
		Type: stanzaType,
		Args: r.args(),
		Body: r.aead().Seal(make([]byte, 0, wrappedKeySize), nil, fileKey, nil),
	}}, nil
}

// identity is the age.Identity of a resource; see recipient for why it is
// unexported.
type identity struct {
	binding
	opts *options
}

// Unwrap accepts exactly one coffer-v1 stanza. Files that Encrypt makes have
// only that one, so anything else was added by someone else.
func (id *identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if len(stanzas) != 1 {
		return nil, fmt.Errorf("%w: %d recipient stanzas, want 1", ErrTampered, len(stanzas))
	}
	s := stanzas[0]
	if s.Type != stanzaType {
		return nil, fmt.Errorf("%w: stanza type %.20q, want %q: %w", ErrWrongKey, s.Type, stanzaType, age.ErrIncorrectIdentity)
	}
	if len(s.Args) != 3 || len(s.Body) != wrappedKeySize {
		return nil, fmt.Errorf("%w: malformed %s stanza", ErrTampered, stanzaType)
	}
	// The arguments are unauthenticated hints. Comparing them first only
	// makes the error say which binding differs; the AEAD below decides.
	for i, name := range []string{"group", "epoch", "resource"} {
		if want := id.args()[i]; s.Args[i] != want {
			return nil, fmt.Errorf("%w: stanza is for %s %.40s, want %s: %w", ErrWrongKey, name, s.Args[i], want, age.ErrIncorrectIdentity)
		}
	}
	fileKey, err := id.aead().Open(nil, nil, s.Body, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: the file key does not unwrap under this epoch key for group %s, epoch %d, resource %s: %w",
			ErrWrongKey, id.group, id.epoch, id.resource, age.ErrIncorrectIdentity)
	}
	id.opts.observeFileKey(fileKey)
	return fileKey, nil
}

// maxAgeHeader bounds the age header a reader accepts. A coffer header is a
// version line, one coffer-v1 stanza and the MAC line: under 300 bytes.
const maxAgeHeader = coffer.MaxAgeHeaderSize

// Writer encrypts content as it is written, many chunks at a time on all
// cores, and builds the chunk tree as the ciphertext goes out. Close must be
// called to write the final chunk and the chunk hash list; after Close, Sum
// gives what the signed header binds.
//
// What it writes to dst is the resource blob: the age file, then the chunk
// hash list (32 bytes per leaf, see ChunkHashes). A reader fetches the list
// first, proves it against the signed root, and then the age file.
type Writer struct {
	dst    io.Writer
	aead   cipher.AEAD
	leaf0  []byte
	buf    []byte // plaintext not yet sealed, up to batchChunks chunks
	out    []byte // sealed batch
	next   uint64 // index of the next chunk to seal
	leaves []tlog.Hash
	tree   treeBuilder
	size   int64 // age file bytes written
	err    error
	closed bool
}

// Encrypt starts the age file of resource r at epoch of group g, encrypted
// under k, and writes it to dst as content is written to the returned
// Writer. The age header comes from filippo.io/age; the payload is sealed
// as age's STREAM (see stream.go). No goroutine outlives a call to Write or
// Close, so a Writer dropped without Close leaves nothing running.
func Encrypt(dst io.Writer, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID, opts ...Option) (*Writer, error) {
	o := newOptions(opts)
	var fileKey []byte
	capture := &options{observe: func(fk []byte) {
		fileKey = fk
		o.observeFileKey(fk)
	}}
	// age writes the header, the payload nonce and the sealed empty final
	// chunk; only the header is kept, with a nonce of our own.
	var hb bytes.Buffer
	aw, err := age.Encrypt(&hb, &recipient{binding{k, g, epoch, r}, capture})
	if err == nil {
		err = aw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("content: starting encryption: %w", err)
	}
	if hb.Len() < nonceSize+chacha20poly1305.Overhead || len(fileKey) != 16 {
		return nil, errors.New("content: age produced an unexpected file")
	}
	leaf0 := hb.Bytes()[:hb.Len()-chacha20poly1305.Overhead]
	nonce := leaf0[len(leaf0)-nonceSize:]
	rand.Read(nonce)
	w, err := newWriter(dst, fileKey, leaf0)
	clear(fileKey)
	return w, err
}

func newWriter(dst io.Writer, fileKey, leaf0 []byte) (*Writer, error) {
	w := &Writer{dst: dst, aead: payloadAEAD(fileKey, leaf0[len(leaf0)-nonceSize:]), leaf0: bytes.Clone(leaf0)}
	w.add(leafHash(leaf0))
	if _, err := dst.Write(leaf0); err != nil {
		return nil, err
	}
	w.size = int64(len(leaf0))
	n := batchChunks()
	w.buf = make([]byte, 0, n*chunkSize)
	w.out = make([]byte, n*encChunkSize)
	return w, nil
}

// Header returns leaf 0 of the file being written: the age header and the
// payload nonce. It holds the file key only wrapped under the epoch key,
// so it may be kept (outside the keystore) to resume an upload with
// EncryptAgain.
func (w *Writer) Header() []byte { return bytes.Clone(w.leaf0) }

// EncryptAgain starts a Writer that writes, byte for byte, the same file
// as the Writer whose Header is header, when given the same content: the
// file key is unwrapped from header under k, and the payload nonce is
// header's. A resumed upload uses it to produce the ciphertext from where
// the server's copy ends, and the chunk hashes of what came before.
// Errors match ErrWrongKey or ErrTampered.
func EncryptAgain(dst io.Writer, header []byte, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID, opts ...Option) (*Writer, error) {
	if len(header) > maxLeaf0 {
		return nil, fmt.Errorf("%w: the age header to resume is too long", ErrTampered)
	}
	hdr, err := readAgeHeader(bufio.NewReaderSize(bytes.NewReader(header), 512))
	if err != nil || len(header)-len(hdr) != nonceSize {
		return nil, fmt.Errorf("%w: not an age header followed by the payload nonce", ErrTampered)
	}
	fileKey, err := age.DecryptHeader(hdr, &identity{binding{k, g, epoch, r}, newOptions(opts)})
	if err != nil {
		if errors.Is(err, ErrWrongKey) {
			return nil, wrongKeyError(err)
		}
		return nil, fmt.Errorf("%w: age header: %v", ErrTampered, err)
	}
	w, err := newWriter(dst, fileKey, header)
	clear(fileKey)
	return w, err
}

func (w *Writer) add(h tlog.Hash) {
	w.leaves = append(w.leaves, h)
	w.tree.add(h)
}

// Write encrypts p. Ciphertext reaches dst a batch of chunks at a time; the
// last chunk written stays buffered until more content or Close says
// whether it is the final one.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("content: write after Close")
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

// flush seals the buffered chunks in parallel and writes them in order.
func (w *Writer) flush(final bool) error {
	count := (len(w.buf) + chunkSize - 1) / chunkSize
	if count == 0 {
		count = 1 // the empty final chunk of empty content
	}
	leaves := make([]tlog.Hash, count)
	n := sealBatch(w.aead, w.next, w.buf, w.out, final, leaves)
	w.buf = w.buf[:0]
	if _, err := w.dst.Write(w.out[:n]); err != nil {
		w.err = err
		return err
	}
	for _, l := range leaves {
		w.add(l)
	}
	w.next += uint64(count)
	w.size += int64(n)
	return nil
}

// Close seals the final chunk and writes the chunk hash list after the age
// file. Sum is valid only after Close returns nil.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	if err := w.flush(true); err != nil {
		return err
	}
	list := make([]byte, 0, len(w.leaves)*tlog.HashSize)
	for _, l := range w.leaves {
		list = append(list, l[:]...)
	}
	if _, err := w.dst.Write(list); err != nil {
		w.err = err
		return err
	}
	w.closed = true
	return nil
}

// Sum returns what the resource header binds: the chunk tree's root, the
// number of STREAM chunks and the age file's size. The blob written to dst
// is size + ChunkHashListSize(chunks) bytes long.
//
// It panics if Close has not returned nil: a root of a partial stream would
// be signed for content that cannot be decrypted.
func (w *Writer) Sum() (root [32]byte, chunks uint64, size int64) {
	if !w.closed {
		panic("content: Writer.Sum called before a successful Close")
	}
	return w.tree.root(), w.next, w.size
}

// ChunkError is a chunk that failed: it did not arrive whole (Err is
// ErrTruncated), or did not match its leaf in the signed tree or did not
// authenticate (ErrTampered). Chunk is the STREAM chunk index from 0, or -1
// for the age header.
type ChunkError struct {
	Chunk int64
	Err   error
	Why   string
}

func (e *ChunkError) Error() string {
	if e.Chunk < 0 {
		return fmt.Sprintf("%v: age header: %s", e.Err, e.Why)
	}
	return fmt.Sprintf("%v: chunk %d: %s", e.Err, e.Chunk, e.Why)
}

func (e *ChunkError) Unwrap() error { return e.Err }

// Reader is the plaintext of a resource's age file, released one chunk at
// a time and only after that chunk has been proven against the signed
// chunk tree and has authenticated.
//
// What a caller has seen when Read returns an error: exactly the plaintext
// of chunks 0 … k-1, all of them proven and authentic, where k is
// ChunkError.Chunk (nothing of chunk k or later). Those bytes are genuine
// but the resource is incomplete; a caller that needs the whole resource
// discards them. io.EOF comes only after the final chunk, so it means the
// caller has the whole content the author signed.
//
// A payload of more than one batch is read ahead and opened on all cores
// while the caller consumes it (see pipeline). The goroutines doing so end
// at EOF, at the first error, or at Close; a caller that stops reading
// before either should Close the Reader (one that is dropped is stopped
// when it is collected).
type Reader struct {
	src     io.Reader
	hashes  *ChunkHashes
	aead    cipher.AEAD
	chunks  uint64
	lastLen int // the final chunk's ciphertext length
	next    uint64
	batch   int // chunks read and opened at a time
	ct, pt  []byte
	pending []byte
	err     error
	pipe    *pipeline // the read-ahead of a payload of more than one batch
	held    bool      // pending is in a slot of pipe, not yet released
}

// ErrClosed is what Read returns after Close.
var ErrClosed = errors.New("content: read after Close")

// Decrypt returns a reader of the plaintext of the age file read from src,
// which must be the content of resource r at epoch of group g, encrypted
// under k, whose chunk hashes hashes were proven against the signed root
// with VerifyChunkHashes, and whose signed age file size is size.
//
// It reads and proves the age header before it returns, and never reads
// src past the end of the age file (src may go on with the chunk hash list).
// Errors match ErrWrongKey, ErrTampered or ErrTruncated (security failures;
// *ChunkError names the chunk), or wrap the I/O error of src.
func Decrypt(src io.Reader, hashes *ChunkHashes, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID, size int64, opts ...Option) (*Reader, error) {
	return decrypt(src, hashes, size, &identity{binding{k, g, epoch, r}, newOptions(opts)})
}

func decrypt(src io.Reader, hashes *ChunkHashes, size int64, id age.Identity) (*Reader, error) {
	// The limit keeps bufio from reading ahead into what follows the file.
	br := bufio.NewReaderSize(io.LimitReader(src, size), 512)
	hdr, err := readAgeHeader(br)
	if err != nil {
		return nil, err
	}
	leaf0 := append(hdr, make([]byte, nonceSize)...)
	if _, err := io.ReadFull(br, leaf0[len(hdr):]); err != nil {
		return nil, sourceError(-1, err)
	}
	if !hashes.leafOK(0, leaf0) {
		return nil, &ChunkError{Chunk: -1, Err: ErrTampered, Why: "does not match leaf 0 of the signed chunk tree"}
	}
	chunks := hashes.Chunks()
	lastLen := size - int64(len(leaf0)) - int64(chunks-1)*encChunkSize
	if chunks == 0 || lastLen < chacha20poly1305.Overhead || lastLen > encChunkSize ||
		(chunks > 1 && lastLen == chacha20poly1305.Overhead) {
		return nil, fmt.Errorf("%w: the signed size %d and %d chunks do not fit an age payload", ErrTampered, size, chunks)
	}
	fileKey, err := age.DecryptHeader(hdr, id)
	if err != nil {
		if errors.Is(err, ErrWrongKey) {
			return nil, wrongKeyError(err)
		}
		return nil, fmt.Errorf("%w: age header: %v", ErrTampered, err)
	}
	a := payloadAEAD(fileKey, leaf0[len(hdr):])
	clear(fileKey)
	r := &Reader{src: br, hashes: hashes, aead: a, chunks: chunks, lastLen: int(lastLen), batch: batchChunks()}
	if chunks > uint64(r.batch) {
		r.pipe = newPipeline(br, hashes, a, chunks, int(lastLen))
		// The pipeline's goroutines refer to it, never to r: a Reader
		// dropped midway is collected, and this stops them.
		runtime.AddCleanup(r, (*pipeline).stop, r.pipe)
		return r, nil
	}
	// The whole payload is one batch: buffers of exactly its size, not a
	// batch of 64 KiB chunks, for the many small resources.
	r.batch = int(chunks)
	payload := int(chunks-1)*encChunkSize + int(lastLen)
	r.ct = make([]byte, payload)
	r.pt = make([]byte, payload-int(chunks)*chacha20poly1305.Overhead)
	return r, nil
}

// readAgeHeader reads the age header up to and including its MAC line. The
// bytes are proven against leaf 0 before age parses them.
func readAgeHeader(br *bufio.Reader) ([]byte, error) {
	var hdr []byte
	for {
		line, err := br.ReadSlice('\n')
		hdr = append(hdr, line...)
		if len(hdr) > maxAgeHeader || errors.Is(err, bufio.ErrBufferFull) {
			return nil, &ChunkError{Chunk: -1, Err: ErrTampered, Why: "longer than any coffer age header"}
		}
		if err != nil {
			return nil, sourceError(-1, err)
		}
		if bytes.HasPrefix(line, []byte("--- ")) {
			return hdr, nil
		}
	}
}

// sourceError classifies a failed read of src: a stream that ended early is
// truncated at chunk, anything else is the connection's failure.
func sourceError(chunk int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &ChunkError{Chunk: chunk, Err: ErrTruncated, Why: "the ciphertext ended before it"}
	}
	return fmt.Errorf("content: reading ciphertext: %w", err)
}

// Read returns plaintext of proven, authenticated chunks only.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pipe != nil {
		return r.readPipe(p)
	}
	for len(r.pending) == 0 {
		if r.next == r.chunks && r.err == nil {
			r.err = io.EOF
		}
		if r.err != nil {
			r.ct, r.pt = nil, nil
			return 0, r.err
		}
		r.readBatch()
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

func (r *Reader) readPipe(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		pt, err := r.pipe.next(r.held)
		r.held = err == nil
		if err != nil {
			r.err = err
			r.pipe.done()
			return 0, err
		}
		r.pending = pt
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// Close stops the reading ahead: its goroutines end at once, but for one
// in a read of src, which ends when that read does (closing src ends it).
// Read then returns ErrClosed, once the plaintext of the chunk it was
// handing out is out. Close does not close src; it may be called from
// any goroutine, also during a Read.
func (r *Reader) Close() error {
	if r.pipe != nil {
		r.pipe.stop()
	}
	return nil
}

// readBatch reads up to batchChunks chunks, proves and opens them in
// parallel, and queues the plaintext of those before the first failure.
func (r *Reader) readBatch() {
	count := min(uint64(r.batch), r.chunks-r.next)
	final := r.next+count == r.chunks
	want := int(count-1) * encChunkSize
	if final {
		want += r.lastLen
	} else {
		want += encChunkSize
	}
	got, err := io.ReadFull(r.src, r.ct[:want])
	var after error
	if err != nil {
		// The chunks that did arrive whole are still released.
		complete := got / encChunkSize
		after = sourceError(int64(r.next)+int64(complete), err)
		count, final, want = uint64(complete), false, complete*encChunkSize
	}
	if count > 0 {
		first := int(r.next) + 1
		proven := func(j int, chunk []byte) bool { return r.hashes.leafOK(first+j, chunk) }
		good, ptLen, hashBad := openBatch(r.aead, proven, r.next, r.ct[:want], r.pt, int(count), final)
		r.pending = r.pt[:ptLen]
		if good < int(count) {
			why := "does not authenticate under the file key"
			if hashBad {
				why = "does not match its leaf in the signed chunk tree"
			}
			after = &ChunkError{Chunk: int64(r.next) + int64(good), Err: ErrTampered, Why: why}
		}
		r.next += uint64(good)
	}
	r.err = after
}

// wrongKeyError digs the identity's own error out of age's
// NoIdentityMatchError, whose message is less specific.
func wrongKeyError(err error) error {
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		for _, e := range nm.Errors {
			if errors.Is(e, ErrWrongKey) {
				return e
			}
		}
	}
	return err
}
