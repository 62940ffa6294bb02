// Command coffer-bench measures resources end to end over loopback, for
// docs/BENCHMARKS.md:
//
//   - upload and download of one large resource through cofferd and
//     clientlib, against the same bytes sent unencrypted through a plain
//     HTTP handler that writes to the same kind of blob store (the limit);
//   - peak RSS (VmHWM) of the server and of the client during each
//     transfer: the server runs as a child process, the client is this one;
//   - authenticated reads of small resources (header, metadata and content,
//     all verified) at a given concurrency: reads per second, p50, p99 and
//     CPU per read of client, cofferd and PostgreSQL, beside their limits
//     in the same run (small.go): a Go hello-world handler, pgbench -S
//     against the same PostgreSQL, and the primary-key read of the row.
//
// Usage:
//
//	go run ./cmd/coffer-bench [-size 1GiB] [-small 1000] [-small-size 1024] [-concurrency 32] [-duration 15s] [-backend fs,s3] [-age=false]
//
// -small 0 skips the small reads. With -age (the default) it also runs the
// age column of issue 14: filippo.io/age on the same bytes in one stream,
// a durable write of them, ratios, client CPU per GiB, time to the first
// verified byte, and the verified decrypt path at GOMAXPROCS 1 and 2.
//
// -size 0 measures small reads only.
//
// -backend says which blob stores to measure, one after the other: fs (a
// directory) and s3 (an S3 bucket on a versitygw that coffer-bench starts
// on loopback; see internal/s3test for how it is found or installed).
//
// It re-executes itself as the server processes: "coffer-bench cofferd
// FLAGS" runs cofferd (dev mode: a private PostgreSQL under a temporary
// directory), and "coffer-bench plain FLAGS" the baseline server, which
// lives only here and never in cofferd's router.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/proccpu"
	"github.com/cofferhq/coffer/internal/s3test"
	"github.com/cofferhq/coffer/s3blob"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "cofferd":
			exit(runCofferd(os.Args[2:]))
		case "plain":
			exit(runPlain(os.Args[2:]))
		case "hello":
			exit(runHello(os.Args[2:]))
		}
	}
	exit(run(os.Args[1:]))
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "coffer-bench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runCofferd is cmd/cofferd in a child process. With COFFER_BENCH_CPUPROFILE
// set, it writes a CPU profile of its whole run there.
func runCofferd(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("COFFER_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	m := cofferd.NewMain()
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return m.Close()
}

// runPlain is the baseline: PUT /blobs streams the body into a blob, GET
// /blobs/{key} serves it. No authentication, hashing or database: only
// the transfer and the blob store, what cofferd's resource path cannot
// beat.
func runPlain(args []string) error {
	fs := flag.NewFlagSet("plain", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dir := fs.String("blob-dir", "", "blob directory")
	blobURL := fs.String("blob-url", "", "blob store URL (s3://...), instead of -blob-dir")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var blobs coffer.BlobStore
	var err error
	if *blobURL != "" {
		blobs, err = s3blob.Open(context.Background(), *blobURL)
	} else {
		blobs, err = fsblob.New(*dir)
	}
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /blobs", func(w http.ResponseWriter, r *http.Request) {
		key := coffer.NewBlobKey()
		bw, err := blobs.Create(r.Context(), key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer bw.Abort()
		if _, err := io.CopyBuffer(bw, r.Body, make([]byte, 256<<10)); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if err := bw.Commit(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, key)
	})
	mux.HandleFunc("GET /blobs/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, err := blobs.Open(r.Context(), r.PathValue("key"))
		if err != nil {
			http.Error(w, err.Error(), 404)
			return
		}
		defer b.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, b)
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	<-ctx.Done()
	return srv.Close()
}

type config struct {
	size        int64
	small       int
	smallSize   int
	concurrency int
	duration    time.Duration
	keep        bool
	backends    []string
	age         bool
}

// backend is where the servers keep blobs: extra arguments for both
// servers, and environment for their processes.
type backend struct {
	name string
	args []string
	env  []string
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func run(args []string) error {
	fs := flag.NewFlagSet("coffer-bench", flag.ContinueOnError)
	var cfg config
	size := fs.String("size", "1GiB", "size of the large resource (KiB, MiB, GiB suffixes); 0 measures small reads only")
	fs.IntVar(&cfg.small, "small", 1000, "number of small resources")
	fs.IntVar(&cfg.smallSize, "small-size", 1024, "size of each small resource in bytes")
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "concurrent small reads")
	fs.DurationVar(&cfg.duration, "duration", 15*time.Second, "how long to run small reads")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory")
	backends := fs.String("backend", "fs", "comma-separated blob stores to measure: fs, s3")
	fs.BoolVar(&cfg.age, "age", true, "measure filippo.io/age on the same bytes, a durable write, and the verified decrypt path at GOMAXPROCS 1 and 2")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	for _, b := range strings.Split(*backends, ",") {
		if b = strings.TrimSpace(b); b != "fs" && b != "s3" {
			return fmt.Errorf("-backend: unknown blob store %q (want fs or s3)", b)
		}
		cfg.backends = append(cfg.backends, strings.TrimSpace(b))
	}
	if cfg.size, err = parseSize(*size); err != nil {
		return fmt.Errorf("-size: %w", err)
	}
	tmp, err := os.MkdirTemp("", "coffer-bench-")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(tmp)
	}
	// Dev mode runs PostgreSQL as the postgres user when we are root: it
	// must be able to reach its data directory.
	os.Chmod(tmp, 0o755)

	fmt.Printf("# coffer-bench: %s/%s, %d CPUs, %s, large resource %s\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), human(cfg.size))

	for _, name := range cfg.backends {
		b, err := newBackend(tmp, name)
		if err != nil {
			return fmt.Errorf("%s blob store: %w", name, err)
		}
		if err := benchBackend(tmp, cfg, b); err != nil {
			return fmt.Errorf("%s blob store: %w", name, err)
		}
	}
	return nil
}

// newBackend prepares a blob store for both servers: a directory each, or
// one bucket each on a versitygw running on loopback.
func newBackend(tmp, name string) (backend, error) {
	b := backend{name: name}
	switch name {
	case "fs":
		b.args = []string{"-blob-dir", filepath.Join(tmp, "blobs-"+strconv.FormatInt(time.Now().UnixNano(), 36))}
	case "s3":
		srv, err := s3test.Launch()
		if err != nil {
			return b, err
		}
		bucket, err := srv.MakeBucket(context.Background())
		if err != nil {
			return b, err
		}
		b.args = []string{"-blob-url", srv.URL(bucket, "blobs")}
		storePID = srv.Pid
		b.env = srv.Env()
	}
	return b, nil
}

func benchBackend(tmp string, cfg config, b backend) error {
	// The baselines first, so their servers are gone before cofferd starts.
	var hello loadResult
	var err error
	if cfg.small > 0 {
		if hello, err = benchHello(tmp, cfg); err != nil {
			return fmt.Errorf("hello baseline: %w", err)
		}
	}
	var plain pair
	if cfg.size > 0 {
		if plain, err = benchPlain(tmp, cfg, b); err != nil {
			return fmt.Errorf("plain baseline: %w", err)
		}
	}
	enc, small, err := benchCoffer(tmp, cfg, b)
	if err != nil {
		return fmt.Errorf("cofferd: %w", err)
	}

	fmt.Printf("## blob store: %s\n\n", b.name)
	if cfg.small > 0 {
		printSmall(cfg, hello, small.pgbench, small.row, small.smallResult)
	}
	if cfg.size == 0 {
		return nil
	}
	mbps := func(d time.Duration) float64 { return float64(cfg.size) / d.Seconds() / 1e6 }
	fmt.Printf("| transfer of %s | MB/s | server VmHWM | client VmHWM | CPU used by other processes |\n|---|---:|---:|---:|---:|\n", human(cfg.size))
	row := func(name string, t transfer) {
		fmt.Printf("| %s | %.0f | %s | %s | %.0f%% |\n", name, mbps(t.elapsed), human(t.serverHWM), human(t.clientHWM), 100*t.others)
	}
	row("upload, plain handler", plain.up)
	row("upload, cofferd + clientlib (encrypted)", enc.up)
	row("download, plain handler", plain.down)
	row("download, cofferd + clientlib (verified)", enc.down)
	fmt.Printf("\nratio encrypted/plain: upload %.2f, download %.2f\n\n",
		plain.up.elapsed.Seconds()/enc.up.elapsed.Seconds(), plain.down.elapsed.Seconds()/enc.down.elapsed.Seconds())
	if cfg.age {
		dir := tmp
		if len(b.args) == 2 && b.args[0] == "-blob-dir" {
			dir = filepath.Dir(b.args[1]) // the blob store's disk
		}
		ar, err := benchAge(dir, cfg.size)
		if err != nil {
			return fmt.Errorf("age column: %w", err)
		}
		printAge(cfg, plain, enc, ar)
	}
	return nil
}

// smallRun is the small reads and the database baselines measured while
// cofferd's PostgreSQL runs.
type smallRun struct {
	smallResult
	row     loadResult
	pgbench pgbenchResult
}

type transfer struct {
	elapsed              time.Duration
	serverHWM, clientHWM int64
	others               float64 // as in smallResult
	clientCPU            time.Duration
}

type pair struct {
	up, down transfer
	// Time to the first verified byte of the large resource, and of a
	// range read at rangeAt (cofferd only).
	firstWhole, firstRange, firstRangeMedian time.Duration
	rangeAt                                  int64
	// logWait is how long after the put the log included the version
	// (cofferd only; not part of the get's time).
	logWait time.Duration
}

type smallResult struct {
	n, errors int
	elapsed   time.Duration
	p50, p99  time.Duration
	// CPU time per read of the client, cofferd and PostgreSQL.
	clientCPU, serverCPU, dbCPU time.Duration
	// storeCPU is the S3 server's, when there is one.
	storeCPU time.Duration
	// others is the share of the machine's CPU that other processes used
	// meanwhile: a benchmark on a shared machine must say so.
	others float64
}

// source yields size pseudo-random bytes from a 4 MiB buffer, so that
// making the data costs nothing next to moving it.
type source struct {
	buf  []byte
	off  int
	left int64
}

var pattern = func() []byte {
	b := make([]byte, 4<<20)
	rand.Read(b)
	return b
}()

func newSource(size int64) *source { return &source{buf: pattern, left: size} }

func (s *source) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), s.left)], s.buf[s.off:])
	s.off = (s.off + n) % len(s.buf)
	s.left -= int64(n)
	return n, nil
}

// child is a server process.
type child struct {
	cmd *exec.Cmd
	url string
	log string
}

func startChild(dir string, env []string, name string, args ...string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], append([]string{name, "-addr", addr}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, url: "http://" + addr, log: logPath}
	ready := "/readyz"
	if name == "plain" {
		ready = "/blobs/" + strings.Repeat("0", 32)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(c.url + ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 || name == "plain" {
				return c, nil
			}
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			c.stop()
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s did not become ready:\n%s", name, b)
		}
	}
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// resetHWM resets a process's peak RSS to its current RSS (Linux 4.0+),
// so VmHWM afterwards is the peak of what follows.
func resetHWM(pid int) {
	os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// hwm reads VmHWM, the peak resident set size, in bytes.
func hwm(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// measure runs fn between resets and reads of both processes' peak RSS.
// pgData names the PostgreSQL data directory, if there is one.
func measure(server int, pgData string, fn func() error) (transfer, error) {
	runtime.GC()
	resetHWM(server)
	resetHWM(os.Getpid())
	ours := func() time.Duration {
		return proccpu.Process(os.Getpid()) + proccpu.Process(server) + postgresCPU(pgData) + storeCPU()
	}
	ours0, busy0, client0 := ours(), machineBusy(), proccpu.Process(os.Getpid())
	start := time.Now()
	if err := fn(); err != nil {
		return transfer{}, err
	}
	t := transfer{elapsed: time.Since(start), serverHWM: hwm(server), clientHWM: hwm(os.Getpid()), clientCPU: proccpu.Process(os.Getpid()) - client0}
	others := (machineBusy() - busy0) - (ours() - ours0)
	t.others = max(0, others.Seconds()) / (t.elapsed.Seconds() * float64(runtime.NumCPU()))
	return t, nil
}

func benchPlain(tmp string, cfg config, b backend) (pair, error) {
	c, err := startChild(tmp, b.env, "plain", b.args...)
	if err != nil {
		return pair{}, err
	}
	defer c.stop()
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	var key string
	var p pair
	p.up, err = measure(c.cmd.Process.Pid, "", func() error {
		req, _ := http.NewRequest("PUT", c.url+"/blobs", newSource(cfg.size))
		req.ContentLength = cfg.size
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("PUT: %s: %s", resp.Status, b)
		}
		key = string(b)
		return nil
	})
	if err != nil {
		return p, err
	}
	p.down, err = measure(c.cmd.Process.Pid, "", func() error {
		resp, err := hc.Get(c.url + "/blobs/" + key)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
		if err == nil && n != cfg.size {
			err = fmt.Errorf("GET: %d bytes, want %d", n, cfg.size)
		}
		return err
	})
	return p, err
}

func benchCoffer(tmp string, cfg config, b backend) (pair, smallRun, error) {
	var p pair
	var small smallRun
	data := filepath.Join(tmp, "data-"+b.name)
	c, err := startChild(tmp, b.env, "cofferd", append([]string{"-dev", "-data", data, "-log-level", "warn",
		"-auth-rate-limit", "1000000", "-gc-interval", "0", "-max-resource-size", strconv.FormatInt(cfg.size+cfg.size/100+(1<<20), 10)},
		b.args...)...)
	if err != nil {
		return p, small, err
	}
	defer c.stop()
	ctx := context.Background()
	client, err := clientlib.New(c.url, clientlib.NewMemoryKeyStore(), nil)
	if err != nil {
		return p, small, err
	}
	if err := client.Register(ctx, "bench"); err != nil {
		return p, small, err
	}
	g, err := client.CreateGroup(ctx, "bench", nil)
	if err != nil {
		return p, small, err
	}
	pid, pgData := c.cmd.Process.Pid, filepath.Join(data, "postgres")

	if cfg.size == 0 {
		if cfg.small == 0 {
			return p, small, nil
		}
		return p, small, benchSmallAll(ctx, client, g, cfg, pid, data, &small)
	}
	var big *clientlib.Resource
	p.up, err = measure(pid, pgData, func() error {
		stop, err := startProfile(os.Getenv("COFFER_BENCH_PUT_CPUPROFILE"))
		if err != nil {
			return err
		}
		defer stop()
		big, err = client.Put(ctx, g, newSource(cfg.size), clientlib.Meta{Name: "large", Size: cfg.size})
		return err
	})
	if err != nil {
		return p, small, fmt.Errorf("upload: %w", err)
	}
	// A reader accepts a version only once the transparency log includes
	// it, which the sequencer does a moment after the put: up to a second
	// on a loaded machine, the same for any size. The get is timed from
	// there, as a download of content put earlier is; the wait is
	// reported on its own.
	t0 := time.Now()
	if _, err := client.Head(ctx, g, big.ID); err != nil {
		return p, small, fmt.Errorf("waiting for the log to include the upload: %w", err)
	}
	p.logWait = time.Since(t0)
	// Get to a discarding writer, as age -d is measured: the plaintext is
	// checked against the source in a second, untimed read, so that the
	// checksum's CPU is not counted as the client's.
	p.down, err = measure(pid, pgData, func() error {
		stop, err := startProfile(os.Getenv("COFFER_BENCH_GET_CPUPROFILE"))
		if err != nil {
			return err
		}
		defer stop()
		stopTrace, err := startTrace(os.Getenv("COFFER_BENCH_GET_TRACE"))
		if err != nil {
			return err
		}
		defer stopTrace()
		rr, err := client.Get(ctx, g, big.ID)
		if err != nil {
			return err
		}
		defer rr.Close()
		n, err := io.CopyBuffer(io.Discard, rr, make([]byte, 256<<10))
		if err == nil && n != cfg.size {
			err = fmt.Errorf("read %d bytes, want %d", n, cfg.size)
		}
		return err
	})
	if err != nil {
		return p, small, fmt.Errorf("download: %w", err)
	}
	if err := checkDownload(ctx, client, g, big.ID, cfg.size); err != nil {
		return p, small, err
	}
	if p.firstWhole, p.firstRange, p.firstRangeMedian, p.rangeAt, err = firstBytes(ctx, client, g, big.ID, cfg.size); err != nil {
		return p, small, fmt.Errorf("first verified byte: %w", err)
	}
	if cfg.small == 0 {
		return p, small, nil
	}
	return p, small, benchSmallAll(ctx, client, g, cfg, pid, data, &small)
}

// benchSmallAll runs the small reads and then, against the same
// PostgreSQL, the primary-key row reads and pgbench.
func benchSmallAll(ctx context.Context, client *clientlib.Client, g coffer.GroupID, cfg config, server int, data string, out *smallRun) error {
	pgData := filepath.Join(data, "postgres")
	var ids []coffer.ResourceID
	var err error
	if out.smallResult, ids, err = benchSmall(ctx, client, g, cfg, server, pgData); err != nil {
		return err
	}
	dbURL, err := devDatabaseURL(data)
	if err != nil {
		return err
	}
	if out.row, err = benchRowRead(ctx, cfg, dbURL, pgData, g, ids); err != nil {
		return fmt.Errorf("row reads: %w", err)
	}
	out.pgbench = benchPgbench(ctx, cfg, dbURL, pgData)
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkDownload reads the resource again and compares its plaintext with
// the source: a benchmark of a reader that returned the wrong bytes would
// mean nothing.
func checkDownload(ctx context.Context, client *clientlib.Client, g coffer.GroupID, id coffer.ResourceID, size int64) error {
	rr, err := client.Get(ctx, g, id)
	if err != nil {
		return err
	}
	defer rr.Close()
	h := crc32.New(castagnoli)
	n, err := io.CopyBuffer(h, rr, make([]byte, 256<<10))
	switch {
	case err != nil:
		return fmt.Errorf("checking the download: %w", err)
	case n != size:
		return fmt.Errorf("checking the download: read %d bytes, want %d", n, size)
	case !bytes.Equal(h.Sum(nil), sourceHash(size)):
		return errors.New("downloaded plaintext differs")
	}
	return nil
}

func sourceHash(size int64) []byte {
	h := crc32.New(castagnoli)
	io.Copy(h, newSource(size))
	return h.Sum(nil)
}

func benchSmall(ctx context.Context, client *clientlib.Client, g coffer.GroupID, cfg config, server int, pgData string) (smallResult, []coffer.ResourceID, error) {
	var res smallResult
	ids := make([]coffer.ResourceID, cfg.small)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				r, err := client.Put(ctx, g, io.LimitReader(newSource(int64(cfg.smallSize)), int64(cfg.smallSize)),
					clientlib.Meta{Name: "small-" + strconv.Itoa(i)})
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					return
				}
				ids[i] = r.ID
			}
		})
	}
	wg.Wait()
	if first != nil {
		return res, nil, fmt.Errorf("small uploads: %w", first)
	}
	read := func(id coffer.ResourceID) error {
		rr, err := client.Get(ctx, g, id)
		if err != nil {
			return err
		}
		defer rr.Close()
		n, err := io.Copy(io.Discard, rr)
		if err == nil && n != int64(cfg.smallSize) {
			err = fmt.Errorf("read %d bytes", n)
		}
		return err
	}
	// Warm up: every resource once, as a client that has seen the group.
	for _, id := range ids[:min(len(ids), 100)] {
		if err := read(id); err != nil {
			return res, nil, fmt.Errorf("small read: %w", err)
		}
	}
	if path := os.Getenv("COFFER_BENCH_CLIENT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return res, nil, err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cpu0 := [4]time.Duration{proccpu.Process(os.Getpid()), proccpu.Process(server), postgresCPU(pgData), storeCPU()}
	busy0 := machineBusy()
	var (
		lats   = make([][]time.Duration, cfg.concurrency)
		errs   atomic.Int64
		stop   = time.Now().Add(cfg.duration)
		start  = time.Now()
		seeded atomic.Uint64
	)
	for w := range cfg.concurrency {
		wg.Go(func() {
			i := int(seeded.Add(7919)) % len(ids)
			for time.Now().Before(stop) {
				i = (i + 1) % len(ids)
				t := time.Now()
				if err := read(ids[i]); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "small read:", err)
					}
					continue
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	cpu1 := [4]time.Duration{proccpu.Process(os.Getpid()), proccpu.Process(server), postgresCPU(pgData), storeCPU()}
	busy := machineBusy() - busy0
	ours := cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1] + cpu1[2] - cpu0[2] + cpu1[3] - cpu0[3]
	res.others = max(0, (busy-ours).Seconds()) / (res.elapsed.Seconds() * float64(runtime.NumCPU()))
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	res.n, res.errors = len(all), int(errs.Load())
	if len(all) > 0 {
		per := func(i int) time.Duration {
			return ((cpu1[i] - cpu0[i]) / time.Duration(len(all))).Round(time.Microsecond)
		}
		res.clientCPU, res.serverCPU, res.dbCPU, res.storeCPU = per(0), per(1), per(2), per(3)
		res.p50 = all[len(all)/2].Round(10 * time.Microsecond)
		res.p99 = all[len(all)*99/100].Round(10 * time.Microsecond)
	}
	return res, ids, nil
}

// machineBusy is the CPU time all processes used so far (/proc/stat:
// user, nice, system, irq, softirq, steal).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// storePID is the S3 server's process, whose CPU counts as the
// benchmark's own, not as another process's.
var storePID int

func storeCPU() time.Duration {
	if storePID == 0 {
		return 0
	}
	return proccpu.Process(storePID)
}

// postgresCPU is the CPU time of the dev-mode cluster: the postmaster,
// the backends running (serving cofferd) and those that exited (pgbench's).
func postgresCPU(dataDir string) time.Duration { return proccpu.Tree(proccpu.Postmaster(dataDir)) }

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func human(n int64) string {
	switch {
	case n < 0:
		return "n/a"
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// startProfile writes a CPU profile of this process to path until the
// returned function is called; with an empty path it does nothing.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startTrace writes an execution trace (go tool trace) to path until stop
// is called; with path empty it does nothing. The get's trace shows when
// the goroutines reading the socket and opening chunks wait.
func startTrace(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { trace.Stop(); f.Close() }, nil
}
