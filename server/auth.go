package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

type callerKey struct{}

// callerFrom returns the authenticated account. Only handlers behind
// s.authenticate call it.
func callerFrom(ctx context.Context) coffer.AccountID {
	id, _ := ctx.Value(callerKey{}).(coffer.AccountID)
	return id
}

// authenticate requires a valid bearer access token.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			s.ops.authFailed(authMissingToken)
			w.Header().Set("WWW-Authenticate", `Bearer realm="coffer"`)
			Error(w, r, coffer.Errorf(coffer.EUNAUTHORIZED, "missing bearer access token"))
			return
		}
		id, err := s.tokens.verify(r.Context(), tok)
		if err != nil {
			s.ops.authFailed(authInvalidToken)
			w.Header().Set("WWW-Authenticate", `Bearer realm="coffer", error="invalid_token"`)
			Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, id)))
	})
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	var req api.ChallengeRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	h, err := coffer.ParseHandle(string(req.Handle))
	if err != nil {
		Error(w, r, err)
		return
	}
	a, err := s.accounts.AccountByHandle(r.Context(), h)
	if err != nil {
		Error(w, r, err)
		return
	}
	challenge := make([]byte, coffer.ChallengeSize)
	rand.Read(challenge)
	expires := s.now().Add(s.cfg.ChallengeTTL)
	if err := s.auth.CreateChallenge(r.Context(), a.ID, sha256.Sum256(challenge), expires); err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, api.ChallengeResponse{AccountID: a.ID, Challenge: challenge, ExpiresAt: expires})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req api.LoginRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if len(req.Challenge) != coffer.ChallengeSize {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "challenge must be %d bytes", coffer.ChallengeSize))
		return
	}
	if !s.originAllowed(req.Origin) {
		s.ops.authFailed(authOrigin)
		Error(w, r, coffer.Errorf(coffer.EUNAUTHORIZED, "origin %q is not this server", req.Origin))
		return
	}
	a, err := s.accounts.AccountByID(r.Context(), req.AccountID)
	if err != nil {
		s.ops.authFailed(authUnknownAccount)
		Error(w, r, coffer.Errorf(coffer.EUNAUTHORIZED, "invalid login"))
		return
	}
	// The challenge is consumed before the signature is checked, so a wrong
	// signature also burns it: each challenge allows one attempt.
	if err := s.auth.ConsumeChallenge(r.Context(), a.ID, sha256.Sum256(req.Challenge)); err != nil {
		if coffer.ErrorCode(err) == coffer.EUNAUTHORIZED {
			s.ops.authFailed(authChallenge)
		}
		Error(w, r, err)
		return
	}
	refresh, hash := newRefreshToken()
	var family [16]byte
	rand.Read(family[:])
	tok := coffer.RefreshToken{Hash: hash, Family: family, Account: a.ID, Expires: s.now().Add(s.cfg.RefreshTTL)}
	// A device's log-in is checked against the chain state and the token
	// stored only while the chain is still at that state, so a revocation
	// that lands in between cannot leave the revoked device a session. When
	// the chain moved, the same signature is checked again against the new
	// state (it names this challenge, which no other attempt can use).
	for attempt := 0; ; attempt++ {
		seq, err := s.checkLoginSignature(r.Context(), a, &req)
		if err != nil {
			s.ops.authFailed(authSignature)
			Error(w, r, err)
			return
		}
		if seq == 0 {
			err = s.auth.CreateRefreshToken(r.Context(), tok)
		} else {
			err = s.accountChains.CreateDeviceRefreshToken(r.Context(), tok, seq)
		}
		if coffer.ErrorCode(err) == coffer.ECONFLICT && seq != 0 && attempt < 3 {
			continue
		}
		if err != nil {
			Error(w, r, err)
			return
		}
		break
	}
	s.respondTokens(w, r, a.ID, refresh, family)
}

// checkLoginSignature checks req's signature for account a. A suite v2
// account (one with a chain) logs in only with the hybrid key of one of its
// current devices: its user signing key is shared by every device it ever
// had until the rotation that revokes one, so accepting it here would let
// a revoked device, or a stolen copy of its key store, log in. A suite v1
// account logs in with its identity's signing key, and has no devices.
// For a device's log-in it returns the seq of the chain state it checked
// against; 0 for a suite v1 account.
func (s *Server) checkLoginSignature(ctx context.Context, a *coffer.Account, req *api.LoginRequest) (uint64, error) {
	if a.ChainSeq == 0 {
		if req.DeviceID != nil {
			return 0, coffer.Errorf(coffer.EUNAUTHORIZED, "account %s is a suite v1 account: it has no devices", a.ID)
		}
		stmt := coffer.LoginStatement(req.Origin, a.ID, req.Challenge)
		if !coffer.VerifySignature(a.Identity.SigningKey, coffer.LabelLogin, stmt, req.Signature) {
			return 0, coffer.Errorf(coffer.EUNAUTHORIZED, "login signature does not verify")
		}
		return 0, nil
	}
	if req.DeviceID == nil {
		return 0, coffer.Errorf(coffer.EUNAUTHORIZED, "account %s is a suite v2 account: one of its devices logs in, with its device_id", a.ID)
	}
	cs, err := s.chains()
	if err != nil {
		return 0, err
	}
	state, err := cs.AccountChain(ctx, a.ID)
	if err != nil {
		return 0, err
	}
	if state.Seq == 0 {
		return 0, coffer.Errorf(coffer.EUNAUTHORIZED, "account %s has no chain state", a.ID)
	}
	d := state.Devices[*req.DeviceID]
	if d == nil {
		return 0, coffer.Errorf(coffer.EUNAUTHORIZED, "device %s is not a current device of account %s", *req.DeviceID, a.ID)
	}
	stmt := coffer.DeviceLoginStatement(req.Origin, a.ID, d.ID, req.Challenge)
	if err := d.SigningKey.Verify(coffer.LabelDeviceLogin, stmt, req.Signature); err != nil {
		return 0, coffer.Errorf(coffer.EUNAUTHORIZED, "login signature does not verify: %v", err)
	}
	return state.Seq, nil
}

func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req api.RefreshRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	refresh, hash := newRefreshToken()
	account, err := s.auth.RotateRefreshToken(r.Context(), hashRefreshToken(req.RefreshToken),
		coffer.RefreshToken{Hash: hash, Expires: s.now().Add(s.cfg.RefreshTTL)})
	if err != nil {
		if coffer.ErrorCode(err) == coffer.EUNAUTHORIZED {
			s.ops.authFailed(authRefresh)
		}
		Error(w, r, err)
		return
	}
	var family [16]byte
	if s.tokens.sessions != nil {
		if family, err = s.tokens.sessions.RefreshFamily(r.Context(), hash); err != nil {
			Error(w, r, err)
			return
		}
	}
	s.respondTokens(w, r, account, refresh, family)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	var req api.RefreshRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if err := s.auth.RevokeRefreshToken(r.Context(), hashRefreshToken(req.RefreshToken)); err != nil {
		Error(w, r, err)
		return
	}
	// The access token goes with it: at once here (the token cache), and
	// on other replicas once they see the session revoked.
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		s.tokens.revoke(r.Context(), tok)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) respondTokens(w http.ResponseWriter, r *http.Request, account coffer.AccountID, refresh string, session [16]byte) {
	access, err := s.tokens.issue(account, session)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, api.Tokens{
		AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int(s.cfg.AccessTTL.Seconds()), RefreshToken: refresh,
	})
}

func (s *Server) originAllowed(origin string) bool {
	for _, o := range s.cfg.Origins {
		if o == origin {
			return true
		}
	}
	return false
}
