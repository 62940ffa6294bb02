package audit

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
)

// checkInlineContent reports why b, a resource's content kept in its row,
// is not the ciphertext that the verified header h signs, or "" when it
// is. Like a blob, it must be an age file of one coffer-v1 stanza and the
// signed size, whose payload looks like ciphertext (checkCiphertext),
// followed by a chunk hash list that proves the signed tree root; and the
// row's hash and size must describe it. The auditor cannot decrypt it; a
// plaintext put in its place fails the age structure or the payload test,
// and a changed one fails the tree root or the hash.
func checkInlineContent(b []byte, h *coffer.ResourceHeader, hash []byte, size int64) string {
	listSize := content.ChunkHashListSize(h.Chunks)
	if int64(len(b)) != size || size != h.ContentSize+listSize {
		return fmt.Sprintf("%d bytes, the row says %d and the signed header %d of age file and chunk hash list", len(b), size, h.ContentSize+listSize)
	}
	if sum := sha256.Sum256(b); !bytes.Equal(sum[:], hash) {
		return "its SHA-256 differs from content_hash"
	}
	if why := checkAgeCiphertext(b[:h.ContentSize]); why != "" {
		return why
	}
	if _, err := content.VerifyChunkHashes(b[h.ContentSize:], h.TreeRoot, h.Chunks); err != nil {
		return "its chunk hash list does not prove the signed tree root"
	}
	return ""
}

// checkAgeCiphertext reports why ageFile is not an age file of Coffer's
// shape with a ciphertext payload; the form of an upload's content, whose
// header is not signed yet.
func checkAgeCiphertext(ageFile []byte) string {
	payload, err := content.AuditAgeFile(ageFile)
	if err != nil {
		return "not a resource age file: " + err.Error()
	}
	if why := checkCiphertext(payload); why != "" {
		return "the age payload is " + why
	}
	return ""
}

// checkStoredTree reports why tree, the stored hashes of a blob-backed
// version's chunk tree kept in its row for range reads, is not the tree
// whose root the verified header h signs, or "" when it is. The stored
// hashes hold every leaf hash, so the whole tree is rebuilt from them and
// compared: anything else in the column (plaintext, another resource's
// tree, a changed node) fails.
func checkStoredTree(tree []byte, h *coffer.ResourceHeader) string {
	if int64(len(tree)) != content.StoredTreeSize(h.Chunks) {
		return fmt.Sprintf("%d bytes, the signed chunk tree stores %d", len(tree), content.StoredTreeSize(h.Chunks))
	}
	leaves := int64(h.Chunks) + 1
	list := make([]byte, 0, content.ChunkHashListSize(h.Chunks))
	for i := range leaves {
		x := tlog.StoredHashIndex(0, i) * tlog.HashSize
		list = append(list, tree[x:x+tlog.HashSize]...)
	}
	hs, err := content.VerifyChunkHashes(list, h.TreeRoot, h.Chunks)
	if err != nil {
		return "its leaf hashes do not prove the signed tree root"
	}
	if !bytes.Equal(hs.StoredTree(), tree) {
		return "its inner nodes are not the hashes of its leaves"
	}
	return ""
}
