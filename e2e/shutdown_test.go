package e2e_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/clientlib"
)

// signalingReader yields n pseudo-random bytes, hashing them, and closes
// reached once at bytes have been read.
type signalingReader struct {
	rng     *rand.ChaCha8
	left    int64
	at      int64
	read    int64
	reached chan struct{}
	once    sync.Once
	hash    [32]byte
	h       interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func newSignalingReader(n, at int64) *signalingReader {
	return &signalingReader{rng: rand.NewChaCha8([32]byte{7}), left: n, at: at, reached: make(chan struct{}), h: sha256.New()}
}

func (r *signalingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		copy(r.hash[:], r.h.Sum(nil))
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.rng.Read(p)
	r.h.Write(p[:n])
	r.left -= int64(n)
	r.read += int64(n)
	if r.read >= r.at {
		r.once.Do(func() { close(r.reached) })
	}
	return n, nil
}

// TestSIGTERMDuringUploadFinishes: SIGTERM while a 256 MiB upload streams
// lets it finish (content and finalize), then cofferd exits cleanly, and the
// resource is there, whole, after a restart.
func TestSIGTERMDuringUploadFinishes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs cofferd with its own PostgreSQL, uploads 256 MiB")
	}
	ctx := context.Background()
	bin := mustBuildCofferd(t)
	data := filepath.Join(t.TempDir(), "c")
	url := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	addr := strings.TrimPrefix(url, "http://")
	p := startDev(t, bin, data, addr, "-shutdown-timeout", "5m")
	p.waitReady(t, url)
	for file, kind := range map[string]string{"jwt.key": "dev JWT signing key", "log.key": "dev transparency log key"} {
		RecordKeyFileSecret(t, filepath.Join(data, file), kind)
	}
	ks := NewCanaryKeyStore()
	alice := MustNewClient(t, url, ks)
	if err := alice.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	g := mustGroup(t, alice, "big files", nil)

	const size = 256 << 20
	src := newSignalingReader(size, 64<<20)
	type result struct {
		res *clientlib.Resource
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := alice.Put(ctx, g, src, clientlib.Meta{Name: "big.bin"})
		done <- result{res, err}
	}()
	select {
	case <-src.reached:
	case r := <-done:
		t.Fatalf("the upload ended before the signal: %v", r.err)
	case <-time.After(5 * time.Minute):
		t.Fatal("the upload did not reach 64 MiB in 5 minutes")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("the upload in flight at SIGTERM failed: %v\n%s", r.err, p.log)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("cofferd after SIGTERM: %v\n%s", p.err, p.log)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("cofferd still running 2 minutes after SIGTERM and the upload's end\n%s", p.log)
	}

	// Nothing lost: after a restart the resource reads back whole.
	again := startDev(t, bin, data, addr)
	again.waitReady(t, url)
	rr, err := alice.Get(ctx, g, r.res.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rr)
	rr.Close()
	if err != nil || n != size {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	if [32]byte(h.Sum(nil)) != src.hash {
		t.Fatal("the resource read back differs from what was uploaded")
	}
	again.stop(t, data)
}
