package server

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Suite v2 accounts: registration with a genesis link, the public reads of
// a chain, and appending a link. Every link runs through
// coffer.VerifyAccountChain from the stored state before it is stored; a
// link authenticates itself through the chain's rules, so appending needs
// no session (a device that is being linked or recovers has none yet).

// chains returns the account-chain store, or EUNAVAILABLE.
func (s *Server) chains() (coffer.AccountChainService, error) {
	if s.accountChains == nil {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "suite v2 accounts are not available on this server")
	}
	return s.accountChains, nil
}

// registerChain is POST /v1/accounts with a genesis: the account id, the
// handle and the identity are the chain's.
func (s *Server) registerChain(w http.ResponseWriter, r *http.Request, req *api.RegisterRequest, id coffer.PublicIdentity) {
	cs, err := s.chains()
	if err != nil {
		Error(w, r, err)
		return
	}
	g := req.Genesis.Link()
	state, err := coffer.VerifyAccountChain(nil, []coffer.SignedLink{g})
	if err != nil {
		Error(w, r, err)
		return
	}
	if !s.originAllowed(state.Origin) {
		Error(w, r, &coffer.Error{Code: coffer.EINVALID, Rule: coffer.RuleOrigin,
			Message: "the genesis binds the account to " + strconv.Quote(state.Origin) + ", which is not this server"})
		return
	}
	if !state.Identity().Equal(id) {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "identity is not the one the genesis sets (handle, user signing key and user key)"))
		return
	}
	parsed, err := coffer.ParseAccountLink(g.Body)
	if err != nil {
		Error(w, r, err)
		return
	}
	a := &coffer.Account{ID: state.Account, Identity: id, SelfSignature: req.SelfSignature, Created: s.now()}
	app := &coffer.AccountLinkAppend{Link: g, Parsed: parsed, State: state, Identity: &id, SelfSignature: req.SelfSignature, Received: a.Created}
	if err := cs.CreateChainAccount(r.Context(), a, app); err != nil {
		Error(w, r, err)
		return
	}
	loggerFrom(r).InfoContext(r.Context(), "account registered", "account", a.ID, "handle", a.Identity.Handle, "chain", true)
	respond(w, http.StatusCreated, accountJSON(a))
}

// rotatesUserKey reports whether a link after the genesis changes the
// account's identity.
func rotatesUserKey(l *coffer.AccountLink) bool {
	return l.Kind == coffer.LinkRevokeDevice || l.Kind == coffer.LinkRotateUserKey
}

func (s *Server) handleAppendLink(w http.ResponseWriter, r *http.Request) {
	cs, err := s.chains()
	if err != nil {
		Error(w, r, err)
		return
	}
	id, err := coffer.ParseAccountID(chi.URLParam(r, "accountID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.AppendLinkRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	sl := req.Link.Link()
	l, err := coffer.ParseAccountLink(sl.Body)
	if err != nil {
		Error(w, r, err)
		return
	}
	if l.Account != id {
		Error(w, r, &coffer.Error{Code: coffer.EINVALID, Rule: coffer.RuleAccount, Message: "the link names account " + l.Account.String()})
		return
	}
	state, err := cs.AccountChain(r.Context(), id)
	if err != nil {
		Error(w, r, err)
		return
	}
	if state.Seq == 0 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "account %s is a suite v1 account: it has no account chain", id))
		return
	}
	if l.Seq != state.Seq+1 {
		// Behind or ahead: a race to re-sync from, as for commits.
		Error(w, r, &headError{err: coffer.Errorf(coffer.ECONFLICT, "link seq %d does not follow head %d: re-sync and retry", l.Seq, state.Seq), head: state.Seq})
		return
	}
	next, err := coffer.VerifyAccountChain(state, []coffer.SignedLink{sl})
	if err != nil {
		Error(w, r, err)
		return
	}
	app := &coffer.AccountLinkAppend{Link: sl, Parsed: l, State: next, Received: s.now()}
	if rotatesUserKey(l) {
		ident := next.Identity()
		if len(req.SelfSignature) != coffer.SignatureSize {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "a %s link needs self_signature: %d bytes, the new identity's self-signature", l.Kind, coffer.SignatureSize))
			return
		}
		if err := ident.VerifySelfSignature(req.SelfSignature); err != nil {
			Error(w, r, err)
			return
		}
		app.Identity, app.SelfSignature = &ident, req.SelfSignature
	} else if len(req.SelfSignature) != 0 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "self_signature is only for links that rotate the user key, not %s", l.Kind))
		return
	}
	head, err := cs.AppendAccountLink(r.Context(), app)
	if coffer.ErrorCode(err) == coffer.ECONFLICT {
		Error(w, r, &headError{err: coffer.Errorf(coffer.ECONFLICT, "the account's chain head moved to seq %d: re-sync and retry", head), head: head})
		return
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	loggerFrom(r).InfoContext(r.Context(), "account link appended", "account", id, "seq", l.Seq, "kind", l.Kind.String())
	respond(w, http.StatusCreated, api.AppendLinkResponse{Seq: head})
}

func (s *Server) handleLinksByID(w http.ResponseWriter, r *http.Request) {
	id, err := coffer.ParseAccountID(chi.URLParam(r, "accountID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	s.respondLinks(w, r, id)
}

func (s *Server) handleLinksByHandle(w http.ResponseWriter, r *http.Request) {
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
	s.respondLinks(w, r, a.ID)
}

// respondLinks answers a page of the chain after ?after=N (default 0).
func (s *Server) respondLinks(w http.ResponseWriter, r *http.Request, id coffer.AccountID) {
	cs, err := s.chains()
	if err != nil {
		Error(w, r, err)
		return
	}
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 63); err != nil {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "after must be a link seq (a non-negative integer)"))
			return
		}
	}
	links, head, err := cs.AccountLinks(r.Context(), id, after, api.MaxLinksPage)
	if err != nil {
		Error(w, r, err)
		return
	}
	resp := api.AccountLinks{AccountID: id, Links: make([]api.SignedLink, len(links)), HeadSeq: head}
	for i, l := range links {
		resp.Links[i] = api.FromLink(l)
	}
	respond(w, http.StatusOK, resp)
}
