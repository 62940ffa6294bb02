package cofferd

import (
	"sync"

	"github.com/cofferhq/coffer/internal/translog"
)

// maxOpenedCosigned bounds the memo of checked cosigned notes: the served
// checkpoint is picked among recentCheckpoints, so a few times that holds
// every note a read can ask about.
const maxOpenedCosigned = 4 * recentCheckpoints

// cosignedMemo remembers which witnesses validly cosigned a note. Every
// GET /v1/log/checkpoint looks at the same few notes until the log grows,
// and checking one is a pure function of its bytes and the configured keys,
// which do not change once the pusher runs.
type cosignedMemo struct {
	mu sync.Mutex
	m  map[string]map[string]struct{} // note → names of the witnesses that cosigned it
}

// witnessed returns the names of the witnesses whose cosignatures on note
// verify, or false when the note itself does not verify under the log key.
func (p *witnessPusher) witnessed(note string) (map[string]struct{}, bool) {
	memo := &p.opened
	memo.mu.Lock()
	names, ok := memo.m[note]
	memo.mu.Unlock()
	if ok {
		return names, true
	}
	c, err := translog.OpenCosigned(note, p.log, p.verifiers())
	if err != nil {
		return nil, false
	}
	names = make(map[string]struct{}, len(c.Witnessed))
	for name := range c.Witnessed {
		names[name] = struct{}{}
	}
	memo.mu.Lock()
	if memo.m == nil || len(memo.m) >= maxOpenedCosigned {
		memo.m = make(map[string]map[string]struct{}, maxOpenedCosigned)
	}
	memo.m[note] = names
	memo.mu.Unlock()
	return names, true
}
