package clientlib

import (
	"bytes"
	"context"
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
//
// The pin is coffer.HeaderHash, the hash the next version names as its
// Prev: so the pins also let this device check that a version continues
// the one before it (checkChain), and give a replace the hash to chain to.

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
	// live caches resources the key store holds no delete mark for, so
	// that the hot read path does not ask it again; bounded like m.
	live map[resourceKey]struct{}
	// deletions counts this client's own deletes, and deletedAt says which
	// of them deleted a resource, so that a read that was already in flight
	// when this device deleted the resource is told "not found" rather than
	// "the server serves a deleted resource" (markDeletions).
	deletions uint64
	deletedAt map[resourceKey]uint64
}

type deletionsMarkKey struct{}

// markDeletions records in ctx how many deletes this client had made when a
// read was sent. A resource this device deleted after that may still be in
// the answer, honestly.
func (c *Client) markDeletions(ctx context.Context) context.Context {
	p := &c.pins
	p.mu.Lock()
	n := p.deletions
	p.mu.Unlock()
	return context.WithValue(ctx, deletionsMarkKey{}, n)
}

// errDeletedMeanwhile is the answer to a read that raced this device's own
// delete of the resource.
var errDeletedMeanwhile = coffer.Errorf(coffer.ENOTFOUND, "this device deleted the resource while the read was in flight")

func headerDigest(body []byte) [32]byte { return coffer.HeaderHash(body) }

// pinned returns the pin of version of resource id in g, if this device
// holds one.
func (c *Client) pinned(g coffer.GroupID, id coffer.ResourceID, version uint64) ([32]byte, bool, error) {
	k := pinKey{g, id, version}
	p := &c.pins
	p.mu.Lock()
	d, ok := p.m[k]
	p.mu.Unlock()
	if ok {
		return d, true, nil
	}
	c.ksMu.Lock()
	stored, err := c.ks.Get(k.name())
	c.ksMu.Unlock()
	switch {
	case errors.Is(err, ErrNotFound):
		return d, false, nil
	case err != nil:
		return d, false, err
	case len(stored) != len(d):
		return d, false, fmt.Errorf("clientlib: stored header pin %s is corrupt", k.name())
	}
	return [32]byte(stored), true, nil
}

// checkChain checks that the verified header h continues the version
// before it, when this device verified or wrote that one: a server that
// serves, as version k+1, a version that replaced another version k than
// the one this device saw is splicing two histories of the resource.
func (c *Client) checkChain(h *coffer.ResourceHeader) error {
	if h.Version < 2 {
		return nil
	}
	prev, ok, err := c.pinned(h.Group, h.Resource, h.Version-1)
	if err != nil || !ok {
		return err
	}
	if prev != h.Prev {
		return coffer.Security("header", fmt.Errorf("group %s, resource %s: version %d does not replace the version %d this device verified; the server serves two histories of the resource",
			h.Group, h.Resource, h.Version, h.Version-1))
	}
	return nil
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

func deletedKey(g coffer.GroupID, id coffer.ResourceID) string {
	return "resource/" + g.String() + "/" + id.String() + "/deleted"
}

// sawDeleted records that this device deleted, or saw the log's tombstone
// of, version of resource id: a deleted resource stays deleted, so any
// header the server serves for it later is refused (checkNotDeleted).
func (c *Client) sawDeleted(g coffer.GroupID, id coffer.ResourceID, version uint64) error {
	p := &c.pins
	p.mu.Lock()
	delete(p.live, resourceKey{g, id})
	if p.deletedAt == nil || len(p.deletedAt) >= maxCachedPins {
		p.deletedAt = make(map[resourceKey]uint64)
	}
	p.deletions++
	p.deletedAt[resourceKey{g, id}] = p.deletions
	p.mu.Unlock()
	c.ksMu.Lock()
	defer c.ksMu.Unlock()
	return c.ks.Put(deletedKey(g, id), strconv.AppendUint(nil, version, 10))
}

// checkNotDeleted refuses a header of a resource this device knows was
// deleted, unless this device deleted it after the read was sent
// (markDeletions): then the answer honestly predates the delete.
func (c *Client) checkNotDeleted(ctx context.Context, h *coffer.ResourceHeader) error {
	k := resourceKey{h.Group, h.Resource}
	p := &c.pins
	p.mu.Lock()
	_, live := p.live[k]
	p.mu.Unlock()
	if live {
		return nil
	}
	c.ksMu.Lock()
	b, err := c.ks.Get(deletedKey(h.Group, h.Resource))
	c.ksMu.Unlock()
	switch {
	case errors.Is(err, ErrNotFound):
		p.mu.Lock()
		if p.live == nil || len(p.live) >= maxCachedPins {
			p.live = make(map[resourceKey]struct{})
		}
		p.live[k] = struct{}{}
		p.mu.Unlock()
		return nil
	case err != nil:
		return err
	}
	if mark, ok := ctx.Value(deletionsMarkKey{}).(uint64); ok {
		p.mu.Lock()
		at, raced := p.deletedAt[k]
		p.mu.Unlock()
		if raced && at > mark {
			return errDeletedMeanwhile
		}
	}
	return coffer.Security("deleted", fmt.Errorf("group %s, resource %s: the server serves version %d of a resource deleted at version %s",
		h.Group, h.Resource, h.Version, b))
}
