package server

import (
	"context"
	"net/http"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// MapProver proves heads-map entries (store.DB implements it). It is kept
// apart from coffer.LogService because the map's types live in translog.
type MapProver interface {
	MapProofs(ctx context.Context, size int64, keys []translog.MapKey) ([]translog.MapProof, error)
}

// maxMapProofKeys caps the keys of one request; it matches the store.
const maxMapProofKeys = 1000

func (s *Server) handleMapProofs(w http.ResponseWriter, r *http.Request) {
	l, err := s.logService()
	if err != nil {
		Error(w, r, err)
		return
	}
	mp, ok := l.(MapProver)
	if !ok {
		Error(w, r, coffer.Errorf(coffer.EUNAVAILABLE, "this server keeps no heads map"))
		return
	}
	var req api.MapProofsRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if len(req.Keys) == 0 || len(req.Keys) > maxMapProofKeys {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "ask for 1 to %d keys per request", maxMapProofKeys))
		return
	}
	if req.Size <= 0 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "size must be the positive size of a signed checkpoint"))
		return
	}
	keys := make([]translog.MapKey, len(req.Keys))
	for i, k := range req.Keys {
		switch {
		case k.Kind == "account" && k.Account != nil && !k.Account.IsZero() && k.Group == nil && k.Resource == nil:
			keys[i] = translog.AccountKey(*k.Account)
		case k.Kind == "account-chain" && k.Account != nil && !k.Account.IsZero() && k.Group == nil && k.Resource == nil:
			keys[i] = translog.AccountChainKey(*k.Account)
		case k.Kind == "group" && k.Group != nil && !k.Group.IsZero() && k.Account == nil && k.Resource == nil:
			keys[i] = translog.GroupKey(*k.Group)
		case k.Kind == "resource" && k.Group != nil && !k.Group.IsZero() && k.Resource != nil && !k.Resource.IsZero() && k.Account == nil:
			keys[i] = translog.ResourceKey(*k.Group, *k.Resource)
		default:
			Error(w, r, coffer.Errorf(coffer.EINVALID, "key %d: an account key names only an account, a group key only a group, a resource key a group and a resource", i))
			return
		}
	}
	proofs, err := mp.MapProofs(r.Context(), req.Size, keys)
	if err != nil {
		Error(w, r, err)
		return
	}
	resp := api.MapProofs{Size: req.Size, Proofs: make([]api.MapProof, len(proofs))}
	for i, p := range proofs {
		resp.Proofs[i] = api.MapProof{Index: p.Index, Entry: p.Entry, Proof: translog.HashesToBytes(p.Proof)}
	}
	respond(w, http.StatusOK, resp)
}
