package server

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// maxGroupMeta caps the encrypted group name and description.
const maxGroupMeta = 64 << 10

func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	req, sc, c, err := s.decodeCommit(w, r)
	if err != nil {
		Error(w, r, err)
		return
	}
	if err := authoredBy(c, caller); err != nil {
		Error(w, r, err)
		return
	}
	cts, err := treeCiphertexts(c, req)
	if err != nil {
		Error(w, r, err)
		return
	}
	var (
		state   *coffer.GroupState
		changed []uint32
	)
	if c.Tree != nil {
		state, changed, err = s.applyTreeCommit(r.Context(), nil, sc, c, req.TreeKeys, cts)
	} else if c.Suite == coffer.SuiteV2 {
		// The store checks, in the group's transaction, that every keys
		// hash is its member's current keys; the genesis's first op adds
		// the author (the caller) with its own.
		var src coffer.MemberKeyMap
		if src, err = s.memberKeySource(r.Context(), nil, c); err == nil {
			if state, err = coffer.VerifyChainWith(nil, []coffer.SignedCommit{sc}, src); err == nil {
				err = checkOpKeys(state, c, src)
			}
			err = memberKeysConflict(err)
		}
	} else if state, err = coffer.VerifyChain(nil, []coffer.SignedCommit{sc}); err == nil {
		err = s.checkAddedAccounts(r, c)
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	a, err := s.buildAppend(nil, state, sc, c, req)
	if err != nil {
		Error(w, r, err)
		return
	}
	a.TreeCiphertexts, a.TreeChanged = cts, changed
	if err := s.groups.CreateGroup(r.Context(), a); err != nil {
		Error(w, r, err)
		return
	}
	loggerFrom(r).InfoContext(r.Context(), "group created", "group", state.Group, "author", caller, "members", len(state.Members))
	gi, err := s.groups.Group(r.Context(), caller, state.Group)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusCreated, groupJSON(gi))
}

func (s *Server) handleAppendCommit(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	cr, err := readCommitRequest(w, r, s.cfg.MaxCommitBody)
	if err != nil {
		Error(w, r, err)
		return
	}
	req := &cr.req
	sc := coffer.SignedCommit{Body: req.Commit.Body, Signature: req.Commit.Signature}
	c, err := coffer.ParseCommit(sc.Body)
	if err != nil {
		Error(w, r, err)
		return
	}
	state, err := s.groups.GroupState(r.Context(), caller, g)
	if err != nil {
		Error(w, r, err)
		return
	}
	if c.Group != g {
		Error(w, r, &coffer.Error{Code: coffer.EINVALID, Message: "commit names another group", Rule: coffer.RuleGroup})
		return
	}
	if err := authoredBy(c, caller); err != nil {
		Error(w, r, err)
		return
	}
	if c.Seq != state.Seq+1 {
		// The client is behind (or ahead): not a rule violation but a race
		// to re-sync from, so 409 with the head like a lost append.
		Error(w, r, &headError{err: coffer.Errorf(coffer.ECONFLICT, "commit seq %d does not follow head %d: re-sync and retry", c.Seq, state.Seq), head: state.Seq})
		return
	}
	// Apply changes state in place; keep what buildAppend compares against.
	prev := &appendBase{seq: state.Seq, epoch: state.Epoch}
	if m := state.Members[c.Author]; m != nil {
		prev.authorKeys = m.KeysHash
	}
	var (
		cts     []ratchettree.Ciphertext
		changed []uint32
	)
	if c.Tree != nil && cr.inWraps {
		// The ciphertexts may follow the wraps, of which a tree commit has
		// at most one: read the whole request before verifying.
		if err := cr.readWraps(); err != nil {
			Error(w, r, err)
			return
		}
		cr.inWraps = false
	}
	if cts, err = treeCiphertexts(c, req); err != nil {
		Error(w, r, err)
		return
	}
	if c.Tree != nil {
		state, changed, err = s.applyTreeCommit(r.Context(), state, sc, c, req.TreeKeys, cts)
	} else if c.Suite == coffer.SuiteV2 {
		// As for a genesis, the store checks that the keys are current.
		var src coffer.MemberKeyMap
		if src, err = s.memberKeySource(r.Context(), state, c); err == nil {
			if err = state.ApplyWith(sc, src); err == nil {
				err = checkOpKeys(state, c, src)
			}
			err = memberKeysConflict(err)
		}
	} else if err = state.Apply(sc); err == nil {
		err = s.checkAddedAccounts(r, c)
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	if cr.inWraps && len(wantedWraps(prev, state, c)) < streamWrapsFrom {
		if err := cr.readWraps(); err != nil {
			Error(w, r, err)
			return
		}
	}
	var a *coffer.GroupAppend
	if cr.inWraps {
		a = newAppend(s, prev, state, sc, c)
		s.streamWraps(cr, prev, a)
	} else if a, err = s.buildAppend(prev, state, sc, c, req); err != nil {
		Error(w, r, err)
		return
	}
	a.TreeCiphertexts, a.TreeChanged = cts, changed
	head, err := s.groups.AppendCommit(r.Context(), caller, a)
	if coffer.ErrorCode(err) == coffer.ECONFLICT && !isMemberKeysRefusal(err) {
		Error(w, r, &headError{err: coffer.Errorf(coffer.ECONFLICT, "the group's head moved to seq %d: re-sync and retry", head), head: head})
		return
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	loggerFrom(r).InfoContext(r.Context(), "commit appended", "group", g, "seq", c.Seq, "epoch", c.Epoch, "author", caller, "ops", len(c.Ops))
	gi, err := s.groups.Group(r.Context(), caller, g)
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		// The author removed themself: the commit landed, they can no
		// longer see the group.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusCreated, groupJSON(gi))
}

// decodeCommit reads a commit request and parses its commit.
func (s *Server) decodeCommit(w http.ResponseWriter, r *http.Request) (*api.CommitRequest, coffer.SignedCommit, *coffer.Commit, error) {
	var req api.CommitRequest
	if err := decode(w, r, s.cfg.MaxCommitBody, &req); err != nil {
		return nil, coffer.SignedCommit{}, nil, err
	}
	sc := coffer.SignedCommit{Body: req.Commit.Body, Signature: req.Commit.Signature}
	c, err := coffer.ParseCommit(sc.Body)
	if err != nil {
		return nil, coffer.SignedCommit{}, nil, err
	}
	return &req, sc, c, nil
}

func authoredBy(c *coffer.Commit, caller coffer.AccountID) error {
	if c.Author != caller {
		return coffer.Errorf(coffer.EFORBIDDEN, "a commit's author must be the logged-in account")
	}
	return nil
}

// appendBase is what a commit is appended to: the head seq and epoch
// before it (nil for a genesis).
type appendBase struct {
	seq, epoch uint64
	// authorKeys is, in a suite v2 group, the hash of the keys the
	// author's entry names before the commit, which signed it.
	authorKeys [32]byte
}

// checkAddedAccounts requires every add op to name a registered account with
// exactly its registered handle and keys, and every update-key op to carry
// exactly the keys its account has registered now (an account's identity
// changes when it rotates its key, and its self-update then follows it).
// Clients never trust this check (they compare keys with verified
// contacts); it stops the server storing a group that lists an account
// under keys someone else controls, or keys the account has retired.
func (s *Server) checkAddedAccounts(r *http.Request, c *coffer.Commit) error {
	var ids []coffer.AccountID
	for _, op := range c.Ops {
		if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
			ids = append(ids, op.Member)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	accounts, err := s.accounts.AccountsByID(r.Context(), ids)
	if err != nil {
		return err
	}
	for _, op := range c.Ops {
		if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
			continue
		}
		a, ok := accounts[op.Member]
		if !ok {
			return coffer.Errorf(coffer.EINVALID, "%s names account %s, which is not registered", op.Kind, op.Member)
		}
		sameKeys := string(a.Identity.SigningKey) == string(op.SigningKey) && string(a.Identity.EncryptionKey) == string(op.EncryptionKey)
		switch {
		case op.Kind == coffer.OpAdd && (a.Identity.Handle != op.Handle || !sameKeys):
			return coffer.Errorf(coffer.EINVALID, "add for %s does not carry that account's registered handle and keys", op.Handle)
		case op.Kind == coffer.OpUpdateKey && !sameKeys:
			return coffer.Errorf(coffer.EINVALID, "update-key for %s does not carry that account's registered keys", a.Identity.Handle)
		}
	}
	return nil
}

// buildAppend checks the wraps and links that must accompany a verified
// commit: a wrap of the new epoch key for every member when the commit
// starts an epoch (genesis or rotation), a wrap of the current key for each
// member it adds otherwise, and, when the group shares history, one link
// from the new epoch back to the previous one. Exactly those: the server
// cannot check what is inside a wrap, but it can refuse to store keys for
// non-members or leave a member without one.
func (s *Server) buildAppend(prev *appendBase, next *coffer.GroupState, sc coffer.SignedCommit, c *coffer.Commit, req *api.CommitRequest) (*coffer.GroupAppend, error) {
	a := newAppend(s, prev, next, sc, c)
	want := wantedWraps(prev, next, c)
	for _, wr := range req.Wraps {
		if err := checkWrap(want, next.Epoch, wr); err != nil {
			return nil, err
		}
		a.Wraps = append(a.Wraps, coffer.Wrap{Member: wr.Member, Epoch: wr.Epoch, Data: wr.Wrap})
	}
	for id := range want {
		return nil, coffer.Errorf(coffer.EINVALID, "missing wrap of the epoch %d key for member %s", next.Epoch, id)
	}
	if err := s.checkLinksAndMeta(prev, a, req); err != nil {
		return nil, err
	}
	return a, nil
}

func newAppend(s *Server, prev *appendBase, next *coffer.GroupState, sc coffer.SignedCommit, c *coffer.Commit) *coffer.GroupAppend {
	a := &coffer.GroupAppend{Commit: sc, Parsed: c, State: next, Received: s.now()}
	if prev != nil {
		a.PrevSeq, a.AuthorKeys = prev.seq, prev.authorKeys
	}
	return a
}

// wantedWraps is the set of members the commit must carry a wrap for.
func wantedWraps(prev *appendBase, next *coffer.GroupState, c *coffer.Commit) map[coffer.AccountID]bool {
	want := map[coffer.AccountID]bool{}
	if next.Tree != nil {
		// The members get a tree group's epoch key through the tree; the
		// one wrap is the committer's own, for its account's other devices.
		if prev == nil || next.Epoch != prev.epoch {
			want[c.Author] = true
		}
		return want
	}
	if prev == nil || next.Epoch != prev.epoch {
		for id := range next.Members {
			want[id] = true
		}
	} else {
		for _, op := range c.Ops {
			if op.Kind == coffer.OpAdd {
				want[op.Member] = true
			}
		}
	}
	return want
}

// checkWrap checks one wrap against the wanted set and takes its member
// out of it.
func checkWrap(want map[coffer.AccountID]bool, epoch uint64, wr api.Wrap) error {
	if wr.Epoch != epoch {
		return coffer.Errorf(coffer.EINVALID, "wrap for %s is for epoch %d, the commit's epoch is %d", wr.Member, wr.Epoch, epoch)
	}
	if !want[wr.Member] {
		return coffer.Errorf(coffer.EINVALID, "unexpected or duplicate wrap for %s", wr.Member)
	}
	if len(wr.Wrap) != coffer.WrapSize {
		return coffer.Errorf(coffer.EINVALID, "wrap for %s must be %d bytes, got %d", wr.Member, coffer.WrapSize, len(wr.Wrap))
	}
	delete(want, wr.Member)
	return nil
}

// checkLinksAndMeta checks the request's history links and metadata and
// sets them on a.
func (s *Server) checkLinksAndMeta(prev *appendBase, a *coffer.GroupAppend, req *api.CommitRequest) error {
	next := a.State
	rotated := prev == nil || next.Epoch != prev.epoch
	needLink := prev != nil && rotated && next.ShareHistory
	switch {
	case needLink && len(req.Links) != 1:
		return coffer.Errorf(coffer.EINVALID, "a rotation in a history-sharing group needs exactly one history link, for epoch %d", prev.epoch)
	case !needLink && len(req.Links) != 0:
		return coffer.Errorf(coffer.EINVALID, "this commit takes no history links")
	case needLink:
		l := req.Links[0]
		if l.Epoch != prev.epoch || len(l.Link) != coffer.HistoryLinkSize {
			return coffer.Errorf(coffer.EINVALID, "history link must be for epoch %d and %d bytes", prev.epoch, coffer.HistoryLinkSize)
		}
		a.Links = []coffer.HistoryLink{{Epoch: l.Epoch, Data: l.Link}}
	}
	if req.Meta != nil && isSelfUpdate(a.Parsed) {
		// Any member may sign a self-update, and its rotation does not make
		// it an admin's commit: a reader must not rename the group.
		return coffer.Errorf(coffer.EINVALID, "a self-update (update-key) carries no group metadata")
	}
	if req.Meta != nil && !rotated {
		// New metadata comes only with a new epoch (a rename rotates, and
		// needs an admin): a leave, which any member signs, must not rename
		// the group under the key the leaver holds.
		return coffer.Errorf(coffer.EINVALID, "only a commit that starts an epoch carries new group metadata")
	}
	if len(req.Meta) > maxGroupMeta {
		return coffer.Errorf(coffer.ETOOLARGE, "group metadata is larger than %d bytes", maxGroupMeta)
	}
	if req.Meta != nil {
		a.Meta = req.Meta
	}
	return nil
}

func isSelfUpdate(c *coffer.Commit) bool {
	for _, op := range c.Ops {
		if op.Kind == coffer.OpUpdateKey {
			return true
		}
	}
	return false
}

func groupJSON(gi *coffer.GroupInfo) api.Group {
	return api.Group{ID: gi.ID, HeadSeq: gi.HeadSeq, HeadHash: gi.HeadHash[:], Epoch: gi.Epoch,
		MetaEpoch: gi.MetaEpoch, Meta: gi.Meta, Role: gi.Role}
}

func (s *Server) handleListGroups(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		Error(w, r, err)
		return
	}
	var after coffer.GroupID
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		b, err := base64.RawURLEncoding.DecodeString(cur)
		if err == nil {
			after, err = coffer.ParseGroupID(string(b))
		}
		if err != nil {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "malformed cursor: pass next_cursor back unchanged"))
			return
		}
	}
	groups, err := s.groups.Groups(r.Context(), caller, after, limit)
	if err != nil {
		Error(w, r, err)
		return
	}
	out := api.GroupList{Groups: make([]api.Group, 0, len(groups))}
	for i := range groups {
		out.Groups = append(out.Groups, groupJSON(&groups[i]))
	}
	if len(groups) == limit {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(groups[len(groups)-1].ID.String()))
	}
	respond(w, http.StatusOK, out)
}

func (s *Server) handleGetGroup(w http.ResponseWriter, r *http.Request) {
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	gi, err := s.groups.Group(r.Context(), callerFrom(r.Context()), g)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, groupJSON(gi))
}

func (s *Server) handleListCommits(w http.ResponseWriter, r *http.Request) {
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	limit, err := queryLimit(r, 1000, 1000)
	if err != nil {
		Error(w, r, err)
		return
	}
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 63); err != nil {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "after must be a non-negative integer seq"))
			return
		}
	}
	commits, err := s.groups.Commits(r.Context(), callerFrom(r.Context()), g, after, limit)
	if err != nil {
		Error(w, r, err)
		return
	}
	if api.AcceptsCommitPage(r.Header.Get("Accept")) {
		respondCompact(w, api.CommitPageType, api.AppendCommitPage(nil, commits))
		return
	}
	out := api.CommitList{Commits: make([]api.SignedCommit, 0, len(commits))}
	for _, c := range commits {
		out.Commits = append(out.Commits, api.SignedCommit{Body: c.Body, Signature: c.Signature})
	}
	respond(w, http.StatusOK, out)
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	wraps, links, err := s.groups.Keys(r.Context(), caller, g)
	if err != nil {
		Error(w, r, err)
		return
	}
	out := api.Keys{Wraps: []api.Wrap{}, Links: []api.HistoryLink{}}
	for _, wr := range wraps {
		out.Wraps = append(out.Wraps, api.Wrap{Member: wr.Member, Epoch: wr.Epoch, Wrap: wr.Data})
	}
	for _, l := range links {
		out.Links = append(out.Links, api.HistoryLink{Epoch: l.Epoch, Link: l.Data})
	}
	respond(w, http.StatusOK, out)
}

// queryLimit parses ?limit=, defaulting to def and refusing values above max.
func queryLimit(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, coffer.Errorf(coffer.EINVALID, "limit must be between 1 and %d", max)
	}
	return n, nil
}
