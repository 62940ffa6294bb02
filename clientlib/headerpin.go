package clientlib

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/cofferhq/coffer"
)

// A version is its header.
//
// The version check (seenVersion) stops a server from serving an older
// version; it cannot stop a server from serving, at a version this device
// already verified, another header that the same author also signed (a
// re-signed header, a second device, a stolen key): both verify. So this
// device pins every (group, resource, version) it verified, or wrote, to
// the hash of the signed header, in the KeyStore so that a restart does not
// forget it, and refuses another header for a pinned version as a
// *coffer.SecurityError.

// labelHeaderPin separates pin hashes from every other hash of a header.
const labelHeaderPin = "coffer/v1/header-pin"

// maxCachedPins bounds the in-memory copy of the pins; the key store keeps
// them all.
const maxCachedPins = 1 << 16

type pinKey struct {
	g       coffer.GroupID
	id      coffer.ResourceID
	version uint64
}

func (k pinKey) name() string {
	return "resource/" + k.g.String() + "/" + k.id.String() + "/header/" + strconv.FormatUint(k.version, 10)
}

// headerPins caches the pins this client read or wrote.
type headerPins struct {
	mu sync.Mutex
	m  map[pinKey][32]byte
}

func headerDigest(body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(labelHeaderPin))
	h.Write(body)
	return [32]byte(h.Sum(nil))
}

// pinHeader checks the signed header body of version of resource id in g
// against the pin this device holds for that version, and pins it when
// there is none. Call it only with a header whose signature verified.
func (c *Client) pinHeader(g coffer.GroupID, id coffer.ResourceID, version uint64, body []byte) error {
	k := pinKey{g, id, version}
	d := headerDigest(body)
	mismatch := func() error {
		return coffer.Security("header", fmt.Errorf("group %s, resource %s: version %d was verified before with another signed header; the server serves two different headers for one version",
			g, id, version))
	}
	p := &c.pins
	p.mu.Lock()
	cached, ok := p.m[k]
	p.mu.Unlock()
	if ok {
		if cached != d {
			return mismatch()
		}
		return nil
	}
	// Check and store under one lock: two concurrent first reads of one
	// version must not both pin.
	c.ksMu.Lock()
	defer c.ksMu.Unlock()
	stored, err := c.ks.Get(k.name())
	switch {
	case errors.Is(err, ErrNotFound):
		if err := c.ks.Put(k.name(), d[:]); err != nil {
			return err
		}
	case err != nil:
		return err
	case len(stored) != len(d):
		return fmt.Errorf("clientlib: stored header pin %s is corrupt", k.name())
	case !bytes.Equal(stored, d[:]):
		return mismatch()
	}
	p.mu.Lock()
	if p.m == nil || len(p.m) >= maxCachedPins {
		p.m = make(map[pinKey][32]byte)
	}
	p.m[k] = d
	p.mu.Unlock()
	return nil
}
