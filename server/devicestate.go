package server

import (
	"net/http"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// The device state of a suite v2 account: one blob its devices encrypt
// under a key derived from the user key, so that a new device starts with
// what the others verified. The server checks only who writes, the size
// and the version: the content is not its to read.

// deviceStateBody bounds a PUT body: the ciphertext in base64 plus the
// JSON around it.
const deviceStateBody = (coffer.MaxDeviceStateSize+2)/3*4 + 1024

func (s *Server) states() (coffer.DeviceStateService, error) {
	if s.deviceStates == nil {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "device state is not available on this server")
	}
	return s.deviceStates, nil
}

func (s *Server) handleGetDeviceState(w http.ResponseWriter, r *http.Request) {
	ds, err := s.states()
	if err != nil {
		Error(w, r, err)
		return
	}
	st, err := ds.DeviceState(r.Context(), callerFrom(r.Context()))
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, api.DeviceState{Version: st.Version, Ciphertext: st.Ciphertext})
}

func (s *Server) handlePutDeviceState(w http.ResponseWriter, r *http.Request) {
	ds, err := s.states()
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.DeviceState
	if err := decode(w, r, deviceStateBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if req.Version < 1 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "version must be at least 1: the stored version plus one"))
		return
	}
	if len(req.Ciphertext) == 0 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "ciphertext is required"))
		return
	}
	if len(req.Ciphertext) > coffer.MaxDeviceStateSize {
		Error(w, r, coffer.Errorf(coffer.ETOOLARGE, "device state is larger than %d bytes", coffer.MaxDeviceStateSize))
		return
	}
	cur, err := ds.PutDeviceState(r.Context(), callerFrom(r.Context()), &coffer.DeviceState{Version: req.Version, Ciphertext: req.Ciphertext})
	if err != nil {
		if ce, ok := err.(*coffer.Error); ok && ce.Code == coffer.ECONFLICT {
			err = &headError{err: ce, head: cur}
		}
		Error(w, r, err)
		return
	}
	respond(w, http.StatusOK, api.DeviceState{Version: cur})
}
