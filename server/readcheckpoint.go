package server

import (
	"context"
	"net/http"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/freshflight"
)

// A read of one resource that asks for the log's latest checkpoint
// (?include=checkpoint) must get one at least as new as its request: the
// reader checks the version's place in the log against it, and a delete
// that finished before the read began must show. The checkpoint is taken
// after the row. When the store reads the checkpoint generation with the
// row (store.DB, migration 00019) and the log keeps the checkpoints of a
// generation in memory, the read is one statement: the generation, read
// after the request began, names the checkpoints stored by then on every
// replica, and the log serves from memory only checkpoints of that
// generation or a later one. Otherwise the checkpoint is read after the
// row, shared among concurrent requests that all began before the read.

// resourceGenReader is a resource store that reads the checkpoint
// generation in the same statement as the row.
type resourceGenReader interface {
	ResourceAndCheckpointGen(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, id coffer.ResourceID) (*coffer.Resource, int64, error)
}

// checkpointByGen is a log that serves its latest checkpoint from memory
// when what it holds is of a given generation or later.
type checkpointByGen interface {
	LogCheckpointGen(ctx context.Context, gen int64) (string, error)
}

// readResource reads the resource row and, when the reader asked for it,
// the log's latest checkpoint ("" when there is none to send: the reader
// then fetches one itself).
func (s *Server) readResource(r *http.Request, g coffer.GroupID, id coffer.ResourceID) (*coffer.Resource, string, error) {
	ctx, caller := r.Context(), callerFrom(r.Context())
	if !includes(r, "checkpoint") || s.log == nil {
		res, err := s.resources.Resource(ctx, caller, g, id)
		return res, "", err
	}
	rg, ok1 := s.resources.(resourceGenReader)
	lg, ok2 := s.log.(checkpointByGen)
	if ok1 && ok2 {
		res, gen, err := rg.ResourceAndCheckpointGen(ctx, caller, g, id)
		if err != nil {
			return nil, "", err
		}
		note, err := lg.LogCheckpointGen(ctx, gen)
		if err != nil {
			note = ""
		}
		return res, note, nil
	}
	res, err := s.resources.Resource(ctx, caller, g, id)
	if err != nil {
		return nil, "", err
	}
	note, err := s.checkpoints.Do(ctx, s.log.LogCheckpoint)
	if err != nil {
		note = ""
	}
	return res, note, nil
}

// checkpointGenReader reads the checkpoint generation on its own.
type checkpointGenReader interface {
	CheckpointGen(ctx context.Context) (int64, error)
}

// latestCheckpoint is l's latest checkpoint, read after the call began:
// from memory after a read of the generation when l offers both, else
// through shared, the reads of concurrent callers.
func latestCheckpoint(ctx context.Context, l coffer.LogService, shared *freshflight.Group[string]) (string, error) {
	gr, ok1 := l.(checkpointGenReader)
	lg, ok2 := l.(checkpointByGen)
	if !ok1 || !ok2 {
		return shared.Do(ctx, l.LogCheckpoint)
	}
	gen, err := gr.CheckpointGen(ctx)
	if err != nil {
		return "", err
	}
	return lg.LogCheckpointGen(ctx, gen)
}
