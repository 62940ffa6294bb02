package content

import (
	"crypto/sha256"
	"hash"
	"sync"
)

// The ciphertext's SHA-256 is computed on a goroutine of its own, beside
// age's ChaCha20-Poly1305 on the caller's goroutine: the two passes cost
// about the same per byte, and in sequence on one core they halve the
// throughput that two cores give.
const (
	// hashBuffers is how many copies of ciphertext a stream may have
	// waiting to be hashed: the memory a stream adds is at most
	// hashBuffers × hashBufferSize, allocated only when needed.
	hashBuffers = 4
	// hashBufferSize holds one encrypted age chunk (64 KiB and a tag).
	hashBufferSize = 64<<10 + 16
	// hashInline is the largest piece hashed on the caller's goroutine
	// when nothing is queued: below it, handing over costs more than
	// hashing. Every small resource is hashed this way.
	hashInline = 4 << 10
)

// hasher is a SHA-256 of a stream, written from one goroutine (the
// producer) and computed on another. write copies what it is given into one
// of the stream's buffers and queues it; a worker goroutine hashes the queue
// in order.
//
// The worker exists only while something is queued: write starts it when it
// queues a buffer and none is running, and it returns as soon as the queue is
// empty. It never waits on anything but mu, so a stream abandoned midway
// (its caller stopped after an error, or gave up) leaves no goroutine
// behind: the worker hashes at most hashBuffers buffers and returns. sum
// waits for it. write, sum and wait must be called from one goroutine at a
// time, as for any hash.Hash.
type hasher struct {
	h hash.Hash
	// free holds the buffers not queued, nil until first used: receiving
	// from it is what bounds the queue.
	free chan []byte

	mu      sync.Mutex
	queue   [][]byte // buffers to hash, in order
	running bool     // a worker is running; false implies queue is empty
	worker  sync.WaitGroup
}

func newHasher() *hasher { return &hasher{h: sha256.New()} }

// write hashes p, or queues a copy of it to be hashed. p may be reused as
// soon as write returns.
func (a *hasher) write(p []byte) {
	if len(p) <= hashInline && a.idle() {
		// Nothing is queued, so everything before p is already hashed.
		a.h.Write(p)
		return
	}
	if a.free == nil {
		a.free = make(chan []byte, hashBuffers)
		for range hashBuffers {
			a.free <- nil
		}
	}
	for len(p) > 0 {
		// Blocks only while every buffer is queued, that is while the
		// worker runs, and it returns each buffer it has hashed.
		buf := <-a.free
		if buf == nil {
			buf = make([]byte, hashBufferSize)
		}
		n := copy(buf[:cap(buf)], p)
		p = p[n:]
		a.mu.Lock()
		a.queue = append(a.queue, buf[:n])
		if !a.running {
			a.running = true
			a.worker.Add(1)
			go a.work()
		}
		a.mu.Unlock()
	}
}

func (a *hasher) idle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.running
}

// work hashes the queue until it is empty, then returns.
func (a *hasher) work() {
	defer a.worker.Done()
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		buf := a.queue[0]
		a.queue = append(a.queue[:0], a.queue[1:]...)
		a.mu.Unlock()
		a.h.Write(buf)
		a.free <- buf // never blocks: free has room for every buffer
	}
}

// wait returns once everything written so far is hashed and no worker runs.
func (a *hasher) wait() { a.worker.Wait() }

// sum waits for the worker and returns the hash of everything written.
func (a *hasher) sum() [32]byte {
	a.wait()
	return [32]byte(a.h.Sum(nil))
}
