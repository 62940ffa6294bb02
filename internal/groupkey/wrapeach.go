package groupkey

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cofferhq/coffer"
)

// wrapWindow bounds how many wraps WrapEach seals ahead of its consumer:
// the wraps held at once, whatever the number of recipients.
const wrapWindow = 256

// WrapEach wraps k for every recipient and hands the wraps to emit in
// input order, emit(i, wrap) for recipients[i], as soon as each is sealed
// and every earlier one was emitted. Sealing runs on runtime.GOMAXPROCS
// goroutines, at most wrapWindow recipients ahead of emit, so a rotation
// of a large group streams its wraps instead of holding them all. Each wrap
// is exactly what Wrap would return (up to HPKE's randomness); a public key
// not given pre-parsed is parsed by the goroutine that seals to it.
//
// emit runs on the calling goroutine and may keep the wrap. WrapEach stops
// at the first error, in input order: a recipient that cannot be sealed to,
// or an error from emit, which it returns as is.
func WrapEach(recipients []Recipient, g coffer.GroupID, epoch uint64, k EpochKey, emit func(i int, wrap []byte) error) error {
	n := len(recipients)
	if n == 0 {
		return nil
	}
	type slot struct {
		wrap  []byte
		err   error
		ready chan struct{}
	}
	window := min(wrapWindow, n)
	slots := make([]slot, window)
	for i := range slots {
		slots[i].ready = make(chan struct{}, 1)
	}
	// A worker takes a token before it takes a recipient, and the consumer
	// returns it after emitting, so recipient i is taken only once i-window
	// was emitted and its slot is free again.
	tokens := make(chan struct{}, window)
	done := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for {
				select {
				case tokens <- struct{}{}:
				case <-done:
					return
				}
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				r := recipients[i]
				s := &slots[i%window]
				if r.Key != nil && r.Key.KEM().ID() == coffer.KEM().ID() {
					s.wrap, s.err = seal(r.Key, g, epoch, r.Member, k)
				} else {
					s.wrap, s.err = Wrap(r.EncryptionKey, g, epoch, r.Member, k)
				}
				s.ready <- struct{}{}
			}
		})
	}
	defer func() {
		close(done)
		wg.Wait()
	}()
	for i := range n {
		s := &slots[i%window]
		<-s.ready
		wrap, err := s.wrap, s.err
		s.wrap, s.err = nil, nil
		if err != nil {
			return err
		}
		if err := emit(i, wrap); err != nil {
			return err
		}
		<-tokens
	}
	return nil
}
