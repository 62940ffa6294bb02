package server

import (
	"context"
	"net/http"

	"github.com/cofferhq/coffer"
)

// reserveStep is how much room a body of unknown length reserves at a
// time: a few database round trips per gigabyte, and at most this much
// beyond what arrived is held against the account.
const reserveStep = 64 << 20

// reservation tracks the bytes an upload's PUT has reserved against the
// account's limit on pending bytes, and reserves more as the body grows.
type reservation struct {
	s        *Server
	r        *http.Request
	caller   coffer.AccountID
	upload   coffer.UploadID
	step     int64
	reserved int64
	written  int64
}

// reserve asks for want bytes in all; it fails unless they are granted.
func (res *reservation) reserve(want int64) error {
	granted, err := res.s.resources.ReserveUpload(res.r.Context(), res.caller, res.upload, want, res.s.cfg.MaxPendingBytesPerAccount)
	if err != nil {
		return err
	}
	res.reserved = granted
	if granted < want {
		return coffer.Errorf(coffer.ELIMIT, "your unfinished uploads may hold at most %d bytes in all: finalize or delete some first", res.s.cfg.MaxPendingBytesPerAccount)
	}
	return nil
}

// cover makes sure the next n bytes are reserved.
func (res *reservation) cover(n int64) error {
	need := res.written + n
	if need > res.reserved {
		// Ask for a step more, but settle for what exactly covers this write.
		want := min(max(need, res.reserved+res.step), res.s.cfg.MaxResourceSize)
		granted, err := res.s.resources.ReserveUpload(res.r.Context(), res.caller, res.upload, want, res.s.cfg.MaxPendingBytesPerAccount)
		if err != nil {
			return err
		}
		res.reserved = granted
		if granted < need {
			return coffer.Errorf(coffer.ELIMIT, "your unfinished uploads may hold at most %d bytes in all: finalize or delete some first", res.s.cfg.MaxPendingBytesPerAccount)
		}
	}
	res.written = need
	return nil
}

// release gives back the reservation of a PUT that failed, so that it
// does not count until the upload expires. A PUT that succeeded needs
// none: recording the content replaced the reservation with the size.
func (res *reservation) release() {
	if res.reserved == 0 {
		return
	}
	// The client may be gone, with the request's context.
	ctx := context.WithoutCancel(res.r.Context())
	if _, err := res.s.resources.ReserveUpload(ctx, res.caller, res.upload, 0, res.s.cfg.MaxPendingBytesPerAccount); err != nil &&
		coffer.ErrorCode(err) != coffer.ENOTFOUND {
		loggerFrom(res.r).WarnContext(ctx, "upload reservation left until the upload expires", "err", err)
	}
	res.reserved = 0
}
