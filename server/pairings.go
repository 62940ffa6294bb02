package server

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Pairings: a new device files its name and public keys under a handle,
// with an id and a MAC derived from a pairing code the server never sees,
// and shows the code; a device of the account fetches the pairing, checks
// the MAC with the code and approves it with an add-device link and a MAC
// of its own; the new device checks that MAC, signs the link too and
// appends it. The server stores and returns the MACs as they are: the
// devices, not the server, authenticate each other, and the chain rules
// decide whether the link is valid.

// Pairing limits.
const (
	pairingTTL = 10 * time.Minute
	// maxOpenPairings bounds the pairings one handle has open, so that an
	// anonymous caller cannot fill an account's list (or the table).
	maxOpenPairings = 8
)

func pairingJSON(p *coffer.Pairing) api.Pairing {
	out := api.Pairing{ID: p.ID, Handle: p.Handle, MAC: p.MAC, ExpiresAt: p.Expires,
		Device: api.PairingDevice{ID: p.Device.ID, Name: p.Device.Name, SigningKey: p.Device.SigningKey.Bytes(), EncryptionKey: p.Device.EncryptionKey}}
	if p.Approval != nil {
		out.Approval = &api.PairingApproval{Link: api.FromLink(*p.Approval), MAC: p.ApprovalMAC}
	}
	return out
}

func checkMAC(mac []byte) error {
	if len(mac) != sha256.Size {
		return coffer.Errorf(coffer.EINVALID, "mac must be %d bytes (HMAC-SHA256)", sha256.Size)
	}
	return nil
}

func (s *Server) handleCreatePairing(w http.ResponseWriter, r *http.Request) {
	cs, err := s.chains()
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.CreatePairingRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if err := coffer.CheckPairingID(req.ID); err != nil {
		Error(w, r, err)
		return
	}
	h, err := coffer.ParseHandle(string(req.Handle))
	if err != nil {
		Error(w, r, err)
		return
	}
	if req.Device.ID.IsZero() {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "device.id is required"))
		return
	}
	if err := coffer.CheckDeviceName(req.Device.Name); err != nil {
		Error(w, r, err)
		return
	}
	sk, err := coffer.ParseHybridPublicKey(req.Device.SigningKey)
	if err != nil {
		Error(w, r, err)
		return
	}
	if err := coffer.CheckEncryptionKey(req.Device.EncryptionKey); err != nil {
		Error(w, r, err)
		return
	}
	if err := checkMAC(req.MAC); err != nil {
		Error(w, r, err)
		return
	}
	now := s.now()
	p := &coffer.Pairing{ID: req.ID, Handle: h, MAC: req.MAC, Created: now, Expires: now.Add(pairingTTL),
		Device: coffer.DeviceKeys{ID: req.Device.ID, Name: req.Device.Name, SigningKey: sk, EncryptionKey: req.Device.EncryptionKey}}
	if err := cs.CreatePairing(r.Context(), p, maxOpenPairings); err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusCreated, api.CreatePairingResponse{ID: p.ID, ExpiresAt: p.Expires})
}

func pairingID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "pairingID")
	return id, coffer.CheckPairingID(id)
}

func (s *Server) handleGetPairing(w http.ResponseWriter, r *http.Request) {
	cs, err := s.chains()
	if err != nil {
		Error(w, r, err)
		return
	}
	id, err := pairingID(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	p, err := cs.Pairing(r.Context(), id)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, pairingJSON(p))
}

// handleApprovePairing stores an existing device's add-device link for the
// pairing's device, with its MAC. Only the account that has the pairing's
// handle may approve; as defense in depth, the link must add exactly the
// pairing's device to the caller's account at the next seq, authored by a
// current device whose signature verifies. The new device's own signature
// comes later, with the append.
func (s *Server) handleApprovePairing(w http.ResponseWriter, r *http.Request) {
	cs, err := s.chains()
	if err != nil {
		Error(w, r, err)
		return
	}
	caller := callerFrom(r.Context())
	id, err := pairingID(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.PairingApproval
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if err := checkMAC(req.MAC); err != nil {
		Error(w, r, err)
		return
	}
	p, err := cs.Pairing(r.Context(), id)
	if err != nil {
		Error(w, r, err)
		return
	}
	state, err := cs.AccountChain(r.Context(), caller)
	if err != nil {
		Error(w, r, err)
		return
	}
	if state.Seq == 0 || state.Handle != p.Handle {
		Error(w, r, coffer.Errorf(coffer.EFORBIDDEN, "only the account of handle %q may approve this pairing", p.Handle))
		return
	}
	if p.Approval != nil {
		Error(w, r, coffer.Errorf(coffer.ECONFLICT, "the pairing is already approved"))
		return
	}
	sl := req.Link.Link()
	if err := checkApproval(state, p, sl); err != nil {
		Error(w, r, err)
		return
	}
	if err := cs.ApprovePairing(r.Context(), caller, id, sl, req.MAC); err != nil {
		Error(w, r, err)
		return
	}
	loggerFrom(r).InfoContext(r.Context(), "pairing approved", "account", caller)
	w.WriteHeader(http.StatusNoContent)
}

// checkApproval checks sl as the approval of p by the account in state.
func checkApproval(state *coffer.AccountState, p *coffer.Pairing, sl coffer.SignedLink) error {
	l, err := coffer.ParseAccountLink(sl.Body)
	if err != nil {
		return err
	}
	if l.Kind != coffer.LinkAddDevice {
		return &coffer.Error{Code: coffer.EINVALID, Rule: coffer.RuleLinkKind, Message: "a pairing is approved with an add-device link, not " + l.Kind.String()}
	}
	if l.Account != state.Account {
		return &coffer.Error{Code: coffer.EINVALID, Rule: coffer.RuleAccount, Message: "the link names another account"}
	}
	if l.Device.ID != p.Device.ID || l.Device.Name != p.Device.Name || !l.Device.SigningKey.Equal(p.Device.SigningKey) ||
		!bytes.Equal(l.Device.EncryptionKey, p.Device.EncryptionKey) {
		return coffer.Errorf(coffer.EINVALID, "the link adds another device than the pairing's")
	}
	if len(sl.DeviceSignature) != 0 {
		return &coffer.Error{Code: coffer.EINVALID, Rule: coffer.RuleDeviceSignature, Message: "an approval carries the author's signature only: the new device signs when it appends"}
	}
	if l.Seq != state.Seq+1 || l.Prev != state.Head {
		return &headError{err: coffer.Errorf(coffer.ECONFLICT, "the link does not follow the account's head %d: re-sync and retry", state.Seq), head: state.Seq}
	}
	author := state.Devices[l.AuthorDevice]
	if l.AuthorKind != coffer.AuthorDevice || author == nil {
		return &coffer.Error{Code: coffer.EINVALID, Rule: coffer.RuleLinkAuthor, Message: "a pairing is approved by a current device of the account"}
	}
	if err := author.SigningKey.Verify(coffer.LabelAccountLink, sl.Body, sl.Signature); err != nil {
		return &coffer.Error{Code: coffer.EINVALID, Rule: coffer.RuleSignature, Message: "the author's signature does not verify: " + coffer.ErrorMessage(err)}
	}
	return nil
}
