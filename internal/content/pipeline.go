package content

import (
	"crypto/cipher"
	"io"
	"runtime"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// A pipeline is the Reader's read-ahead for payloads of more than one
// batch. Reading the ciphertext and the cryptography no longer take turns:
//
//   - one goroutine (fetch) reads the ciphertext into a ring of chunk
//     slots, in order, as far as the slots the Reader has released allow;
//   - workers (work), one per P, each take the next chunk read, prove it
//     against its leaf and open it into the slot's plaintext;
//   - the Reader hands out the plaintext of the slots in chunk order, and
//     only of a chunk whose worker proved and opened it; while the chunk
//     it needs is being opened, it opens the next one read itself rather
//     than wait to be woken.
//
// So the plaintext of a chunk exists only after that chunk is proven, and
// is released in order; a chunk that failed stops the stream there, the
// chunks after it being opened or not but never released. The ring holds
// ringChunks() chunks of ciphertext and of plaintext, whatever the size of
// the resource.
//
// Each goroutine waits only on the pipeline's own conditions or on src.
// They all end when the payload has been read, at the first failure, at
// Close, or when a Reader dropped without Close is collected (a cleanup
// stops them): a stalled or abandoned stream leaves nothing running beyond
// a read of src in progress.
type pipeline struct {
	src     io.Reader
	hashes  *ChunkHashes
	aead    cipher.AEAD
	chunks  uint64
	lastLen int // the final chunk's ciphertext length
	slots   int
	ct, pt  []byte // slots × encChunkSize, slots × chunkSize
	pooled  bool

	mu sync.Mutex
	// fetchCond wakes fetch when slots are released, workCond the workers
	// when chunks are read, readCond the Reader when its chunk is done.
	fetchCond, workCond, readCond sync.Cond
	fetched                       uint64      // chunks whole in their slots
	claimed                       uint64      // chunks taken by a worker
	consumed                      uint64      // chunks whose slot the Reader released
	state                         []slotState // per slot, of the chunk in it
	fetchErr                      error       // why chunk fetched will never arrive
	stopped                       bool
	// Who is waiting, so that nobody is woken for nothing.
	fetchWaits, readWaits bool
	idleWorkers           int
	lowWater              uint64 // free slots that fetch waits for
	running               int    // goroutines not yet ended
	readerDone            bool   // the Reader holds no plaintext of the ring any more
	started               bool
}

type slotState uint8

const (
	slotPending slotState = iota // not yet proven and opened
	slotOK                       // proven and opened
	slotHashBad                  // does not match its leaf
	slotOpenBad                  // does not authenticate
)

// ringChunks is how many chunks a pipeline holds: enough read ahead to keep
// every P busy while the next chunks arrive, with memory fixed at
// 2 × ringChunks × 64 KiB (512 KiB each way with two Ps).
func ringChunks() int {
	return min(max(4*runtime.GOMAXPROCS(0), 8), 64)
}

// ringBufs hold the rings of full-size pipelines, reused rather than made
// and cleared anew for each download: a fresh page costs more than the
// decryption of it on machines that pay for page faults.
var ringBufs = struct{ ct, pt sync.Pool }{
	ct: sync.Pool{New: func() any { b := make([]byte, ringChunks()*encChunkSize); return &b }},
	pt: sync.Pool{New: func() any { b := make([]byte, ringChunks()*chunkSize); return &b }},
}

func newPipeline(src io.Reader, hashes *ChunkHashes, a cipher.AEAD, chunks uint64, lastLen int) *pipeline {
	p := &pipeline{src: src, hashes: hashes, aead: a, chunks: chunks, lastLen: lastLen}
	p.fetchCond.L, p.workCond.L, p.readCond.L = &p.mu, &p.mu, &p.mu
	n := ringChunks()
	if chunks < uint64(n) {
		p.slots = int(chunks)
		p.ct = make([]byte, p.slots*encChunkSize)
		p.pt = make([]byte, p.slots*chunkSize)
	} else {
		p.ct, p.pt = *ringBufs.ct.Get().(*[]byte), *ringBufs.pt.Get().(*[]byte)
		p.pooled = true
		// GOMAXPROCS may have changed since the buffers were made.
		p.slots = min(len(p.ct)/encChunkSize, len(p.pt)/chunkSize)
	}
	p.state = make([]slotState, p.slots)
	// Waiting for a quarter of the ring to be free, rather than one slot,
	// wakes fetch a few times per ring instead of once per chunk.
	p.lowWater = uint64(max(p.slots/4, 1))
	return p
}

// roomToFetch says whether enough slots are free for fetch to go on.
func (p *pipeline) roomToFetch() bool {
	return p.consumed+uint64(p.slots)-p.fetched >= min(p.lowWater, p.chunks-p.fetched)
}

// start runs the fetching goroutine and the workers. It is called at the
// first Read, so that a Reader never read starts nothing.
func (p *pipeline) start() {
	workers := min(runtime.GOMAXPROCS(0), p.slots)
	p.mu.Lock()
	p.started = true
	p.running = 1 + workers
	p.mu.Unlock()
	go p.fetch()
	for range workers {
		go p.work()
	}
}

// chunkLen is the ciphertext length of chunk i.
func (p *pipeline) chunkLen(i uint64) int {
	if i == p.chunks-1 {
		return p.lastLen
	}
	return encChunkSize
}

// fetch reads the ciphertext into free slots, in order, publishing each
// chunk as soon as it is whole.
func (p *pipeline) fetch() {
	defer p.unref()
	next, pos := uint64(0), 0 // the chunk being read, and its bytes read
	for next < p.chunks {
		p.mu.Lock()
		for !p.stopped && !p.roomToFetch() {
			p.fetchWaits = true
			p.fetchCond.Wait()
		}
		p.fetchWaits = false
		if p.stopped {
			p.mu.Unlock()
			return
		}
		limit := p.consumed + uint64(p.slots)
		p.mu.Unlock()

		// The free slots from chunk next on, as far as the ring's end.
		slot := int(next % uint64(p.slots))
		end := min(limit, p.chunks, next+uint64(p.slots-slot))
		lo := slot*encChunkSize + pos
		hi := slot*encChunkSize + int(end-next-1)*encChunkSize + p.chunkLen(end-1)
		n, err := p.src.Read(p.ct[lo:hi])
		pos += n
		whole := uint64(0)
		for next+whole < end && pos >= p.chunkLen(next+whole) {
			pos -= p.chunkLen(next + whole)
			whole++
		}

		p.mu.Lock()
		next += whole
		p.fetched = next
		if err != nil && next < p.chunks {
			p.fetchErr = sourceError(int64(next), err)
		}
		if p.idleWorkers > 0 && (whole > 0 || p.fetchErr != nil) {
			if p.fetchErr != nil || whole > 1 {
				p.workCond.Broadcast()
			} else {
				p.workCond.Signal()
			}
		}
		if p.readWaits && (p.fetchErr != nil || whole > 0) {
			// The Reader waits for its chunk to fail, or (it being a
			// worker too) for chunks to open.
			p.readCond.Signal()
		}
		failed := p.fetchErr != nil
		p.mu.Unlock()
		if failed {
			return
		}
	}
}

// work proves and opens chunks as they are read, in the order read.
func (p *pipeline) work() {
	defer p.unref()
	p.mu.Lock()
	for {
		for !p.stopped && p.claimed == p.fetched && p.fetched < p.chunks && p.fetchErr == nil {
			p.idleWorkers++
			p.workCond.Wait()
			p.idleWorkers--
		}
		if p.stopped || p.claimed == p.fetched {
			// Every chunk read is taken and no more will come.
			p.mu.Unlock()
			return
		}
		i := p.claimed
		p.claimed++
		p.mu.Unlock()
		st := p.open(i)
		p.mu.Lock()
		p.state[i%uint64(p.slots)] = st
		if p.readWaits && i == p.consumed {
			p.readCond.Signal()
		}
	}
}

// open proves chunk i against its leaf and, only then, opens it into its
// slot's plaintext.
func (p *pipeline) open(i uint64) slotState {
	s := int(i % uint64(p.slots))
	chunk := p.ct[s*encChunkSize : s*encChunkSize+p.chunkLen(i)]
	if !p.hashes.leafOK(int(i)+1, chunk) {
		return slotHashBad
	}
	if _, err := p.aead.Open(p.pt[s*chunkSize:s*chunkSize], chunkNonce(i, i == p.chunks-1), chunk, nil); err != nil {
		return slotOpenBad
	}
	return slotOK
}

// next releases the slot of the chunk the Reader last handed out, if
// release is set, and waits for the next chunk: its plaintext, or the error
// that stops the stream there (io.EOF after the final chunk).
func (p *pipeline) next(release bool) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		p.mu.Unlock()
		p.start()
		p.mu.Lock()
	}
	if release {
		p.state[p.consumed%uint64(p.slots)] = slotPending
		p.consumed++
		if p.fetchWaits && p.roomToFetch() {
			p.fetchCond.Signal()
		}
	}
	for {
		if p.stopped {
			return nil, ErrClosed
		}
		if p.consumed == p.chunks {
			return nil, io.EOF
		}
		s := int(p.consumed % uint64(p.slots))
		switch p.state[s] {
		case slotOK:
			n := chunkSize
			if p.consumed == p.chunks-1 {
				n = p.lastLen - chacha20poly1305.Overhead
			}
			return p.pt[s*chunkSize : s*chunkSize+n], nil
		case slotHashBad:
			return nil, &ChunkError{Chunk: int64(p.consumed), Err: ErrTampered, Why: "does not match its leaf in the signed chunk tree"}
		case slotOpenBad:
			return nil, &ChunkError{Chunk: int64(p.consumed), Err: ErrTampered, Why: "does not authenticate under the file key"}
		}
		if p.fetchErr != nil && p.consumed >= p.fetched {
			return nil, p.fetchErr
		}
		if p.claimed < p.fetched {
			// Rather than wait for the chunk a worker is opening, open
			// the next one: the caller's goroutine is one of the workers,
			// and one that works does not need waking.
			i := p.claimed
			p.claimed++
			p.mu.Unlock()
			st := p.open(i)
			p.mu.Lock()
			p.state[i%uint64(p.slots)] = st
			continue
		}
		p.readWaits = true
		p.readCond.Wait()
		p.readWaits = false
	}
}

// stop ends the goroutines, each at its next look at the pipeline. It may
// be called from any goroutine, any number of times.
func (p *pipeline) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halt()
}

func (p *pipeline) halt() {
	if !p.stopped {
		p.stopped = true
		p.fetchCond.Broadcast()
		p.workCond.Broadcast()
		p.readCond.Broadcast()
	}
}

// done is the Reader's last call, once it holds no plaintext of the ring:
// the stream ended or failed. It stops the goroutines and drops the
// Reader's reference to the buffers.
func (p *pipeline) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halt()
	p.readerDone = true
	p.recycle()
}

// unref is a goroutine's last call.
func (p *pipeline) unref() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	p.recycle()
}

// recycle returns the buffers to the pool once nothing can write to them
// and no plaintext in them is handed out: the Reader is done, and either
// every goroutine has ended or every chunk was read, opened and released
// (the goroutines still ending touch the buffers no more). A Reader
// closed midway and never read again leaves its buffers to the collector.
func (p *pipeline) recycle() {
	if p.ct == nil || !p.readerDone || (p.running > 0 && p.consumed < p.chunks) {
		return
	}
	if p.pooled && len(p.ct) == ringChunks()*encChunkSize && len(p.pt) == ringChunks()*chunkSize {
		ct, pt := p.ct, p.pt
		ringBufs.ct.Put(&ct)
		ringBufs.pt.Put(&pt)
	}
	p.ct, p.pt = nil, nil
}
