package clientlib

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// A resource is any bytes a writer shares in a group. Put encrypts them as
// an age stream under a key bound to the group, the current epoch and the
// resource id, streams that into the server, seals the metadata under the
// epoch key bound to resource id and version, and signs a header over all
// of it. Get verifies the header against the verified membership log before
// it decrypts a byte, and the content as it streams.
//
// Every check in this file treats the server as the adversary; a failure is
// a *coffer.SecurityError and nothing of the resource is returned.

// Meta is what the author says about a resource. It is encrypted; the
// server sees only its length.
type Meta struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type,omitempty"`
	// Size is the plaintext size. Put fills it in; if the caller sets it,
	// Put checks the content has exactly that many bytes and uses it as the
	// progress total.
	Size int64 `json:"size"`
	// App holds application-defined JSON.
	App json.RawMessage `json:"app,omitempty"`
}

// maxMetaPlaintext caps the encoded metadata (64 KiB).
const maxMetaPlaintext = coffer.MaxResourceMetaSize - 28

// Resource is a verified resource version.
type Resource struct {
	ID      coffer.ResourceID
	Group   coffer.GroupID
	Version uint64
	Epoch   uint64
	Author  coffer.AccountID
	// AuthorHandle is the author's handle in the group's log.
	AuthorHandle coffer.Handle
	// Created is the author's clock when signing (informational).
	Created time.Time
	// ContentSize is the ciphertext size; Meta.Size the plaintext size.
	ContentSize int64
	Meta        Meta
	// Locked is set by List for a resource of an epoch whose key this
	// member never received: the group does not share history, and the
	// resource is older than the member. Its header was verified; its Meta
	// is empty and Get refuses it.
	Locked bool
	// ProofAge is how old the witnessed proof of the group's head was when
	// this resource was verified against it (freshness.go): the read saw
	// the group as the witnesses vouched for it that long ago, at most
	// Options.MaxStaleness.
	ProofAge time.Duration
}

// PutOptions tune Put and Replace. The zero value is valid.
type PutOptions struct {
	// ID is the id of a new resource; zero picks a random one. Ignored by
	// Replace.
	ID coffer.ResourceID
	// Progress, if set, is called as plaintext is read, with the bytes done
	// and the total (Meta.Size, or -1 when unknown). It runs on the
	// goroutine that encrypts, not the caller's, and should return quickly.
	Progress func(done, total int64)
	// OnState, if set, is called once the upload has started, with what a
	// later run needs to resume it (see UploadState). An upload with
	// OnState is left on the server when the network fails, for that run;
	// the server drops it when it expires.
	OnState func(*UploadState)
	// Resume continues the upload of an earlier run instead of starting a
	// new one. The content must be the same, read from its start; Put
	// fails with EINVALID if the server's part is not the start of it, and
	// with ENOTFOUND if the upload expired meanwhile.
	Resume *UploadState
}

// GetOptions tune Get. The zero value is valid.
type GetOptions struct {
	// Progress, if set, is called as verified plaintext is returned, with
	// the bytes done and the total from the metadata, on the goroutine that
	// calls Read.
	Progress func(done, total int64)
}

// resourceCache is the client's verified view of the groups it reads
// resources in, so a read costs two requests instead of a sync. It holds
// only what was verified: states from the chain verifier, keys checked
// against commitments.
type resourceCache struct {
	mu     sync.Mutex
	groups map[coffer.GroupID]*groupView
	seen   map[resourceKey]uint64 // highest version verified
	// gen and raises date each raise of seen, so an answer is judged
	// against what was verified when its request was sent (readorder.go).
	gen    uint64
	raises map[resourceKey][]versionRaise
	// verified holds SHA-256(key ‖ signature ‖ header) of signatures that
	// verified, so re-reading a resource skips the Ed25519 verification.
	// A hit proves this exact triple verified before; it is bounded and
	// simply starts over when full.
	verified map[[32]byte]struct{}

	refreshMu sync.Mutex // one sync at a time: saved states never go back
}

type groupView struct {
	state *coffer.GroupState
	proof *witnessed // the witnessed checkpoint the sync proved state through
	keys  map[uint64]groupkey.EpochKey
	// signers, from the whole verified log, holds every key an account was
	// added with or updated to, in chain order, for authors who left,
	// rejoined or updated their keys. Loaded on demand.
	signers    map[coffer.AccountID][]signer
	signersSeq uint64
}

type signer struct {
	epoch  uint64 // epoch of the commit that added the account
	handle coffer.Handle
	key    ed25519.PublicKey
	from   uint64 // the first epoch key signs for: the add's, or a self-update's
	// In a suite v2 group: the hash of the signer's keys, and their hybrid
	// signing key once resolved (signerKey does).
	keysHash [32]byte
	hybrid   coffer.HybridPublicKey
}

// view returns the cached verified view of g, or a fresh one when there is
// none or fresh is set.
func (c *Client) view(ctx context.Context, g coffer.GroupID, fresh bool) (*groupView, error) {
	rc := &c.resources
	if !fresh {
		rc.mu.Lock()
		v := rc.groups[g]
		rc.mu.Unlock()
		if v != nil {
			return v, nil
		}
	}
	rc.refreshMu.Lock()
	defer rc.refreshMu.Unlock()
	res, err := c.syncPending(ctx, g, false)
	if err != nil {
		return nil, err
	}
	rc.mu.Lock()
	old := rc.groups[g]
	rc.mu.Unlock()
	v := &groupView{state: res.State, proof: res.Proof.w}
	if old != nil && old.state.Epoch == res.State.Epoch && old.keys != nil {
		// No rotation since: the keys are the same, and unwrapping them
		// again would cost an HPKE open per epoch.
		v.keys = old.keys
		v.signers, v.signersSeq = old.signers, old.signersSeq
	} else if v.keys, err = c.epochKeys(ctx, res.State); err != nil {
		return nil, err
	}
	rc.mu.Lock()
	if rc.groups == nil {
		rc.groups = map[coffer.GroupID]*groupView{}
	}
	rc.groups[g] = v
	rc.mu.Unlock()
	return v, nil
}

// writeView is a fresh view of g to write under: with every member
// checked, since the content is shared with them all and a member whose
// identity is not proven blocks a write (keyConflicts). A reader's sync
// checks fewer (memberscope.go); the cached view keeps its state.
func (c *Client) writeView(ctx context.Context, g coffer.GroupID) (*groupView, error) {
	v, err := c.view(ctx, g, true)
	if err != nil {
		return nil, err
	}
	s, err := c.checkEveryMember(ctx, v.state, v.proof)
	if err != nil || s == v.state {
		return v, err
	}
	rc := &c.resources
	rc.mu.Lock()
	defer rc.mu.Unlock()
	w := *v
	w.state = s
	return &w, nil
}

// signerKey returns the signing key author had at epoch, from the verified
// log. The common case, a current member who joined by then, needs only
// the state; an author who left (or left and came back) needs the add
// commits, which are fetched and verified from the genesis once.
func (c *Client) signerKey(ctx context.Context, v *groupView, author coffer.AccountID, epoch uint64) (signer, error) {
	// A self-update (update-key) changes the key from its epoch on: the
	// current key signed what the member wrote from KeyEpoch, an older one
	// what it wrote before.
	if m := v.state.Members[author]; m != nil && m.KeyEpoch <= epoch {
		s := signer{epoch: m.JoinedEpoch, handle: m.Handle, key: m.SigningKey, from: m.KeyEpoch, keysHash: m.KeysHash}
		if v.state.Suite == coffer.SuiteV2 {
			s.key = nil
			return c.resolveSigner(ctx, author, s)
		}
		return s, nil
	}
	rc := &c.resources
	rc.mu.Lock()
	signers, seq := v.signers, v.signersSeq
	rc.mu.Unlock()
	if signers == nil || seq < v.state.Seq {
		commits, err := c.History(ctx, v.state.Group)
		if err != nil {
			return signer{}, err
		}
		signers = map[coffer.AccountID][]signer{}
		for _, cm := range commits {
			for _, op := range cm.Ops {
				switch h := signers[op.Member]; op.Kind {
				case coffer.OpAdd:
					signers[op.Member] = append(h, signer{cm.Epoch, op.Handle, op.SigningKey, cm.Epoch, op.KeysHash, coffer.HybridPublicKey{}})
				case coffer.OpUpdateKey:
					// The verifier allows it only for a current member: the
					// added entry before it names the handle and join epoch.
					if n := len(h); n > 0 {
						signers[op.Member] = append(h, signer{h[n-1].epoch, h[n-1].handle, op.SigningKey, cm.Epoch, op.KeysHash, coffer.HybridPublicKey{}})
					}
				}
			}
		}
		rc.mu.Lock()
		v.signers, v.signersSeq = signers, uint64(len(commits))
		rc.mu.Unlock()
	}
	var found signer
	for _, s := range signers[author] {
		if s.from <= epoch {
			found = s
		}
	}
	if found.keysHash != ([32]byte{}) {
		return c.resolveSigner(ctx, author, found)
	}
	if found.key == nil {
		return signer{}, coffer.Security("header", fmt.Errorf("the log has no signing key of %s at epoch %d", author, epoch))
	}
	return found, nil
}

// resolveSigner fills in the hybrid key of a suite v2 signer from the keys
// its hash names, fetched from the server and checked against the hash,
// the author and the handle.
func (c *Client) resolveSigner(ctx context.Context, author coffer.AccountID, s signer) (signer, error) {
	if err := c.fetchMemberKeys(ctx, [][32]byte{s.keysHash}); err != nil {
		return signer{}, err
	}
	kc := &c.memberKeys
	kc.mu.Lock()
	src := coffer.MemberKeyMap{}
	if k := kc.m[s.keysHash]; k != nil {
		src[s.keysHash] = k
	}
	kc.mu.Unlock()
	k, err := coffer.ResolveMemberKeys(src, s.keysHash, author, s.handle)
	if err != nil {
		return signer{}, coffer.Security("header", err)
	}
	s.key, s.hybrid = nil, k.SigningKey
	return s, nil
}

// resourceKey names a resource within its group. Versions are tracked per
// (group, resource): a resource id is chosen by its creator, so another
// group could publish the same id at a high version to make real reads
// here look like a rollback.
type resourceKey struct {
	g  coffer.GroupID
	id coffer.ResourceID
}

func resourceVersionKey(k resourceKey) string {
	return "resource/" + k.g.String() + "/" + k.id.String() + "/version"
}

// seenVersion returns the highest version of a resource this device verified.
func (c *Client) seenVersion(g coffer.GroupID, id coffer.ResourceID) (uint64, error) {
	k := resourceKey{g, id}
	rc := &c.resources
	rc.mu.Lock()
	v, ok := rc.seen[k]
	rc.mu.Unlock()
	if ok {
		return v, nil
	}
	b, err := c.ks.Get(resourceVersionKey(k))
	switch {
	case errors.Is(err, ErrNotFound):
		v = 0 // remembered too, so the next read skips the key store
	case err != nil:
		return 0, err
	default:
		if v, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			return 0, fmt.Errorf("clientlib: stored resource version is corrupt: %w", err)
		}
	}
	rc.mu.Lock()
	if rc.seen == nil {
		rc.seen = map[resourceKey]uint64{}
	}
	rc.seen[k] = max(rc.seen[k], v)
	v = rc.seen[k]
	if len(rc.raises[k]) == 0 {
		rc.noteBaseline(k, v)
	}
	rc.mu.Unlock()
	return v, nil
}

// sawVersion records that version of a resource was verified, persisting it
// when it is the highest yet, so a restart does not forget it. The check and
// the write happen under one lock: concurrent reads finish in any order, and
// a lower version must never overwrite a higher one on disk.
func (c *Client) sawVersion(g coffer.GroupID, id coffer.ResourceID, version uint64) error {
	if _, err := c.seenVersion(g, id); err != nil {
		return err
	}
	k := resourceKey{g, id}
	c.ksMu.Lock()
	defer c.ksMu.Unlock()
	rc := &c.resources
	rc.mu.Lock()
	highest := rc.seen[k]
	rc.mu.Unlock()
	if version <= highest {
		return nil
	}
	if err := c.ks.Put(resourceVersionKey(k), strconv.AppendUint(nil, version, 10)); err != nil {
		return err
	}
	rc.mu.Lock()
	if version > rc.seen[k] {
		rc.seen[k] = version
		rc.noteRaise(k, version)
	}
	rc.mu.Unlock()
	return nil
}

// verified is a resource whose header and metadata passed every check.
type verified struct {
	header *coffer.ResourceHeader
	res    *Resource
	key    groupkey.EpochKey
	locked bool
}

// metaBinding binds metadata to one version of one resource.
func metaBinding(id coffer.ResourceID, version uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), id[:]...), version)
}

// verifyResource checks a resource the server returned for group g (and,
// unless want is zero, resource want):
//   - the header parses and names g and want, and the server's fields agree;
//   - its author had the writer role at its epoch in the verified log, and
//     the signature verifies under the key the log records for them then;
//   - the metadata hashes to the signed MetaHash and opens under the epoch
//     key for this resource id and version;
//   - the version is not below one this device verified before;
//   - for a read of one resource (want set), the log holds the version as
//     the resource's current one, by a writer at the head in force when it
//     was logged (checkLogged).
//
// The content hash and size are checked while the content streams.
func (c *Client) verifyResource(ctx context.Context, g coffer.GroupID, want coffer.ResourceID, ar *api.Resource) (*verified, error) {
	h, err := coffer.ParseResourceHeader(ar.Header.Body)
	if err != nil {
		return nil, coffer.Security("header", err)
	}
	switch {
	case h.Group != g:
		return nil, coffer.Security("header", fmt.Errorf("the header is for group %s, not %s", h.Group, g))
	case !want.IsZero() && h.Resource != want:
		return nil, coffer.Security("header", fmt.Errorf("asked for resource %s, got the header of %s", want, h.Resource))
	case ar.ID != h.Resource || ar.GroupID != h.Group || ar.Version != h.Version || ar.AuthorID != h.Author || ar.Epoch != h.Epoch:
		return nil, coffer.Security("header", errors.New("the server's description of the resource differs from its signed header"))
	}

	v, err := c.view(ctx, g, false)
	if err != nil {
		return nil, err
	}
	if !mayHaveWritten(v.state, h) {
		// The cached view may predate the author's promotion or the epoch:
		// catch up once before calling it forged.
		if v, err = c.view(ctx, g, true); err != nil {
			return nil, err
		}
		if !mayHaveWritten(v.state, h) {
			return nil, coffer.Security("header", fmt.Errorf("%s had no writer role at epoch %d of the verified log (role then: %s)",
				h.Author, h.Epoch, v.state.RoleAt(h.Author, h.Epoch)))
		}
	}
	// The view must be one the witnesses vouched for within the freshness
	// window; a cached view whose proof aged out is synced and proven again.
	proof, fresh := c.cachedProof(v.state)
	if !fresh {
		if v, err = c.view(ctx, g, true); err != nil {
			return nil, err
		}
		if proof, fresh = c.cachedProof(v.state); !fresh {
			return nil, stale("no fresh witnessed proof of the head of group %s", g)
		}
		if !mayHaveWritten(v.state, h) {
			return nil, coffer.Security("header", fmt.Errorf("%s had no writer role at epoch %d of the verified log (role then: %s)",
				h.Author, h.Epoch, v.state.RoleAt(h.Author, h.Epoch)))
		}
	}
	author, err := c.signerKey(ctx, v, h.Author, h.Epoch)
	if err != nil {
		return nil, err
	}
	if err := c.verifySignature(author, ar.Header); err != nil {
		return nil, coffer.Security("header", err)
	}
	if err := checkResourceSizes(h, nil); err != nil {
		return nil, err
	}
	if sha256.Sum256(ar.Meta) != h.MetaHash {
		return nil, coffer.Security("meta", errors.New("the metadata is not the one the author signed"))
	}
	seen, err := c.seenVersion(h.Group, h.Resource)
	if err != nil {
		return nil, err
	}
	if h.Version < c.seenWhenAsked(ctx, resourceKey{h.Group, h.Resource}, seen) {
		return nil, coffer.Security("rollback", fmt.Errorf("resource %s is served at version %d, this device has verified version %d",
			h.Resource, h.Version, seen))
	}

	out := &verified{header: h, res: &Resource{
		ID: h.Resource, Group: h.Group, Version: h.Version, Epoch: h.Epoch, Author: h.Author,
		AuthorHandle: author.handle, Created: time.UnixMilli(h.Created), ContentSize: h.ContentSize,
		ProofAge: proof.Age(),
	}}
	k, ok := v.keys[h.Epoch]
	if !ok && v.state.Epoch < h.Epoch {
		// Unreachable after mayHaveWritten, kept as a guard.
		return nil, coffer.Security("header", fmt.Errorf("epoch %d is beyond the verified log", h.Epoch))
	}
	if !ok {
		if v.state.ShareHistory {
			// Every member can reach every epoch's key through the history
			// links; a missing one was withheld.
			return nil, coffer.Security("history-link", fmt.Errorf("no key for epoch %d, although the group shares its history", h.Epoch))
		}
		// Without shared history a member holds keys only from the epoch
		// it joined. For an epoch in which the verified log shows this
		// device as a member, a missing key was withheld, not locked.
		if _, me, err := c.me(); err != nil {
			return nil, err
		} else if v.state.RoleAt(me, h.Epoch) > coffer.RoleNone {
			return nil, coffer.Security("wrap", fmt.Errorf("no key for epoch %d, in which this device was a member", h.Epoch))
		}
		out.locked, out.res.Locked = true, true
	} else {
		pt, err := groupkey.OpenMetadata(k, g, h.Epoch, coffer.LabelResourceMeta, metaBinding(h.Resource, h.Version), ar.Meta)
		if err != nil {
			return nil, coffer.Security("meta", err)
		}
		if err := json.Unmarshal(pt, &out.res.Meta); err != nil {
			return nil, coffer.Security("meta", fmt.Errorf("the author's metadata does not parse: %w", err))
		}
		if err := checkResourceSizes(h, &out.res.Meta); err != nil {
			return nil, err
		}
		out.key = k
	}
	if err := c.checkNotDeleted(ctx, h); err != nil {
		return nil, err
	}
	if !want.IsZero() {
		// A read of one resource (Head, Get, Replace, Delete) checks its
		// place in the log, after every check it can make alone and before
		// pinning the header; a listing shows the signed headers only.
		if err := c.checkLogged(ctx, v, h, ar.Header.Body); err != nil {
			return nil, err
		}
	}
	if err := c.pinHeader(h.Group, h.Resource, h.Version, ar.Header.Body); err != nil {
		return nil, err
	}
	if err := c.checkChain(h); err != nil {
		return nil, err
	}
	if err := c.sawVersion(h.Group, h.Resource, h.Version); err != nil {
		return nil, err
	}
	return out, nil
}

// maxVerifiedSignatures bounds the signature cache (about 3 MB).
const maxVerifiedSignatures = 1 << 14

// verifySignature checks the header signature under key, or finds that it
// did before.
func (c *Client) verifySignature(author signer, sh api.SignedHeader) error {
	key := []byte(author.key)
	if !author.hybrid.IsZero() {
		key = author.hybrid.Bytes()
	}
	hh := sha256.New()
	hh.Write(key)
	hh.Write(sh.Signature)
	hh.Write(sh.Body)
	id := [32]byte(hh.Sum(nil))
	rc := &c.resources
	rc.mu.Lock()
	_, ok := rc.verified[id]
	rc.mu.Unlock()
	if ok {
		return nil
	}
	// The group's suite picks the verifier (each refuses the other's
	// header version): hybrid in suite v2, Ed25519 in suite v1.
	signed := coffer.SignedHeader{Body: sh.Body, Signature: sh.Signature}
	if !author.hybrid.IsZero() {
		if _, err := signed.VerifyHybrid(author.hybrid); err != nil {
			return err
		}
	} else if _, err := signed.Verify(author.key); err != nil {
		return err
	}
	rc.mu.Lock()
	if rc.verified == nil || len(rc.verified) >= maxVerifiedSignatures {
		rc.verified = make(map[[32]byte]struct{})
	}
	rc.verified[id] = struct{}{}
	rc.mu.Unlock()
	return nil
}

func mayHaveWritten(s *coffer.GroupState, h *coffer.ResourceHeader) bool {
	return h.Epoch <= s.Epoch && s.RoleAt(h.Author, h.Epoch) >= coffer.RoleWriter
}

func resourcesPath(g coffer.GroupID) string { return "/v1/groups/" + g.String() + "/resources" }

func resourcePath(g coffer.GroupID, id coffer.ResourceID) string {
	return resourcesPath(g) + "/" + id.String()
}

// stream sends a request whose request or response body is streamed: no
// timeout other than ctx's. A 401 is retried once with a fresh token, but
// only without a body, which cannot be replayed.
func (c *Client) stream(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := c.accessToken(ctx)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
		if err != nil {
			return nil, err
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, unavailable("cannot reach the server", err)
		}
		if resp.StatusCode < 400 {
			return resp, nil
		}
		err = problemError(resp)
		resp.Body.Close()
		if body == nil && attempt == 0 && coffer.ErrorCode(err) == coffer.EUNAUTHORIZED {
			c.mu.Lock()
			c.access = ""
			c.mu.Unlock()
			continue
		}
		return nil, err
	}
}

// unavailable is an EUNAVAILABLE error that still wraps its cause, so that
// errors.Is(err, context.Canceled) keeps working for the caller.
func unavailable(what string, cause error) error {
	return fmt.Errorf("%w: %w", coffer.Errorf(coffer.EUNAVAILABLE, "%s: %v", what, cause), cause)
}

// Put encrypts and uploads a new resource in g, streaming: whatever the
// size, it holds a bounded amount of content in memory: one batch of
// plaintext and of sealed chunks (2 × GOMAXPROCS chunks of 64 KiB, at most
// 32), a small queue to the network, and 32 bytes of chunk hash per chunk
// (512 KiB for 1 GiB) for the list sent after the age file. The caller must
// be a writer.
//
// If the group's key rotates while the content streams, the server refuses
// the upload with ESTALEKEY; content read from r cannot be re-encrypted,
// so the caller retries Put with a fresh reader.
func (c *Client) Put(ctx context.Context, g coffer.GroupID, r io.Reader, meta Meta) (*Resource, error) {
	return c.PutWithOptions(ctx, g, r, meta, nil)
}

// PutWithOptions is Put with options.
func (c *Client) PutWithOptions(ctx context.Context, g coffer.GroupID, r io.Reader, meta Meta, opts *PutOptions) (*Resource, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	id := opts.ID
	if opts.Resume != nil {
		id = opts.Resume.Resource
	}
	if id.IsZero() {
		id = coffer.NewResourceID()
	}
	var up api.Upload
	start := func(ctx context.Context) error {
		return c.call(ctx, http.MethodPost, resourcesPath(g), true, api.CreateResourceRequest{ResourceID: id}, &up)
	}
	return c.write(ctx, g, id, 1, [32]byte{}, start, &up, r, meta, opts)
}

// Replace uploads a new version of resource id, which must be at version
// ifVersion on the server (optimistic concurrency: EPRECONDITION if another
// writer replaced it first). With ifVersion 0, the current version is
// fetched and verified first. Only the author of the current version or an
// admin may replace it.
func (c *Client) Replace(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, ifVersion uint64, r io.Reader, meta Meta, opts *PutOptions) (*Resource, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	if ifVersion == 0 {
		cur, err := c.Head(ctx, g, id)
		if err != nil {
			return nil, err
		}
		ifVersion = cur.Version
	}
	prev, err := c.replacedHeader(ctx, g, id, ifVersion)
	if err != nil {
		return nil, err
	}
	var up api.Upload
	start := func(ctx context.Context) error {
		resp, err := c.stream(ctx, http.MethodPost, resourcePath(g, id)+"/versions", nil,
			http.Header{"If-Match": {etag(ifVersion)}, "Accept": {"application/json"}})
		if err != nil {
			return err
		}
		return readResponse(resp, &up)
	}
	return c.write(ctx, g, id, ifVersion+1, prev, start, &up, r, meta, opts)
}

// replacedHeader returns the HeaderHash of version of resource id, which a
// replace names as its Prev: the pin of a version this device verified, or
// else the current version's, fetched and verified now.
func (c *Client) replacedHeader(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, version uint64) ([32]byte, error) {
	d, ok, err := c.pinned(g, id, version)
	if err != nil || ok {
		return d, err
	}
	cur, err := c.Head(ctx, g, id)
	if err != nil {
		return d, err
	}
	if cur.Version != version {
		return d, coffer.Errorf(coffer.EPRECONDITION, "the resource is at version %d: fetch it again and retry", cur.Version)
	}
	d, ok, err = c.pinned(g, id, version)
	if err == nil && !ok {
		err = fmt.Errorf("clientlib: version %d of resource %s was verified but not pinned", version, id)
	}
	return d, err
}

// The upload pipe's queue: what an upload holds in memory, whatever its
// size (about 768 KiB).
const uploadQueue, uploadBuffer = 4, 128 << 10

var errUploadEnded = errors.New("clientlib: the upload request ended")

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// write runs an upload: start it, stream the content, seal the metadata,
// sign the header, finalize. An upload that fails after it started is
// aborted, so the server drops whatever it received.
func (c *Client) write(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, version uint64, prev [32]byte,
	start func(context.Context) error, up *api.Upload, r io.Reader, meta Meta, opts *PutOptions) (*Resource, error) {
	idn, me, err := c.me()
	if err != nil {
		return nil, err
	}
	if meta.Name == "" || len(meta.Name) > 1024 || !utf8.ValidString(meta.Name) {
		return nil, coffer.Errorf(coffer.EINVALID, "a resource name must be 1 to 1024 bytes of UTF-8")
	}
	if len(meta.App) > 0 && !json.Valid(meta.App) {
		return nil, coffer.Errorf(coffer.EINVALID, "Meta.App must be valid JSON")
	}
	// A fresh view: content must go under the current epoch key, or the
	// server refuses it after the whole stream.
	v, err := c.writeView(ctx, g)
	if err != nil {
		return nil, err
	}
	if m := v.state.Members[me]; m == nil || m.Role < coffer.RoleWriter {
		return nil, coffer.Errorf(coffer.EFORBIDDEN, "writing resources needs the writer role in this group")
	}
	if err := checkNotPending(v.state); err != nil {
		return nil, err
	}
	if err := c.checkKeyConflicts(v.state); err != nil {
		return nil, err
	}
	if st := opts.Resume; st != nil {
		if st.Group != g || st.Resource != id || st.Version != version {
			return nil, coffer.Errorf(coffer.EINVALID, "the upload to resume is for version %d of resource %s in group %s", st.Version, st.Resource, st.Group)
		}
		*up = api.Upload{ID: st.Upload, ResourceID: st.Resource, GroupID: st.Group, Version: st.Version, Epoch: st.Epoch}
	} else if err := start(ctx); err != nil {
		return nil, err
	}
	if up.ResourceID != id || up.GroupID != g || up.Version != version || up.ID.IsZero() {
		return nil, coffer.Security("upload", errors.New("the server started an upload for another resource or version"))
	}
	if up.Epoch > v.state.Epoch {
		// The key rotated since the sync: catch up before streaming, or
		// the server refuses the upload at the end. The server's epoch is
		// only a hint; the key used is always one the log verifies.
		if v, err = c.writeView(ctx, g); err != nil {
			c.abortUpload(ctx, up.ID)
			return nil, err
		}
		if err := c.checkKeyConflicts(v.state); err != nil {
			c.abortUpload(ctx, up.ID)
			return nil, err
		}
	}
	res, err := c.upload(ctx, v, idn, me, up, prev, r, meta, opts)
	if err != nil {
		// An upload whose caller keeps its state for a later run stays,
		// after a failure of the network, for that run to resume.
		if opts.OnState == nil || coffer.ErrorCode(err) != coffer.EUNAVAILABLE {
			c.abortUpload(ctx, up.ID)
		}
		return nil, inGroup(err, g, id)
	}
	return res, nil
}

// abortUpload asks the server to drop an upload, best effort, on a context
// of its own: ctx may be why the upload failed. If it cannot, the server's
// collector drops the upload later.
func (c *Client) abortUpload(ctx context.Context, id coffer.UploadID) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = c.call(actx, http.MethodDelete, "/v1/uploads/"+id.String(), true, nil, nil)
}

func (c *Client) upload(ctx context.Context, v *groupView, idn *Identity, me coffer.AccountID, up *api.Upload, prev [32]byte, r io.Reader, meta Meta, opts *PutOptions) (*Resource, error) {
	g, id, epoch := up.GroupID, up.ResourceID, v.state.Epoch
	if err := checkNotPending(v.state); err != nil {
		return nil, err
	}
	k, ok := v.keys[epoch]
	if !ok {
		return nil, coffer.Security("wrap", fmt.Errorf("no key for the current epoch %d", epoch))
	}
	if st := opts.Resume; st != nil && st.Epoch != epoch {
		return nil, coffer.Errorf(coffer.ESTALEKEY, "the group's key rotated since the upload started: upload the content again")
	}
	up.Epoch = epoch
	enc, plain, err := c.sendContent(ctx, up, k, r, meta, opts)
	if err != nil {
		return nil, err
	}
	root, chunks, size := enc.Sum()
	if meta.Size != 0 && meta.Size != plain {
		return nil, coffer.Errorf(coffer.EINVALID, "read %d bytes of content, but Meta.Size says %d", plain, meta.Size)
	}
	meta.Size = plain
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	if len(mb) > maxMetaPlaintext {
		return nil, coffer.Errorf(coffer.ETOOLARGE, "the metadata encodes to %d bytes; the limit is %d", len(mb), maxMetaPlaintext)
	}
	sealed := groupkey.SealMetadata(k, g, epoch, coffer.LabelResourceMeta, metaBinding(id, up.Version), mb)
	h := &coffer.ResourceHeader{
		Resource: id, Group: g, Epoch: epoch, Author: me, Version: up.Version, Prev: prev,
		TreeRoot: root, Chunks: chunks, ContentSize: size, MetaHash: sha256.Sum256(sealed), Created: time.Now().UnixMilli(),
	}
	var sh coffer.SignedHeader
	if v.state.Suite == coffer.SuiteV2 {
		_, hk, err := c.ownMemberKeys(idn)
		if err != nil {
			return nil, err
		}
		sh = coffer.SignResourceHeaderHybrid(h, hk)
	} else {
		sh = coffer.SignResourceHeader(h, idn.signing)
	}
	var ar api.Resource
	err = c.call(ctx, http.MethodPost, "/v1/uploads/"+up.ID.String()+"/finalize", true,
		api.FinalizeRequest{Header: api.SignedHeader{Body: sh.Body, Signature: sh.Signature}, Meta: sealed}, &ar)
	if err != nil {
		return nil, err
	}
	if string(ar.Header.Body) != string(sh.Body) || ar.ID != id || ar.Version != up.Version {
		return nil, coffer.Security("upload", errors.New("the server stored a different header"))
	}
	if err := c.pinHeader(g, id, up.Version, sh.Body); err != nil {
		return nil, err
	}
	if err := c.sawVersion(g, id, up.Version); err != nil {
		return nil, err
	}
	return &Resource{ID: id, Group: g, Version: up.Version, Epoch: epoch, Author: me, AuthorHandle: idn.Handle(),
		Created: time.UnixMilli(h.Created), ContentSize: size, Meta: meta}, nil
}

// Head fetches and verifies one resource's header and metadata, without
// its content.
func (c *Client) Head(ctx context.Context, g coffer.GroupID, id coffer.ResourceID) (*Resource, error) {
	vr, err := c.head(ctx, g, id)
	if err != nil {
		return nil, err
	}
	return vr.res, nil
}

func (c *Client) head(ctx context.Context, g coffer.GroupID, id coffer.ResourceID) (*verified, error) {
	vr, _, err := c.headWith(ctx, g, id, false)
	return vr, err
}

// headWith is head, asking the server to send small content along
// (?include=content) when withContent is set. The content, if any, is
// returned unverified: it is proven against the verified header as it is
// decrypted (openInline).
func (c *Client) headWith(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, withContent bool) (*verified, []byte, error) {
	ctx = c.markDeletions(c.beginRead(ctx))
	// The server's latest checkpoint comes along, for the log checks.
	path := resourcePath(g, id) + "?include=checkpoint"
	if withContent {
		path += ",content"
	}
	ar, err := c.getResourceAnswer(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	vr, err := c.verifyResource(withOfferedCheckpoint(ctx, ar.Checkpoint), g, id, ar)
	if err != nil {
		return nil, nil, inGroup(err, g, id)
	}
	return vr, ar.Content, nil
}

// ResourceReader streams a resource's plaintext, verified as it goes. Read
// returns only plaintext of chunks proven against the author's signed chunk
// tree: nothing of a chunk is returned before that chunk is proven.
//
// What the caller has seen when an error arrives: the plaintext of chunks
// 0 … k-1 exactly (64 KiB each), all genuine, and nothing of chunk k, the
// one the error names (a *coffer.SecurityError wrapping a
// *content.ChunkError for tampering or truncation; EUNAVAILABLE for a
// failed connection). The content is then incomplete, so a caller that
// needs the whole resource discards what it read. io.EOF means the whole
// content is exactly what the author signed.
type ResourceReader struct {
	ctx      context.Context
	res      *Resource
	body     io.ReadCloser
	pt       io.Reader
	done     int64
	want     int64 // the plaintext bytes this read returns in all
	progress func(done, total int64)
	resumer  // how to continue after a failed connection
	err      error
}

// Resource returns the verified description of what is being read.
func (rr *ResourceReader) Resource() *Resource { return rr.res }

// Len is how many bytes of plaintext the reader returns in all: the
// resource's size, or the length of the range asked for.
func (rr *ResourceReader) Len() int64 { return rr.want }

func (rr *ResourceReader) Read(p []byte) (int, error) {
	if rr.err != nil {
		return 0, rr.err
	}
	// Data the transport already buffered would still arrive after ctx
	// ends; a cancelled read must stop now.
	if err := rr.ctx.Err(); err != nil {
		rr.err = unavailable("reading resource content", err)
		return 0, rr.err
	}
	n, err := rr.pt.Read(p)
	if n == 0 && err != nil && err != io.EOF {
		n, err = rr.resume(p, err)
	}
	rr.done += int64(n)
	if rr.progress != nil && n > 0 {
		rr.progress(rr.done, rr.want)
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if rr.done != rr.want {
			// The author signed metadata that contradicts the content.
			rr.err = inGroup(coffer.Security("resource", fmt.Errorf("%d bytes of content, the signed metadata says %d; discard them", rr.done, rr.want)), rr.res.Group, rr.res.ID)
			return n, rr.err
		}
		rr.err = io.EOF
		return n, io.EOF
	default:
		rr.err = inGroup(contentError(err), rr.res.Group, rr.res.ID)
		return 0, rr.err
	}
}

// Close releases the connection. It is safe to call more than once.
func (rr *ResourceReader) Close() error { return rr.body.Close() }

// fileKeyObserver reports the age file key of every resource this client
// encrypts or decrypts to Options.SecretObserver, as "file-key". age makes
// the file key inside content.Encrypt, so only content can see it.
func (c *Client) fileKeyObserver() []content.Option {
	if c.opts.SecretObserver == nil {
		return nil
	}
	return []content.Option{content.WithFileKeyObserver(func(fileKey []byte) { c.observeSecret("file-key", fileKey) })}
}

// contentError turns an error of content.Decrypt's reader into a security
// error when the ciphertext was wrong, and an EUNAVAILABLE error when the
// connection failed.
func contentError(err error) error {
	for _, e := range []error{content.ErrWrongKey, content.ErrTampered, content.ErrTruncated, content.ErrChunkHashes, content.ErrRange} {
		if errors.Is(err, e) {
			return coffer.Security("resource", err)
		}
	}
	return unavailable("reading resource content", err)
}

// Get verifies resource id of g and returns a reader of its plaintext. The
// header is checked before any content is read (see verifyResource); the
// content, as it streams. The caller must Close the reader.
func (c *Client) Get(ctx context.Context, g coffer.GroupID, id coffer.ResourceID) (*ResourceReader, error) {
	return c.GetWithOptions(ctx, g, id, nil)
}

// GetWithOptions is Get with options.
func (c *Client) GetWithOptions(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, opts *GetOptions) (*ResourceReader, error) {
	if opts == nil {
		opts = &GetOptions{}
	}
	for attempt := 0; ; attempt++ {
		vr, small, err := c.headWith(ctx, g, id, true)
		if err != nil {
			return nil, err
		}
		if vr.locked {
			return nil, coffer.Errorf(coffer.EFORBIDDEN,
				"resource %s is from epoch %d, before you joined; this group does not share its history", id, vr.header.Epoch)
		}
		if small != nil {
			// The content came with the header: one request per read.
			pt, err := c.openInline(vr, small)
			if err != nil {
				return nil, inGroup(err, g, id)
			}
			return &ResourceReader{ctx: ctx, res: vr.res, body: http.NoBody, pt: pt, want: vr.res.Meta.Size, progress: opts.Progress}, nil
		}
		// If-Match pins the content to the version whose header was just
		// verified; a replace in between answers 412 and we start over.
		body, pt, err := c.openContent(ctx, g, id, vr)
		if coffer.ErrorCode(err) == coffer.EPRECONDITION && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, inGroup(err, g, id)
		}
		return &ResourceReader{ctx: ctx, res: vr.res, body: body, pt: pt, want: vr.res.Meta.Size, progress: opts.Progress,
			resumer: resumer{c: c, vr: vr}}, nil
	}
}

// ResourcePage is one page of List.
type ResourcePage struct {
	Resources []*Resource
	// NextCursor continues the listing; empty on the last page.
	NextCursor string
}

// ListPage returns up to limit (at most 1000) resources of g after cursor,
// newest first, each verified with decrypted metadata and no content.
func (c *Client) ListPage(ctx context.Context, g coffer.GroupID, cursor string, limit int) (*ResourcePage, error) {
	p := newPager[coffer.ResourceID]("resources of group "+g.String(), limit)
	p.start(cursor)
	page, err := c.listPage(ctx, g, cursor, limit, p)
	if err != nil {
		return nil, err
	}
	if _, err := p.next(page.NextCursor, len(page.Resources)); err != nil {
		return nil, err
	}
	return page, nil
}

// listPage is ListPage, its page checked by p, which may have seen earlier pages.
func (c *Client) listPage(ctx context.Context, g coffer.GroupID, cursor string, limit int, p *pager[coffer.ResourceID]) (*ResourcePage, error) {
	if limit <= 0 || limit > 1000 {
		return nil, coffer.Errorf(coffer.EINVALID, "limit must be between 1 and 1000")
	}
	path := resourcesPath(g) + "?limit=" + strconv.Itoa(limit)
	if cursor != "" {
		path += "&cursor=" + url.QueryEscape(cursor)
	}
	var list api.ResourceList
	ctx = c.markDeletions(c.beginRead(ctx))
	if err := c.call(ctx, http.MethodGet, path, true, nil, &list); err != nil {
		return nil, err
	}
	if err := p.page(len(list.Resources), limit); err != nil {
		return nil, err
	}
	page := &ResourcePage{NextCursor: list.NextCursor}
	for i := range list.Resources {
		vr, err := c.verifyResource(ctx, g, coffer.ResourceID{}, &list.Resources[i])
		if err == errDeletedMeanwhile {
			// Deleted by this device after the page was sent: it still
			// counts as the page's item, but is not listed.
			if err := p.item(list.Resources[i].ID); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, inGroup(err, g, list.Resources[i].ID)
		}
		if err := p.item(vr.res.ID); err != nil {
			return nil, err
		}
		page.Resources = append(page.Resources, vr.res)
	}
	return page, nil
}

// List returns every resource of g, newest first, each verified with
// decrypted metadata and no content. The server could still withhold
// resources from a listing; that is outside what clients can detect today
// (see docs/THREAT_MODEL.md).
func (c *Client) List(ctx context.Context, g coffer.GroupID) ([]*Resource, error) {
	p := newPager[coffer.ResourceID]("resources of group "+g.String(), bound(c.opts.MaxResources, defaultMaxResources))
	var out []*Resource
	cursor := ""
	for {
		page, err := c.listPage(ctx, g, cursor, 1000, p)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Resources...)
		more, err := p.next(page.NextCursor, len(page.Resources))
		if err != nil {
			return nil, err
		}
		if !more {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// Delete deletes resource id of g. Only its author (while a writer) or an
// admin may. The current version is fetched and verified first, and the
// delete is a tombstone signed by this device naming that version, which
// the server logs: readers then refuse the resource if the server keeps
// serving it.
func (c *Client) Delete(ctx context.Context, g coffer.GroupID, id coffer.ResourceID) error {
	idn, me, err := c.me()
	if err != nil {
		return err
	}
	cur, err := c.Head(ctx, g, id)
	if err != nil {
		return err
	}
	v, err := c.view(ctx, g, false)
	if err != nil {
		return err
	}
	// The tombstone's version follows the group's suite, which the
	// genesis fixed: the server and every replay take no other.
	d := &coffer.ResourceDelete{Group: g, Resource: id, Version: cur.Version, Deleter: me}
	var sd coffer.SignedDelete
	if v.state.Suite == coffer.SuiteV2 {
		_, hk, err := c.ownMemberKeys(idn)
		if err != nil {
			return err
		}
		sd = coffer.SignResourceDeleteHybrid(d, hk)
	} else {
		sd = coffer.SignResourceDelete(d, idn.signing)
	}
	if err := c.call(ctx, http.MethodDelete, resourcePath(g, id), true,
		api.DeleteResourceRequest{Delete: api.SignedHeader{Body: sd.Body, Signature: sd.Signature}}, nil); err != nil {
		return err
	}
	if err := c.sawDeleted(g, id, cur.Version); err != nil {
		return err
	}
	// Done only once the log holds the tombstone: from then on every
	// reader refuses the resource, whatever the server serves.
	return c.proveTombstone(ctx, sd)
}
