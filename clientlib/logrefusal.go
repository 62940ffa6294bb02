package clientlib

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Refusing a proof is an answer.
//
// Two checkpoints that verify under the pinned log key mean the server
// signed both trees; an honest server can always prove the smaller one a
// prefix of the larger. A server that cannot (it forked its log) would
// rather answer "unavailable" than a proof that fails. So a failed
// consistency request is retried a bounded number of times, and if it still
// fails while the server answers another request, that is a refusal and a
// *coffer.SecurityError. Only while nothing gets through (an outage: 5xx,
// no connection) is it "unavailable", and then the unproven checkpoint is
// not adopted.

// consistencyTries and consistencyBackoff bound the retry of a consistency
// proof: about 1.5 s in all, longer than a restart of a healthy server's
// request path, short enough for an interactive call.
const (
	consistencyTries   = 4
	consistencyBackoff = 100 * time.Millisecond
)

// transient reports whether err may be an outage rather than an answer:
// no connection, a 5xx, an overloaded server, a malformed answer.
func transient(err error) bool {
	switch coffer.ErrorCode(err) {
	case coffer.EUNAVAILABLE, coffer.ERATELIMITED, coffer.EINTERNAL:
		return true
	}
	return false
}

// consistencyProof fetches the proof that the tree of size old is a prefix
// of the tree of size new, both signed by the pinned key.
func (c *Client) consistencyProof(ctx context.Context, old, new int64) (*api.LogConsistency, error) {
	path := "/v1/log/proof/consistency?old=" + strconv.FormatInt(old, 10) + "&new=" + strconv.FormatInt(new, 10)
	var err error
	for attempt := 0; attempt < consistencyTries; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(consistencyBackoff << (attempt - 1)):
			case <-ctx.Done():
				return nil, coffer.Errorf(coffer.ECANCELED, "waiting for a log consistency proof: %v", ctx.Err())
			}
		}
		var p api.LogConsistency
		if err = c.call(ctx, http.MethodGet, path, false, nil, &p); err == nil {
			return &p, nil
		}
		if ctx.Err() != nil || coffer.ErrorCode(err) == coffer.ECANCELED {
			return nil, err
		}
		if !transient(err) {
			// Any answer but a proof is a refusal to prove a fork away.
			return nil, logSecurity("the server signed a tree of size %d but refuses to prove it consistent with size %d: %v", new, old, err)
		}
	}
	// Still failing: an outage, or a refusal dressed as one. A server that
	// answers another request now is up, and is refusing.
	if _, probe := c.getText(ctx, "/v1/log/checkpoint"); probe == nil {
		return nil, logSecurity("the server signed a tree of size %d and answers other requests, but after %d tries does not prove it consistent with size %d: %v",
			new, consistencyTries, old, err)
	}
	return nil, coffer.Errorf(coffer.EUNAVAILABLE, "the server cannot be reached to prove log consistency (%d to %d): %v; the newer checkpoint was not adopted", old, new, err)
}
