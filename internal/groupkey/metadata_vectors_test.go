package groupkey_test

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// The metadata vectors live in testdata/metadata at the repository root, one
// case per file of "name: value" lines:
//
//	expect: success | no open
//	comment: what the case models
//	epoch key: hex of the reader's epoch key
//	group, epoch, purpose: what the reader opens the blob as
//	binding: hex of the object binding the reader expects (resource ‖ version)
//	ciphertext: hex of the blob the server served
//	plaintext: the expected plaintext, for success cases
//
// Keys and ids come from fixed seeds; the AES-GCM nonces are random, so
// -update-metadata writes new ciphertexts every time it runs.
var updateMetadata = flag.Bool("update-metadata", false, "regenerate testdata/metadata")

const metadataVectorDir = "../../testdata/metadata"

// metadataCases names every vector the suite must hold, so a deleted file
// fails the test instead of silently shrinking the suite.
var metadataCases = []string{
	"success-resource",
	"success-group-name",
	"epoch-wide-key",
	"swapped-resource",
	"swapped-version",
	"swapped-group",
	"swapped-epoch",
	"group-name-as-resource",
	"resource-as-group-name",
}

type metadataVector struct {
	expect, comment string
	key             groupkey.EpochKey
	group           coffer.GroupID
	epoch           uint64
	purpose         string
	binding         []byte
	ciphertext      []byte
	plaintext       string
}

func TestMetadataVectors(t *testing.T) {
	if *updateMetadata {
		writeMetadataVectors(t)
	}
	for _, name := range metadataCases {
		t.Run(name, func(t *testing.T) {
			v := MustReadMetadataVector(t, filepath.Join(metadataVectorDir, name+".txt"))
			pt, err := groupkey.OpenMetadata(v.key, v.group, v.epoch, v.purpose, v.binding, v.ciphertext)
			got := "success"
			if err != nil {
				got = "no open"
			}
			if got != v.expect {
				t.Fatalf("%s: got %s (%v), want %s", v.comment, got, err, v.expect)
			}
			if got == "success" && string(pt) != v.plaintext {
				t.Fatalf("plaintext %q, want %q", pt, v.plaintext)
			}
		})
	}
	files, err := filepath.Glob(filepath.Join(metadataVectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(metadataCases) {
		t.Errorf("%d files in %s for %d named cases: name every vector in metadataCases", len(files), metadataVectorDir, len(metadataCases))
	}
}

func MustReadMetadataVector(tb testing.TB, path string) *metadataVector {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	v := &metadataVector{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			tb.Fatalf("%s: line %q is not name: value", path, sc.Text())
		}
		switch name {
		case "expect":
			v.expect = value
		case "comment":
			v.comment = value
		case "epoch key":
			k, err := hex.DecodeString(value)
			if err != nil || len(k) != len(v.key) {
				tb.Fatalf("%s: bad epoch key", path)
			}
			copy(v.key[:], k)
		case "group":
			v.group, err = coffer.ParseGroupID(value)
		case "epoch":
			v.epoch, err = strconv.ParseUint(value, 10, 64)
		case "purpose":
			v.purpose = value
		case "binding":
			v.binding, err = hex.DecodeString(value)
		case "ciphertext":
			v.ciphertext, err = hex.DecodeString(value)
		case "plaintext":
			v.plaintext = value
		default:
			tb.Fatalf("%s: unknown field %q", path, name)
		}
		if err != nil {
			tb.Fatalf("%s: %s: %v", path, name, err)
		}
	}
	if v.expect != "success" && v.expect != "no open" {
		tb.Fatalf("%s: expect %q is not success or no open", path, v.expect)
	}
	return v
}

func (v *metadataVector) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "expect: %s\ncomment: %s\n", v.expect, v.comment)
	fmt.Fprintf(&b, "epoch key: %x\ngroup: %s\nepoch: %d\npurpose: %s\n", v.key[:], v.group, v.epoch, v.purpose)
	fmt.Fprintf(&b, "binding: %x\nciphertext: %x\n", v.binding, v.ciphertext)
	if v.expect == "success" {
		fmt.Fprintf(&b, "plaintext: %s\n", v.plaintext)
	}
	return b.Bytes()
}

// sealEpochWide seals the way an earlier draft of suite v1 did: one key per
// (purpose, group, epoch) for every object, with the object only in the AAD.
// Only the vector generator uses it, to prove that such blobs no longer open.
func sealEpochWide(k groupkey.EpochKey, g coffer.GroupID, epoch uint64, purpose string, binding, plaintext []byte) []byte {
	ctx := binary.BigEndian.AppendUint64(append([]byte(nil), g[:]...), epoch)
	key, err := hkdf.Key(sha256.New, k[:], nil, string(coffer.SignedMessage(purpose, ctx)), 32)
	if err != nil {
		panic(err)
	}
	blk, _ := aes.NewCipher(key)
	a, _ := cipher.NewGCMWithRandomNonce(blk)
	return a.Seal(nil, nil, plaintext, coffer.SignedMessage(purpose, append(ctx, binding...)))
}

func writeMetadataVectors(t *testing.T) {
	seed := func(s string) []byte { h := sha256.Sum256([]byte("coffer metadata vectors: " + s)); return h[:] }
	var k groupkey.EpochKey
	copy(k[:], seed("epoch key"))
	g := coffer.GroupID(seed("group")[:16])
	g2 := coffer.GroupID(seed("other group")[:16])
	resA := coffer.ResourceID(seed("resource a")[:16])
	resB := coffer.ResourceID(seed("resource b")[:16])
	bind := func(r coffer.ResourceID, version uint64) []byte {
		return binary.BigEndian.AppendUint64(append([]byte(nil), r[:]...), version)
	}
	const epoch = 4
	meta := `{"name":"report.pdf","type":"application/pdf","size":1234}`
	name := `{"name":"Team"}`
	res := func(expect, comment string, ct []byte) *metadataVector {
		return &metadataVector{expect: expect, comment: comment, key: k, group: g, epoch: epoch,
			purpose: coffer.LabelResourceMeta, binding: bind(resA, 3), ciphertext: ct, plaintext: meta}
	}
	grp := func(expect, comment string, ct []byte) *metadataVector {
		return &metadataVector{expect: expect, comment: comment, key: k, group: g, epoch: epoch,
			purpose: coffer.LabelGroupMeta, ciphertext: ct, plaintext: name}
	}
	vectors := map[string]*metadataVector{
		"success-resource": res("success", "metadata of resource A version 3",
			groupkey.SealMetadata(k, g, epoch, coffer.LabelResourceMeta, bind(resA, 3), []byte(meta))),
		"success-group-name": grp("success", "the group's name",
			groupkey.SealMetadata(k, g, epoch, coffer.LabelGroupMeta, nil, []byte(name))),
		"epoch-wide-key": res("no open", "sealed under the one epoch-wide metadata key of the old derivation, right AAD",
			sealEpochWide(k, g, epoch, coffer.LabelResourceMeta, bind(resA, 3), []byte(meta))),
		"swapped-resource": res("no open", "the server serves resource B's metadata as resource A's",
			groupkey.SealMetadata(k, g, epoch, coffer.LabelResourceMeta, bind(resB, 3), []byte(meta))),
		"swapped-version": res("no open", "the server serves version 2's metadata as version 3's",
			groupkey.SealMetadata(k, g, epoch, coffer.LabelResourceMeta, bind(resA, 2), []byte(meta))),
		"swapped-group": res("no open", "metadata sealed in another group under the same epoch key",
			groupkey.SealMetadata(k, g2, epoch, coffer.LabelResourceMeta, bind(resA, 3), []byte(meta))),
		"swapped-epoch": res("no open", "metadata sealed at the previous epoch under the same epoch key",
			groupkey.SealMetadata(k, g, epoch-1, coffer.LabelResourceMeta, bind(resA, 3), []byte(meta))),
		"resource-as-group-name": grp("no open", "a resource's metadata served as the group's name",
			groupkey.SealMetadata(k, g, epoch, coffer.LabelResourceMeta, bind(resA, 3), []byte(name))),
		"group-name-as-resource": res("no open", "the group's name served as a resource's metadata",
			groupkey.SealMetadata(k, g, epoch, coffer.LabelGroupMeta, nil, []byte(meta))),
	}
	if err := os.MkdirAll(metadataVectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range metadataCases {
		v, ok := vectors[name]
		if !ok {
			t.Fatalf("no generator for %s", name)
		}
		if err := os.WriteFile(filepath.Join(metadataVectorDir, name+".txt"), v.marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
