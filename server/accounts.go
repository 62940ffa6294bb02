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

// accountsLookupBody bounds POST /v1/accounts/lookup's body:
// MaxAccountsLookup ids of 36 characters, quoted and separated, with room
// for whitespace.
const accountsLookupBody = 64 << 10

// handleAccountsLookup answers many accounts at once, so that a member
// proving the identities of a 100,000-member group asks 100 times, not
// 100,000.
func (s *Server) handleAccountsLookup(w http.ResponseWriter, r *http.Request) {
	var req api.AccountsRequest
	if err := decode(w, r, accountsLookupBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if len(req.IDs) == 0 || len(req.IDs) > coffer.MaxAccountsLookup {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "ids must hold 1 to %d account ids, not %d", coffer.MaxAccountsLookup, len(req.IDs)))
		return
	}
	for i, id := range req.IDs {
		if id.IsZero() { // a JSON null decodes to the zero id
			Error(w, r, coffer.Errorf(coffer.EINVALID, "ids[%d] is not an account id", i))
			return
		}
	}
	found, err := s.accounts.AccountsByID(r.Context(), req.IDs)
	if err != nil {
		Error(w, r, err)
		return
	}
	resp := api.AccountsResponse{Accounts: make([]api.Account, 0, len(found))}
	for _, a := range found {
		resp.Accounts = append(resp.Accounts, accountJSON(a))
	}
	respond(w, http.StatusOK, resp)
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
