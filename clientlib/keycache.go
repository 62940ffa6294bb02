package clientlib

import (
	"crypto/hpke"
	"runtime"
	"sync"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// keyCache keeps parsed X-Wing public keys. Parsing one expands its ML-KEM
// matrix, which costs about as much as sealing to it, so without the cache a
// rotation of a large group would pay for every key twice. Keys are public;
// the cache holds nothing secret.
type keyCache struct {
	mu sync.Mutex
	m  map[string]hpke.PublicKey
}

// maxCachedKeys bounds the cache; past it, the cache starts over.
const maxCachedKeys = 200_000

// fill sets Key on every recipient, parsing the missing ones in parallel.
func (kc *keyCache) fill(rs []groupkey.Recipient) error {
	kc.mu.Lock()
	if kc.m == nil || len(kc.m) > maxCachedKeys {
		kc.m = map[string]hpke.PublicKey{}
	}
	var missing []int
	for i := range rs {
		if k, ok := kc.m[string(rs[i].EncryptionKey)]; ok {
			rs[i].Key = k
		} else {
			missing = append(missing, i)
		}
	}
	kc.mu.Unlock()

	errs := make([]error, len(missing))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(missing))
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(missing); j += workers {
				r := &rs[missing[j]]
				r.Key, errs[j] = coffer.KEM().NewPublicKey(r.EncryptionKey)
			}
		})
	}
	wg.Wait()
	kc.mu.Lock()
	defer kc.mu.Unlock()
	for j, i := range missing {
		if errs[j] != nil {
			return coffer.Errorf(coffer.EINVALID, "encryption key of %s is not a valid X-Wing key", rs[i].Member)
		}
		kc.m[string(rs[i].EncryptionKey)] = rs[i].Key
	}
	return nil
}
