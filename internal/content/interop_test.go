package content_test

import (
	"bytes"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/content"
)

func ageDecrypt(t target, ageFile []byte) ([]byte, error) {
	return content.AgeDecrypt(ageFile, t.k, t.g, t.epoch, t.r)
}

func treeOf(tb testing.TB, ageFile []byte) (list []byte, root [32]byte) {
	tb.Helper()
	list, root, _, ok := content.TreeOf(ageFile)
	if !ok {
		tb.Fatal("not an age file with a payload")
	}
	return list, root
}

func treeOfMaybe(ageFile []byte) (list []byte, root [32]byte, ok bool) {
	list, root, _, ok = content.TreeOf(ageFile)
	return list, root, ok
}

// TestInteropOurs checks that filippo.io/age decrypts our parallel
// encryptor's output to the identical plaintext, at every size that
// matters: empty, chunk boundaries, several batches.
func TestInteropOurs(t *testing.T) {
	for _, n := range sizes {
		tg := newTarget()
		plaintext := plaintextOf(n)
		s := MustEncrypt(t, tg, plaintext)
		got, err := ageDecrypt(tg, s.age())
		if err != nil {
			t.Fatalf("%d bytes: age.Decrypt: %v", n, err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("%d bytes: age.Decrypt gives other plaintext", n)
		}
		// The list we wrote is the tree of the file age read.
		list, root, chunks, _ := content.TreeOf(s.age())
		if !bytes.Equal(list, s.list()) || root != s.root || chunks != s.chunks {
			t.Fatalf("%d bytes: the written chunk tree is not the file's", n)
		}
	}
}

// TestInteropAge checks that our parallel decryptor reads what
// filippo.io/age's own encryptor writes: for the coffer recipient and for
// a plain X25519 recipient.
func TestInteropAge(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sizes {
		tg := newTarget()
		plaintext := plaintextOf(n)
		ours, err := content.AgeEncrypt(plaintext, tg.k, tg.g, tg.epoch, tg.r)
		if err != nil {
			t.Fatal(err)
		}
		list, root, chunks, ok := content.TreeOf(ours)
		if !ok {
			t.Fatalf("%d bytes: age wrote no payload", n)
		}
		got, err := decryptWith(tg, ours, list, root, chunks, int64(len(ours)))
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("%d bytes, coffer recipient: %v", n, err)
		}

		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, x.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plaintext)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		list, root, chunks, _ = content.TreeOf(buf.Bytes())
		hs, err := content.VerifyChunkHashes(list, root, chunks)
		if err != nil {
			t.Fatal(err)
		}
		r, err := content.DecryptWithIdentity(bytes.NewReader(buf.Bytes()), hs, int64(buf.Len()), x)
		if err != nil {
			t.Fatalf("%d bytes, X25519: %v", n, err)
		}
		pt, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(pt, plaintext) {
			t.Fatalf("%d bytes, X25519: %v", n, err)
		}
	}
}
