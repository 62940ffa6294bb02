package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/clientlib/mobile"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// Sizes and counts from signed or server data are checked before they are
// used: an insider signs absurd sizes, a server sends repeated wraps, links
// or over-long proofs. Each is a security error, never a panic, in
// clientlib and in the mobile facade.

// injectSized stores, as a malicious server helped by the writer bob would,
// a resource of plaintext data whose metadata (signed by bob) says meta.
func (f *resourceTamper) injectSized(t *testing.T, data []byte, meta string) coffer.ResourceID {
	t.Helper()
	ctx := context.Background()
	bobKS := KeyStore(t, f.bob).MemoryKeyStore
	k := f.epochKeyOf(t, bobKS, f.bob.AccountID())
	id, epoch := coffer.NewResourceID(), uint64(1)
	var ct bytes.Buffer
	w, err := content.Encrypt(&ct, k, f.g, epoch, id)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	root, chunks, size := w.Sum()
	hash := sha256.Sum256(ct.Bytes())
	sealed := groupkey.SealMetadata(k, f.g, epoch, coffer.LabelResourceMeta,
		binary.BigEndian.AppendUint64(append([]byte(nil), id[:]...), 1), []byte(meta))
	h := &coffer.ResourceHeader{Resource: id, Group: f.g, Epoch: epoch, Author: f.bob.AccountID(),
		Version: 1, TreeRoot: root, Chunks: chunks, ContentSize: size, MetaHash: sha256.Sum256(sealed), Created: time.Now().UnixMilli()}
	sh := coffer.SignResourceHeader(h, signingKeyOf(t, bobKS))
	// Logged, as bob's finalize would have: the checks under test are the
	// sizes, not the log's.
	f.held().logLeaf(t, h, sh.Body)
	blobKey := coffer.NewBlobKey()
	bw, err := f.srv.Blobs().Create(ctx, blobKey)
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(ct.Bytes())
	if err := bw.Commit(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `INSERT INTO resources (id, group_id, version, author_id, epoch, header, header_signature,
		meta, content_hash, size, blob_key, created_at, updated_at)
		VALUES ($1, $2, 1, $3, 1, $4, $5, $6, $7, $8, $9, now(), now())`,
		id, f.g, f.bob.AccountID(), sh.Body, sh.Signature, sealed, hash[:], ct.Len(), blobKey)
	return id
}

// mobileStore adapts a clientlib key store to the mobile facade's.
type mobileStore struct{ clientlib.KeyStore }

func (s mobileStore) Get(name string) ([]byte, error) {
	b, err := s.KeyStore.Get(name)
	if errors.Is(err, clientlib.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

func TestTamperAbsurdSizes(t *testing.T) {
	f := newResourceTamper(t)
	ctx := context.Background()
	data := []byte("twenty bytes of data")
	cases := map[string]string{
		"negative":          `{"name":"n","size":-1048576}`,
		"minus-one":         `{"name":"n","size":-1}`,
		"min-int64":         `{"name":"n","size":-9223372036854775808}`,
		"beyond-ciphertext": `{"name":"n","size":1099511627776}`,
		"max-int64":         `{"name":"n","size":9223372036854775807}`,
	}
	// alice reads through the mobile facade too, on her own key store.
	app, err := mobile.NewClient(f.srv.URL(), mobileStore{f.aliceKS})
	if err != nil {
		t.Fatal(err)
	}
	for name, meta := range cases {
		t.Run(name, func(t *testing.T) {
			id := f.injectSized(t, data, meta)
			defer mustExec(t, f.db, `DELETE FROM resources WHERE id = $1`, id)
			_, err := f.carol.Head(ctx, f.g, id)
			wantSecurity(t, err)
			_, err = readResource(f.carol, f.g, id)
			wantSecurity(t, err)
			_, err = f.carol.List(ctx, f.g)
			wantSecurity(t, err)
			_, err = app.GetBytes(f.g.String(), id.String(), nil, nil)
			if mobile.ErrorCode(err) != mobile.CodeSecurity {
				t.Fatalf("mobile GetBytes: %v (code %s), want %s", err, mobile.ErrorCode(err), mobile.CodeSecurity)
			}
			_, err = app.Head(f.g.String(), id.String())
			if mobile.ErrorCode(err) != mobile.CodeSecurity {
				t.Fatalf("mobile Head: %v (code %s), want %s", err, mobile.ErrorCode(err), mobile.CodeSecurity)
			}
		})
	}
	// The honest size passes.
	id := f.injectSized(t, data, `{"name":"n","size":20}`)
	if got, err := readResource(f.carol, f.g, id); err != nil || string(got) != string(data) {
		t.Fatalf("honest size: %q, %v", got, err)
	}
}

// TestTamperRepeatedKeys: a server repeats a member's wrap or a history
// link many times over, to make the client open each again.
func TestTamperRepeatedKeys(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	if err := f.alice.Rotate(ctx, f.g); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"wraps", "links"} {
		t.Run(what, func(t *testing.T) {
			proxy := lyingProxy(t, f.srv, func(r *http.Request, body []byte) []byte {
				if !strings.HasSuffix(r.URL.Path, "/keys") {
					return body
				}
				var keys api.Keys
				if err := json.Unmarshal(body, &keys); err != nil || len(keys.Links) == 0 {
					return body
				}
				for range 1000 {
					if what == "wraps" {
						keys.Wraps = append(keys.Wraps, keys.Wraps[0])
					} else {
						keys.Links = append(keys.Links, keys.Links[0])
					}
				}
				out, _ := json.Marshal(keys)
				return out
			})
			c, err := clientlib.New(proxy, f.carolKS, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ReadableEpochs(ctx, f.g)
			wantSecurity(t, err)
		})
	}
}

// TestTamperLongProof: proofs longer than any tree needs are refused
// before they are used: 10,000 hashes in JSON, and in the compact
// encoding, which carries at most api.MaxLogProofHashes, that many (its
// framing refuses more: TestTamperCompactLogProofs).
func TestTamperLongProof(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	if err := f.alice.Rotate(ctx, f.g); err != nil {
		t.Fatal(err)
	}
	for _, enc := range logProofsEncodings {
		t.Run(enc, func(t *testing.T) {
			long := api.MaxLogProofHashes
			if enc == "json" {
				long = 10_000
			}
			var lengthened atomic.Int32
			proxy := lyingProxyAccepting(t, f.srv, acceptFor(enc), func(r *http.Request, body []byte) []byte {
				if r.URL.Path != "/v1/log/proofs" {
					return body
				}
				out, got := editLogProofs(body, func(p *api.LogProofs) {
					for i := range p.Commits {
						for len(p.Commits[i].Proof) < long {
							p.Commits[i].Proof = append(p.Commits[i].Proof, make([]byte, 32))
						}
						lengthened.Add(1)
					}
				})
				if got != enc {
					t.Errorf("a proof answer in %q, want %s", got, enc)
				}
				return out
			})
			c, err := clientlib.New(proxy, f.carolKS, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Sync(ctx, f.g)
			if lengthened.Load() == 0 {
				t.Fatalf("the proxy lengthened no proof (sync: %v)", err)
			}
			wantSecurity(t, err)
		})
	}
}
