package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Resources are written in three steps, so that the content streams
// straight into the blob store and nothing becomes visible before it is
// durable and described by a signed header:
//
//  1. POST /v1/groups/{g}/resources (or .../{r}/versions to replace) makes
//     an upload: a row naming the resource, version and author.
//  2. PUT /v1/uploads/{u}/content streams the age ciphertext into a fresh
//     blob under a key the server makes up, hashing it on the way, and
//     commits the blob (fsync and rename) before recording it.
//  3. POST /v1/uploads/{u}/finalize carries the author's signed header and
//     the encrypted metadata. The server checks the header against what it
//     received and the membership it knows, and one transaction turns the
//     upload into the resource row.
//
// The server cannot read content or metadata, and clients do not trust its
// checks: they verify the header, metadata and content themselves.

// resourceRoutes are mounted at /v1/groups/{groupID}/resources.
func (s *Server) resourceRoutes(r chi.Router) {
	r.Use(s.needResources)
	r.Post("/", s.handleCreateResource)
	r.Get("/", s.handleListResources)
	r.Route("/{resourceID}", func(r chi.Router) {
		r.Get("/", s.handleGetResource)
		r.Delete("/", s.handleDeleteResource)
		r.Get("/content", s.handleResourceContent)
		r.Get("/chunks", s.handleResourceChunks)
		r.Post("/versions", s.handleReplaceResource)
	})
}

// uploadRoutes are mounted at /v1/uploads/{uploadID}.
func (s *Server) uploadRoutes(r chi.Router) {
	r.Use(s.needResources)
	r.Get("/", s.handleGetUpload)
	r.Delete("/", s.handleDeleteUpload)
	r.With(s.ops.countUpload).Put("/content", s.handleUploadContent)
	r.Head("/content", s.handleUploadOffset)
	r.Post("/finalize", s.handleFinalizeUpload)
}

// needResources answers 503 when the server runs without resource storage
// (a test server for other features), instead of dereferencing nil.
func (s *Server) needResources(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.resources == nil || s.blobs == nil {
			Error(w, r, coffer.Errorf(coffer.EUNAVAILABLE, "this server stores no resources"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func groupAndResource(r *http.Request) (coffer.GroupID, coffer.ResourceID, error) {
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		return g, coffer.ResourceID{}, err
	}
	id, err := coffer.ParseResourceID(chi.URLParam(r, "resourceID"))
	return g, id, err
}

func (s *Server) uploadJSON(u *coffer.Upload, epoch uint64) api.Upload {
	return api.Upload{ID: u.ID, ResourceID: u.Resource, GroupID: u.Group, Version: u.Version,
		Epoch: epoch, MaxSize: s.cfg.MaxResourceSize}
}

// startUpload records an upload and answers with it and the group's epoch.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, u *coffer.Upload) {
	caller := callerFrom(r.Context())
	u.ID = coffer.NewUploadID()
	if err := s.resources.CreateUpload(r.Context(), caller, u, s.cfg.MaxResourcesPerGroup); err != nil {
		Error(w, r, err)
		return
	}
	gi, err := s.groups.Group(r.Context(), caller, u.Group)
	if err != nil {
		Error(w, r, err)
		return
	}
	respond(w, http.StatusCreated, s.uploadJSON(u, gi.Epoch))
}

func (s *Server) handleCreateResource(w http.ResponseWriter, r *http.Request) {
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.CreateResourceRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if req.ResourceID.IsZero() {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "resource_id is required: a random id chosen by the client"))
		return
	}
	s.startUpload(w, r, &coffer.Upload{Resource: req.ResourceID, Group: g, Version: 1})
}

func (s *Server) handleReplaceResource(w http.ResponseWriter, r *http.Request) {
	g, id, err := groupAndResource(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	v, err := ifMatchVersion(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	if v == 0 {
		Error(w, r, coffer.Errorf(coffer.EINVALID, `a replace needs If-Match: "<version>" with the version it replaces`))
		return
	}
	s.startUpload(w, r, &coffer.Upload{Resource: id, Group: g, Version: v + 1})
}

// ifMatchVersion parses If-Match: "<version>" (0 when absent). Only a
// single strong entity tag is meaningful for a resource.
func ifMatchVersion(r *http.Request) (uint64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return 0, nil
	}
	tag, ok := strings.CutPrefix(h, `"`)
	if ok {
		tag, ok = strings.CutSuffix(tag, `"`)
	}
	v, err := strconv.ParseUint(tag, 10, 63)
	if !ok || err != nil || v == 0 {
		return 0, coffer.Errorf(coffer.EINVALID, `If-Match must be one entity tag "<version>", as the ETag of the resource`)
	}
	return v, nil
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// copyBufs holds the buffers that stream content into the blob store. Large
// buffers mean fewer, larger writes; pooling keeps the memory of N
// concurrent uploads at N buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (s *Server) handleUploadContent(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	id, err := coffer.ParseUploadID(chi.URLParam(r, "uploadID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "Content-Type must be application/octet-stream"))
		return
	}
	max := s.cfg.MaxResourceSize
	if r.ContentLength > max {
		Error(w, r, tooLarge(max))
		return
	}
	u, err := s.resources.Upload(r.Context(), caller, id)
	if err != nil {
		Error(w, r, err)
		return
	}
	// A PUT with Upload-Offset continues the content already stored (see
	// resume.go); the new blob starts with a copy of it.
	offset, err := uploadOffset(r, u)
	if err != nil {
		w.Header().Set("Upload-Offset", strconv.FormatInt(u.Size, 10))
		Error(w, r, err)
		return
	}
	if r.ContentLength > max-offset {
		Error(w, r, tooLarge(max))
		return
	}
	// Reserve the declared length at once, or room as a body of unknown
	// length arrives, so that an account's unfinished uploads never hold
	// more than MaxPendingBytesPerAccount.
	res := &reservation{s: s, r: r, caller: caller, upload: id, step: reserveStep}
	if r.ContentLength >= 0 {
		res.step = offset + r.ContentLength
	}
	declared := offset
	if r.ContentLength > 0 {
		declared += r.ContentLength
	}
	err = res.reserve(declared)
	defer res.release()
	if err != nil {
		Error(w, r, err)
		return
	}
	body := io.Reader(http.MaxBytesReader(w, r.Body, max-offset))
	inline := s.cfg.InlineContentMax > 0 && offset == 0 && r.ContentLength <= s.cfg.InlineContentMax
	// The lease marks the upload as being written, on every replica, from
	// before the first byte is read: a body of unknown length may take
	// longer than a collector's TTL to show whether it is small. A body
	// declared small skips it (two fewer statements on the small-write
	// path); its read is bounded by the body deadline, far below any TTL.
	key := coffer.NewBlobKey()
	var endLease func(release bool)
	if !inline || r.ContentLength < 0 {
		if endLease, err = s.leaseUpload(r, caller, id, key); err != nil {
			Error(w, r, err)
			return
		}
	}
	leased := endLease != nil
	if inline {
		// Small content (or of unknown length) is read into memory first:
		// if it ends within the limit, it goes into the row, without a
		// blob; otherwise what was read starts the blob. A body cut off
		// before its end keeps nothing: a resume starts it again.
		small, fits, err := s.readInline(body, res)
		if small != nil {
			defer inlineBufs.Put(small)
		}
		if err != nil || fits {
			if err != nil {
				s.uploadReadError(w, r, id, int64(len(*small)), err)
			} else {
				s.storeInline(w, r, caller, id, *small)
			}
			if leased {
				// After the row records the content: a release first
				// would leave an idle-looking upload to a collector.
				endLease(true)
			}
			return
		}
		body = io.MultiReader(bytes.NewReader(*small), body)
		res.written -= int64(len(*small)) // covered again as it goes to the blob
	}
	if !leased {
		if endLease, err = s.leaseUpload(r, caller, id, key); err != nil {
			Error(w, r, err)
			return
		}
	}
	recorded := false
	// The blob outlives a client that goes away: what arrived is kept
	// for a resume (keepPartial).
	bctx, cancelBlob := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancelBlob()
	bw, err := s.blobs.Create(bctx, key)
	if err != nil {
		endLease(true)
		Error(w, r, err)
		return
	}
	defer func() {
		// The lease goes first: once the partial blob is aborted, nothing
		// may keep the abandoned upload from its collection.
		endLease(!recorded)
		bw.Abort() // a no-op after Commit
	}()
	h := sha256.New()
	hw := &hashingWriter{w: bw, h: h, res: res}
	if err := s.copyPrefix(r.Context(), hw, u, offset); err != nil {
		Error(w, r, err)
		return
	}
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(hw, body, *buf)
	copyBufs.Put(buf)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			Error(w, r, tooLarge(max))
			return
		}
		if ce := (*coffer.Error)(nil); errors.As(err, &ce) {
			Error(w, r, ce) // over the pending limit, or the upload went away
			return
		}
		if isSlowBody(err) {
			// A trickled body keeps nothing: it would hold the upload's
			// room at the cost of a few bytes a second. The deferred
			// Abort removes the partial blob.
			loggerFrom(r).InfoContext(r.Context(), "upload too slow: cut off", "upload", id, "bytes", n)
			Error(w, r, slowBodyProblem())
			return
		}
		// Most likely the client went away. What arrived is kept, durably,
		// for a PUT with Upload-Offset to continue.
		kept := s.keepPartial(r, caller, id, key, bw, h, offset+n)
		if kept > 0 {
			recorded = true  // SetUploadContent ended the lease
			res.reserved = 0 // and the size replaced the reservation
		}
		w.Header().Set("Upload-Offset", strconv.FormatInt(kept, 10))
		loggerFrom(r).InfoContext(r.Context(), "upload interrupted", "upload", id, "bytes", n, "kept", kept, "err", err)
		Error(w, r, coffer.Errorf(coffer.EINVALID, "the upload was interrupted after %d bytes: continue it with Upload-Offset: %d", offset+n, kept))
		return
	}
	n += offset
	if err := bw.Commit(); err != nil {
		Error(w, r, err)
		return
	}
	sum := [32]byte(h.Sum(nil))
	old, err := s.resources.SetUploadContent(r.Context(), caller, id, key, n, sum)
	if err != nil {
		s.deleteBlob(r, key)
		Error(w, r, err)
		return
	}
	res.reserved = 0 // the size replaced it
	recorded = true  // SetUploadContent ended the lease
	if old != "" {
		s.deleteBlob(r, old)
	}
	respond(w, http.StatusOK, api.UploadContent{Size: n, ContentHash: sum[:]})
}

// UploadLease is how long an upload's lease runs without renewal. The
// replica writing an upload's content renews it every third of that, so
// it lapses only when the writer is gone (crashed, or cut off from the
// database), and then the collector may take the upload after its TTL.
const UploadLease = 2 * time.Minute

// leaseUpload takes the lease on upload id for the blob key about to be
// written, and keeps renewing it until the returned function is called,
// which also releases the lease if asked (the write failed). The lease
// names the blob before it exists, so that no collector, on any replica,
// removes the upload or the blob while it is being written.
func (s *Server) leaseUpload(r *http.Request, caller coffer.AccountID, id coffer.UploadID, key string) (func(release bool), error) {
	if err := s.resources.LeaseUpload(r.Context(), caller, id, key, UploadLease); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(UploadLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.resources.LeaseUpload(ctx, caller, id, key, UploadLease); err != nil && ctx.Err() == nil {
					loggerFrom(r).WarnContext(ctx, "upload lease not renewed", "upload", id, "err", err)
				}
			}
		}
	}()
	return func(release bool) {
		cancel()
		<-done
		if !release {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if err := s.resources.ReleaseUpload(ctx, caller, id, key); err != nil {
			// It lapses by itself within UploadLease.
			loggerFrom(r).WarnContext(ctx, "upload lease not released", "upload", id, "err", err)
		}
	}, nil
}

// uploadReadError answers for an upload whose body could not be read
// whole; nothing of it was recorded.
func (s *Server) uploadReadError(w http.ResponseWriter, r *http.Request, id coffer.UploadID, n int64, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		Error(w, r, tooLarge(s.cfg.MaxResourceSize))
		return
	}
	if ce := (*coffer.Error)(nil); errors.As(err, &ce) {
		Error(w, r, ce) // over the pending limit, or the upload went away
		return
	}
	if isSlowBody(err) {
		loggerFrom(r).InfoContext(r.Context(), "upload too slow: cut off", "upload", id, "bytes", n)
		Error(w, r, slowBodyProblem())
		return
	}
	// Most likely the client went away.
	loggerFrom(r).InfoContext(r.Context(), "upload interrupted", "upload", id, "bytes", n, "err", err)
	Error(w, r, coffer.Errorf(coffer.EINVALID, "the upload was interrupted after %d bytes: PUT the content again", n))
}

func tooLarge(max int64) error {
	return coffer.Errorf(coffer.ETOOLARGE, "a resource's content may be at most %d bytes", max)
}

type hashingWriter struct {
	w   io.Writer
	h   hash.Hash
	res *reservation
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	if err := hw.res.cover(int64(len(p))); err != nil {
		return 0, err
	}
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}

// deleteBlob removes a blob no row references any more. A failure is only
// logged: the orphan sweep retries.
func (s *Server) deleteBlob(r *http.Request, key string) {
	if err := s.blobs.Delete(r.Context(), key); err != nil {
		loggerFrom(r).WarnContext(r.Context(), "blob left for the sweep", "err", err)
	}
}

func (s *Server) handleDeleteUpload(w http.ResponseWriter, r *http.Request) {
	id, err := coffer.ParseUploadID(chi.URLParam(r, "uploadID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	key, err := s.resources.DeleteUpload(r.Context(), callerFrom(r.Context()), id)
	if err != nil {
		Error(w, r, err)
		return
	}
	if key != "" {
		s.deleteBlob(r, key)
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleFinalizeUpload checks everything the server can about the header
// before storing it. None of it replaces the readers' own verification;
// it keeps honest clients from storing what readers would refuse, and
// dishonest ones from storing garbage under another member's name.
func (s *Server) handleFinalizeUpload(w http.ResponseWriter, r *http.Request) {
	caller := callerFrom(r.Context())
	id, err := coffer.ParseUploadID(chi.URLParam(r, "uploadID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.FinalizeRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	u, err := s.resources.Upload(r.Context(), caller, id)
	if err != nil {
		Error(w, r, err)
		return
	}
	if u.BlobKey == "" && u.Content == nil {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "the upload has no content yet: PUT it before finalizing"))
		return
	}
	h, err := coffer.ParseResourceHeader(req.Header.Body)
	if err != nil {
		Error(w, r, err)
		return
	}
	metaHash := sha256.Sum256(req.Meta)
	var tree []byte
	switch {
	case len(req.Meta) < 28 || len(req.Meta) > coffer.MaxResourceMetaSize:
		err = coffer.Errorf(coffer.EINVALID, "meta must be 28 to %d bytes of ciphertext", coffer.MaxResourceMetaSize)
	case h.Resource != u.Resource || h.Group != u.Group:
		err = coffer.Errorf(coffer.EINVALID, "the header names resource %s of group %s, the upload is for %s of %s", h.Resource, h.Group, u.Resource, u.Group)
	case h.Author != caller:
		err = coffer.Errorf(coffer.EFORBIDDEN, "a resource header's author must be the logged-in account")
	case h.Version != u.Version:
		err = coffer.Errorf(coffer.EINVALID, "the header has version %d, the upload is for version %d", h.Version, u.Version)
	case h.MetaHash != metaHash:
		err = coffer.Errorf(coffer.EINVALID, "the header's meta hash does not match meta")
	default:
		tree, err = s.checkChunkTree(r.Context(), u, h)
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	state, err := s.groups.GroupState(r.Context(), caller, u.Group)
	if err != nil {
		Error(w, r, err)
		return
	}
	m := state.Members[caller]
	switch {
	case m == nil:
		err = coffer.Errorf(coffer.ENOTFOUND, "no such group")
	case m.Role < coffer.RoleWriter:
		err = coffer.Errorf(coffer.EFORBIDDEN, "writing resources needs the writer role; you are a %s", m.Role)
	case (state.Suite == coffer.SuiteV2) != (h.Suite == coffer.ResourceSuiteHybrid):
		// The group's suite picks the header version, and so the verifier:
		// an Ed25519 check of a hybrid header would take a signature cut to
		// its first half.
		err = coffer.Errorf(coffer.EINVALID, "resource header version %d does not belong to a group of suite %d", req.Header.Body[0], max(state.Suite, coffer.SuiteV1))
	case h.Epoch != state.Epoch:
		err = coffer.Errorf(coffer.ESTALEKEY, "the header is for epoch %d, the group is at epoch %d: re-sync and upload again under the current key", h.Epoch, state.Epoch)
	case state.PendingRotation:
		// A member left (perhaps during the upload) and still holds this
		// epoch's key: nothing new goes under it until an admin rotates.
		err = coffer.Errorf(coffer.EROTATIONPENDING, "a member left the group and still holds its key: upload again once an admin or owner has rotated it")
	case state.Suite == coffer.SuiteV2:
		err = s.verifyHybridHeader(r.Context(), state, caller, req.Header)
	case !coffer.VerifySignature(m.SigningKey, coffer.LabelResourceHeader, req.Header.Body, req.Header.Signature):
		err = coffer.Errorf(coffer.EINVALID, "the header signature does not verify under your signing key in the group's log")
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	res := &coffer.Resource{
		ID: u.Resource, Group: u.Group, Version: u.Version, Author: caller, Epoch: h.Epoch,
		Header: coffer.SignedHeader{Body: req.Header.Body, Signature: req.Header.Signature},
		Meta:   req.Meta, ContentHash: u.ContentHash, Size: u.Size, BlobKey: u.BlobKey, Content: u.Content,
		ChunkTree: tree,
	}
	replaced, err := s.resources.FinalizeUpload(r.Context(), caller, id, res, s.cfg.MaxResourcesPerGroup)
	if err != nil {
		Error(w, r, err)
		return
	}
	if replaced != "" {
		s.retireBlob(r, replaced)
	}
	loggerFrom(r).InfoContext(r.Context(), "resource stored", "group", res.Group, "resource", res.ID,
		"version", res.Version, "epoch", res.Epoch, "author", caller, "size", res.Size)
	w.Header().Set("ETag", etag(res.Version))
	respond(w, http.StatusCreated, resourceJSON(res))
}

func resourceJSON(r *coffer.Resource) api.Resource {
	return api.Resource{ID: r.ID, GroupID: r.Group, Version: r.Version, AuthorID: r.Author, Epoch: r.Epoch,
		Header: api.SignedHeader{Body: r.Header.Body, Signature: r.Header.Signature},
		Meta:   r.Meta, Size: r.Size, CreatedAt: r.Created, UpdatedAt: r.Updated}
}

// Listing cursors are "<created unix µs>.<resource id>", base64url: opaque
// to clients, and stable under replaces, which keep Created.
func encodeCursor(c coffer.ResourceCursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%s", c.Created.UnixMicro(), c.ID))
}

func decodeCursor(s string) (coffer.ResourceCursor, error) {
	var c coffer.ResourceCursor
	bad := coffer.Errorf(coffer.EINVALID, "malformed cursor: pass next_cursor back unchanged")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, bad
	}
	ts, id, ok := strings.Cut(string(b), ".")
	micros, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || micros <= 0 {
		return c, bad
	}
	if c.ID, err = coffer.ParseResourceID(id); err != nil {
		return c, bad
	}
	c.Created = time.UnixMicro(micros).UTC()
	return c, nil
}

func (s *Server) handleListResources(w http.ResponseWriter, r *http.Request) {
	g, err := coffer.ParseGroupID(chi.URLParam(r, "groupID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		Error(w, r, err)
		return
	}
	var after coffer.ResourceCursor
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		if after, err = decodeCursor(cur); err != nil {
			Error(w, r, err)
			return
		}
	}
	list, err := s.resources.Resources(r.Context(), callerFrom(r.Context()), g, after, limit)
	if err != nil {
		Error(w, r, err)
		return
	}
	out := api.ResourceList{Resources: make([]api.Resource, 0, len(list))}
	for i := range list {
		out.Resources = append(out.Resources, resourceJSON(&list[i]))
	}
	if len(list) == limit {
		last := list[len(list)-1]
		out.NextCursor = encodeCursor(coffer.ResourceCursor{Created: last.Created, ID: last.ID})
	}
	respond(w, http.StatusOK, out)
}

func (s *Server) handleGetResource(w http.ResponseWriter, r *http.Request) {
	g, id, err := groupAndResource(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	res, note, err := s.readResource(r, g, id)
	if err != nil {
		Error(w, r, err)
		return
	}
	out := resourceJSON(res)
	out.Content = s.includeContent(r, res)
	out.Checkpoint = note
	w.Header().Set("ETag", etag(res.Version))
	if api.AcceptsResource(r.Header.Get("Accept")) {
		writeResourceAnswer(w, r, &out)
		return
	}
	respond(w, http.StatusOK, out)
}

// includes reports whether the comma-separated include query parameter
// names what.
func includes(r *http.Request, what string) bool {
	for _, v := range strings.Split(r.URL.Query().Get("include"), ",") {
		if v == what {
			return true
		}
	}
	return false
}

// handleResourceContent streams the ciphertext with HTTP Range support.
// The ETag is the version, so a client that read the header sends
// If-Match and never gets the content of another version than the header
// it verified.
func (s *Server) handleResourceContent(w http.ResponseWriter, r *http.Request) {
	g, id, err := groupAndResource(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	want, err := ifMatchVersion(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	res, blob, err := s.openCurrent(r, g, id, want)
	if err != nil {
		Error(w, r, err)
		return
	}
	defer blob.Close()
	if blob.Size() != res.Size {
		// Served anyway: clients verify the content against the signed
		// header and will refuse it, which is the honest outcome.
		loggerFrom(r).ErrorContext(r.Context(), "blob size differs from its row", "resource", res.ID, "version", res.Version)
	}
	w.Header().Set("ETag", etag(res.Version))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", res.Updated, blob)
}

// openCurrent reads the resource's row and opens its blob. The two are not
// one snapshot: a replace or delete that commits between them deletes the
// blob the row named. That is a race with a writer, not damage, so a
// missing blob sends it back to the row: a deleted resource answers 404, a
// version other than the If-Match one 412, and without If-Match the newer
// version is served. Only a row that still names the missing blob is
// damage, and only that is a server error.
func (s *Server) openCurrent(r *http.Request, g coffer.GroupID, id coffer.ResourceID, want uint64) (*coffer.Resource, coffer.Blob, error) {
	caller := callerFrom(r.Context())
	res, err := s.resources.Resource(r.Context(), caller, g, id)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		if want != 0 && want != res.Version {
			// Answered here rather than by ServeContent, to get a problem body.
			return nil, nil, preconditionFailed(res.Version)
		}
		if res.Content != nil {
			return res, rowBlob{bytes.NewReader(res.Content)}, nil
		}
		blob, err := s.blobs.Open(r.Context(), res.BlobKey)
		if err == nil {
			return res, blob, nil
		}
		if coffer.ErrorCode(err) != coffer.ENOTFOUND {
			return nil, nil, err
		}
		cur, err := s.resources.Resource(r.Context(), caller, g, id)
		if err != nil {
			return nil, nil, err // deleted meanwhile: 404
		}
		switch {
		case cur.BlobKey == res.BlobKey:
			// The row says the blob exists: this is damage, not a 404.
			return nil, nil, fmt.Errorf("blob of resource %s version %d is missing", res.ID, res.Version)
		case want != 0 && cur.Version == want:
			// Deleted and created again under the same version number: not
			// the version whose header the caller verified.
			return nil, nil, preconditionFailed(cur.Version)
		case attempt == 2:
			// Writers keep superseding it faster than it can be opened.
			return nil, nil, preconditionFailed(cur.Version)
		}
		res = cur
	}
}

// decodeDelete reads the signed tombstone of a delete and checks it the way
// a witness will when it replays the log: it names this group, resource and
// caller, and verifies under the caller's signing key in the group's log.
// An If-Match, if sent, must name the tombstone's version. The store checks
// the version and the caller's role under its locks.
func (s *Server) decodeDelete(w http.ResponseWriter, r *http.Request, g coffer.GroupID, id coffer.ResourceID) (coffer.SignedDelete, error) {
	var req api.DeleteResourceRequest
	if err := decode(w, r, s.cfg.MaxJSONBody, &req); err != nil {
		return coffer.SignedDelete{}, err
	}
	sd := coffer.SignedDelete{Body: req.Delete.Body, Signature: req.Delete.Signature}
	d, err := coffer.ParseResourceDelete(sd.Body)
	if err != nil {
		return sd, err
	}
	caller := callerFrom(r.Context())
	if d.Group != g || d.Resource != id || d.Deleter != caller {
		return sd, coffer.Errorf(coffer.EINVALID, "the signed delete must name this group, this resource and you as the deleter")
	}
	if v, err := ifMatchVersion(r); err != nil {
		return sd, err
	} else if v != 0 && v != d.Version {
		return sd, coffer.Errorf(coffer.EINVALID, "If-Match names version %d, the signed delete version %d", v, d.Version)
	}
	state, err := s.groups.GroupState(r.Context(), caller, g)
	if err != nil {
		return sd, err
	}
	m := state.Members[caller]
	if m == nil {
		return sd, coffer.Errorf(coffer.ENOTFOUND, "no such group")
	}
	// Each suite takes its own tombstone version only: a suite v2 group's
	// deletes carry the hybrid signature of the key its entry names, so
	// one cut down to its Ed25519 half is refused.
	if state.Suite == coffer.SuiteV2 {
		k, err := s.memberKeysOf(r.Context(), state, caller)
		if err != nil {
			return sd, err
		}
		_, err = sd.VerifyHybrid(k.SigningKey)
		if err != nil {
			return sd, coffer.Errorf(coffer.EINVALID, "the signed delete must be a suite v2 tombstone that verifies under your hybrid signing key in the group's log")
		}
		return sd, nil
	}
	if _, err := sd.Verify(m.SigningKey); err != nil {
		return sd, coffer.Errorf(coffer.EINVALID, "the signed delete must be a suite v1 tombstone that verifies under your signing key in the group's log")
	}
	return sd, nil
}

func preconditionFailed(current uint64) error {
	return coffer.Errorf(coffer.EPRECONDITION, "the resource is at version %d: fetch it again and retry", current)
}

func (s *Server) handleDeleteResource(w http.ResponseWriter, r *http.Request) {
	g, id, err := groupAndResource(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	del, err := s.decodeDelete(w, r, g, id)
	if err != nil {
		Error(w, r, err)
		return
	}
	key, err := s.resources.DeleteResource(r.Context(), callerFrom(r.Context()), g, id, del)
	if err != nil {
		Error(w, r, err)
		return
	}
	s.retireBlob(r, key)
	loggerFrom(r).InfoContext(r.Context(), "resource deleted", "group", g, "resource", id, "by", callerFrom(r.Context()))
	w.WriteHeader(http.StatusNoContent)
}

// memberKeysOf resolves the stored keys of member id of a suite v2 group,
// checked against its entry (GroupState.MemberKeys).
func (s *Server) memberKeysOf(ctx context.Context, state *coffer.GroupState, id coffer.AccountID) (*coffer.MemberKeys, error) {
	mk, err := s.memberKeyStore()
	if err != nil {
		return nil, err
	}
	m := state.Members[id]
	if m == nil {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "no such group")
	}
	src, err := memberKeyMap(ctx, mk, [][32]byte{m.KeysHash})
	if err != nil {
		return nil, err
	}
	return state.MemberKeys(id, src)
}

// verifyHybridHeader checks a suite v2 (version 3) header's hybrid
// signature under the author's keys, as its entry in the group names them.
func (s *Server) verifyHybridHeader(ctx context.Context, state *coffer.GroupState, author coffer.AccountID, sh api.SignedHeader) error {
	k, err := s.memberKeysOf(ctx, state, author)
	if err != nil {
		return err
	}
	if _, err := (coffer.SignedHeader{Body: sh.Body, Signature: sh.Signature}).VerifyHybrid(k.SigningKey); err != nil {
		return coffer.Errorf(coffer.EINVALID, "the header signature does not verify under your hybrid signing key in the group's log")
	}
	return nil
}
