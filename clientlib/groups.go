package clientlib

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/ratchettree"
	"github.com/cofferhq/coffer/internal/translog"
)

// maxCommitRetries bounds how often a membership change is rebuilt after
// losing a compare-and-append race (409) to another writer. Between tries
// the client waits a random, growing delay so that racing writers spread
// out instead of colliding again in lockstep.
const maxCommitRetries = 40

func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(min(attempt+1, 10)) * int64(15*time.Millisecond)))
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// GroupOptions are the choices fixed when a group is created.
type GroupOptions struct {
	// NoHistory stops members added later from reading epochs before the
	// one they joined. By default groups share history.
	NoHistory bool
	// Description is stored encrypted with the name.
	Description string
	// SuiteV1 makes a suite v1 group even when Options.SuiteV2Groups is
	// set: members then need no suite v2 account (a suite v1 identity made
	// with Register can be added), and signatures are Ed25519.
	SuiteV1 bool
	// Tree makes a tree group (a suite v2 group whose epoch keys come from
	// a ratchet tree: a removal costs O(log n) ciphertexts, not a wrap per
	// member). It needs Options.SuiteV2Groups and a suite v2 account.
	Tree bool
}

// groupMeta is the plaintext of a group's encrypted metadata.
type groupMeta struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Group is a group as this client sees it after verification.
type Group struct {
	ID           coffer.GroupID
	Name         string
	Description  string
	Epoch        uint64
	Seq          uint64
	Role         coffer.Role
	ShareHistory bool
	// KeyConflicts lists members whose keys in the verified log differ
	// from the keys this device verified for them. While it is not empty,
	// Put, Replace and every membership change that wraps keys fail with a
	// security error; reads still work.
	KeyConflicts []*coffer.Member
	// Err is set, in a listing by Groups, for a group that failed
	// verification: a *coffer.SecurityError naming it. Only ID is set
	// beside it; nothing else of the group may be relied on.
	Err error
}

// Member is a verified member of a group, with this device's trust in
// their keys.
type Member struct {
	coffer.Member
	// Trust is Verified when the member's keys in the chain match keys this
	// device verified, Changed when they differ, Unverified otherwise.
	Trust ContactState
}

// SyncResult is the outcome of Sync.
type SyncResult struct {
	State *coffer.GroupState
	// New is how many commits were verified in this sync.
	New int
	// Unverified lists members, added by others, whose keys this device has
	// not verified. Their wraps were made by whoever added them.
	Unverified []*Member
	// Proof is how State's head was proven current: through the heads map
	// of a checkpoint the witnesses cosigned. Proof.Age() is how old that
	// view is.
	Proof HeadProof
}

// CreateGroup creates a group with this account as its owner and returns
// its id. The group key, its commitment and the encrypted name are all made
// here; the server receives only the signed genesis, one wrap and the
// ciphertext of the name.
func (c *Client) CreateGroup(ctx context.Context, name string, opts *GroupOptions) (coffer.GroupID, error) {
	if opts == nil {
		opts = &GroupOptions{}
	}
	if name == "" || len(name) > 256 {
		return coffer.GroupID{}, coffer.Errorf(coffer.EINVALID, "a group name must be 1 to 256 bytes")
	}
	id, me, err := c.me()
	if err != nil {
		return coffer.GroupID{}, err
	}
	g := coffer.NewGroupID()
	k := groupkey.NewEpochKey()
	c.observeSecret("epoch-key", k[:])
	commit := &coffer.Commit{
		Group: g, Seq: 1, Epoch: 1, Author: me, Time: time.Now().UnixMilli(),
		ShareHistory:  !opts.NoHistory,
		KeyCommitment: groupkey.Commitment(k, g, 1),
		Ops: []coffer.Op{{
			Kind: coffer.OpAdd, Member: me, Handle: id.Handle(), Role: coffer.RoleOwner,
			SigningKey: id.public.SigningKey, EncryptionKey: id.public.EncryptionKey,
		}},
	}
	suite := uint8(coffer.SuiteV1)
	var own coffer.MemberKeyMap // the keys a suite v2 genesis refers to: ours
	if c.opts.SuiteV2Groups && !opts.SuiteV1 && id.acct != nil {
		mk, _, err := c.ownMemberKeys(id)
		if err != nil {
			return coffer.GroupID{}, err
		}
		suite, own = coffer.SuiteV2, coffer.MemberKeyMap{}
		commit.Ops[0].SigningKey, commit.Ops[0].EncryptionKey, commit.Ops[0].KeysHash = nil, nil, own.Add(mk)
	}
	if opts.Tree {
		if suite != coffer.SuiteV2 {
			return coffer.GroupID{}, coffer.Errorf(coffer.EINVALID, "a tree group is a suite v2 group: it needs Options.SuiteV2Groups and a suite v2 account")
		}
		// The owner alone: a one-leaf tree, whose epoch key is random and
		// wrapped to the owner as in any group.
		t, err := ratchettree.NewTree([][]byte{id.public.EncryptionKey})
		if err != nil {
			return coffer.GroupID{}, err
		}
		commit.Tree = &coffer.TreePart{Kind: coffer.TreeStart, StartKey: id.public.EncryptionKey, Commit: &ratchettree.Commit{Leaves: 1, TreeHash: t.Hash()}}
	}
	sc, err := c.signCommit(id, suite, commit)
	if err != nil {
		return coffer.GroupID{}, err
	}
	state, err := coffer.VerifyChainWith(nil, []coffer.SignedCommit{sc}, own)
	if err != nil {
		return coffer.GroupID{}, err
	}
	wrap, err := groupkey.Wrap(id.public.EncryptionKey, g, 1, me, k)
	if err != nil {
		return coffer.GroupID{}, err
	}
	meta, err := json.Marshal(groupMeta{Name: name, Description: opts.Description})
	if err != nil {
		return coffer.GroupID{}, err
	}
	req := api.CommitRequest{
		Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature},
		Wraps:  []api.Wrap{{Member: me, Epoch: 1, Wrap: wrap}},
		Meta:   groupkey.SealMetadata(k, g, 1, coffer.LabelGroupMeta, nil, meta),
	}
	if err := c.call(ctx, http.MethodPost, "/v1/groups", true, req, nil); err != nil {
		return coffer.GroupID{}, err
	}
	c.journal(g, 1, &req)

	if err := c.proveOwnCommit(ctx, g, 1, sc); err != nil {
		return coffer.GroupID{}, inGroup(err, g, coffer.ResourceID{})
	}
	if err := c.saveState(state, nil, nil); err != nil {
		return coffer.GroupID{}, err
	}
	return g, inGroup(c.witnessOwnCommit(ctx, state), g, coffer.ResourceID{})
}

// me returns the identity and account, or an error before registration.
func (c *Client) me() (*Identity, coffer.AccountID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id == nil || c.account.IsZero() {
		return nil, coffer.AccountID{}, coffer.Errorf(coffer.EINVALID, "no registered identity: register first")
	}
	return c.id, c.account, nil
}

// Sync fetches the commits of g that this device has not verified yet,
// verifies them with the one chain verifier from the highest state it
// trusts, and stores the new state. The server cannot make it accept a
// forged, reordered or forked commit, nor a history shorter than one it
// has already verified: each is a *coffer.SecurityError.
//
// When a member has left and the group waits for a rotation, an admin's or
// owner's Sync performs it (see rotatePending) before it returns. When this
// account's entry still holds keys a rotation retired, Sync first makes the
// self-update (see updatePending), whatever the member's role.
func (c *Client) Sync(ctx context.Context, g coffer.GroupID) (*SyncResult, error) {
	return c.syncPending(ctx, g, true)
}

// syncPending is Sync; withTrust false leaves SyncResult.Unverified
// empty, for callers that only need the state: listing the trust of
// 100,000 members is most of a receiving member's sync.
func (c *Client) syncPending(ctx context.Context, g coffer.GroupID, withTrust bool) (*SyncResult, error) {
	res, err := c.sync(ctx, g, withTrust)
	if err != nil {
		return nil, inGroup(err, g, coffer.ResourceID{})
	}
	if res, err = c.updatePending(ctx, g, res); err != nil {
		return nil, inGroup(err, g, coffer.ResourceID{})
	}
	res, err = c.rotatePending(ctx, g, res)
	return res, inGroup(err, g, coffer.ResourceID{})
}

// sync is Sync; withTrust also computes the unverified members, which costs
// a key store read per member and is skipped on internal paths. It proves
// the verified head through a fresh witnessed heads map (freshness.go),
// syncing again while the map shows a newer head.
func (c *Client) sync(ctx context.Context, g coffer.GroupID, withTrust bool) (*SyncResult, error) {
	tailRetried := false
	for progress := 0; ; progress++ {
		res, err := c.syncOnce(ctx, g, withTrust)
		var (
			ahead *mapAheadError
			tail  *shortTailError
		)
		switch {
		case errors.As(err, &ahead) && ahead.served < ahead.head.entry.Counter:
			// Asked after it showed the witnesses' head, the server still
			// serves an older one: it is hiding commits.
			return nil, coffer.Security("withheld", fmt.Errorf("the server serves head seq %d of group %s, but the witnesses vouch for %s: "+
				"the server is hiding commits from this device", ahead.served, g, ahead.head.describe()))
		case errors.Is(err, errMapAhead) && progress < maxCommitRetries:
			// Others committed while this device verified: catch up.
		case errors.As(err, &tail):
			if tailRetried {
				return nil, tail.err
			}
			tailRetried = true
		default:
			return res, err
		}
	}
}

// shortTailError is a sync whose commit pages, each verified, ended below
// the head the server had just reported. Under load an honest server's
// answers to the two requests can straddle concurrent commits and member
// changes, so sync asks once more; a server that withholds the tail does
// so again and the fork error (err) stands. Nothing was saved either time.
type shortTailError struct{ err error }

func (e *shortTailError) Error() string { return e.err.Error() }
func (e *shortTailError) Unwrap() error { return e.err }

// mapAheadError: the witnessed map shows a newer head than the server
// served.
type mapAheadError struct {
	head   groupHead
	served uint64
}

func (e *mapAheadError) Error() string { return errMapAhead.Error() }
func (e *mapAheadError) Unwrap() error { return errMapAhead }

func (c *Client) syncOnce(ctx context.Context, g coffer.GroupID, withTrust bool) (*SyncResult, error) {
	local, err := c.localState(g)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	// The witnessed head (checkpoint, consistency, map proof) is fetched
	// beside the group's info and its first commit page: none of the
	// answers depends on another, and each is checked against the others
	// below, in the order they were before, so the three only overlap on
	// the wire. An early return cancels the fetch and waits for it.
	var (
		wh     groupHead
		whErr  error
		whDone = make(chan struct{})
	)
	go func() {
		defer close(whDone)
		wh, whErr = c.witnessedHead(ctx, g)
	}()
	defer func() { <-whDone }()
	defer cancel()
	var info api.Group
	if err := c.call(ctx, http.MethodGet, "/v1/groups/"+g.String(), true, nil, &info); err != nil {
		return nil, err
	}
	var after uint64
	if local != nil {
		after = local.Seq
		if info.HeadSeq < local.Seq {
			// Name the group: after a restore from an old backup every
			// group rolls back at once, and the people who can heal each
			// one (HealGroup) are its members.
			return nil, coffer.Security("rollback", fmt.Errorf("group %s: the server shows head seq %d, but this device verified up to seq %d: "+
				"the server rolled the group back (restored from an older backup?) or is hiding commits", g, info.HeadSeq, local.Seq))
		}
	}
	// A head another device of the account verified, when this one has
	// not verified the group yet (devicestate.go).
	floor, err := c.checkFloor(g, local, info.HeadSeq)
	if err != nil {
		return nil, err
	}
	pg, err := c.commitPager(g, info.HeadSeq-after)
	if err != nil {
		return nil, err
	}
	pages := c.prefetchCommits(ctx, pg, g, after, info.HeadSeq)
	// The witnessed head. A commit that lands between the two requests
	// makes it newer than info; sync starts over then (a server that keeps
	// serving less than the witnesses vouch for is caught there).
	<-whDone
	if whErr != nil {
		return nil, whErr
	}
	if local != nil {
		if err := wh.checkCommitAt(g, local.Seq, local.Head); err != nil {
			return nil, err
		}
	}
	if wh.found && info.HeadSeq < wh.entry.Counter {
		// Asked again after the witnessed head was fetched, an honest
		// server shows at least that head: it stored the commit before it
		// logged it.
		if err := c.call(ctx, http.MethodGet, "/v1/groups/"+g.String(), true, nil, &info); err != nil {
			return nil, err
		}
		return nil, &mapAheadError{head: wh, served: info.HeadSeq}
	}
	// Pages are verified, and proven to be in the transparency log, as
	// they arrive (syncpipe.go): a lying server cannot make the device hold
	// more than a few pages of unverified commits, and nothing is relied on
	// before both checks pass for every page.
	state := local
	var verified uint64
	// The members the commits change: only they are checked again below
	// when every member of local passed the checks (memberscope.go).
	prior, checked := c.checked.lookup(local)
	scope := newMemberScope(!checked).with(prior.pending)
	// The verified commits, kept while few enough to be stored as the
	// tail of the stored state (statetail.go) rather than a new snapshot.
	var tail []coffer.SignedCommit
	// Every commit verified, for the tree replay (recentcommits.go).
	var seen []coffer.SignedCommit
	var last coffer.SignedCommit
	seenBytes := 0
	proofs, proofCtx := newProofGroup(ctx)
	defer func() { cancel(); _ = proofs.Wait() }()
	for page := range pages {
		if page.err != nil {
			return nil, page.err
		}
		commits := page.commits
		if len(commits) == 0 {
			break // withheld: caught by the head check below
		}
		next, err := c.verifyChain(ctx, state, commits)
		if err != nil {
			return nil, err
		}
		scope = scope.add(next)
		if next.Group != g {
			return nil, coffer.Security("chain", fmt.Errorf("commits belong to group %s, not %s", next.Group, g))
		}
		// A commit at the seq the witnesses vouch for must be theirs: a
		// fork is named now, not after waiting on its inclusion.
		first := after + verified + 1
		if wh.found && wh.entry.Counter >= first && wh.entry.Counter < first+uint64(len(commits)) {
			if err := wh.checkCommitAt(g, wh.entry.Counter, commits[wh.entry.Counter-first].Hash()); err != nil {
				return nil, err
			}
		}
		if err := checkFloorPage(floor, first, commits); err != nil {
			return nil, err
		}
		// Every newly verified commit must be in the transparency log
		// before this device relies on it (see log.go).
		// The witnessed checkpoint, verified above, holds the commits up
		// to the head its map names: proven there, not in a fetched one.
		var held *translog.Checkpoint
		if wh.found && wh.entry.Counter >= first+uint64(len(commits))-1 {
			held = &wh.w.cp
		}
		proofs.Go(func() error { return c.proveCommitsLoggedIn(proofCtx, held, g, first, commits) })
		state, verified = next, verified+uint64(len(commits))
		if local != nil && verified <= maxTailCommits {
			tail = append(tail, commits...)
		} else {
			tail = nil
		}
		if seenBytes += signedCommitsSize(commits); seenBytes <= maxRecentBytes {
			seen = append(seen, commits...)
		} else {
			seen = nil
		}
		last = commits[len(commits)-1]
	}
	if state != nil && state.Tree != nil && state.Seq == info.HeadSeq && verified > 0 {
		c.prefetchTreeCiphertexts(ctx, g, last)
	}
	if err := proofs.Wait(); err != nil {
		return nil, err
	}
	if state == nil {
		return nil, coffer.Security("chain", errors.New("the server returned no commits for a group it lists"))
	}
	// The head the server reports must be exactly the head just verified:
	// anything else is a withheld commit or a fork.
	if state.Seq < info.HeadSeq {
		// A member removed between the two requests is served no more
		// commits: the group is gone for it, which is what it learns.
		var again api.Group
		if err := c.call(ctx, http.MethodGet, "/v1/groups/"+g.String(), true, nil, &again); err != nil && !transient(err) {
			return nil, err
		}
	}
	if state.Seq != info.HeadSeq || string(state.Head[:]) != string(info.HeadHash) {
		err := coffer.Security("fork", fmt.Errorf("server reports head %d/%x, verified chain ends at %d/%x",
			info.HeadSeq, short(info.HeadHash), state.Seq, short(state.Head[:])))
		if state.Seq < info.HeadSeq {
			// A verified prefix that stops short of the head: sync asks
			// once more before calling it a fork (shortTailError).
			return nil, &shortTailError{err}
		}
		return nil, err
	}
	// Those found unlogged before are checked again. A reader checks its
	// own entry and the admins' (memberscope.go); from a state checked
	// that way, an admin's sync, or one that lists every member's trust,
	// checks every member.
	_, me, meErr := c.me()
	reader := !withTrust && meErr == nil && readerOf(state, me)
	deferred := prior.reader
	if deferred && !reader {
		scope, deferred = allMembers, false
	}
	scope = scope.with(c.unloggedIDs())
	if reader && scope.all {
		// Only the pass over every member is deferred: the members later
		// commits change are checked as they arrive, a few per commit.
		scope, deferred = scope.forReader(state, me), true
	}
	// A suite v2 state names its members' keys by hash: resolve them
	// before the checks that compare members' keys.
	if state, err = c.withMemberKeysIn(ctx, state, scope); err != nil {
		return nil, err
	}
	proof, err := c.proveHead(ctx, state, wh)
	if err != nil {
		return nil, err
	}
	if err := c.checkMembers(ctx, proof.w, local, state, scope); err != nil {
		return nil, err
	}
	c.checked.mark(state, deferred)
	// Nothing new verified: state is the stored state, and saving it
	// again would only encode it and compare it with itself.
	if state != local {
		if uint64(len(tail)) != verified {
			tail = nil // more than a tail holds: saved whole
		}
		if err := c.saveState(state, local, tail); err != nil {
			return nil, err
		}
		if uint64(len(seen)) == verified {
			c.recent.put(g, after, state.Head, seen)
		}
	}
	res := &SyncResult{State: state, New: int(verified), Proof: proof}
	if !withTrust {
		return res, nil
	}
	members, err := c.trustMembers(state)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.Trust != Verified {
			res.Unverified = append(res.Unverified, m)
		}
	}
	return res, nil
}

// checkMembers proves the identities of the members of s in scope, whose
// keys are resolved, in the witnessed map of w, and follows the chains of
// verified suite v2 contacts among them whose keys changed since prev, so
// that a rotation is not taken for a substitution.
func (c *Client) checkMembers(ctx context.Context, w *witnessed, prev, s *coffer.GroupState, scope *memberScope) error {
	if err := c.proveMembers(ctx, w, s, scope); err != nil {
		return err
	}
	return c.followMemberChains(ctx, prev, s, scope)
}

// checkEveryMember returns s, a state a sync proved through w, with every
// member checked, as a sync by an admin checks them: a reader's sync
// checked only its own entry and the admins' (memberscope.go), which is
// enough to read but not to show the members or their trust, nor to share
// content or a new key with them all.
func (c *Client) checkEveryMember(ctx context.Context, s *coffer.GroupState, w *witnessed) (*coffer.GroupState, error) {
	if e, ok := c.checked.lookup(s); ok && !e.reader {
		return s, nil
	}
	r, err := c.withMemberKeysIn(ctx, s, allMembers)
	if err != nil {
		return nil, err
	}
	if err := c.checkMembers(ctx, w, nil, r, allMembers); err != nil {
		return nil, err
	}
	c.checked.mark(r, false)
	return r, nil
}

// checkContactMembers returns the state of res with the members that are
// verified contacts of this device resolved and checked, so that
// keyConflicts compares their keys: a reader's sync left them unresolved
// (memberscope.go), and an unresolved entry would contradict every contact.
func (c *Client) checkContactMembers(ctx context.Context, res *SyncResult) (*coffer.GroupState, error) {
	s := res.State
	if e, ok := c.checked.lookup(s); !ok || !e.reader {
		return s, nil
	}
	id, _, err := c.me()
	if err != nil {
		return nil, err
	}
	book, err := c.loadContactBook()
	if err != nil {
		return nil, err
	}
	ix := book.verifiedIndex(id.Handle())
	scope := newMemberScope(false)
	for mid, m := range s.Members {
		if m.Keys == nil && (len(ix.byHandle[m.Handle]) > 0 || len(ix.byID[mid]) > 0) {
			scope.ids[mid] = struct{}{}
		}
	}
	if len(scope.ids) == 0 {
		return s, nil
	}
	r, err := c.withMemberKeysIn(ctx, s, scope)
	if err != nil {
		return nil, err
	}
	if err := c.checkMembers(ctx, res.Proof.w, nil, r, scope); err != nil {
		return nil, err
	}
	c.checked.mark(r, true)
	return r, nil
}

func short(b []byte) []byte {
	if len(b) > 6 {
		return b[:6]
	}
	return b
}

// trustMembers annotates the members of a verified state with this device's
// trust in their keys.
func (c *Client) trustMembers(s *coffer.GroupState) ([]*Member, error) {
	book, err := c.loadContactBook()
	if err != nil {
		return nil, err
	}
	out, err := c.trustByHandle(s, book)
	if err != nil {
		return nil, err
	}
	// A verified account listed under another handle is matched by id.
	conflicts, err := c.keyConflictsIn(s, book)
	if err != nil {
		return nil, err
	}
	for _, cm := range conflicts {
		for _, mm := range out {
			if mm.ID == cm.ID {
				mm.Trust = Changed
			}
		}
	}
	return out, nil
}

// trustByHandle is trustMembers without the match by account id
// (keyConflicts), for a caller that has just checked s with it.
func (c *Client) trustByHandle(s *coffer.GroupState, book *contactBook) ([]*Member, error) {
	id, me, err := c.me()
	if err != nil {
		return nil, err
	}
	out := make([]*Member, 0, len(s.Members))
	for _, m := range s.SortedMembers() {
		mm := &Member{Member: *m, Trust: Unverified}
		var verified *coffer.PublicIdentity
		var verifiedID coffer.AccountID
		if m.ID == me || m.Handle == id.Handle() {
			pub := id.Public()
			verified, verifiedID = &pub, me
		} else if ct, err := book.contact(m.Handle); err != nil {
			return nil, err
		} else if ct != nil && ct.VerifiedIdentity != nil {
			verified, verifiedID = ct.VerifiedIdentity, ct.AccountID
		}
		// Matched by handle: a member who carries a verified handle under
		// another account id or other keys is a substitution, whatever id
		// the server gave it.
		if verified != nil {
			if m.ID == verifiedID && m.Handle == verified.Handle &&
				string(verified.SigningKey) == string(m.SigningKey) &&
				string(verified.EncryptionKey) == string(m.EncryptionKey) {
				mm.Trust = Verified
			} else {
				mm.Trust = Changed
			}
		}
		out = append(out, mm)
	}
	return out, nil
}

// Members syncs g and returns its members.
func (c *Client) Members(ctx context.Context, g coffer.GroupID) ([]*Member, error) {
	res, err := c.syncPending(ctx, g, false)
	if err != nil {
		return nil, err
	}
	s, err := c.checkEveryMember(ctx, res.State, res.Proof.w)
	if err != nil {
		return nil, inGroup(err, g, coffer.ResourceID{})
	}
	members, err := c.trustMembers(s)
	return members, inGroup(err, g, coffer.ResourceID{})
}

// History syncs g and returns its verified commits, oldest first, for
// display (`coffer group log`). The commits are re-fetched and checked
// against the verified head.
func (c *Client) History(ctx context.Context, g coffer.GroupID) ([]*coffer.Commit, error) {
	commits, err := c.history(ctx, g)
	return commits, inGroup(err, g, coffer.ResourceID{})
}

func (c *Client) history(ctx context.Context, g coffer.GroupID) ([]*coffer.Commit, error) {
	res, err := c.syncPending(ctx, g, false)
	if err != nil {
		return nil, err
	}
	pg, err := c.commitPager(g, res.State.Seq)
	if err != nil {
		return nil, err
	}
	var commits []coffer.SignedCommit
	for {
		page, err := c.commitPage(ctx, pg, g, uint64(len(commits)))
		if err != nil {
			return nil, err
		}
		commits = append(commits, page...)
		if len(page) < commitPageSize || uint64(len(commits)) >= res.State.Seq {
			break
		}
	}
	// Commits appended since the sync are not part of the verified head.
	if uint64(len(commits)) > res.State.Seq {
		commits = commits[:res.State.Seq]
	}
	full, err := c.verifyChain(ctx, nil, commits)
	if err != nil {
		return nil, err
	}
	if full.Head != res.State.Head {
		return nil, coffer.Security("fork", errors.New("the full history does not end at the verified head"))
	}
	out := make([]*coffer.Commit, len(commits))
	for i, sc := range commits {
		if out[i], err = coffer.ParseCommit(sc.Body); err != nil {
			return nil, coffer.Security("chain", err)
		}
	}
	return out, nil
}

// epochKeys fetches this member's wraps and the history links of g and
// returns every epoch key it may read, each checked against the key
// commitment in the verified state. A wrap that opens to a key other than
// the committed one (swapped wraps, a wrap of a different key, or keys that
// differ between members) is a security error.
func (c *Client) epochKeys(ctx context.Context, s *coffer.GroupState) (map[uint64]groupkey.EpochKey, error) {
	id, _, err := c.me()
	if err != nil {
		return nil, err
	}
	return c.epochKeysWith(ctx, s, c.openers(id))
}

// epochKeysWith is epochKeys with the identities whose decryption keys may
// open this member's wraps: the current one, and those its account used
// before a key rotation, since a wrap of an epoch before the member's
// self-update was made to the key its entry held then.
func (c *Client) epochKeysWith(ctx context.Context, s *coffer.GroupState, ids []*Identity) (map[uint64]groupkey.EpochKey, error) {
	if s.Tree != nil {
		return c.treeEpochKeys(ctx, s, ids)
	}
	_, me, err := c.me()
	if err != nil {
		return nil, err
	}
	var keys api.Keys
	if err := c.call(ctx, http.MethodGet, "/v1/groups/"+s.Group.String()+"/keys", true, nil, &keys); err != nil {
		return nil, err
	}
	if err := checkKeyCounts(&keys); err != nil {
		return nil, err
	}
	out := map[uint64]groupkey.EpochKey{}
	for _, w := range keys.Wraps {
		if w.Member != me {
			return nil, coffer.Security("wrap", fmt.Errorf("server returned a wrap for %s", w.Member))
		}
		if w.Epoch > s.Epoch {
			// A rotation committed after s was verified: an honest race
			// between reading the commits and reading the keys. The wrap
			// is set aside unopened, never judged: only a commit this
			// device verified can vouch for it, and nothing here uses an
			// epoch beyond s.
			continue
		}
		want, ok := s.KeyCommitment(w.Epoch)
		if !ok {
			return nil, coffer.Security("wrap", fmt.Errorf("wrap for epoch %d, which the verified log does not have", w.Epoch))
		}
		k, err := unwrapAny(ids, s.Group, w.Epoch, me, w.Wrap)
		if err != nil {
			if rerr := c.revokedDevice(ctx); rerr != nil {
				// Not the server's doing: this device lost its account's
				// user key when another device revoked it.
				return nil, rerr
			}
			// Another device rotated the user key while this device's
			// session lived on (the server rechecks sessions every 30
			// seconds): the sync just made took the new key.
			if id, _, ierr := c.me(); ierr == nil {
				if nk, nerr := unwrapAny(c.openers(id), s.Group, w.Epoch, me, w.Wrap); nerr == nil {
					k, err = nk, nil
				}
			}
		}
		if err != nil {
			return nil, coffer.Security("wrap", fmt.Errorf("epoch %d wrap does not open for this member: %w", w.Epoch, err))
		}
		if !groupkey.CheckCommitment(k, s.Group, w.Epoch, want) {
			return nil, coffer.Security("wrap", fmt.Errorf("epoch %d key does not match the signed key commitment", w.Epoch))
		}
		out[w.Epoch] = k
		c.observeSecret("epoch-key", k[:])
	}
	if _, ok := out[s.Epoch]; !ok {
		return nil, coffer.Security("wrap", fmt.Errorf("no wrap of the current epoch %d key for this member", s.Epoch))
	}
	if s.ShareHistory {
		links := map[uint64][]byte{}
		for _, l := range keys.Links {
			links[l.Epoch] = l.Link
		}
		if err := walkHistory(s, links, out); err != nil {
			return nil, err
		}
		for _, k := range out {
			c.observeSecret("epoch-key", k[:])
		}
	}
	return out, nil
}

// EpochKeyCommitmentOK syncs g, unwraps this member's current epoch key and
// reports its epoch. It exists for tests and diagnostics: success means the
// key matched the signed commitment.
func (c *Client) CurrentEpoch(ctx context.Context, g coffer.GroupID) (uint64, error) {
	res, err := c.syncPending(ctx, g, false)
	if err != nil {
		return 0, err
	}
	if _, err := c.epochKeys(ctx, res.State); err != nil {
		return 0, inGroup(err, g, coffer.ResourceID{})
	}
	return res.State.Epoch, nil
}

// ReadableEpochs syncs g and lists the epochs whose keys this member can
// obtain (its own wraps plus, in history-sharing groups, links).
func (c *Client) ReadableEpochs(ctx context.Context, g coffer.GroupID) ([]uint64, error) {
	res, err := c.syncPending(ctx, g, false)
	if err != nil {
		return nil, err
	}
	keys, err := c.epochKeys(ctx, res.State)
	if err != nil {
		return nil, inGroup(err, g, coffer.ResourceID{})
	}
	var out []uint64
	for e := uint64(1); e <= res.State.Epoch; e++ {
		if _, ok := keys[e]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// change is one membership change, rebuilt from a fresh verified state on
// each attempt.
type change func(s *coffer.GroupState, keys map[uint64]groupkey.EpochKey) (ops []coffer.Op, rotate bool, extraWraps []groupkey.Recipient, err error)

// commitChange syncs, builds, signs and appends a change, retrying a bounded
// number of times when another writer appended first.
func (c *Client) commitChange(ctx context.Context, g coffer.GroupID, build change) (*coffer.GroupState, error) {
	return c.commitChangeMeta(ctx, g, build, nil)
}

// commitChangeMeta is commitChange; a rotation seals newMeta, when set,
// instead of the group's current name and description.
func (c *Client) commitChangeMeta(ctx context.Context, g coffer.GroupID, build change, newMeta func(current *groupMeta) *groupMeta) (_ *coffer.GroupState, err error) {
	// Every membership change, rename and leave names the group in a
	// security error (errname.go).
	defer func() { err = inGroup(err, g, coffer.ResourceID{}) }()
	id, me, err := c.me()
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < maxCommitRetries; attempt++ {
		res, err := c.sync(ctx, g, false)
		if err != nil {
			return nil, err
		}
		// A commit shares a new key with every member.
		s, err := c.checkEveryMember(ctx, res.State, res.Proof.w)
		if err != nil {
			return nil, err
		}
		keys, err := c.epochKeys(ctx, s)
		if err != nil {
			return nil, err
		}
		ops, rotate, added, err := build(s, keys)
		if err != nil {
			return nil, err
		}
		if s.Tree != nil {
			next, err := c.commitTreeChange(ctx, id, me, s, keys, ops, rotate, added, newMeta, nil)
			var retry *errTreeRetry
			if errors.As(err, &retry) {
				if err := backoff(ctx, attempt); err != nil {
					return nil, err
				}
				continue
			}
			return next, err
		}
		// After a leave, the leaver still holds the current key: nothing is
		// wrapped under it again, and the verifier requires this commit to
		// rotate (unless it is itself a leave, which never rotates).
		if s.PendingRotation && !isLeave(ops) {
			rotate = true
		}
		commit := &coffer.Commit{
			Group: g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch, Author: me,
			Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, Ops: ops,
		}
		k := keys[s.Epoch]
		req := api.CommitRequest{}
		if rotate {
			commit.Ops = append(commit.Ops, coffer.Op{Kind: coffer.OpRotate})
			commit.Epoch = s.Epoch + 1
			k = groupkey.NewEpochKey()
			c.observeSecret("epoch-key", k[:])
			if s.ShareHistory {
				req.Links = []api.HistoryLink{{Epoch: s.Epoch, Link: groupkey.SealHistoryLink(k, g, s.Epoch, keys[s.Epoch])}}
			}
		}
		commit.KeyCommitment = groupkey.Commitment(k, g, commit.Epoch)
		sc, err := c.signCommit(id, s.Suite, commit)
		if err != nil {
			return nil, err
		}
		next, err := c.applyOwn(ctx, s, sc)
		if err != nil {
			// Our own commit breaks a rule: report it as the invalid request it is.
			return nil, err
		}
		recipients := added
		var book *contactBook
		if rotate || len(added) > 0 {
			// Judged on the state after the change: removing the
			// conflicting member is how a user gets out of it.
			if book, err = c.loadContactBook(); err != nil {
				return nil, err
			}
			if err := c.checkKeyConflictsIn(next, book); err != nil {
				return nil, err
			}
		}
		if rotate {
			recipients, err = c.rotationRecipients(next, book)
			if err != nil {
				return nil, err
			}
		}
		if err := c.keys.fill(recipients); err != nil {
			return nil, err
		}
		if rotate {
			// Re-seal the group's name under the new epoch so that later
			// renames are hidden from removed members.
			meta, err := c.groupMeta(ctx, g, keys)
			if newMeta != nil && (err == nil || !coffer.IsSecurity(err)) {
				meta, err = newMeta(meta), nil
			}
			switch {
			case err == nil:
				b, _ := json.Marshal(meta)
				req.Meta = groupkey.SealMetadata(k, g, commit.Epoch, coffer.LabelGroupMeta, nil, b)
			case coffer.IsSecurity(err):
				return nil, err
			}
		}
		req.Commit = api.SignedCommit{Body: sc.Body, Signature: sc.Signature}
		// The wraps are sealed as the request is sent (commitstream.go).
		sent, err := c.postCommit(ctx, "/v1/groups/"+g.String()+"/commits", &req, recipients, g, commit.Epoch, k)
		if coffer.ErrorCode(err) == coffer.ECONFLICT {
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		c.journalBody(g, commit.Seq, sent)

		if err := c.proveOwnCommit(ctx, g, next.Seq, sc); err != nil {
			return nil, err
		}
		if _, stillMember := next.Members[me]; stillMember {
			if err := c.saveState(next, s, []coffer.SignedCommit{sc}); err != nil {
				return nil, err
			}
			if err := c.witnessOwnCommit(ctx, next); err != nil {
				return nil, err
			}
		}
		return next, nil
	}
	return nil, coffer.Errorf(coffer.ECONFLICT, "gave up after %d attempts: the group is changing too fast", maxCommitRetries)
}

// rotationRecipients lists every member of the new state with the key the
// verified chain records for them. Those keys were vouched for by the
// signature of the admin who added each member; a key that contradicts one
// this device verified blocks the rotation. The caller has just run
// checkKeyConflicts on s, which matches verified accounts by id as well,
// with the same contact book.
func (c *Client) rotationRecipients(s *coffer.GroupState, book *contactBook) ([]groupkey.Recipient, error) {
	members, err := c.trustByHandle(s, book)
	if err != nil {
		return nil, err
	}
	out := make([]groupkey.Recipient, 0, len(members))
	for _, m := range members {
		if m.Trust == Changed {
			return nil, coffer.Security("contact-key", &coffer.Error{Code: coffer.EKEYCHANGED, Message: fmt.Sprintf(
				"the group log holds keys for %s that differ from the keys you verified", m.Handle)})
		}
		out = append(out, groupkey.Recipient{Member: m.ID, EncryptionKey: m.EncryptionKey})
	}
	return out, nil
}

// AddMember adds the account named handle with role. Its keys must be
// verified (or trusted on first use); the current epoch key is wrapped for
// it, without rotation.
func (c *Client) AddMember(ctx context.Context, g coffer.GroupID, handle string, role coffer.Role) error {
	return c.AddMembers(ctx, g, []string{handle}, role)
}

// AddMembers adds several accounts with one role in one commit, wrapping
// the current epoch key for each. In a group without shared history the
// commit rotates instead, so the new members receive only a fresh key and
// cannot read what was written before they joined. Every key must be
// verified (or trusted on first use). A commit holds at most
// coffer.MaxCommitOps ops.
func (c *Client) AddMembers(ctx context.Context, g coffer.GroupID, handles []string, role coffer.Role) error {
	if !role.Valid() {
		return coffer.Errorf(coffer.EINVALID, "invalid role")
	}
	if len(handles) == 0 || len(handles) > coffer.MaxCommitOps {
		return coffer.Errorf(coffer.EINVALID, "add 1 to %d members per call", coffer.MaxCommitOps)
	}
	accounts := make([]*Account, len(handles))
	for i, h := range handles {
		a, err := c.trustedAccount(ctx, h)
		if err != nil {
			return err
		}
		accounts[i] = a
	}
	_, err := c.commitChange(ctx, g, func(s *coffer.GroupState, _ map[uint64]groupkey.EpochKey) ([]coffer.Op, bool, []groupkey.Recipient, error) {
		ops := make([]coffer.Op, 0, len(accounts))
		recipients := make([]groupkey.Recipient, 0, len(accounts))
		for _, a := range accounts {
			if _, ok := s.Members[a.ID]; ok {
				return nil, false, nil, coffer.Errorf(coffer.ECONFLICT, "%s is already a member", a.Identity.Handle)
			}
			op := coffer.Op{Kind: coffer.OpAdd, Member: a.ID, Handle: a.Identity.Handle, Role: role,
				SigningKey: a.Identity.SigningKey, EncryptionKey: a.Identity.EncryptionKey}
			if s.Suite == coffer.SuiteV2 {
				// The keys of the account's chain as this device verified
				// it, whose X-Wing and Ed25519 keys are a.Identity's.
				if a.Chain == nil {
					return nil, false, nil, coffer.Errorf(coffer.EINVALID, "%s has no suite v2 account, and a suite v2 group holds only those", a.Identity.Handle)
				}
				mk := a.Chain.MemberKeys()
				if !bytes.Equal(mk.EncryptionKey, a.Identity.EncryptionKey) || !bytes.Equal(mk.SigningKey.Ed25519(), a.Identity.SigningKey) {
					return nil, false, nil, coffer.Security("contact-key", fmt.Errorf("the account chain of %s does not hold the keys its identity shows", a.Identity.Handle))
				}
				op.SigningKey, op.EncryptionKey, op.KeysHash = nil, nil, mk.Hash()
				c.cacheMemberKeys(mk)
			}
			ops = append(ops, op)
			recipients = append(recipients, groupkey.Recipient{Member: a.ID, EncryptionKey: a.Identity.EncryptionKey})
		}
		return ops, !s.ShareHistory, recipients, nil
	})
	return inGroup(err, g, coffer.ResourceID{})
}

// memberByHandle finds a current member in a verified state.
func memberByHandle(s *coffer.GroupState, handle string) (*coffer.Member, error) {
	for _, m := range s.Members {
		if string(m.Handle) == handle {
			return m, nil
		}
	}
	return nil, coffer.Errorf(coffer.ENOTFOUND, "%s is not a member of this group", handle)
}

// RemoveMember removes handle and rotates to a fresh epoch key wrapped for
// every remaining member, so the removed member cannot read anything
// created afterwards.
func (c *Client) RemoveMember(ctx context.Context, g coffer.GroupID, handle string) error {
	_, err := c.commitChange(ctx, g, func(s *coffer.GroupState, _ map[uint64]groupkey.EpochKey) ([]coffer.Op, bool, []groupkey.Recipient, error) {
		m, err := memberByHandle(s, handle)
		if err != nil {
			return nil, false, nil, err
		}
		return []coffer.Op{{Kind: coffer.OpRemove, Member: m.ID}}, true, nil, nil
	})
	return inGroup(err, g, coffer.ResourceID{})
}

// ChangeRole sets handle's role. A demotion rotates the key, like a removal,
// because the member loses rights it held under the old key.
func (c *Client) ChangeRole(ctx context.Context, g coffer.GroupID, handle string, role coffer.Role) error {
	if !role.Valid() {
		return coffer.Errorf(coffer.EINVALID, "invalid role")
	}
	_, err := c.commitChange(ctx, g, func(s *coffer.GroupState, _ map[uint64]groupkey.EpochKey) ([]coffer.Op, bool, []groupkey.Recipient, error) {
		m, err := memberByHandle(s, handle)
		if err != nil {
			return nil, false, nil, err
		}
		if m.Role == role {
			return nil, false, nil, coffer.Errorf(coffer.EINVALID, "%s already has role %s", handle, role)
		}
		return []coffer.Op{{Kind: coffer.OpSetRole, Member: m.ID, Role: role}}, role < m.Role, nil, nil
	})
	return inGroup(err, g, coffer.ResourceID{})
}

// Rotate starts a new epoch with a fresh key for every current member.
func (c *Client) Rotate(ctx context.Context, g coffer.GroupID) error {
	_, err := c.commitChange(ctx, g, func(*coffer.GroupState, map[uint64]groupkey.EpochKey) ([]coffer.Op, bool, []groupkey.Recipient, error) {
		return nil, true, nil, nil
	})
	return inGroup(err, g, coffer.ResourceID{})
}

// groupMeta decrypts the group's current name and description.
func (c *Client) groupMeta(ctx context.Context, g coffer.GroupID, keys map[uint64]groupkey.EpochKey) (*groupMeta, error) {
	var info api.Group
	if err := c.call(ctx, http.MethodGet, "/v1/groups/"+g.String(), true, nil, &info); err != nil {
		return nil, err
	}
	return openGroupMeta(g, &info, keys)
}

func openGroupMeta(g coffer.GroupID, info *api.Group, keys map[uint64]groupkey.EpochKey) (*groupMeta, error) {
	k, ok := keys[info.MetaEpoch]
	if !ok || info.Meta == nil {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "group name not readable")
	}
	pt, err := groupkey.OpenMetadata(k, g, info.MetaEpoch, coffer.LabelGroupMeta, nil, info.Meta)
	if err != nil {
		return nil, coffer.Security("group-meta", err)
	}
	var m groupMeta
	if err := json.Unmarshal(pt, &m); err != nil {
		return nil, coffer.Security("group-meta", err)
	}
	return &m, nil
}

// Groups lists the caller's groups, each synced and verified, with its
// decrypted name. A group that fails verification is listed with Err set
// (a *coffer.SecurityError naming it) and the others are still listed; an
// error of the listing itself, or of the connection, fails the call.
func (c *Client) Groups(ctx context.Context) ([]*Group, error) {
	ids, err := c.groupIDs(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Group
	for _, g := range ids {
		gr, err := c.Group(ctx, g)
		if coffer.IsSecurity(err) {
			// One broken group does not hide the others: it is listed
			// with its error, and the rest are verified as usual.
			out = append(out, &Group{ID: g, Err: err})
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, gr)
	}
	return out, nil
}

// Group syncs one group and returns it with its decrypted name.
func (c *Client) Group(ctx context.Context, g coffer.GroupID) (*Group, error) {
	gr, err := c.group(ctx, g)
	return gr, inGroup(err, g, coffer.ResourceID{})
}

func (c *Client) group(ctx context.Context, g coffer.GroupID) (*Group, error) {
	var (
		res  *SyncResult
		keys map[uint64]groupkey.EpochKey
		info api.Group
		err  error
	)
	// The sealed name is read before the sync: a rotation re-seals it in
	// the same transaction as its commit, so the sync that follows always
	// reaches the name's epoch from an honest server. Read after the sync,
	// a rotation landing in between would leave the name under an epoch not
	// verified yet. A server that still shows a newer epoch is retried, a
	// bounded number of times, before the name is left out.
	for attempt := 0; attempt < 3; attempt++ {
		if err := c.call(ctx, http.MethodGet, "/v1/groups/"+g.String(), true, nil, &info); err != nil {
			return nil, err
		}
		if res, err = c.syncPending(ctx, g, false); err != nil {
			return nil, err
		}
		if keys, err = c.epochKeys(ctx, res.State); err != nil {
			return nil, err
		}
		if info.MetaEpoch <= res.State.Epoch {
			break
		}
	}
	gr := &Group{ID: g, Epoch: res.State.Epoch, Seq: res.State.Seq, ShareHistory: res.State.ShareHistory}
	_, me, _ := c.me()
	if m, ok := res.State.Members[me]; ok {
		gr.Role = m.Role
	}
	s, err := c.checkContactMembers(ctx, res)
	if err != nil {
		return nil, err
	}
	if gr.KeyConflicts, err = c.keyConflicts(s); err != nil {
		return nil, err
	}
	if meta, err := openGroupMeta(g, &info, keys); err == nil {
		gr.Name, gr.Description = meta.Name, meta.Description
	} else if coffer.IsSecurity(err) {
		return nil, err
	}
	return gr, nil
}
