package store

import (
	"context"
	"errors"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

// copyWrapStream copies the wraps of a.WrapStream into wrapped_keys in tx as
// they arrive, one COPY for all of them, holding one wrap at a time (and
// what pgx buffers for one write to the connection).
func copyWrapStream(ctx context.Context, tx pgx.Tx, a *coffer.GroupAppend) error {
	src := &wrapSource{next: a.WrapStream, g: a.State.Group}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"wrapped_keys"},
		[]string{"group_id", "epoch", "member_id", "wrap"}, src)
	if src.err != nil {
		// The request's own error (a bad or missing wrap, a body over its
		// limit), not PostgreSQL's report of the aborted COPY.
		return src.err
	}
	if err != nil {
		return err
	}
	if !src.ended {
		return errors.New("store: the wrap stream was not read to its end")
	}
	return nil
}

// wrapSource is a pgx.CopyFromSource over a wrap stream.
type wrapSource struct {
	next  func() (coffer.Wrap, error)
	g     coffer.GroupID
	cur   coffer.Wrap
	err   error
	ended bool
}

func (s *wrapSource) Next() bool {
	if s.err != nil || s.ended {
		return false
	}
	w, err := s.next()
	switch {
	case errors.Is(err, io.EOF):
		s.ended = true
		return false
	case err != nil:
		s.err = err
		return false
	}
	s.cur = w
	return true
}

func (s *wrapSource) Values() ([]any, error) {
	return []any{s.g, int64(s.cur.Epoch), s.cur.Member, s.cur.Data}, nil
}

func (s *wrapSource) Err() error { return s.err }
