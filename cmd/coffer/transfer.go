package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
)

// Interrupted transfers resume when the same command runs again. What a
// later run needs is kept in the profile's transfers directory, one small
// JSON file per transfer, named by a hash of what identifies it:
//
//   - put GROUP FILE: the upload's clientlib.UploadState (ids and the age
//     header, which wraps the file key under the group's epoch key only:
//     no key is stored here), and FILE's size and modification time, so
//     that a changed file starts over instead of resuming;
//   - get GROUP RESOURCE -o FILE: the version being read. The verified
//     plaintext so far is in a hidden file next to FILE, which becomes FILE
//     once the rest verified too; a later run asks only for the rest, with
//     a verified range read pinned to that version.

const transfersDir = "transfers"

type putState struct {
	clientlib.UploadState
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

type getState struct {
	Version uint64 `json:"version"`
}

// transferFile is where the state of one transfer is kept.
func (a *app) transferFile(parts ...string) (string, error) {
	p, err := a.profile()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, s := range parts {
		fmt.Fprintf(h, "%d:%s,", len(s), s)
	}
	return filepath.Join(p.Dir, transfersDir, hex.EncodeToString(h.Sum(nil)[:16])+".json"), nil
}

func loadTransfer(path string, v any) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

func saveTransfer(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func dropTransfer(path string) { os.Remove(path) }

// resumable reports whether a failed transfer may go on in a later run: the
// network failed, or the stream was cut short. Anything else starts over.
func resumable(err error) bool {
	return coffer.ErrorCode(err) == coffer.EUNAVAILABLE || errors.Is(err, content.ErrTruncated)
}

// putStateFile is the state file of put GROUP FILE, for a regular file.
func (a *app) putStateFile(g coffer.GroupID, file string) (string, fs.FileInfo, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil || !fi.Mode().IsRegular() {
		return "", nil, err
	}
	path, err := a.transferFile("put", g.String(), abs)
	return path, fi, err
}

// getStateFile is the state file of get GROUP RESOURCE -o FILE.
func (a *app) getStateFile(g coffer.GroupID, id coffer.ResourceID, output string) (string, error) {
	abs, err := filepath.Abs(output)
	if err != nil {
		return "", err
	}
	return a.transferFile("get", g.String(), id.String(), abs)
}

// partialFile is where get -o FILE keeps the verified plaintext so far.
func partialFile(output string) string {
	return filepath.Join(filepath.Dir(output), "."+filepath.Base(output)+".coffer-partial")
}

// putResumable uploads r, resuming the upload an earlier run of the same
// put left, if FILE has not changed since.
func (a *app) putResumable(ctx context.Context, c *clientlib.Client, g coffer.GroupID, file string, r io.Reader, meta clientlib.Meta, progress func(done, total int64)) (*clientlib.Resource, error) {
	opts := &clientlib.PutOptions{Progress: progress}
	var statePath string
	if file != "-" {
		path, fi, err := a.putStateFile(g, file)
		if err == nil && fi != nil {
			statePath = path
			var st putState
			if loadTransfer(path, &st) && st.Size == fi.Size() && st.ModTime.Equal(fi.ModTime()) && st.Group == g {
				opts.Resume = &st.UploadState
			}
			opts.OnState = func(s *clientlib.UploadState) {
				// Without it a later run starts over; nothing else depends on it.
				_ = saveTransfer(path, putState{UploadState: *s, Size: fi.Size(), ModTime: fi.ModTime()})
			}
		}
	}
	res, err := c.PutWithOptions(ctx, g, r, meta, opts)
	if err != nil && opts.Resume != nil && !resumable(err) && !coffer.IsSecurity(err) {
		// The earlier upload cannot go on (it expired, the key rotated,
		// or the server's part is not this content): start over.
		dropTransfer(statePath)
		if sk, ok := r.(io.Seeker); ok {
			if _, serr := sk.Seek(0, io.SeekStart); serr == nil {
				a.notice("the interrupted upload cannot be resumed (%v): starting over", err)
				opts.Resume = nil
				res, err = c.PutWithOptions(ctx, g, r, meta, opts)
			}
		}
	}
	if err != nil {
		if statePath != "" && resumable(err) {
			return nil, withHint(err, "what the server received is kept: run the same command again to resume the upload")
		}
		dropTransfer(statePath)
		return nil, err
	}
	dropTransfer(statePath)
	return res, nil
}

// getResumable writes resource id to output, resuming what an earlier run
// of the same get left, if the resource is still at the version it read.
// The plaintext goes to a hidden file next to output, renamed to output
// once all of it verified: output never holds unverified or partial data.
func (a *app) getResumable(ctx context.Context, c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID, output string, progress func(done, total int64)) (*clientlib.Resource, error) {
	statePath, err := a.getStateFile(g, id, output)
	if err != nil {
		return nil, err
	}
	part := partialFile(output)
	var (
		st     getState
		rr     *clientlib.ResourceReader
		offset int64
	)
	if loadTransfer(statePath, &st) {
		if fi, serr := os.Stat(part); serr == nil && fi.Mode().IsRegular() {
			offset = fi.Size()
			rr, err = c.GetRangeWithOptions(ctx, g, id, offset, -1, &clientlib.RangeOptions{Version: st.Version, Progress: progress})
			switch code := coffer.ErrorCode(err); {
			case err == nil:
				a.notice("resuming at byte %d", offset)
			case code == coffer.EPRECONDITION || code == coffer.EINVALID:
				// Replaced since, or the part is not of this resource:
				// start over.
				rr = nil
			default:
				return nil, err
			}
		}
	}
	if rr == nil {
		offset = 0
		if rr, err = c.GetWithOptions(ctx, g, id, &clientlib.GetOptions{Progress: progress}); err != nil {
			return nil, err
		}
		if err := saveTransfer(statePath, getState{Version: rr.Resource().Version}); err != nil {
			rr.Close()
			return nil, err
		}
	}
	defer rr.Close()
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if offset == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(f, rr)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, output)
	}
	if err != nil {
		if resumable(err) {
			return nil, withHint(err, "the verified part is kept: run the same command again to resume the download")
		}
		os.Remove(part)
		dropTransfer(statePath)
		return nil, err
	}
	dropTransfer(statePath)
	return rr.Resource(), nil
}
