package server

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// The transparency log endpoints are public: auditors and witnesses mirror
// the log without an account, and nothing in it is secret (see
// docs/PROTOCOL.md: it reveals membership, which v1 does not hide).

// maxLogLeavesPage caps the leaves of one page.
const maxLogLeavesPage = 1000

func (s *Server) logRoutes(r chi.Router) {
	r.Get("/key", s.handleLogKey)
	r.Get("/checkpoint", s.handleLogCheckpoint)
	r.Get("/leaves", s.handleLogLeaves)
	r.Get("/proof/inclusion", s.handleLogInclusion)
	r.Get("/proof/consistency", s.handleLogConsistency)
	r.Post("/proofs", s.handleLogProofs)
	r.Post("/map/proofs", s.handleMapProofs)
}

func (s *Server) logService() (coffer.LogService, error) {
	if s.log == nil {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "this server keeps no transparency log")
	}
	return s.log, nil
}

func writeText(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(text))
}

func (s *Server) handleLogKey(w http.ResponseWriter, r *http.Request) {
	if s.cfg.LogKey == "" {
		Error(w, r, coffer.Errorf(coffer.EUNAVAILABLE, "this server keeps no transparency log"))
		return
	}
	writeText(w, s.cfg.LogKey+"\n")
}

func (s *Server) handleLogCheckpoint(w http.ResponseWriter, r *http.Request) {
	l, err := s.logService()
	if err != nil {
		Error(w, r, err)
		return
	}
	cp, err := latestCheckpoint(r.Context(), l, &s.checkpoints)
	if err != nil {
		Error(w, r, err)
		return
	}
	writeText(w, cp)
}

// queryInt reads a non-negative integer query parameter; def < 0 makes it
// required.
func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if def < 0 {
			return 0, coffer.Errorf(coffer.EINVALID, "query parameter %q is required", name)
		}
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, coffer.Errorf(coffer.EINVALID, "query parameter %q must be a non-negative integer", name)
	}
	return n, nil
}

func (s *Server) handleLogLeaves(w http.ResponseWriter, r *http.Request) {
	l, err := s.logService()
	if err != nil {
		Error(w, r, err)
		return
	}
	start, err := queryInt(r, "start", -1)
	if err != nil {
		Error(w, r, err)
		return
	}
	limit, err := queryInt(r, "limit", 100)
	if err != nil {
		Error(w, r, err)
		return
	}
	limit = min(max(limit, 1), maxLogLeavesPage)
	leaves, err := l.LogLeaves(r.Context(), start, int(limit))
	if err != nil {
		Error(w, r, err)
		return
	}
	if leaves == nil {
		leaves = [][]byte{}
	}
	respond(w, http.StatusOK, api.LogLeaves{Start: start, Leaves: leaves})
}

func proofBytes(p [][32]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func (s *Server) handleLogInclusion(w http.ResponseWriter, r *http.Request) {
	l, err := s.logService()
	if err != nil {
		Error(w, r, err)
		return
	}
	index, err := queryInt(r, "index", -1)
	if err != nil {
		Error(w, r, err)
		return
	}
	size, err := queryInt(r, "size", -1)
	if err != nil {
		Error(w, r, err)
		return
	}
	p, err := l.LogInclusionProof(r.Context(), index, size)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, api.LogInclusion{Index: index, Size: size, Proof: proofBytes(p)})
}

func (s *Server) handleLogConsistency(w http.ResponseWriter, r *http.Request) {
	l, err := s.logService()
	if err != nil {
		Error(w, r, err)
		return
	}
	older, err := queryInt(r, "old", -1)
	if err != nil {
		Error(w, r, err)
		return
	}
	newer, err := queryInt(r, "new", -1)
	if err != nil {
		Error(w, r, err)
		return
	}
	p, err := l.LogConsistencyProof(r.Context(), older, newer)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, api.LogConsistency{Old: older, New: newer, Proof: proofBytes(p)})
}

// maxLogProofRefs caps the references of one batch; it matches the store.
const maxLogProofRefs = 1000

// maxVersionProofRefs caps the resource versions among them (each is found
// by reading its resource's leaves); it matches the store too.
const maxVersionProofRefs = 64

// handleLogProofs answers in the compact encoding (api.LogProofsType) to a
// client whose Accept lists it, in JSON to any other.
func (s *Server) handleLogProofs(w http.ResponseWriter, r *http.Request) {
	l, err := s.logService()
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.LogProofsRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if n := len(req.Commits) + len(req.Accounts) + len(req.Versions); n == 0 || n > maxLogProofRefs {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "ask for 1 to %d commits, accounts and resource versions per request", maxLogProofRefs))
		return
	}
	if len(req.Versions) > maxVersionProofRefs {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "ask for at most %d resource versions per request", maxVersionProofRefs))
		return
	}
	refs := make([]coffer.LogRef, 0, len(req.Commits)+len(req.Accounts)+len(req.Versions))
	for _, c := range req.Commits {
		if c.Group.IsZero() || c.Seq == 0 {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "a commit reference needs a group and a seq"))
			return
		}
		refs = append(refs, coffer.LogRef{Group: c.Group, Seq: c.Seq})
	}
	for _, a := range req.Accounts {
		if a.IsZero() {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "zero account id"))
			return
		}
		refs = append(refs, coffer.LogRef{Account: a})
	}
	for _, v := range req.Versions {
		if v.Group.IsZero() || v.Resource.IsZero() || v.Version == 0 {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "a resource version reference needs a group, a resource and a version"))
			return
		}
		refs = append(refs, coffer.LogRef{Group: v.Group, Resource: v.Resource, Version: v.Version})
	}
	proofs, err := l.LogProofs(r.Context(), req.Size, refs)
	if err != nil {
		Error(w, r, err)
		return
	}
	resp := api.LogProofs{Size: req.Size, Commits: []api.LogProof{}, Accounts: []api.LogProof{}}
	for _, p := range proofs {
		ap := api.LogProof{Included: p.Index >= 0, Index: p.Index}
		if ap.Included {
			ap.Proof = proofBytes(p.Proof)
		}
		switch {
		case !p.Ref.Resource.IsZero():
			g, id := p.Ref.Group, p.Ref.Resource
			ap.Group, ap.Resource, ap.Version, ap.Leaf = &g, &id, p.Ref.Version, p.Leaf
			resp.Versions = append(resp.Versions, ap)
		case !p.Ref.Group.IsZero():
			g := p.Ref.Group
			ap.Group, ap.Seq = &g, p.Ref.Seq
			resp.Commits = append(resp.Commits, ap)
		default:
			a := p.Ref.Account
			ap.Account = &a
			resp.Accounts = append(resp.Accounts, ap)
		}
	}
	if api.AcceptsLogProofs(r.Header.Get("Accept")) {
		b, err := api.AppendLogProofs(nil, &resp)
		if err != nil {
			Error(w, r, err)
			return
		}
		respondCompact(w, api.LogProofsType, b)
		return
	}
	w.Header().Add("Vary", "Accept")
	respond(w, http.StatusOK, resp)
}
