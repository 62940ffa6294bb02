package witness

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Handler serves the witness's HTTP API: POST /add-checkpoint (C2SP
// tlog-witness) and GET /checkpoint, the last checkpoint it cosigned as the
// log signed it (for monitors; a cosignature is only given to the log).
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AddCheckpointPath, w.handleAdd)
	mux.HandleFunc("GET /checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		note := w.Checkpoint()
		if note == "" {
			http.Error(rw, "this witness has cosigned nothing yet", http.StatusNotFound)
			return
		}
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(rw, note)
	})
	return mux
}

func (w *Witness) handleAdd(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxRequestBody))
	if err != nil {
		http.Error(rw, "the request body is too large", http.StatusRequestEntityTooLarge)
		return
	}
	old, proof, signed, err := ParseAddCheckpoint(body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	// The replay goes on if the caller gives up waiting: what it verifies is
	// kept, so a witness catching up with a long log converges over pushes.
	line, err := w.AddCheckpoint(context.WithoutCancel(r.Context()), old, proof, signed)
	var (
		conflict *ConflictError
		status   *StatusError
		refusal  *Refusal
	)
	switch {
	case err == nil:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(rw, line)
	case errors.As(err, &conflict):
		rw.Header().Set("Content-Type", sizeContentType)
		if conflict.Fork {
			rw.Header().Set(RefusalHeader, string(RuleSameSize))
		}
		rw.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(rw, strconv.FormatInt(conflict.Size, 10)+"\n")
	case errors.As(err, &status):
		http.Error(rw, status.Msg, status.Status)
	case errors.As(err, &refusal):
		w.cfg.Logger.Warn("witness: refused a checkpoint", "rule", string(refusal.Rule), "reason", refusal.Reason)
		rw.Header().Set(RefusalHeader, string(refusal.Rule))
		http.Error(rw, refusal.Error(), http.StatusUnprocessableEntity)
	case errors.Is(err, errLeavesUnavailable):
		w.cfg.Logger.Warn("witness: could not fetch the log's leaves", "err", err)
		http.Error(rw, err.Error(), http.StatusServiceUnavailable)
	default:
		w.cfg.Logger.Error("witness: add-checkpoint failed", "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
	}
}
