package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
)

// These tests interrupt 256 MiB transfers halfway, by cutting the
// connection (a TCP proxy that closes it) or by killing the coffer process,
// and check that running them again completes them with the same bytes,
// resumed rather than started over.

const bigSize = 256 << 20

// bigFile writes size bytes of a seeded stream to a file and returns its
// path and SHA-256.
func bigFile(t *testing.T, seed byte, size int64) (string, [32]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.NewChaCha8([32]byte{seed}), size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, [32]byte(h.Sum(nil))
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// cutProxy forwards TCP connections to a server and counts the bytes in
// each direction. Once the bytes towards the server (up) or towards the
// client reach at, it runs its trigger once: by default, it closes every
// open connection.
type cutProxy struct {
	url      string
	ln       net.Listener
	target   string
	up       atomic.Bool
	at       atomic.Int64
	toServer atomic.Int64
	toClient atomic.Int64
	fired    atomic.Bool
	reset    atomic.Bool // cut with a TCP reset
	trigger  func()

	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, serverURL string, up bool, at int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{url: "http://" + ln.Addr().String(), ln: ln, target: strings.TrimPrefix(serverURL, "http://")}
	p.up.Store(up)
	p.at.Store(at)
	p.trigger = p.cutAll
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cutAll()
	})
	return p
}

// rearm counts again from now and fires once more after at bytes.
func (p *cutProxy) rearm(at int64) {
	p.at.Store(p.counted() + at)
	p.fired.Store(false)
}

func (p *cutProxy) counted() int64 {
	if p.up.Load() {
		return p.toServer.Load()
	}
	return p.toClient.Load()
}

func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok && p.reset.Load() {
			tc.SetLinger(0) // a reset, not an orderly close
		}
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		up := p.up.Load()
		go p.pipe(s, c, &p.toServer, up)
		go p.pipe(c, s, &p.toClient, !up)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn, n *atomic.Int64, counted bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 64<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			total := n.Add(int64(k))
			if counted && total >= p.at.Load() && p.fired.CompareAndSwap(false, true) {
				p.trigger()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestResumeUploadAfterCut: the connection is cut halfway through a 256
// MiB Put of a file; clientlib resumes from the server's durable offset by
// itself, sending the rest only, and the resource reads back equal.
func TestResumeUploadAfterCut(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	g := mustGroup(t, alice, "big", nil)
	path, sum := bigFile(t, 1, bigSize)
	p := newCutProxy(t, srv.URL(), true, bigSize/2)
	viaProxy := MustNewClient(t, p.url, KeyStore(t, alice))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := viaProxy.Put(context.Background(), g, f, clientlib.Meta{Name: "big.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if !p.fired.Load() {
		t.Fatal("the proxy never cut the connection")
	}
	if sent := p.toServer.Load(); sent > bigSize*5/4 {
		t.Errorf("%d bytes went to the server for %d: started over rather than resumed", sent, bigSize)
	}
	rr, err := alice.Get(context.Background(), g, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rr); err != nil || [32]byte(h.Sum(nil)) != sum {
		t.Fatalf("the resumed upload reads back different bytes: %v", err)
	}
}

// TestResumeDownloadAfterCut: the connection is cut halfway through a 256
// MiB Get. What the reader returned is genuine; the read fails (truncated)
// or clientlib resumes it by itself; either way, a verified range read of
// the rest from where it stopped completes it, and the bytes are equal.
func TestResumeDownloadAfterCut(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	g := mustGroup(t, alice, "big", nil)
	path, sum := bigFile(t, 2, bigSize)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.Put(context.Background(), g, f, clientlib.Meta{Name: "big.bin"})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, srv.URL(), false, bigSize/2)
	viaProxy := MustNewClient(t, p.url, KeyStore(t, alice))
	ctx := context.Background()
	h := sha256.New()
	rr, err := viaProxy.Get(ctx, g, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(h, rr)
	rr.Close()
	if !p.fired.Load() {
		t.Fatal("the proxy never cut the connection")
	}
	if err != nil {
		if !errors.Is(err, content.ErrTruncated) && coffer.ErrorCode(err) != coffer.EUNAVAILABLE {
			t.Fatalf("the cut read failed with %v, want a truncated stream or a failed connection", err)
		}
		if got == 0 || got%content.ChunkSize != 0 {
			t.Fatalf("the cut read returned %d bytes, want whole chunks", got)
		}
		t.Logf("cut after %d bytes: %v", got, err)
		before := p.toClient.Load()
		rest, err := viaProxy.GetRangeWithOptions(ctx, g, res.ID, got, -1, &clientlib.RangeOptions{Version: res.Version})
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(h, rest)
		rest.Close()
		if err != nil || got+n != bigSize {
			t.Fatalf("the rest: %d bytes, %v", n, err)
		}
		if moved := p.toClient.Load() - before; moved > bigSize-got+bigSize/8 {
			t.Errorf("resuming at %d moved %d bytes", got, moved)
		}
	} else if got != bigSize {
		t.Fatalf("read %d bytes without an error", got)
	}
	if [32]byte(h.Sum(nil)) != sum {
		t.Fatal("the resumed download differs")
	}
}

// TestResumeCLIAfterKill kills the coffer process halfway through a 256
// MiB put and, in a second step, halfway through a 256 MiB get -o; running
// each command again completes it, resuming, and the bytes are equal.
func TestResumeCLIAfterKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs cofferd -dev with its own PostgreSQL")
	}
	bins := mustBuildCLI(t)
	path, sum := bigFile(t, 3, bigSize)

	// The profile talks to the server through a proxy that kills the
	// running coffer once half the content went by. Logins are bound to
	// the origin the client uses: the proxy's.
	p := newCutProxy(t, "", true, 1<<62)
	srv := startCLIServer(t, bins, "-origin", p.url)
	p.target = strings.TrimPrefix(srv.url, "http://")
	var victim atomic.Pointer[exec.Cmd]
	p.trigger = func() {
		if cmd := victim.Load(); cmd != nil {
			cmd.Process.Kill()
		}
	}
	alice := srv.profile(t, "alice", false)
	alice.ok(t, "init", "--server", p.url, "--handle", "alice")
	g := mustParseGroupID(t, alice.ok(t, "group", "create", "big"))

	// killedRun starts coffer with args and kills it once at more bytes went
	// the proxy's way; it fails the test if the command finished first.
	killedRun := func(at int64, args ...string) {
		t.Helper()
		cmd := exec.Command(bins.coffer, append([]string{"--profile", alice.dir}, args...)...)
		cmd.Env = cleanEnv(append([]string{"HOME=" + srv.home}, cliPassphraseEnv...))
		var errb bytes.Buffer
		cmd.Stderr = &errb
		victim.Store(cmd)
		p.rearm(at)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		victim.Store(nil)
		fired := p.fired.Load()
		p.rearm(1 << 62)
		if err == nil || !fired {
			t.Fatalf("coffer %s was not killed (%v)\n%s", strings.Join(args, " "), err, errb.String())
		}
		t.Logf("killed coffer %s after %d bytes", strings.Join(args, " "), at)
	}

	killedRun(bigSize/2, "put", g.String(), path)
	before := p.toServer.Load()
	id := mustParseResourceID(t, alice.ok(t, "put", g.String(), path))
	if sent := p.toServer.Load() - before; sent > bigSize*3/4 {
		t.Errorf("the second put sent %d bytes of %d: started over rather than resumed", sent, bigSize)
	}

	out := filepath.Join(t.TempDir(), "out.bin")
	p.up.Store(false)
	killedRun(bigSize/2, "get", g.String(), id.String(), "-o", out)
	mustNotExist(t, out)
	before = p.toClient.Load()
	code, _, stderr := alice.run(t, "get", g.String(), id.String(), "-o", out)
	wantExit(t, code, cliOK, stderr)
	if !strings.Contains(stderr, "resuming at byte") {
		t.Errorf("the second get did not resume:\n%s", stderr)
	}
	if moved := p.toClient.Load() - before; moved > bigSize*3/4 {
		t.Errorf("the second get moved %d bytes of %d", moved, bigSize)
	}
	if fileSum(t, out) != sum {
		t.Fatal("the resumed get wrote different bytes")
	}
	if _, err := os.Stat(partialFile(out)); !os.IsNotExist(err) {
		t.Errorf("the partial file is left behind: %v", err)
	}
}

func partialFile(output string) string {
	return filepath.Join(filepath.Dir(output), "."+filepath.Base(output)+".coffer-partial")
}

// TestResumeDownloadAfterReset: connections reset in the middle of a Get
// are failures of the network, which clientlib resumes by itself with
// verified range reads, a bounded number of times: one reset is healed
// without the caller seeing it; a server whose every answer is reset makes
// the read fail after the bound, with only genuine bytes returned.
func TestResumeDownloadAfterReset(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	g := mustGroup(t, alice, "g", nil)
	data := randomContent(t, 24<<20)
	res := mustPut(t, alice, g, "data.bin", data)
	p := newCutProxy(t, srv.URL(), false, 10<<20)
	p.reset.Store(true)
	viaProxy := MustNewClient(t, p.url, KeyStore(t, alice))
	ctx := context.Background()

	rr, err := viaProxy.Get(ctx, g, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rr)
	rr.Close()
	if !p.fired.Load() {
		t.Fatal("the proxy never reset the connection")
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a Get whose connection was reset once: %d bytes, %v", len(got), err)
	}

	// Every answer reset after 2 MiB: the read gives up, after at most
	// the bound of attempts.
	var resets atomic.Int64
	p.trigger = func() {
		resets.Add(1)
		p.cutAll()
		p.rearm(2 << 20)
	}
	p.rearm(2 << 20)
	rr, err = viaProxy.Get(ctx, g, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rr)
	rr.Close()
	if coffer.ErrorCode(err) != coffer.EUNAVAILABLE {
		t.Fatalf("a Get whose every connection is reset: %v, want EUNAVAILABLE", err)
	}
	if n := resets.Load(); n < 2 || n > 8 {
		t.Errorf("%d resets before giving up, want a few (the bound)", n)
	}
	if len(got) == 0 || len(got)%content.ChunkSize != 0 || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("the failed read returned %d bytes, want a genuine prefix of whole chunks", len(got))
	}
}

// TestResumeUploadBound: a Put whose every connection is reset midway
// retries a bounded number of times, resuming, and then fails with
// EUNAVAILABLE instead of looping.
func TestResumeUploadBound(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	g := mustGroup(t, alice, "g", nil)
	p := newCutProxy(t, srv.URL(), true, 3<<20)
	p.reset.Store(true)
	var resets atomic.Int64
	p.trigger = func() {
		resets.Add(1)
		p.cutAll()
		p.rearm(3 << 20)
	}
	viaProxy := MustNewClient(t, p.url, KeyStore(t, alice))
	_, err := viaProxy.Put(context.Background(), g, bytes.NewReader(randomContent(t, 64<<20)), clientlib.Meta{Name: "never.bin"})
	if coffer.ErrorCode(err) != coffer.EUNAVAILABLE {
		t.Fatalf("a Put whose every connection is reset: %v, want EUNAVAILABLE", err)
	}
	if n := resets.Load(); n < 2 || n > 8 {
		t.Errorf("%d resets before giving up, want a few (the bound)", n)
	}
	if list, err := alice.List(context.Background(), g); err != nil || len(list) != 0 {
		t.Fatalf("after the failed put: %d resources, %v", len(list), err)
	}
}
