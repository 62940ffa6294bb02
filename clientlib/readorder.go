package clientlib

import (
	"context"
)

// Version rollback is judged against what this device had verified when it
// sent the request, not when the answer arrives. One client's requests race
// each other: a List sent before a concurrent Get (or this client's own
// Replace) verified version 3 may honestly be answered with version 2, since
// the server built the answer before version 3 existed. Judging that answer
// against version 3 would report honest concurrency as a rollback. A server
// gains nothing from it either: it could as well have answered before the
// replace. Every request sent after version 3 was verified is still held to
// at least version 3, and a stale answer never lowers what is stored.

// maxVersionRaises bounds the raises remembered per resource. Past it the
// oldest are dropped, and a request older than every remembered raise is
// held to just below the oldest one kept: stricter than the truth, never
// looser.
const maxVersionRaises = 16

// versionRaise records that the highest verified version of a resource
// became version at generation gen of the client's resource clock.
type versionRaise struct{ version, gen uint64 }

type readStartKey struct{}

// beginRead marks ctx with the resource clock's current generation, just
// before a request whose resources will be judged for rollback.
func (c *Client) beginRead(ctx context.Context) context.Context {
	rc := &c.resources
	rc.mu.Lock()
	gen := rc.gen
	rc.mu.Unlock()
	return context.WithValue(ctx, readStartKey{}, gen)
}

// noteRaise records, under rc.mu, that the highest version of k is now
// version. Callers hold rc.mu.
func (rc *resourceCache) noteRaise(k resourceKey, version uint64) {
	if rc.raises == nil {
		rc.raises = map[resourceKey][]versionRaise{}
	}
	rc.gen++
	rs := append(rc.raises[k], versionRaise{version, rc.gen})
	if len(rs) > maxVersionRaises {
		rs = append(rs[:0:0], rs[len(rs)-maxVersionRaises:]...)
	}
	rc.raises[k] = rs
}

// noteBaseline records, under rc.mu, the version of k loaded from the key
// store: verified before any request of this session was sent.
func (rc *resourceCache) noteBaseline(k resourceKey, version uint64) {
	if rc.raises == nil {
		rc.raises = map[resourceKey][]versionRaise{}
	}
	rc.raises[k] = []versionRaise{{version, 0}}
}

// seenWhenAsked returns the highest version of k this device had verified
// when the request behind ctx was sent, given highest, the highest now. A
// ctx without a mark (see beginRead) is judged against highest.
func (c *Client) seenWhenAsked(ctx context.Context, k resourceKey, highest uint64) uint64 {
	start, ok := ctx.Value(readStartKey{}).(uint64)
	if !ok {
		return highest
	}
	rc := &c.resources
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rs := rc.raises[k]
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].gen <= start {
			return min(rs[i].version, highest)
		}
	}
	if len(rs) == 0 {
		return highest
	}
	// Every remembered raise came after the request was sent: the version
	// known then was below the oldest of them.
	return rs[0].version - 1
}
