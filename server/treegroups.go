package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree groups (docs/PROTOCOL.md, "Suite v2: tree groups"): a tree commit
// arrives with its ciphertexts, which GroupState.ApplyTree checks (exactly
// one per resolution node, rule tree-ciphertexts); the store keeps them
// per node and recipient and rewrites only the tree nodes the commit
// changed. A member fetches the ciphertexts sealed to its path.

// treeCiphertexts converts the request's ciphertexts, refusing them
// beside a commit of a pairwise group.
func treeCiphertexts(c *coffer.Commit, req *api.CommitRequest) ([]ratchettree.Ciphertext, error) {
	if c.Tree == nil {
		if len(req.TreeCiphertexts) > 0 {
			return nil, &coffer.Error{Code: coffer.EINVALID, Rule: string(ratchettree.RuleCiphertexts),
				Message: "tree ciphertexts beside a commit of a pairwise group"}
		}
		if len(req.TreeKeys) > 0 {
			return nil, &coffer.Error{Code: coffer.EINVALID, Rule: string(ratchettree.RulePublicKey),
				Message: "tree public keys beside a commit of a pairwise group"}
		}
		return nil, nil
	}
	cts := make([]ratchettree.Ciphertext, len(req.TreeCiphertexts))
	for i, ct := range req.TreeCiphertexts {
		cts[i] = ratchettree.Ciphertext{Node: ct.Node, Recipient: ct.Recipient, Sealed: ct.Sealed}
	}
	return cts, nil
}

// applyTreeCommit verifies the tree commit sc (parsed c) after prev (nil
// for a genesis) with the public keys and ciphertexts beside it, as the
// chain verifier does (every key checked against its digest and parsed),
// and
// resolves the keys of every member it placed (all of them on an upgrade)
// so that each leaf is bound to its member's current keys. It returns the
// new state and the tree nodes the commit changed.
func (s *Server) applyTreeCommit(ctx context.Context, prev *coffer.GroupState, sc coffer.SignedCommit, c *coffer.Commit, keys [][]byte, cts []ratchettree.Ciphertext) (*coffer.GroupState, []uint32, error) {
	src, err := s.memberKeySource(ctx, prev, c)
	if err != nil {
		return nil, nil, err
	}
	next := new(coffer.GroupState)
	var prevTree *ratchettree.Tree
	if prev != nil {
		next, prevTree = prev, prev.Tree
	}
	if err := next.ApplyTree(sc, keys, cts, src); err != nil {
		return nil, nil, memberKeysConflict(err)
	}
	if prevTree == nil {
		// A genesis or an upgrade placed every member.
		var hashes [][32]byte
		for _, m := range next.Members {
			hashes = append(hashes, m.KeysHash)
		}
		mk, err := s.memberKeyStore()
		if err != nil {
			return nil, nil, err
		}
		all, err := memberKeyMap(ctx, mk, hashes)
		if err != nil {
			return nil, nil, err
		}
		if _, err := next.WithMemberKeys(all); err != nil {
			return nil, nil, memberKeysConflict(err)
		}
	}
	if err := checkOpKeys(next, c, src); err != nil {
		return nil, nil, memberKeysConflict(err)
	}
	return next, ratchettree.ChangedNodes(prevTree, next.Tree), nil
}

func (s *Server) handleTreeCiphertexts(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 63)
	if err != nil || seq == 0 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "seq must be a positive integer"))
		return
	}
	cts, err := s.groups.TreeCiphertexts(r.Context(), caller, g, seq)
	if err != nil {
		Error(w, r, err)
		return
	}
	out := api.TreeCiphertextList{Ciphertexts: make([]api.TreeCiphertext, len(cts))}
	for i, ct := range cts {
		out.Ciphertexts[i] = api.TreeCiphertext{Node: ct.Node, Recipient: ct.Recipient, Sealed: ct.Sealed}
	}
	respond(w, http.StatusOK, out)
}

// handleTreeNodeKeys serves the public keys of tree nodes at the head the
// caller names: ?seq=<head>&nodes=<node>,<node>,... (at most
// api.MaxTreeNodesPerRequest). The caller checks each against the digest
// its verified tree holds.
func (s *Server) handleTreeNodeKeys(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	q := r.URL.Query()
	seq, err := strconv.ParseUint(q.Get("seq"), 10, 63)
	if err != nil || seq == 0 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "seq must be a positive integer"))
		return
	}
	list := strings.Split(q.Get("nodes"), ",")
	if len(list) > api.MaxTreeNodesPerRequest {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "at most %d nodes per request, not %d", api.MaxTreeNodesPerRequest, len(list)))
		return
	}
	nodes := make([]uint32, len(list))
	for i, v := range list {
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil || x >= uint64(ratchettree.Width(ratchettree.MaxLeaves)) {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "nodes must be a comma-separated list of tree node indices"))
			return
		}
		nodes[i] = uint32(x)
	}
	keys, err := s.groups.TreeNodeKeys(r.Context(), caller, g, seq, nodes)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, api.TreeNodeKeys{Keys: keys})
}
