package clientlib

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// Resumable uploads. The server keeps, durably, whatever part of an
// upload's content arrived before a connection dropped, and answers its
// size to HEAD /v1/uploads/{u}/content; a PUT with Upload-Offset continues
// from there. Since the ciphertext is never stored on the client, a resumed
// attempt encrypts the content again from its start with the same file key
// and payload nonce (content.EncryptAgain, from the age header the first
// attempt wrote), which yields the same bytes: it hashes them all, for the
// chunk tree and to compare with the server's copy, and sends only those
// past the durable offset.
//
// Put does this by itself, up to maxUploadAttempts times, when the content
// is an io.Seeker (a file, a bytes.Reader) and the connection fails. A
// caller that wants to resume after the process ends keeps the
// UploadState that PutOptions.OnState hands it and passes it back as
// PutOptions.Resume with the same content.

// UploadState is what a later run needs to resume an upload. It holds no
// secret: the age header wraps the file key under the group's epoch key,
// which only the keystore holds.
type UploadState struct {
	Upload   coffer.UploadID   `json:"upload"`
	Group    coffer.GroupID    `json:"group"`
	Resource coffer.ResourceID `json:"resource"`
	Version  uint64            `json:"version"`
	Epoch    uint64            `json:"epoch"`
	// Header is the age header and payload nonce of the content.
	Header []byte `json:"header"`
}

// maxUploadAttempts bounds the attempts of one Put at sending content.
const maxUploadAttempts = 6

// sendContent sends r's content as upload up's, resuming after transient
// failures when r can be read again, and returns the finished Writer and
// the plaintext length.
func (c *Client) sendContent(ctx context.Context, up *api.Upload, k groupkey.EpochKey, r io.Reader, meta Meta, opts *PutOptions) (*content.Writer, int64, error) {
	seeker, _ := r.(io.Seeker)
	var start int64
	if seeker != nil {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil // a pipe or terminal: it cannot be read again
		}
	}
	var header []byte
	resumed := opts.Resume != nil
	if resumed {
		header = opts.Resume.Header
	}
	for attempt := 0; ; attempt++ {
		var offset int64
		var err error
		if resumed {
			if offset, err = c.uploadOffset(ctx, up.ID); err != nil {
				return nil, 0, err
			}
		}
		enc, plain, err := c.sendOnce(ctx, up, k, r, header, offset, meta, opts, &header)
		if err == nil {
			return enc, plain, nil
		}
		transient := coffer.ErrorCode(err) == coffer.EUNAVAILABLE || (offset > 0 && coffer.ErrorCode(err) == coffer.EPRECONDITION)
		if !transient || seeker == nil || header == nil || attempt+1 == maxUploadAttempts || ctx.Err() != nil {
			return nil, 0, err
		}
		if _, serr := seeker.Seek(start, io.SeekStart); serr != nil {
			return nil, 0, err
		}
		// The server notices a dropped connection on its own time.
		if serr := sleepCtx(ctx, retryBackoff(attempt)); serr != nil {
			return nil, 0, err
		}
		resumed = true
	}
}

// uploadOffset asks the server how much of an upload's content it holds,
// once no PUT is writing it any more: a PUT cut off just now is still
// keeping what it received, for a while at most maxOffsetWait.
func (c *Client) uploadOffset(ctx context.Context, id coffer.UploadID) (int64, error) {
	deadline := time.Now().Add(maxOffsetWait)
	for {
		var st api.UploadStatus
		if err := c.call(ctx, http.MethodGet, "/v1/uploads/"+id.String(), true, nil, &st); err != nil {
			return 0, err
		}
		if st.ID != id || st.Received < 0 {
			return 0, coffer.Errorf(coffer.EUNAVAILABLE, "the server answered the status of another upload")
		}
		if !st.Writing || time.Now().After(deadline) {
			return st.Received, nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

const maxOffsetWait = 30 * time.Second

// resumeWriter hashes the whole stream and passes on only what follows
// the first skip bytes.
type resumeWriter struct {
	w    io.Writer
	skip int64
	h    hash.Hash
}

func (rw *resumeWriter) Write(p []byte) (int, error) {
	rw.h.Write(p)
	q := p
	if rw.skip > 0 {
		n := min(rw.skip, int64(len(q)))
		rw.skip -= n
		q = q[n:]
	}
	if len(q) > 0 {
		if _, err := rw.w.Write(q); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// sendOnce is one attempt at sending the content: from the start (header
// nil: a fresh file key, whose header goes to *started), or, for a resumed
// upload, again under header with the bytes before offset left out.
func (c *Client) sendOnce(ctx context.Context, up *api.Upload, k groupkey.EpochKey, r io.Reader, header []byte, offset int64,
	meta Meta, opts *PutOptions, started *[]byte) (*content.Writer, int64, error) {
	g, id, epoch := up.GroupID, up.ResourceID, up.Epoch
	// The encrypting goroutine writes into a pipe that is the PUT body; the
	// transport reads it as it sends. The pipe's small queue lets the two
	// run on different cores; memory stays at a few chunks.
	pipe := newBufPipe(uploadQueue, uploadBuffer)
	var dst io.Writer = pipe
	var rw *resumeWriter
	if header != nil {
		rw = &resumeWriter{w: pipe, skip: offset, h: sha256.New()}
		dst = rw
	}
	var (
		enc     *content.Writer
		plain   int64
		encDone = make(chan error, 1)
	)
	go func() {
		err := func() error {
			var w *content.Writer
			var err error
			if header == nil {
				w, err = content.Encrypt(dst, k, g, epoch, id, c.fileKeyObserver()...)
				if err == nil {
					*started = w.Header()
					if opts.OnState != nil {
						opts.OnState(&UploadState{Upload: up.ID, Group: g, Resource: id, Version: up.Version, Epoch: epoch, Header: w.Header()})
					}
				}
			} else {
				w, err = content.EncryptAgain(dst, header, k, g, epoch, id, c.fileKeyObserver()...)
				if err != nil {
					err = coffer.Errorf(coffer.EINVALID, "the upload to resume was not started under this group's key for epoch %d: %v", epoch, err)
				}
			}
			if err != nil {
				return err
			}
			total := meta.Size
			if total == 0 {
				total = -1
			}
			buf := make([]byte, 64<<10)
			for {
				n, rerr := r.Read(buf)
				if n > 0 {
					if _, err := w.Write(buf[:n]); err != nil {
						return err
					}
					plain += int64(n)
					if opts.Progress != nil {
						opts.Progress(plain, total)
					}
				}
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					return fmt.Errorf("clientlib: reading the content to upload: %w", rerr)
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
			enc = w
			return nil
		}()
		pipe.CloseWithError(err) // nil: the body ends cleanly
		encDone <- err
	}()
	hdr := http.Header{"Content-Type": {"application/octet-stream"}, "Accept": {"application/json"}}
	if offset > 0 {
		hdr.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	}
	resp, err := c.stream(ctx, http.MethodPut, "/v1/uploads/"+up.ID.String()+"/content", pipe, hdr)
	// If the server answered before reading everything (an error), this
	// unblocks the encryptor; after a complete body it changes nothing.
	pipe.CloseRead(errUploadEnded)
	encErr := <-encDone
	if encErr != nil && !errors.Is(encErr, errUploadEnded) {
		// Reading or encrypting failed: that is the cause of whatever the
		// request saw (the transport aborted the body).
		if err == nil {
			resp.Body.Close()
		}
		return nil, 0, encErr
	}
	if err != nil {
		return nil, 0, err
	}
	var got api.UploadContent
	if err := readResponse(resp, &got); err != nil {
		return nil, 0, err
	}
	_, chunks, size := enc.Sum()
	if sent := size + content.ChunkHashListSize(chunks); got.Size != sent {
		return nil, 0, coffer.Security("upload", fmt.Errorf("the server received %d bytes of the %d sent", got.Size, sent))
	}
	if rw != nil {
		// The part sent before the interruption is the server's copy: it
		// must be the start of this very ciphertext, or the content read
		// now differs from what was read then.
		if sum := rw.h.Sum(nil); string(got.ContentHash) != string(sum) {
			return nil, 0, coffer.Errorf(coffer.EINVALID, "the server's copy of the interrupted upload is not the start of this content (did the content change since?): upload it again")
		}
	}
	return enc, plain, nil
}
