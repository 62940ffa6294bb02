package clientlib

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// Healing a group after the server was restored from an older backup.
//
// A restore to an older point rolls every group back to its head at that
// point. Clients refuse the shorter history as a rollback: it is exactly
// what a server hiding commits would show. The commits after the restore
// point are not lost, though: each was signed by its author, and the
// author's device made its wraps, links and metadata. So every device keeps
// a bounded journal of the commit requests it made (the signed commit and
// everything sent with it: wraps are ciphertext for members, nothing
// secret), and HealGroup sends them again, in order, through the ordinary
// append endpoint, where the server checks each with the chain verifier as
// it checked it the first time. A chain with several authors heals as each
// author's device heals its own commits in turn.
//
// The transparency log was restored too. Its leaves are a pure function of
// the commits (and identities), so when the lost tail of the log is
// replayed in its original order the log grows back to exactly the tree
// clients pinned, and every log check passes again. When it is not (other
// groups' commits or registrations were lost with it and are not replayed
// in the same order), clients holding a checkpoint from before the restore
// see a log that forked, a security error by design: see docs/OPERATIONS.md.

const (
	// journalMax and journalMaxBytes bound the journal of each group: the
	// newest commits are kept. Each entry is its own key store value and
	// the index is small, so a commit writes only its own request.
	journalMax      = 64
	journalMaxBytes = 64 << 20
	// journalMaxEntry is the largest request journaled: a rotation in a
	// group of about 10,000 members. A larger one cannot be healed.
	journalMaxEntry = 16 << 20
)

func journalIndexKey(g coffer.GroupID) string { return "group/" + g.String() + "/journal-index" }

func journalEntryKey(g coffer.GroupID, seq uint64) string {
	return "group/" + g.String() + "/journal/" + strconv.FormatUint(seq, 10)
}

// journalRef is one entry of the journal index.
type journalRef struct {
	Seq  uint64 `json:"seq"`
	Size int    `json:"size"`
}

func (c *Client) loadJournalIndex(g coffer.GroupID) ([]journalRef, error) {
	b, err := c.ks.Get(journalIndexKey(g))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var refs []journalRef
	if err := json.Unmarshal(b, &refs); err != nil {
		return nil, fmt.Errorf("clientlib: stored commit journal of group %s is corrupt: %w", g, err)
	}
	return refs, nil
}

// journaled returns the request this device sent for commit seq of g, or
// nil if it does not hold one.
func (c *Client) journaled(g coffer.GroupID, seq uint64) (*api.CommitRequest, error) {
	b, err := c.ks.Get(journalEntryKey(g, seq))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var req api.CommitRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("clientlib: journal entry %d of group %s is corrupt: %w", seq, g, err)
	}
	return &req, nil
}

// journal records a commit request the server accepted. It runs after the
// commit landed, so a failure to record it must not turn the commit into an
// error: the commit stands; it just cannot be healed from this device.
func (c *Client) journal(g coffer.GroupID, seq uint64, req *api.CommitRequest) {
	b, err := json.Marshal(req)
	if err != nil {
		return
	}
	c.journalBody(g, seq, b)
}

// journalBody is journal for a request already encoded as JSON; nil is a
// request too large to journal.
func (c *Client) journalBody(g coffer.GroupID, seq uint64, b []byte) {
	if b == nil || len(b) > journalMaxEntry {
		return
	}
	c.ksMu.Lock()
	defer c.ksMu.Unlock()
	refs, err := c.loadJournalIndex(g)
	if err != nil {
		refs = nil // a corrupt index is replaced, not kept growing
	}
	if err := c.ks.Put(journalEntryKey(g, seq), b); err != nil {
		return
	}
	refs = append(refs, journalRef{Seq: seq, Size: len(b)})
	size, keep := 0, 0
	for i := len(refs) - 1; i >= 0; i-- {
		size += refs[i].Size
		if size > journalMaxBytes || len(refs)-i > journalMax {
			break
		}
		keep++
	}
	for _, r := range refs[:len(refs)-keep] {
		_ = c.ks.Delete(journalEntryKey(g, r.Seq))
	}
	refs = refs[len(refs)-keep:]
	if b, err := json.Marshal(refs); err == nil {
		_ = c.ks.Put(journalIndexKey(g), b)
	}
}

// HealResult is the outcome of HealGroup.
type HealResult struct {
	// Pushed is how many commits this device appended again.
	Pushed int
	// ServerHead is the group's head seq on the server afterwards.
	ServerHead uint64
	// Verified is the head seq this device verified before the restore.
	Verified uint64
	// Waiting, when not zero, is the seq of the next missing commit, which
	// this device did not make (or no longer journals): its author's device
	// must heal it, then this device heals what follows.
	Waiting uint64
}

// Complete reports whether the server's chain is back to everything this
// device verified.
func (r *HealResult) Complete() bool { return r.Waiting == 0 && r.ServerHead >= r.Verified }

// HealGroup appends again the commits of g that this device verified but
// the server no longer has, after a restore from an older backup: those of
// them this device made, from its journal, in order, stopping at the first
// one made elsewhere (HealResult.Waiting). The server checks each as an
// ordinary append. When the chain is whole again it syncs, so the result
// is verified like any Sync. A server whose head is not a prefix of the
// chain this device verified is a *coffer.SecurityError (a fork, not a
// rollback); a server that is not behind is left alone.
func (c *Client) HealGroup(ctx context.Context, g coffer.GroupID) (*HealResult, error) {
	local, err := c.localState(g)
	if err != nil {
		return nil, err
	}
	if local == nil {
		return nil, coffer.Errorf(coffer.EINVALID, "this device has never verified group %s: nothing to heal from", g)
	}
	res := &HealResult{Verified: local.Seq}
	var info api.Group
	err = c.call(ctx, http.MethodGet, "/v1/groups/"+g.String(), true, nil, &info)
	switch {
	case coffer.ErrorCode(err) == coffer.ENOTFOUND:
		// The group is gone (created after the restore point), or this
		// account was added after it: only a genesis can bring it back.
		info = api.Group{}
	case err != nil:
		return nil, err
	}
	res.ServerHead = info.HeadSeq
	if info.HeadSeq >= local.Seq {
		if err := c.awaitLog(ctx); err != nil {
			return res, err
		}
		_, err := c.syncPending(ctx, g, false)
		return res, err
	}
	for seq := info.HeadSeq + 1; seq <= local.Seq; seq++ {
		req, err := c.journaled(g, seq)
		if err != nil {
			return res, err
		}
		if req == nil {
			if seq == 1 {
				return res, coffer.Errorf(coffer.ENOTFOUND, "group %s is not on the server (or not visible to this account), and this device did not create it: its creator's device must heal it first", g)
			}
			res.Waiting = seq
			return res, nil
		}
		commit, err := coffer.ParseCommit(req.Commit.Body)
		if err != nil || commit.Group != g || commit.Seq != seq {
			return res, fmt.Errorf("clientlib: journal entry %d of group %s is corrupt", seq, g)
		}
		// The first commit sent must extend the server's head: otherwise
		// the server holds a different commit at that seq than the one this
		// device verified, a fork that no re-append can repair.
		if seq == info.HeadSeq+1 && seq > 1 && !bytes.Equal(commit.Prev[:], info.HeadHash) {
			return res, coffer.Security("fork", fmt.Errorf("group %s: the server's commit %d is not the one this device verified", g, info.HeadSeq))
		}
		path := "/v1/groups/" + g.String() + "/commits"
		if seq == 1 {
			path = "/v1/groups"
		}
		if err := c.call(ctx, http.MethodPost, path, true, req, nil); err != nil {
			return res, err
		}
		res.Pushed++
		res.ServerHead = seq
	}
	// Whole again: the log must have grown back to (at least) the tree
	// this device pinned and prove it consistent, and the chain is
	// verified like any other sync (hash of the head included).
	if err := c.awaitLog(ctx); err != nil {
		return res, err
	}
	if _, err := c.syncPending(ctx, g, false); err != nil {
		return res, err
	}
	return res, nil
}

// awaitLog waits, up to Options.LogWait, until the server's log is at least
// as large as the checkpoint this device pinned, then checks the two
// consistent. After a restore the log is smaller until the lost commits
// are appended again and integrated; asking for a proof earlier would be a
// security error for a state that is only not healed yet. A log that grew
// back differently is still one: it cannot be proven consistent.
func (c *Client) awaitLog(ctx context.Context) error {
	deadline := time.Now().Add(c.opts.LogWait)
	for {
		c.logMu.Lock()
		v, err := c.logVerifier(ctx)
		var pinned *translog.Checkpoint
		if err == nil {
			pinned, _, err = c.storedCheckpoint(v)
		}
		c.logMu.Unlock()
		if err != nil {
			return err
		}
		if pinned == nil {
			return nil
		}
		note, err := c.getText(ctx, "/v1/log/checkpoint")
		if err != nil {
			return err
		}
		cp, err := v.Open(note)
		if err != nil {
			return logSecurity("%v", err)
		}
		if cp.Size >= pinned.Size {
			_, err := c.latestCheckpoint(ctx)
			return err
		}
		if time.Now().After(deadline) {
			return coffer.Errorf(coffer.EUNAVAILABLE, "the transparency log has %d entries, fewer than the %d this device verified, after %v: "+
				"more commits lost in the restore must be appended again first (see HealGroup)", cp.Size, pinned.Size, c.opts.LogWait)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
