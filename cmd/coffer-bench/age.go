package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/proccpu"
)

// The age column (issue 14): the same bytes encrypted and decrypted with
// filippo.io/age in a single stream, in this process and this run, as
// `age -e` and `age -d` would; a durable write of the same bytes to the
// blob store's disk, as `dd conv=fsync` would; and the verified decrypt
// path of internal/content in isolation (no network) at GOMAXPROCS 1 and
// 2, beside age's at the same setting.

// cpuRun is a timed run and the CPU time this process spent in it.
type cpuRun struct {
	elapsed, cpu time.Duration
}

func timed(fn func() error) (cpuRun, error) {
	c0, t0 := proccpu.Process(os.Getpid()), time.Now()
	err := fn()
	return cpuRun{elapsed: time.Since(t0), cpu: proccpu.Process(os.Getpid()) - c0}, err
}

type ageRuns struct {
	enc, dec, durable cpuRun
	// encNoDisk is age -e > /dev/null: age's own CPU for the encryption,
	// without the page-cache writes of enc, which on this box can cost ten
	// times the cryptography while the disk is still writing back the
	// upload just measured. hashOnly is the chunk-tree hashing alone (a
	// RecordHash of every 64 KiB ciphertext chunk, one goroutine): work
	// the signed tree requires of every put and get and that age does not
	// do, so it bounds how close to age's CPU either can come.
	encNoDisk, hashOnly cpuRun
	// scaling: GOMAXPROCS → age decrypt, content's verified decrypt.
	scaling map[int][2]cpuRun
}

// benchAge writes its files under dir, which is on the blob store's disk
// for the fs backend.
func benchAge(dir string, size int64) (ageRuns, error) {
	var r ageRuns
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return r, err
	}
	agePath := filepath.Join(dir, "age-bench.age")
	defer os.Remove(agePath)
	// age -e > file: encryption and a plain (not synced) write, as a shell
	// redirect does.
	r.enc, err = timed(func() error {
		stop, err := startProfile(os.Getenv("COFFER_BENCH_AGE_ENC_CPUPROFILE"))
		if err != nil {
			return err
		}
		defer stop()
		f, err := os.Create(agePath)
		if err != nil {
			return err
		}
		defer f.Close()
		return ageEncrypt(f, id.Recipient(), size)
	})
	if err != nil {
		return r, fmt.Errorf("age -e: %w", err)
	}
	r.encNoDisk, err = timed(func() error { return ageEncrypt(io.Discard, id.Recipient(), size) })
	if err != nil {
		return r, fmt.Errorf("age -e > /dev/null: %w", err)
	}
	r.hashOnly, _ = timed(func() error {
		buf := make([]byte, content.ChunkSize+16) // a sealed STREAM chunk
		src := newSource(size)
		for {
			n, err := io.ReadFull(src, buf)
			if n > 0 {
				tlog.RecordHash(buf[:n])
			}
			if err != nil {
				return nil
			}
		}
	})
	ageDecrypt := func() error {
		f, err := os.Open(agePath)
		if err != nil {
			return err
		}
		defer f.Close()
		pt, err := age.Decrypt(f, id)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, pt, make([]byte, 64<<10))
		if err == nil && n != size {
			err = fmt.Errorf("%d bytes", n)
		}
		return err
	}
	if r.dec, err = timed(ageDecrypt); err != nil {
		return r, fmt.Errorf("age -d: %w", err)
	}
	// dd conv=fsync: the same number of bytes written and synced.
	durablePath := filepath.Join(dir, "durable-bench")
	defer os.Remove(durablePath)
	r.durable, err = timed(func() error {
		f, err := os.Create(durablePath)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyBuffer(f, newSource(size), make([]byte, 1<<20)); err != nil {
			return err
		}
		return f.Sync()
	})
	if err != nil {
		return r, fmt.Errorf("durable write: %w", err)
	}
	os.Remove(durablePath)

	// The verified decrypt path alone: a resource blob on disk, its list
	// proven against the root, every chunk proven and opened.
	k := groupkey.NewEpochKey()
	g, res := coffer.NewGroupID(), coffer.NewResourceID()
	blobPath := filepath.Join(dir, "coffer-bench.blob")
	defer os.Remove(blobPath)
	bf, err := os.Create(blobPath)
	if err != nil {
		return r, err
	}
	w, err := content.Encrypt(bf, k, g, 1, res)
	if err == nil {
		_, err = io.CopyBuffer(w, newSource(size), make([]byte, 256<<10))
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := bf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return r, err
	}
	root, chunks, ageSize := w.Sum()
	verified := func() error {
		f, err := os.Open(blobPath)
		if err != nil {
			return err
		}
		defer f.Close()
		list := make([]byte, content.ChunkHashListSize(chunks))
		if _, err := f.ReadAt(list, ageSize); err != nil {
			return err
		}
		hs, err := content.VerifyChunkHashes(list, root, chunks)
		if err != nil {
			return err
		}
		pt, err := content.Decrypt(f, hs, k, g, 1, res, ageSize)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, pt, make([]byte, 256<<10))
		if err == nil && n != size {
			err = fmt.Errorf("%d bytes", n)
		}
		return err
	}
	r.scaling = map[int][2]cpuRun{}
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	for _, procs := range []int{1, 2} {
		runtime.GOMAXPROCS(procs)
		a, err := timed(ageDecrypt)
		if err != nil {
			return r, err
		}
		c, err := timed(verified)
		if err != nil {
			return r, err
		}
		r.scaling[procs] = [2]cpuRun{a, c}
	}
	return r, nil
}

// ageEncrypt encrypts size bytes of the benchmark's source to dst with age
// in one stream, as `age -e` does.
func ageEncrypt(dst io.Writer, r age.Recipient, size int64) error {
	w, err := age.Encrypt(dst, r)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(w, newSource(size), make([]byte, 64<<10)); err != nil {
		return err
	}
	return w.Close()
}

// firstBytes measures the time to the first verified byte of the large
// resource read whole, and of a range read at 900 MiB (or at 7/8 of a
// smaller resource), each from the call to the first byte returned: the
// first range read of the resource, then the median of five more at
// nearby offsets (other chunks, so that nothing is served from a cache of
// the first).
func firstBytes(ctx context.Context, client *clientlib.Client, g coffer.GroupID, id coffer.ResourceID, size int64) (whole, ranged, rangedMedian time.Duration, at int64, err error) {
	at = min(900<<20, size*7/8)
	buf := make([]byte, 1)
	t0 := time.Now()
	rr, err := client.Get(ctx, g, id)
	if err != nil {
		return 0, 0, 0, at, err
	}
	if _, err := io.ReadFull(rr, buf); err != nil {
		rr.Close()
		return 0, 0, 0, at, err
	}
	whole = time.Since(t0)
	rr.Close()
	var times []time.Duration
	for i := range 6 {
		off := min(at+int64(i)*7*content.ChunkSize, size-1)
		t0 = time.Now()
		rr, err = client.GetRange(ctx, g, id, off, 64<<10)
		if err != nil {
			return whole, 0, 0, at, err
		}
		_, err := io.ReadFull(rr, buf)
		times = append(times, time.Since(t0))
		rr.Close()
		if err != nil {
			return whole, 0, 0, at, err
		}
	}
	rest := times[1:]
	slices.Sort(rest)
	return whole, times[0], rest[len(rest)/2], at, nil
}

func printAge(cfg config, plain, enc pair, ar ageRuns) {
	size := float64(cfg.size)
	mbps := func(d time.Duration) float64 { return size / d.Seconds() / 1e6 }
	perGiB := func(d time.Duration) float64 { return d.Seconds() / (size / (1 << 30)) }
	fmt.Printf("\n### beside age (same bytes, same run)\n\n")
	fmt.Printf("| direction | Coffer MB/s | age single stream MB/s | Coffer/age | plain transfer MB/s | Coffer/plain | durable write MB/s | Coffer/min(age, durable) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	slower := max(ar.enc.elapsed, ar.durable.elapsed)
	fmt.Printf("| put | %.0f | %.0f (age -e) | %.2f | %.0f | %.2f | %.0f | %.2f |\n",
		mbps(enc.up.elapsed), mbps(ar.enc.elapsed), ar.enc.elapsed.Seconds()/enc.up.elapsed.Seconds(),
		mbps(plain.up.elapsed), plain.up.elapsed.Seconds()/enc.up.elapsed.Seconds(),
		mbps(ar.durable.elapsed), slower.Seconds()/enc.up.elapsed.Seconds())
	fmt.Printf("| get (to a discarding writer) | %.0f | %.0f (age -d) | %.2f | %.0f | %.2f | – | – |\n",
		mbps(enc.down.elapsed), mbps(ar.dec.elapsed), ar.dec.elapsed.Seconds()/enc.down.elapsed.Seconds(),
		mbps(plain.down.elapsed), plain.down.elapsed.Seconds()/enc.down.elapsed.Seconds())
	fmt.Printf("\nclient CPU per GiB: put %.2f s (age -e %.2f s, %.2f×), get %.2f s (age -d %.2f s, %.2f×)\n",
		perGiB(enc.up.clientCPU), perGiB(ar.enc.cpu), enc.up.clientCPU.Seconds()/ar.enc.cpu.Seconds(),
		perGiB(enc.down.clientCPU), perGiB(ar.dec.cpu), enc.down.clientCPU.Seconds()/ar.dec.cpu.Seconds())
	fmt.Printf("CPU per GiB that bounds these ratios: age -e > /dev/null %.2f s (the put: %.2f×); chunk-tree hashing alone %.2f s, which age does not do: age -e > /dev/null plus hashing is %.2f× age -e > /dev/null, age -d plus hashing %.2f× age -d\n",
		perGiB(ar.encNoDisk.cpu), enc.up.clientCPU.Seconds()/ar.encNoDisk.cpu.Seconds(), perGiB(ar.hashOnly.cpu),
		(ar.encNoDisk.cpu+ar.hashOnly.cpu).Seconds()/ar.encNoDisk.cpu.Seconds(), (ar.dec.cpu+ar.hashOnly.cpu).Seconds()/ar.dec.cpu.Seconds())
	fmt.Printf("peak RSS: put client %s, server %s; get client %s, server %s\n",
		human(enc.up.clientHWM), human(enc.up.serverHWM), human(enc.down.clientHWM), human(enc.down.serverHWM))
	fmt.Printf("time to first verified byte: whole resource %s, range read at %s %s (the first range read; median of five more nearby: %s)\n",
		enc.firstWhole.Round(100*time.Microsecond), human(enc.rangeAt), enc.firstRange.Round(100*time.Microsecond), enc.firstRangeMedian.Round(100*time.Microsecond))
	fmt.Printf("wait for the log to include the upload, before the timed get (not counted in it): %s\n", enc.logWait.Round(100*time.Microsecond))
	fmt.Printf("\nverified decrypt path alone (blob on disk, no network) beside age -d:\n\n| GOMAXPROCS | Coffer MB/s | Coffer CPU s/GiB | age -d MB/s | age CPU s/GiB | Coffer/age |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, procs := range []int{1, 2} {
		a, c := ar.scaling[procs][0], ar.scaling[procs][1]
		fmt.Printf("| %d | %.0f | %.2f | %.0f | %.2f | %.2f |\n", procs, mbps(c.elapsed), perGiB(c.cpu), mbps(a.elapsed), perGiB(a.cpu), a.elapsed.Seconds()/c.elapsed.Seconds())
	}
	fmt.Println()
}
