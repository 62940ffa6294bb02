package content_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// The resource test vectors live in testdata/resource at the repository root,
// one case per file. Each file is a block of "name: value" lines, a blank
// line, and the age file the server served (the first ContentSize bytes of
// the blob) in base64:
//
//	expect: success | bad signature | wrong group | wrong epoch |
//	        wrong resource | truncated | tampered chunk | chunk hashes
//	comment: what the case models
//	epoch key: hex of the reader's epoch key
//	group, epoch, resource: what the reader asked for
//	author key: hex of the Ed25519 key the verified log lists for the author
//	header, signature: hex of the signed resource header the server served
//	chunk hashes: hex of the chunk hash list the server served (the blob's
//	  tail: 32 bytes per leaf, the age header's first)
//	plaintext sha256: hex, for success cases
//
// A reader checks them the way a client does: verify the header signature,
// check that the header names the group and resource it asked for and the
// epoch whose key it holds, prove the chunk hash list against the signed
// root, then decrypt and read to the end. Everything
// except the age file key and nonces is derived from fixed seeds; -update
// regenerates the files with fresh ones.
var update = flag.Bool("update", false, "regenerate testdata/resource")

const vectorDir = "../../testdata/resource"

type vector struct {
	expect, comment string
	key             groupkey.EpochKey
	group           coffer.GroupID
	epoch           uint64
	resource        coffer.ResourceID
	authorKey       ed25519.PublicKey
	header          coffer.SignedHeader
	plaintextHash   []byte
	chunkHashes     []byte
	ciphertext      []byte
}

var outcomes = []string{"success", "bad signature", "wrong group", "wrong epoch",
	"wrong resource", "truncated", "tampered chunk", "chunk hashes"}

func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no test vectors; run go test -run TestVectors -update")
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			v := MustReadVector(t, f)
			seen[v.expect] = true
			got, err := v.run()
			if got != v.expect && !(got == "wrong key" && strings.HasPrefix(v.expect, "wrong ")) {
				t.Fatalf("outcome %q (%v), want %q", got, err, v.expect)
			}
		})
	}
	for _, o := range outcomes {
		if !seen[o] {
			t.Errorf("no vector expects %q", o)
		}
	}
}

// run checks v as a client would and names the outcome. "wrong key" means
// the content is bound elsewhere but the stanza did not say where.
func (v *vector) run() (string, error) {
	h, err := v.header.Verify(v.authorKey)
	if err != nil {
		return "bad signature", err
	}
	switch {
	case h.Group != v.group:
		return "wrong group", nil
	case h.Epoch != v.epoch:
		return "wrong epoch", nil
	case h.Resource != v.resource:
		return "wrong resource", nil
	}
	hs, err := content.VerifyChunkHashes(v.chunkHashes, h.TreeRoot, h.Chunks)
	if err != nil {
		return "chunk hashes", err
	}
	r, err := content.Decrypt(bytes.NewReader(v.ciphertext), hs, v.key, v.group, v.epoch, v.resource, h.ContentSize)
	if err == nil {
		ph := sha256.New()
		if _, err = io.Copy(ph, r); err == nil {
			if !bytes.Equal(ph.Sum(nil), v.plaintextHash) {
				return "plaintext differs", nil
			}
			return "success", nil
		}
	}
	switch {
	case errors.Is(err, content.ErrWrongKey):
		for _, f := range []string{"group", "epoch", "resource"} {
			if strings.Contains(err.Error(), "stanza is for "+f+" ") {
				return "wrong " + f, err
			}
		}
		return "wrong key", err
	case errors.Is(err, content.ErrTruncated):
		return "truncated", err
	case errors.Is(err, content.ErrTampered):
		return "tampered chunk", err
	}
	return "unexpected error", err
}

func MustReadVector(tb testing.TB, path string) *vector {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		tb.Fatal("no blank line before the ciphertext")
	}
	v := &vector{}
	fail := func(field string, err error) { tb.Fatalf("field %q: %v", field, err) }
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			tb.Fatalf("malformed line %q", sc.Text())
		}
		var err error
		switch name {
		case "expect":
			v.expect = value
		case "comment":
			v.comment = value
		case "epoch key":
			var b []byte
			if b, err = hex.DecodeString(value); err == nil && len(b) != len(v.key) {
				err = fmt.Errorf("%d bytes", len(b))
			}
			copy(v.key[:], b)
		case "group":
			v.group, err = coffer.ParseGroupID(value)
		case "epoch":
			v.epoch, err = strconv.ParseUint(value, 10, 64)
		case "resource":
			v.resource, err = coffer.ParseResourceID(value)
		case "author key":
			v.authorKey, err = hex.DecodeString(value)
		case "header":
			v.header.Body, err = hex.DecodeString(value)
		case "signature":
			v.header.Signature, err = hex.DecodeString(value)
		case "chunk hashes":
			v.chunkHashes, err = hex.DecodeString(value)
		case "plaintext sha256":
			v.plaintextHash, err = hex.DecodeString(value)
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			fail(name, err)
		}
	}
	if !contains(outcomes, v.expect) {
		tb.Fatalf("unknown expect %q", v.expect)
	}
	v.ciphertext, err = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(body), "\n", ""))
	if err != nil {
		fail("ciphertext", err)
	}
	return v
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (v *vector) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "expect: %s\n", v.expect)
	fmt.Fprintf(&b, "comment: %s\n", v.comment)
	fmt.Fprintf(&b, "epoch key: %x\n", v.key[:])
	fmt.Fprintf(&b, "group: %s\n", v.group)
	fmt.Fprintf(&b, "epoch: %d\n", v.epoch)
	fmt.Fprintf(&b, "resource: %s\n", v.resource)
	fmt.Fprintf(&b, "author key: %x\n", []byte(v.authorKey))
	fmt.Fprintf(&b, "header: %x\n", v.header.Body)
	fmt.Fprintf(&b, "signature: %x\n", v.header.Signature)
	fmt.Fprintf(&b, "chunk hashes: %x\n", v.chunkHashes)
	if v.plaintextHash != nil {
		fmt.Fprintf(&b, "plaintext sha256: %x\n", v.plaintextHash)
	}
	b.WriteString("\n")
	enc := base64.StdEncoding.EncodeToString(v.ciphertext)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n")
	return b.Bytes()
}

// writeVectors regenerates every vector. Keys and ids come from fixed seeds
// so that regenerated files differ only in what age randomizes.
func writeVectors(t *testing.T) {
	seed := func(s string) []byte { h := sha256.Sum256([]byte("coffer test vector " + s)); return h[:] }
	must := func(id [16]byte, err error) [16]byte {
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	var (
		key       = groupkey.EpochKey(seed("epoch key"))
		group     = coffer.GroupID(must(parseID(coffer.ParseGroupID("0c0ffe00-9a11-4e2d-8b1e-000000000001"))))
		group2    = coffer.GroupID(must(parseID(coffer.ParseGroupID("0c0ffe00-9a11-4e2d-8b1e-000000000002"))))
		res       = coffer.ResourceID(must(parseID(coffer.ParseResourceID("5e5e5e00-7c3a-4b8f-9d2c-000000000001"))))
		res2      = coffer.ResourceID(must(parseID(coffer.ParseResourceID("5e5e5e00-7c3a-4b8f-9d2c-000000000002"))))
		author    = coffer.AccountID(must(parseID(coffer.ParseAccountID("a0a0a0a0-1111-4222-8333-000000000001"))))
		authorSK  = ed25519.NewKeyFromSeed(seed("author"))
		otherSK   = ed25519.NewKeyFromSeed(seed("another member"))
		epoch     = uint64(5)
		here      = target{key, group, epoch, res}
		short     = []byte("Hello, Coffer! This is a small resource.\n")
		twoChunks = make([]byte, 64<<10+100)
	)
	rand.NewChaCha8([32]byte(seed("two chunks"))).Read(twoChunks)

	type made struct {
		ct     []byte // the age file
		list   []byte
		header *coffer.ResourceHeader
	}
	// encrypt makes content for tg and the honest header for it, as the
	// author would, at the given version.
	encrypt := func(tg target, pt []byte, version uint64) made {
		s := MustEncrypt(t, tg, pt)
		var prev [32]byte
		if version > 1 {
			prev = sha256.Sum256(seed("previous header")) // stands for version-1's HeaderHash
		}
		return made{s.age(), s.list(), &coffer.ResourceHeader{
			Prev:     prev,
			Resource: tg.r, Group: tg.g, Epoch: tg.epoch, Author: author,
			Version: version, TreeRoot: s.root, Chunks: s.chunks, ContentSize: s.size,
			MetaHash: sha256.Sum256(seed("metadata")), Created: 1_795_000_000_000,
		}}
	}
	// resign is the author signing a header for this group, epoch and
	// resource over exactly the bytes stored, with a chunk tree made for
	// them, so that only the content's own binding and age's
	// authentication are left to catch the fault.
	resign := func(m made, ct []byte) (coffer.SignedHeader, []byte) {
		h := *m.header
		h.Group, h.Epoch, h.Resource = here.g, here.epoch, here.r
		list, root, chunks, ok := content.TreeOf(ct)
		if !ok {
			t.Fatal("resign: not an age file")
		}
		h.TreeRoot, h.Chunks, h.ContentSize = root, chunks, int64(len(ct))
		return coffer.SignResourceHeader(&h, authorSK), list
	}
	type signed struct {
		h    coffer.SignedHeader
		list []byte
	}
	rs := func(m made, ct []byte) signed { h, l := resign(m, ct); return signed{h, l} }
	hon := func(m made) signed { return signed{coffer.SignResourceHeader(m.header, authorSK), m.list} }
	sign := func(h *coffer.ResourceHeader) coffer.SignedHeader { return coffer.SignResourceHeader(h, authorSK) }
	ptHash := func(pt []byte) []byte { h := sha256.Sum256(pt); return h[:] }
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x01; return b }

	mEmpty := encrypt(here, nil, 1)
	mShort := encrypt(here, short, 1)
	mTwo := encrypt(here, twoChunks, 1)
	mShortV2 := encrypt(here, bytes.ToUpper(short), 2) // same size as version 1
	inGroup2 := encrypt(target{key, group2, epoch, res}, short, 1)
	atEpoch4 := encrypt(target{key, group, 4, res}, short, 1)
	forRes2 := encrypt(target{key, group, epoch, res2}, short, 1)
	rewritten := bytes.Replace(forRes2.ct, []byte(res2.String()), []byte(res.String()), 1)
	otherRes := encrypt(target{key, group, epoch, res2}, short, 1)
	otherGroup := encrypt(target{key, group2, epoch, res}, short, 1)
	modified := hon(mShort)
	modified.h.Body = bytes.Clone(modified.h.Body)
	modified.h.Body[1+16+16+8+16+7]++ // version 1 → 2, as if replacing in the author's name
	forgedList := bytes.Clone(mTwo.list)
	forgedList[40] ^= 1
	otherSigner := hon(mShort)
	otherSigner.h = coffer.SignResourceHeader(mShort.header, otherSK)
	_ = sign
	tamperedShort := flip(mShort.ct, len(mShort.ct)-20)
	firstChunkLen := bytes.Index(mTwo.ct, []byte("\n---")) + len("\n--- ") + 43 + 1 + 16 + 64<<10 + 16

	cases := []struct {
		name, expect, comment string
		s                     signed
		ct, plaintext         []byte
	}{
		{"success-empty", "success", "empty content: a single empty final chunk", hon(mEmpty), mEmpty.ct, []byte{}},
		{"success-short", "success", "one short chunk", hon(mShort), mShort.ct, short},
		{"success-two-chunks", "success", "a full 64 KiB chunk and a 100-byte final chunk", hon(mTwo), mTwo.ct, twoChunks},
		{"success-trailing-data", "success", "bytes after the signed size are never read", hon(mShort), append(bytes.Clone(mShort.ct), "extra"...), short},
		{"bad-signature-other-member", "bad signature", "another member signed a header naming the author: forging content in their name", otherSigner, mShort.ct, nil},
		{"bad-signature-modified-header", "bad signature", "the server raised the version in a signed header", modified, mShort.ct, nil},
		{"wrong-group-content", "wrong group", "content encrypted for another group under the same key bytes, header signed for it", rs(inGroup2, inGroup2.ct), inGroup2.ct, nil},
		{"wrong-group-header", "wrong group", "the server served a resource of another group", hon(otherGroup), otherGroup.ct, nil},
		{"wrong-epoch-content", "wrong epoch", "content encrypted for epoch 4 under the same key bytes, header signed for epoch 5", rs(atEpoch4, atEpoch4.ct), atEpoch4.ct, nil},
		{"wrong-resource-content", "wrong resource", "content of another resource, header signed for this one", rs(forRes2, forRes2.ct), forRes2.ct, nil},
		{"wrong-resource-rewritten-stanza", "wrong resource", "content of another resource with the stanza's resource argument rewritten: the derived key still differs", rs(forRes2, rewritten), rewritten, nil},
		{"wrong-resource-header", "wrong resource", "the server served another resource, header and all", hon(otherRes), otherRes.ct, nil},
		{"truncated-header", "truncated", "cut inside the age header", hon(mShort), mShort.ct[:60], nil},
		{"truncated-last-byte", "truncated", "the final chunk lost its last byte", hon(mShort), mShort.ct[:len(mShort.ct)-1], nil},
		{"truncated-chunk-boundary", "truncated", "cut right after the first full chunk", hon(mTwo), mTwo.ct[:firstChunkLen], nil},
		{"tampered-chunk", "tampered chunk", "one bit of the payload flipped, honest header: the chunk does not match its leaf", hon(mShort), tamperedShort, nil},
		{"tampered-chunk-resigned", "tampered chunk", "one bit of the payload flipped, tree and header signed for the flipped bytes: age's tag catches it", rs(mShort, tamperedShort), tamperedShort, nil},
		{"chunk-hashes-rollback", "chunk hashes", "version 1's list and file served with version 2's header", signed{sign(mShortV2.header), mShort.list}, mShort.ct, nil},
		{"chunk-hashes-forged-leaf", "chunk hashes", "one bit of a leaf hash flipped", signed{sign(mTwo.header), forgedList}, mTwo.ct, nil},
		{"chunk-hashes-short-list", "chunk hashes", "the list lost its last leaf", signed{sign(mTwo.header), mTwo.list[:len(mTwo.list)-32]}, mTwo.ct, nil},
	}

	old, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	for _, f := range old {
		os.Remove(f)
	}
	if err := os.MkdirAll(vectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		v := &vector{
			expect: c.expect, comment: c.comment,
			key: key, group: group, epoch: epoch, resource: res,
			authorKey: authorSK.Public().(ed25519.PublicKey),
			header:    c.s.h, chunkHashes: c.s.list, ciphertext: c.ct,
		}
		if c.plaintext != nil {
			v.plaintextHash = ptHash(c.plaintext)
		}
		if err := os.WriteFile(filepath.Join(vectorDir, c.name+".txt"), v.marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func parseID[T ~[16]byte](id T, err error) ([16]byte, error) { return [16]byte(id), err }
