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
//   - The whole age file is hashed with SHA-256 as it is written; the author
//     signs that hash and the size in the resource header. While reading, the
//     ciphertext is hashed as age consumes it, and at the end the hash and size
//     must match the signed header. This is what stops a group member who
//     knows the epoch key from passing off content as another member's: age's
//     MAC only proves the writer knew the file key.
//
// Neither direction ever holds more than a few chunks of content in memory:
// age's one chunk of plaintext, and up to four copies of ciphertext waiting
// for SHA-256, which runs on a goroutine of its own (see hasher).
package content

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"filippo.io/age"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// Errors of Decrypt and of the reader it returns. Each of them means the
// server (or a member who is not the header's author) served content other
// than what the author signed: clients report them as
// coffer.Security("content", err) and discard everything read so far.
var (
	// ErrWrongKey means the file key is not wrapped for the expected group,
	// epoch and resource under this epoch key.
	ErrWrongKey = errors.New("content: not encrypted for this group, epoch and resource")
	// ErrTampered means age rejected the file: a malformed header, a bad
	// header MAC, a chunk that does not authenticate, or data after the end.
	ErrTampered = errors.New("content: ciphertext was tampered with")
	// ErrTruncated means the ciphertext ended before the size in the signed
	// header and before age's authenticated end of stream.
	ErrTruncated = errors.New("content: ciphertext is truncated")
	// ErrHashMismatch means the ciphertext is not the one whose hash and size
	// the author signed, although it may be a well-formed age file.
	ErrHashMismatch = errors.New("content: ciphertext does not match the signed resource header; discard all plaintext read from this stream")
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

// Writer encrypts content as it is written and hashes the ciphertext on its
// way out. Close must be called to write the final chunk; after Close, Sum
// gives the hash and size for the signed header.
type Writer struct {
	age    io.WriteCloser
	out    *hashingWriter
	closed bool
}

// Encrypt starts an age file for resource r at epoch of group g, encrypted
// under k, and writes it to dst as content is written to the returned Writer.
//
// The ciphertext is hashed on a goroutine that runs only while ciphertext
// written to dst waits to be hashed (see hasher): a Writer that is dropped
// without Close leaves nothing running.
func Encrypt(dst io.Writer, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID, opts ...Option) (*Writer, error) {
	out := &hashingWriter{w: dst, h: newHasher()}
	w, err := age.Encrypt(out, &recipient{binding{k, g, epoch, r}, newOptions(opts)})
	if err != nil {
		out.h.wait()
		return nil, fmt.Errorf("content: starting encryption: %w", err)
	}
	return &Writer{age: w, out: out}, nil
}

// Write encrypts p. The ciphertext reaches dst in whole 64 KiB chunks.
func (w *Writer) Write(p []byte) (int, error) { return w.age.Write(p) }

// Close writes the final chunk and waits until all ciphertext is hashed.
// Sum is valid only after Close returns nil.
func (w *Writer) Close() error {
	err := w.age.Close()
	w.out.h.wait()
	if err != nil {
		return err
	}
	w.closed = true
	return nil
}

// Sum returns the SHA-256 and the size of all ciphertext written to dst: the
// ContentHash and ContentSize of the resource header.
//
// It panics if Close has not returned nil: a hash of a partial stream would
// be signed for content that cannot be decrypted.
func (w *Writer) Sum() (hash [32]byte, size int64) {
	if !w.closed {
		panic("content: Writer.Sum called before a successful Close")
	}
	return w.out.h.sum(), w.out.n
}

type hashingWriter struct {
	w io.Writer
	h *hasher
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.write(p[:n])
	hw.n += int64(n)
	return n, err
}

// Decrypt returns a reader of the plaintext of the age file read from src,
// which must be the content of resource r at epoch of group g, encrypted under
// k, and hash to wantHash with size wantSize as its verified, signed header
// says.
//
// The reader only returns plaintext from chunks age has authenticated. But
// whether the whole file is the one the author signed is known only at the
// end: the reader returns io.EOF only if the ciphertext's hash and size match,
// and ErrHashMismatch otherwise. After any error the caller must discard
// everything the stream produced. It stops reading src after wantSize+1
// bytes, so a server cannot make it read without end.
//
// Errors match ErrWrongKey, ErrTampered, ErrTruncated or ErrHashMismatch (all
// security failures), or wrap the I/O error of src.
//
// The ciphertext is hashed on a goroutine that runs only while ciphertext
// age has read waits to be hashed (see hasher). The Read that returns io.EOF
// or an error waits for it; a reader that is dropped midway leaves nothing
// running, and needs no Close.
func Decrypt(src io.Reader, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID, wantHash [32]byte, wantSize int64, opts ...Option) (io.Reader, error) {
	if wantSize < 0 || wantSize == math.MaxInt64 {
		return nil, fmt.Errorf("%w: invalid signed size %d", ErrHashMismatch, wantSize)
	}
	in := &hashingReader{r: src, h: newHasher(), limit: wantSize}
	pt, err := age.Decrypt(in, &identity{binding{k, g, epoch, r}, newOptions(opts)})
	if err != nil {
		in.h.wait()
		return nil, in.classify(err)
	}
	return &reader{age: pt, in: in, wantHash: wantHash}, nil
}

type reader struct {
	age      io.Reader
	in       *hashingReader
	wantHash [32]byte
	err      error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.age.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		// age reached its authenticated end and saw EOF from src right after
		// it, so in has seen every byte: compare with the signed header.
		// The size is public, the hash is compared in constant time as a
		// matter of habit. sum waits for the hashing goroutine.
		sum := r.in.h.sum()
		hashOK := subtle.ConstantTimeCompare(sum[:], r.wantHash[:]) == 1
		if !hashOK || r.in.n != r.in.limit {
			r.err = fmt.Errorf("%w (read %d bytes, signed size %d)", ErrHashMismatch, r.in.n, r.in.limit)
			// Withhold the last bytes: nothing more of a mismatching stream
			// should reach the caller.
			return 0, r.err
		}
		r.err = io.EOF
		return n, io.EOF
	default:
		r.in.h.wait() // nothing keeps running after a failed stream
		r.err = r.in.classify(err)
		return 0, r.err
	}
}

// hashingReader hashes and counts the ciphertext age reads, and refuses to
// read past limit+1 bytes.
type hashingReader struct {
	r     io.Reader
	h     *hasher
	n     int64
	limit int64 // the signed size

	eof     bool  // src returned io.EOF
	tooLong bool  // src had more than limit bytes
	ioErr   error // src failed
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	if hr.tooLong {
		return 0, ErrHashMismatch
	}
	// Reading one byte past the limit is enough to know the source is too
	// long, and never more than that is read.
	if room := hr.limit + 1 - hr.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := hr.r.Read(p)
	if hr.n+int64(n) > hr.limit {
		hr.tooLong = true
		n = int(hr.limit - hr.n)
		err = ErrHashMismatch
	}
	hr.h.write(p[:n])
	hr.n += int64(n)
	switch {
	case err == io.EOF:
		hr.eof = true
	case err != nil && !hr.tooLong:
		hr.ioErr = err
	}
	return n, err
}

// classify turns an error from age into one of the package's errors, using
// what the hashing reader saw of the source. The order matters: an I/O
// failure of src is not evidence of tampering, and a short read explains an
// authentication failure of the final chunk better than tampering does.
func (hr *hashingReader) classify(err error) error {
	switch {
	case hr.ioErr != nil:
		return fmt.Errorf("content: reading ciphertext: %w", hr.ioErr)
	case errors.Is(err, ErrWrongKey):
		// Unwrap saw the complete age header, so this is not truncation.
		return wrongKeyError(err)
	case hr.tooLong:
		return fmt.Errorf("%w (more than the signed %d bytes)", ErrHashMismatch, hr.limit)
	case hr.eof && hr.n < hr.limit:
		return fmt.Errorf("%w: %d of %d signed bytes", ErrTruncated, hr.n, hr.limit)
	case errors.Is(err, ErrTampered):
		return err
	default:
		return fmt.Errorf("%w: %v", ErrTampered, err)
	}
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
