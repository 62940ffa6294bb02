//go:build unix

package content_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/cofferhq/coffer/internal/content"
)

// cpuNow is this process's user and system CPU time.
func cpuNow(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecryptCPUBesideAge decrypts the same 64 MiB plaintext, each
// iteration, with filippo.io/age in one stream (its limit) and through the
// verified path (list proven against the root, every chunk proven and
// opened), both from memory to a discarding writer, and reports the
// process's CPU time of each per op, their ratio (x-age-cpu) and the
// target (issue 14: client CPU at most 1.6 times age's), and the wall-time
// ratio. Run with -cpu 1,2 for the scaling.
func BenchmarkDecryptCPUBesideAge(b *testing.B) {
	tg := newTarget()
	plain := make([]byte, benchSize)
	s := MustEncrypt(b, tg, plain)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	var ab bytes.Buffer
	w, err := age.Encrypt(&ab, id.Recipient())
	if err != nil {
		b.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	ageFile := ab.Bytes()
	buf := make([]byte, 256<<10)
	var ageCPU, ourCPU, ageWall, ourWall time.Duration
	b.SetBytes(benchSize)
	for b.Loop() {
		c0, t0 := cpuNow(b), time.Now()
		r, err := age.Decrypt(bytes.NewReader(ageFile), id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
		c1, t1 := cpuNow(b), time.Now()
		hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
		if err != nil {
			b.Fatal(err)
		}
		pt, err := content.Decrypt(bytes.NewReader(s.age()), hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, pt, buf); err != nil {
			b.Fatal(err)
		}
		c2, t2 := cpuNow(b), time.Now()
		ageCPU += c1 - c0
		ourCPU += c2 - c1
		ageWall += t1.Sub(t0)
		ourWall += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(ourCPU.Seconds()*1e3/n, "cpu-ms/op")
	b.ReportMetric(ageCPU.Seconds()*1e3/n, "limit-age-cpu-ms/op")
	b.ReportMetric(ourCPU.Seconds()/ageCPU.Seconds(), "x-age-cpu")
	b.ReportMetric(1.6, "target-x")
	b.ReportMetric(ageWall.Seconds()/ourWall.Seconds(), "speed-x-age")
}

// BenchmarkBaselineParallelSHA256 and BenchmarkBaselineParallelChaCha20Poly1305
// hash and seal 64 KiB chunks on every P (b.RunParallel): with -cpu 1,2
// they show how much a second core adds to each primitive on this machine,
// the limit of the verified path's scaling.
func BenchmarkBaselineParallelSHA256(b *testing.B) {
	b.SetBytes(64 << 10)
	b.RunParallel(func(pb *testing.PB) {
		chunk := make([]byte, 64<<10)
		for pb.Next() {
			sha256.Sum256(chunk)
		}
	})
}

func BenchmarkBaselineParallelChaCha20Poly1305(b *testing.B) {
	b.SetBytes(64 << 10)
	b.RunParallel(func(pb *testing.PB) {
		a, _ := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
		chunk := make([]byte, 64<<10)
		out := make([]byte, 0, len(chunk)+a.Overhead())
		nonce := make([]byte, a.NonceSize())
		for pb.Next() {
			out = a.Seal(out[:0], nonce, chunk, nil)
		}
	})
}
