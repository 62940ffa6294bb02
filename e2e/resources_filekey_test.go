package e2e_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// observer collects what a client reports to Options.SecretObserver.
type observer struct {
	mu      sync.Mutex
	secrets []Secret
}

func (o *observer) add(kind string, secret []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.secrets = append(o.secrets, Secret{Kind: kind, Value: bytes.Clone(secret)})
}

// take returns the secrets of kind reported since the last take.
func (o *observer) take(kind string) [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out [][]byte
	rest := o.secrets[:0]
	for _, s := range o.secrets {
		if s.Kind == kind {
			out = append(out, s.Value)
		} else {
			rest = append(rest, s)
		}
	}
	o.secrets = rest
	return out
}

// mustObservedClient is MustClient with an observer of the test's own. The
// secrets still go to the canary, as the harness's observer sends them.
func mustObservedClient(tb testing.TB, srv *Server, handle string) (*clientlib.Client, *observer) {
	tb.Helper()
	o := &observer{}
	c, err := clientlib.New(srv.URL(), NewCanaryKeyStore(), &clientlib.Options{
		SecretObserver: func(kind string, secret []byte) {
			o.add(kind, secret)
			if len(secret) >= minSecretLen {
				RecordSecret(kind, secret)
			}
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Register(context.Background(), handle); err != nil {
		tb.Fatalf("register %s: %v", handle, err)
	}
	return c, o
}

// TestResourceFileKeyObserver checks that the auditing hook reports the age
// file key of every upload and every read, and that it is the key of the
// stored ciphertext: the canary can only look for file keys it is told of.
func TestResourceFileKeyObserver(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, aliceSaw := mustObservedClient(t, srv, "alice")
	bob, bobSaw := mustObservedClient(t, srv, "bob")
	g := mustGroup(t, alice, "observed", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)

	oneKey := func(who string, o *observer) []byte {
		t.Helper()
		keys := o.take("file-key")
		if len(keys) != 1 || len(keys[0]) != 16 {
			t.Fatalf("%s: the observer saw %d file keys (lengths %v), want one of 16 bytes", who, len(keys), lengths(keys))
		}
		return keys[0]
	}

	// 200 KiB: several chunks, so the stream is hashed beside age.
	data := randomContent(t, 200<<10)
	r := mustPut(t, alice, g, "observed.bin", data)
	put := oneKey("alice's put", aliceSaw)

	if got := mustReadResource(t, bob, g, r.ID); !bytes.Equal(got, data) {
		t.Fatal("bob read different bytes")
	}
	if got := oneKey("bob's get", bobSaw); !bytes.Equal(got, put) {
		t.Fatal("bob's get unwrapped another file key than alice's put made")
	}
	mustReadResource(t, alice, g, r.ID)
	if got := oneKey("alice's get", aliceSaw); !bytes.Equal(got, put) {
		t.Fatal("alice's get unwrapped another file key than her put made")
	}

	// It is the key of the stored file, as coffer-audit recovers it.
	var keys []groupkey.EpochKey
	for _, k := range aliceSaw.take("epoch-key") {
		keys = append(keys, groupkey.EpochKey(k))
	}
	files := blobFiles(t, srv)
	if len(files) != 1 {
		t.Fatalf("%d blobs, want 1", len(files))
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	stored, err := content.AuditFileKey(f, keys)
	f.Close()
	if err != nil || !bytes.Equal(stored, put) {
		t.Fatalf("the stored file's key is not the one reported (%v)", err)
	}

	// A replace makes a new file key, and reads report it.
	if _, err := alice.Replace(ctx, g, r.ID, 1, strings.NewReader("version two"), clientlib.Meta{Name: "observed.bin"}, nil); err != nil {
		t.Fatal(err)
	}
	replaced := oneKey("alice's replace", aliceSaw)
	if bytes.Equal(replaced, put) {
		t.Fatal("the replace reported the first version's file key")
	}
	if got := mustReadResource(t, bob, g, r.ID); string(got) != "version two" {
		t.Fatalf("bob read %q", got)
	}
	if got := oneKey("bob's get after the replace", bobSaw); !bytes.Equal(got, replaced) {
		t.Fatal("bob's get unwrapped another file key than the replace made")
	}
}

func lengths(keys [][]byte) []int {
	var out []int
	for _, k := range keys {
		out = append(out, len(k))
	}
	return out
}
