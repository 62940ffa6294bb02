package mobile

import (
	"context"
	"sync"

	"github.com/cofferhq/coffer"
)

// Cancel stops the operations it was passed to. Make one per operation (or
// per screen), hand it to a transfer, and call Cancel from any thread: the
// transfer returns a CodeCanceled error soon after. A cancelled token stays
// cancelled. The zero value (`new Cancel()` in Java) is ready to use.
type Cancel struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

// NewCancel returns a token that is not cancelled.
func NewCancel() *Cancel {
	defer guardQuiet()
	c := &Cancel{}
	c.init()
	return c
}

func (c *Cancel) init() {
	c.once.Do(func() { c.ctx, c.cancel = context.WithCancel(context.Background()) })
}

// Cancel cancels every operation given this token, now and later.
func (c *Cancel) Cancel() {
	defer guardQuiet()
	if c == nil {
		return
	}
	c.init()
	c.cancel()
}

// IsCanceled reports whether Cancel was called.
func (c *Cancel) IsCanceled() bool {
	defer guardQuiet()
	return c.canceled()
}

func (c *Cancel) canceled() bool {
	if c == nil {
		return false
	}
	c.init()
	return c.ctx.Err() != nil
}

// context returns the context of an operation given c, which may be nil.
func (c *Cancel) context() context.Context {
	if c == nil {
		return context.Background()
	}
	c.init()
	return c.ctx
}

// Progress receives transfer progress: done bytes of plaintext so far, of
// total (-1 when unknown). It is called on a Go thread, not the caller's,
// as often as every 64 KiB: post to the UI thread and return quickly.
// Returning an error (throwing, in Java or Swift) cancels the transfer,
// which then fails with CodeCanceled.
type Progress interface {
	OnProgress(done, total int64) error
}

// op is one cancellable operation: its context ends when the app's Cancel
// token is cancelled or its Progress callback fails.
type op struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu          sync.Mutex
	progressErr error
}

func newOp(c *Cancel) *op {
	o := &op{}
	o.ctx, o.cancel = context.WithCancel(c.context())
	return o
}

// progress adapts p for clientlib, which calls it on a goroutine of its
// own: a panic there could not reach the facade's guard, so it is caught
// here and, like an error, cancels the operation.
func (o *op) progress(p Progress) func(done, total int64) {
	if p == nil {
		return nil
	}
	return func(done, total int64) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.progressErr != nil {
			return
		}
		err := func() (err error) {
			defer guard(&err)
			return p.OnProgress(done, total)
		}()
		if err != nil {
			o.progressErr = err
			o.cancel()
		}
	}
}

// wrap is the package's wrap, naming a failed Progress as the cause of a
// cancellation.
func (o *op) wrap(err error) error {
	if err == nil {
		return nil
	}
	o.mu.Lock()
	perr := o.progressErr
	o.mu.Unlock()
	if perr != nil && !coffer.IsSecurity(err) {
		return &codedError{code: CodeCanceled, msg: "the Progress callback failed: " + ErrorMessage(perr), cause: err}
	}
	return wrap(err, o.ctx)
}

// bg is the context of calls that take no Cancel; clientlib bounds each of
// their requests with Options.TimeoutMillis.
func bg() context.Context { return context.Background() }
