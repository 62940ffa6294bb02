package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req api.RegisterRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	id, err := coffer.ParsePublicIdentity(req.Identity)
	if err != nil {
		Error(w, r, err)
		return
	}
	if len(req.SelfSignature) != coffer.SignatureSize {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "self_signature must be %d bytes, got %d", coffer.SignatureSize, len(req.SelfSignature)))
		return
	}
	if err := id.VerifySelfSignature(req.SelfSignature); err != nil {
		Error(w, r, err)
		return
	}
	if req.Genesis != nil {
		s.registerChain(w, r, &req, id)
		return
	}
	a := &coffer.Account{ID: coffer.NewAccountID(), Identity: id, SelfSignature: req.SelfSignature, Created: s.now()}
	if err := s.accounts.CreateAccount(r.Context(), a); err != nil {
		Error(w, r, err)
		return
	}
	loggerFrom(r).InfoContext(r.Context(), "account registered", "account", a.ID, "handle", a.Identity.Handle)
	respond(w, http.StatusCreated, accountJSON(a))
}

func accountJSON(a *coffer.Account) api.Account {
	return api.Account{ID: a.ID, Handle: a.Identity.Handle, Identity: a.Identity.Marshal(),
		SelfSignature: a.SelfSignature, CreatedAt: a.Created, ChainSeq: a.ChainSeq}
}

func (s *Server) handleAccountByID(w http.ResponseWriter, r *http.Request) {
	id, err := coffer.ParseAccountID(chi.URLParam(r, "accountID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	a, err := s.accounts.AccountByID(r.Context(), id)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, accountJSON(a))
}

func (s *Server) handleAccountByHandle(w http.ResponseWriter, r *http.Request) {
	h, err := coffer.ParseHandle(chi.URLParam(r, "handle"))
	if err != nil {
		Error(w, r, err)
		return
	}
	a, err := s.accounts.AccountByHandle(r.Context(), h)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, accountJSON(a))
}
