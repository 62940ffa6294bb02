package clientlib

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// Resources are part of the verified history.
//
// The server logs every finalized version of a resource as a leaf of the
// transparency log, and every delete as the deleter's signed tombstone, and
// the log's heads map names each resource's latest leaf. Before a reader
// accepts a version it checks, against a checkpoint it verified:
//
//   - the map entry of the resource names this very version (the leaf
//     rebuilt from the verified header), and is not a tombstone: a deleted
//     resource the server keeps serving, or another signed header the
//     server serves for a version the log holds, is a *coffer.SecurityError;
//     a version the map shows replaced is EPRECONDITION (fetch it again);
//   - the leaf is at the index the map names (an inclusion proof), so the
//     place of the leaf in the log is the log's, not the server's say;
//   - the author was a writer at the group head in force when the leaf was
//     logged, the group's last commit before it, and that head was at the
//     header's epoch. A writer removed or demoted (which starts a new
//     epoch), or one that left, cannot publish afterwards even with the
//     server's help: the server can insert the leaf only after the commit
//     that removed them, and cannot move it before without forking the
//     log.
//
// A leaf the log has not included yet is waited for up to Options.LogWait,
// then EUNAVAILABLE: the reader never accepts a version the log lacks.

// loggedChecks remembers what the log checks established, by header
// hash: where a version sits in the log and that its author could write
// there (placed: facts that never change), and the map root under which
// its entry was last proven current (current: a re-read under the same
// checkpoint costs only the checkpoint). Bounded; starts over when full.
type loggedChecks struct {
	mu      sync.Mutex
	placed  map[[32]byte]struct{}
	current map[[32]byte][32]byte
	// indexes caches proven log indexes of commits, which never change.
	indexes map[commitRef]int64
}

type commitRef struct {
	g   coffer.GroupID
	seq uint64
}

const maxLoggedChecks = 1 << 14

// checkLogged runs the log checks of the verified header h (body) of g,
// whose verified view is v.
func (c *Client) checkLogged(ctx context.Context, v *groupView, h *coffer.ResourceHeader, body []byte) error {
	lv := coffer.LoggedVersionOf(h, body)
	lc := &c.logged
	leaf := translog.ResourceVersionLeaf(lv)
	want := translog.RecordHash(leaf)
	deadline := time.Now().Add(c.opts.LogWait)
	for attempt := 0; ; attempt++ {
		// The first look uses the checkpoint the read's answer carried;
		// one that does not show the version yet is followed by a fetch.
		latest := c.latestCheckpoint
		if attempt == 0 {
			latest = c.readCheckpoint
		}
		cp, err := latest(ctx)
		if err != nil {
			return err
		}
		lc.mu.Lock()
		root, ok := lc.current[lv.HeaderHash]
		lc.mu.Unlock()
		if ok && root == cp.MapRoot {
			return nil
		}
		entries, found, err := c.resourceMapEntries(ctx, cp, []translog.MapKey{translog.ResourceKey(h.Group, h.Resource), translog.GroupKey(h.Group)})
		if err != nil {
			return err
		}
		e, ge := entries[0], entries[1]
		switch {
		case found[0] && e.Deleted && c.gone(ctx, h):
			// Deleted after the server answered (an honest race): the
			// server no longer serves it.
			return coffer.Errorf(coffer.ENOTFOUND, "resource %s was deleted", h.Resource)
		case found[0] && e.Deleted:
			return coffer.Security("deleted", fmt.Errorf("group %s, resource %s: the server serves version %d, but the log holds its tombstone (of version %d, log leaf %d)",
				h.Group, h.Resource, h.Version, e.Counter, e.LogIndex))
		case found[0] && e.Counter == h.Version && e.Hash != want:
			return coffer.Security("header", fmt.Errorf("group %s, resource %s: the server serves a version %d that is not the version %d the log holds (log leaf %d): two different signed versions %d",
				h.Group, h.Resource, h.Version, e.Counter, e.LogIndex, h.Version))
		case found[0] && e.Counter > h.Version:
			return coffer.Errorf(coffer.EPRECONDITION, "resource %s: the log holds version %d, the server served version %d: fetch it again", h.Resource, e.Counter, h.Version)
		case found[0] && e.Counter == h.Version && found[1]:
			lc.mu.Lock()
			_, placed := lc.placed[lv.HeaderHash]
			lc.mu.Unlock()
			if !placed {
				if err := c.checkLeafIncluded(ctx, cp, e.LogIndex, leaf); err != nil {
					return err
				}
				role, err := c.checkAuthorInForce(ctx, v, cp, ge, e.LogIndex, h)
				if err != nil {
					return err
				}
				if err := c.checkReplaceRule(ctx, cp, e.LogIndex, h, role); err != nil {
					return err
				}
			}
			lc.mu.Lock()
			if lc.placed == nil || len(lc.placed) >= maxLoggedChecks {
				lc.placed, lc.current = map[[32]byte]struct{}{}, map[[32]byte][32]byte{}
			}
			lc.placed[lv.HeaderHash] = struct{}{}
			lc.current[lv.HeaderHash] = cp.MapRoot
			lc.mu.Unlock()
			return nil
		}
		// Not in the map of cp yet (or, absurdly, the group is not):
		// fetch the latest at once if cp came with the answer, else wait
		// for the sequencer.
		if attempt == 0 {
			if _, offered := ctx.Value(offeredCheckpointKey{}).(string); offered {
				continue
			}
		}
		if time.Now().After(deadline) {
			return coffer.Errorf(coffer.EUNAVAILABLE, "the transparency log has not included version %d of resource %s after %v: retry later; until it does, this device does not accept that version",
				h.Version, h.Resource, c.opts.LogWait)
		}
		d := min(time.Duration(10<<min(attempt, 5))*time.Millisecond, 250*time.Millisecond)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// resourceMapEntries proves keys' entries in the heads map of cp.
func (c *Client) resourceMapEntries(ctx context.Context, cp translog.Checkpoint, keys []translog.MapKey) ([]translog.MapEntry, []bool, error) {
	entries, found := make([]translog.MapEntry, len(keys)), make([]bool, len(keys))
	if cp.Size == 0 {
		return entries, found, nil
	}
	req := api.MapProofsRequest{Size: cp.Size, Keys: make([]api.MapKeyRef, len(keys))}
	for i, k := range keys {
		r := api.MapKeyRef{Kind: k.Kind.String(), Group: &k.Group}
		if k.Kind == translog.MapResource {
			r.Resource = &k.Resource
		}
		req.Keys[i] = r
	}
	var resp api.MapProofs
	if err := c.call(ctx, http.MethodPost, "/v1/log/map/proofs", false, req, &resp); err != nil {
		return nil, nil, err
	}
	if resp.Size != cp.Size || len(resp.Proofs) != len(keys) {
		return nil, nil, logSecurity("the server answered another map proof request than the one for %s at size %d", keys[0], cp.Size)
	}
	for i, p := range resp.Proofs {
		if p.Index < 0 {
			continue
		}
		proof, err := translog.BytesToHashes(p.Proof)
		if err != nil {
			return nil, nil, logSecurity("%v", err)
		}
		e, err := translog.CheckMapEntry(cp, keys[i], translog.MapProof{Index: p.Index, Entry: p.Entry, Proof: proof})
		if err != nil {
			return nil, nil, logSecurity("%v", err)
		}
		entries[i], found[i] = e, true
	}
	return entries, found, nil
}

// checkLeafIncluded proves that leaf is entry index of the log of cp.
func (c *Client) checkLeafIncluded(ctx context.Context, cp translog.Checkpoint, index int64, leaf []byte) error {
	var p api.LogInclusion
	path := "/v1/log/proof/inclusion?index=" + strconv.FormatInt(index, 10) + "&size=" + strconv.FormatInt(cp.Size, 10)
	if err := c.call(ctx, http.MethodGet, path, false, nil, &p); err != nil {
		return err
	}
	proof, err := translog.BytesToHashes(p.Proof)
	if err != nil {
		return logSecurity("%v", err)
	}
	if err := translog.CheckInclusion(cp, index, leaf, proof); err != nil {
		return logSecurity("%v", err)
	}
	return nil
}

// checkAuthorInForce checks that h's author was a writer at the group head
// in force when its leaf (log index leafIndex) was logged, and that head's
// epoch was h's. head is the group's entry in the map of cp.
//
// When the group has no commit logged after the leaf and this device's
// verified state is that head, the state answers. Otherwise the commits of
// h's epoch that matter are placed in the log with inclusion proofs: the
// commit that started the epoch must precede the leaf, the one that ended
// it (if any) must follow it, and the author's role is the one the commits
// logged before the leaf leave.
func (c *Client) checkAuthorInForce(ctx context.Context, v *groupView, cp translog.Checkpoint, head translog.MapEntry, leafIndex int64, h *coffer.ResourceHeader) (coffer.Role, error) {
	s := v.state
	if head.LogIndex < leafIndex && (s.Seq < head.Counter || (s.Seq == head.Counter && s.Head != head.Hash)) {
		// The view is older than the checkpoint: catch up once.
		var err error
		if v, err = c.view(ctx, h.Group, true); err != nil {
			return coffer.RoleNone, err
		}
		s = v.state
	}
	if head.LogIndex < leafIndex && s.Seq == head.Counter && s.Head == head.Hash {
		return authorRule(h, s.Members[h.Author], s.Epoch, s.Seq)
	}
	return c.checkAuthorInHistory(ctx, cp, leafIndex, h)
}

// authorRule is the reader's form of the role rule of
// coffer.CheckLoggedVersion, given the author's membership and the epoch
// at the head in force (seq). It returns the author's role there.
func authorRule(h *coffer.ResourceHeader, m *coffer.Member, epoch, seq uint64) (coffer.Role, error) {
	role := coffer.RoleNone
	if m != nil {
		role = m.Role
	}
	switch {
	case epoch != h.Epoch:
		return role, coffer.Security("header", fmt.Errorf("group %s, resource %s: version %d is under epoch %d, but when the log took it the group was at epoch %d (seq %d): a backdated version",
			h.Group, h.Resource, h.Version, h.Epoch, epoch, seq))
	case role < coffer.RoleWriter:
		return role, coffer.Security("header", fmt.Errorf("group %s, resource %s: version %d is by %s, a %s at the group head in force when the log took it (seq %d)",
			h.Group, h.Resource, h.Version, h.Author, role, seq))
	}
	return role, nil
}

// checkAuthorInHistory is the slow path of checkAuthorInForce: it reads
// the group's verified history, and proves where the commits of h's epoch
// that touch the author, and the epoch's boundaries, sit in the log.
func (c *Client) checkAuthorInHistory(ctx context.Context, cp translog.Checkpoint, leafIndex int64, h *coffer.ResourceHeader) (coffer.Role, error) {
	signed, parsed, err := c.signedHistory(ctx, h.Group)
	if err != nil {
		return coffer.RoleNone, err
	}
	// first: the commit that started the header's epoch; end: the one that
	// started the next (0 if none yet).
	var first, end uint64
	var touching []uint64
	for _, cm := range parsed {
		switch {
		case cm.Epoch == h.Epoch && first == 0:
			first = cm.Seq
		case cm.Epoch > h.Epoch && end == 0:
			end = cm.Seq
		}
		if cm.Epoch == h.Epoch && end == 0 && first != 0 && cm.Seq != first && touches(cm, h.Author) {
			touching = append(touching, cm.Seq)
		}
	}
	if first == 0 {
		return coffer.RoleNone, coffer.Security("header", fmt.Errorf("group %s, resource %s: version %d names epoch %d, which the verified log does not reach", h.Group, h.Resource, h.Version, h.Epoch))
	}
	seqs := append([]uint64{first}, touching...)
	if end != 0 {
		seqs = append(seqs, end)
	}
	idx, err := c.commitIndexes(ctx, cp, h.Group, seqs, signed)
	if err != nil {
		return coffer.RoleNone, err
	}
	before := func(seq uint64) bool { i, ok := idx[seq]; return ok && i < leafIndex }
	if !before(first) {
		return authorRule(h, nil, h.Epoch-1, first-1) // logged before its epoch began
	}
	if end != 0 && before(end) {
		// The epoch had ended when the leaf was logged.
		return authorRule(h, nil, parsed[end-1].Epoch, end)
	}
	role := roleAfter(parsed[:first], h.Author)
	at := first
	for _, seq := range touching {
		if !before(seq) {
			break
		}
		role, at = roleAfter(parsed[seq-1:seq], h.Author, role), seq
	}
	var m *coffer.Member
	if role != coffer.RoleNone {
		m = &coffer.Member{ID: h.Author, Role: role}
	}
	return authorRule(h, m, h.Epoch, at)
}

// touches reports whether a commit changes account's membership or role.
func touches(cm *coffer.Commit, account coffer.AccountID) bool {
	for _, op := range cm.Ops {
		if op.Member == account && op.Kind != coffer.OpRotate {
			return true
		}
	}
	return false
}

// roleAfter returns account's role after commits, starting from start
// (RoleNone if not given).
func roleAfter(commits []*coffer.Commit, account coffer.AccountID, start ...coffer.Role) coffer.Role {
	role := coffer.RoleNone
	if len(start) > 0 {
		role = start[0]
	}
	for _, cm := range commits {
		for _, op := range cm.Ops {
			if op.Member != account {
				continue
			}
			switch op.Kind {
			case coffer.OpAdd, coffer.OpSetRole:
				role = op.Role
			case coffer.OpRemove, coffer.OpLeave:
				role = coffer.RoleNone
			}
		}
	}
	return role
}

// signedHistory returns g's commits, signed and parsed, oldest first,
// verified from the genesis to the head of this device's verified view.
func (c *Client) signedHistory(ctx context.Context, g coffer.GroupID) ([]coffer.SignedCommit, []*coffer.Commit, error) {
	// The cached view's state, not a new sync: its head is what the
	// history must end at.
	v, err := c.view(ctx, g, false)
	if err != nil {
		return nil, nil, err
	}
	res := struct{ State *coffer.GroupState }{v.state}
	pg, err := c.commitPager(g, res.State.Seq)
	if err != nil {
		return nil, nil, err
	}
	var commits []coffer.SignedCommit
	for uint64(len(commits)) < res.State.Seq {
		page, err := c.commitPage(ctx, pg, g, uint64(len(commits)))
		if err != nil {
			return nil, nil, err
		}
		commits = append(commits, page...)
		if len(page) < commitPageSize {
			break
		}
	}
	if uint64(len(commits)) > res.State.Seq {
		commits = commits[:res.State.Seq]
	}
	full, err := c.verifyChain(ctx, &coffer.GroupState{Group: g}, commits)
	if err != nil {
		return nil, nil, err
	}
	if full.Head != res.State.Head {
		return nil, nil, coffer.Security("fork", errors.New("the full history does not end at the verified head"))
	}
	parsed := make([]*coffer.Commit, len(commits))
	for i, sc := range commits {
		if parsed[i], err = coffer.ParseCommit(sc.Body); err != nil {
			return nil, nil, coffer.Security("chain", err)
		}
	}
	return commits, parsed, nil
}

// commitIndexes proves the log indexes of the commits seqs of g in cp. A
// commit the tree of cp does not include yet is left out: it follows every
// leaf of cp.
func (c *Client) commitIndexes(ctx context.Context, cp translog.Checkpoint, g coffer.GroupID, seqs []uint64, signed []coffer.SignedCommit) (map[uint64]int64, error) {
	out := map[uint64]int64{}
	lc := &c.logged
	req := api.LogProofsRequest{Size: cp.Size}
	lc.mu.Lock()
	for _, seq := range seqs {
		if i, ok := lc.indexes[commitRef{g, seq}]; ok {
			out[seq] = i
		} else {
			req.Commits = append(req.Commits, api.LogCommitRef{Group: g, Seq: seq})
		}
	}
	lc.mu.Unlock()
	if len(req.Commits) == 0 {
		return out, nil
	}
	resp, err := c.logProofs(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.Size != cp.Size || len(resp.Commits) != len(req.Commits) || len(resp.Accounts) != 0 {
		return nil, logSecurity("the server answered a different proof request")
	}
	for i, p := range resp.Commits {
		ref := req.Commits[i]
		if p.Group == nil || *p.Group != g || p.Seq != ref.Seq {
			return nil, logSecurity("the server answered for another commit")
		}
		if !p.Included {
			continue
		}
		proof, err := translog.BytesToHashes(p.Proof)
		if err != nil {
			return nil, logSecurity("%v", err)
		}
		if err := translog.CheckInclusion(cp, p.Index, translog.CommitLeaf(g, ref.Seq, signed[ref.Seq-1]), proof); err != nil {
			return nil, logSecurity("%v", err)
		}
		out[ref.Seq] = p.Index
		lc.mu.Lock()
		if lc.indexes == nil || len(lc.indexes) >= maxLoggedChecks {
			lc.indexes = map[commitRef]int64{}
		}
		lc.indexes[commitRef{g, ref.Seq}] = p.Index
		lc.mu.Unlock()
	}
	return out, nil
}

// proveTombstone waits, up to Options.LogWait, until the heads map of a
// checkpoint this device verified holds the tombstone sd as the resource's
// entry. Another entry at or past its version is a *coffer.SecurityError.
func (c *Client) proveTombstone(ctx context.Context, sd coffer.SignedDelete) error {
	d, err := coffer.ParseResourceDelete(sd.Body)
	if err != nil {
		return err
	}
	want := translog.RecordHash(translog.ResourceDeleteLeaf(sd))
	key := translog.ResourceKey(d.Group, d.Resource)
	deadline := time.Now().Add(c.opts.LogWait)
	for attempt := 0; ; attempt++ {
		cp, err := c.latestCheckpoint(ctx)
		if err != nil {
			return err
		}
		es, found, err := c.resourceMapEntries(ctx, cp, []translog.MapKey{key})
		if err != nil {
			return err
		}
		e := es[0]
		switch {
		case found[0] && e.Deleted && e.Hash == want:
			return nil
		case found[0] && (e.Deleted || e.Counter > d.Version):
			return logSecurity("resource %s: the log holds another entry (version %d, deleted %v, log leaf %d) than this device's delete of version %d",
				d.Resource, e.Counter, e.Deleted, e.LogIndex, d.Version)
		}
		if time.Now().After(deadline) {
			return coffer.Errorf(coffer.EUNAVAILABLE, "the transparency log has not included the delete of resource %s after %v: retry later", d.Resource, c.opts.LogWait)
		}
		pause := min(time.Duration(10<<min(attempt, 5))*time.Millisecond, 250*time.Millisecond)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// gone asks the server again for the resource of h and reports whether it
// answers that there is none.
func (c *Client) gone(ctx context.Context, h *coffer.ResourceHeader) bool {
	var ar api.Resource
	err := c.call(ctx, http.MethodGet, resourcePath(h.Group, h.Resource), true, nil, &ar)
	return coffer.ErrorCode(err) == coffer.ENOTFOUND
}
