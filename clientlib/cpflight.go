package clientlib

import (
	"context"
	"sync"

	"github.com/cofferhq/coffer/internal/translog"
)

// Reads ask for the log's latest checkpoint before trusting a version's
// place in the log. Concurrent reads share one fetch instead of queueing one
// each behind the log mutex, but only a fetch sent after they asked: a read
// that finds a fetch already under way waits for the next one, so that what
// it is shown is never older than its own request (a delete finished before
// the read began is still seen). internal/freshflight does the sharing.

// latestCheckpoint fetches the server's current checkpoint, verifies its
// signature and its consistency with everything this device has seen, and
// returns it (or the newer one this device holds). The fetch is sent after
// the call began; callers at the same time share it.
func (c *Client) latestCheckpoint(ctx context.Context) (translog.Checkpoint, error) {
	return c.cpFlights.Do(ctx, c.fetchCheckpoint)
}

// fetchCheckpoint is one fetch of the latest checkpoint, its check and its
// adoption.
func (c *Client) fetchCheckpoint(ctx context.Context) (translog.Checkpoint, error) {
	c.logMu.Lock()
	v, err := c.logVerifier(ctx)
	c.logMu.Unlock()
	if err != nil {
		return translog.Checkpoint{}, err
	}
	note, err := c.getText(ctx, "/v1/log/checkpoint")
	if err != nil {
		return translog.Checkpoint{}, err
	}
	return c.checkNote(ctx, v, note)
}

// checkNote verifies a checkpoint note the server sent and adopts it. It
// returns the newest checkpoint this device verified, which is the note's
// unless the server sent an older one than it showed before.
func (c *Client) checkNote(ctx context.Context, v *translog.Verifier, note string) (translog.Checkpoint, error) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	cp, err := c.openNote(v, note)
	if err != nil {
		return cp, logSecurity("%v", err)
	}
	return c.adoptNewest(ctx, v, cp, note)
}

// A read of one resource asks the server to send its latest checkpoint
// with the answer (?include=checkpoint), so that the check of the version's
// place in the log needs no request of its own. The note is what
// GET /v1/log/checkpoint would have answered at that moment, after the
// read began, and it is verified and adopted exactly as a fetched one: a
// server that sends an old or forged note gains nothing it could not by
// answering the fetch.

type offeredCheckpointKey struct{}

// withOfferedCheckpoint records in ctx the note a read's answer carried.
func withOfferedCheckpoint(ctx context.Context, note string) context.Context {
	if note == "" {
		return ctx
	}
	return context.WithValue(ctx, offeredCheckpointKey{}, note)
}

// readCheckpoint is the checkpoint a read checks its version against: the
// one its answer carried when there was one, else the latest, fetched.
func (c *Client) readCheckpoint(ctx context.Context) (translog.Checkpoint, error) {
	note, ok := ctx.Value(offeredCheckpointKey{}).(string)
	if !ok {
		return c.latestCheckpoint(ctx)
	}
	c.logMu.Lock()
	v, err := c.logVerifier(ctx)
	c.logMu.Unlock()
	if err != nil {
		return translog.Checkpoint{}, err
	}
	return c.checkNote(ctx, v, note)
}

// maxOpenedNotes bounds the memo of verified checkpoint notes.
const maxOpenedNotes = 16

// openedNotes remembers checkpoint notes that verified: the server serves
// the same note to every read until its log grows, and a note's check is a
// pure function of its bytes and the pinned key.
type openedNotes struct {
	mu sync.Mutex
	m  map[[2]string]translog.Checkpoint
}

// openNote is v.Open, remembered for notes that verified.
func (c *Client) openNote(v *translog.Verifier, note string) (translog.Checkpoint, error) {
	k := [2]string{v.Key(), note}
	on := &c.notes
	on.mu.Lock()
	cp, ok := on.m[k]
	on.mu.Unlock()
	if ok {
		return cp, nil
	}
	cp, err := v.Open(note)
	if err != nil {
		return cp, err
	}
	on.mu.Lock()
	if on.m == nil || len(on.m) >= maxOpenedNotes {
		on.m = make(map[[2]string]translog.Checkpoint, maxOpenedNotes)
	}
	on.m[k] = cp
	on.mu.Unlock()
	return cp, nil
}
