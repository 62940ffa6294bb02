package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// statusOf is the one table from error code to HTTP status. The client maps
// the code (not the status) back, so statuses can be refined freely.
var statusOf = map[coffer.Code]int{
	coffer.EINVALID:      http.StatusBadRequest,
	coffer.EUNAUTHORIZED: http.StatusUnauthorized,
	coffer.EFORBIDDEN:    http.StatusForbidden,
	coffer.ENOTFOUND:     http.StatusNotFound,
	coffer.ECONFLICT:     http.StatusConflict,
	coffer.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	coffer.ERATELIMITED:  http.StatusTooManyRequests,
	coffer.EPRECONDITION: http.StatusPreconditionFailed,
	coffer.ELIMIT:        http.StatusUnprocessableEntity,
	coffer.EUNAVAILABLE:  http.StatusServiceUnavailable,
	coffer.EINTERNAL:     http.StatusInternalServerError,
	coffer.ESTALEKEY:     http.StatusConflict, // the key rotated under the request: re-sync and retry
	// A member left and the key has not rotated yet: wait for an admin.
	coffer.EROTATIONPENDING: http.StatusConflict,
}

// headError carries the current head with a 409 from a commit append.
type headError struct {
	err  *coffer.Error
	head uint64
}

func (e *headError) Error() string { return e.err.Error() }
func (e *headError) Unwrap() error { return e.err }

// Error writes err as application/problem+json. Errors without a coffer
// code are internal: they are logged with the request id and the client
// sees only "internal error", so internals never leak.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		err = coffer.Errorf(coffer.ECANCELED, "the client closed the request")
	}
	code := coffer.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = coffer.EINTERNAL, http.StatusInternalServerError
	}
	p := api.Problem{
		Type:   "urn:coffer:problem:" + string(code),
		Title:  http.StatusText(status),
		Status: status,
		Code:   string(code),
		Detail: coffer.ErrorMessage(err),
	}
	var ce *coffer.Error
	if errors.As(err, &ce) {
		p.Rule = ce.Rule
	}
	countRejection(r, err)
	var he *headError
	if errors.As(err, &he) {
		p.HeadSeq = he.head
	}
	if code == coffer.EINTERNAL {
		p.Detail = "internal error"
		loggerFrom(r).ErrorContext(r.Context(), "internal error", "err", err)
	}
	if code == coffer.EUNAVAILABLE {
		// Clients retry a 503; Retry-After paces them (clientlib honours it).
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
		loggerFrom(r).WarnContext(r.Context(), "unavailable", "err", err)
	}
	writeJSON(w, status, "application/problem+json", p)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// respond writes v as JSON with the given status.
func respond(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, "application/json", v)
}

// respondCompact writes b, an answer in the compact encoding mediaType that
// the client listed in Accept, with status 200. The answer depends on
// Accept, which Vary says.
func respondCompact(w http.ResponseWriter, mediaType string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func loggerFrom(r *http.Request) *slog.Logger {
	if l, ok := r.Context().Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

type loggerKey struct{}
