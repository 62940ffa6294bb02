package content

import (
	"bytes"
	"io"

	"filippo.io/age"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// TreeOf splits an age file into the tree's leaves and returns the chunk
// hash list and root an author would sign for it, so that tests can re-sign
// a mangled file. ok is false if the file has no header and payload nonce.
func TreeOf(ageFile []byte) (list []byte, root [32]byte, chunks uint64, ok bool) {
	i := bytes.Index(ageFile, []byte("\n--- "))
	if i < 0 {
		return nil, root, 0, false
	}
	j := bytes.IndexByte(ageFile[i+1:], '\n')
	if j < 0 || i+1+j+1+nonceSize > len(ageFile) {
		return nil, root, 0, false
	}
	end := i + 1 + j + 1 + nonceSize
	leaves := [][32]byte{leafHash(ageFile[:end])}
	for p := ageFile[end:]; len(p) > 0; {
		n := min(len(p), encChunkSize)
		leaves = append(leaves, leafHash(p[:n]))
		p = p[n:]
	}
	for _, l := range leaves {
		list = append(list, l[:]...)
	}
	return list, TreeRoot(leaves), uint64(len(leaves) - 1), len(leaves) > 1
}

// AgeDecrypt decrypts a resource's age file with filippo.io/age itself and
// the resource's own identity.
func AgeDecrypt(ageFile []byte, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID) ([]byte, error) {
	pt, err := age.Decrypt(bytes.NewReader(ageFile), &identity{binding{k, g, epoch, r}, newOptions(nil)})
	if err != nil {
		return nil, err
	}
	return io.ReadAll(pt)
}

// AgeEncrypt encrypts plaintext with filippo.io/age itself to the
// resource's own recipient.
func AgeEncrypt(plaintext []byte, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, r coffer.ResourceID) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, &recipient{binding{k, g, epoch, r}, newOptions(nil)})
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecryptWithIdentity is Decrypt with any age identity, so that files made
// by age for an X25519 recipient go through the same parallel reader.
func DecryptWithIdentity(src io.Reader, hashes *ChunkHashes, size int64, id age.Identity) (*Reader, error) {
	return decrypt(src, hashes, size, id)
}

// SealChunk seals plaintext as STREAM chunk i of a payload under fileKey
// and nonce: what a member who unwrapped the file key can forge.
func SealChunk(fileKey, nonce []byte, i uint64, final bool, plaintext []byte) []byte {
	return payloadAEAD(fileKey, nonce).Seal(nil, chunkNonce(i, final), plaintext, nil)
}

// RingChunks is how many chunks a Reader reads ahead at most.
var RingChunks = ringChunks

// BatchChunks is how many chunks a Reader of one batch reads at a time.
var BatchChunks = batchChunks
