package clientlib

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// Freshness: one view for everyone.
//
// Inclusion proofs (log.go) show that what the server served is in the log,
// not that it is current: a server could keep showing a writer the head from
// before a removal, or show two admins two heads. Every checkpoint also
// commits to the heads map (translog/headsmap.go), which holds each group's
// current head, and independent witnesses cosign a checkpoint only after
// replaying every leaf and recomputing that map. So before this client
// relies on a group's head (before it encrypts content, wraps a key or signs
// a commit, and for every read) it
//
//   - fetches the server's newest cosigned checkpoint and requires it to be
//     signed by the pinned log key, to carry valid cosignatures of at least
//     Options.Quorum of the witnesses in Options.Witnesses, and to be no
//     older, as that quorum vouches (Cosigned.Oldest), than
//     Options.MaxStaleness; otherwise it fails with ESTALECHECKPOINT, which
//     the caller may retry, and does nothing;
//   - requires it to be consistent with every checkpoint this device holds
//     (a contradiction is a fork: a *coffer.SecurityError naming both views,
//     never retried);
//   - proves the group's entry in its map, and requires it to be exactly the
//     head this device verified (seq and commit hash). A server that,
//     asked after the entry was fetched, still serves an older head is
//     hiding commits (an honest one stores a commit before it logs it), and
//     a different hash at the same seq is a fork: both are security
//     errors. A newer entry (a commit landed meanwhile) makes the client
//     sync again. An entry older than the verified head (the witnesses
//     lag) is waited for, up to
//     Options.LogWait, then ESTALECHECKPOINT.
//
// What withholding can still achieve is bounded by the freshness window: a
// server can show a client a checkpoint up to MaxStaleness old. A proof is
// cached per group with the checkpoint it was made against, so a read
// costs nothing extra while that checkpoint is fresh; a sync (which every
// write starts with) fetches the current cosigned checkpoint, one small
// request when nothing changed.

const (
	ksLogCosigned = "log/cosigned"
	// defaultMaxStaleness is Options.MaxStaleness's default; cofferd re-signs
	// a quiet tree every few seconds, so witnesses refresh far more often.
	defaultMaxStaleness = 5 * time.Minute
	// maxFutureSkew tolerates witness clocks ahead of this device's.
	maxFutureSkew = 5 * time.Minute
	// cosignedPath serves the newest checkpoint with the witnesses'
	// cosignatures cofferd collected.
	cosignedPath = "/v1/log/checkpoint"
)

// HeadProof is how this device last proved a group's head: through the
// heads map of a checkpoint that a quorum of witnesses cosigned.
type HeadProof struct {
	// Seq and Head are the proven head.
	Seq  uint64
	Head [32]byte
	// CheckpointSize is the log size of the checkpoint.
	CheckpointSize int64
	// Witnessed is the freshness of that checkpoint: the time the quorum's
	// oldest attestation names (the log's signing time with quorum 0).
	Witnessed time.Time
	// Witnesses names the witnesses whose cosignatures verified.
	Witnesses []string

	w *witnessed
}

// Age is how old the proof is now.
func (p HeadProof) Age() time.Duration {
	return max(time.Since(p.Witnessed), 0)
}

// witnessed is a cosigned checkpoint this device verified.
type witnessed struct {
	note  string
	cp    translog.Checkpoint
	at    time.Time
	names []string
}

// freshState caches the newest verified cosigned checkpoint and each
// group's head proof.
type freshState struct {
	mu     sync.Mutex
	last   *witnessed
	proofs map[coffer.GroupID]HeadProof
	// entries caches each group's proven map entry with the map it is in,
	// so a sync against an unchanged checkpoint asks for no proof.
	entries map[coffer.GroupID]cachedEntry
	// idents and provenIDs: identities checked, and proven in a witnessed
	// map (identityproof.go).
	idents    map[coffer.AccountID]knownIdentity
	provenIDs map[coffer.AccountID][32]byte
	// provenEntries holds group state entries whose identity is in
	// provenIDs: the same entry needs no hash to be found proven again.
	provenEntries map[*coffer.Member]bool
	unlogged      map[coffer.AccountID][32]byte
}

type cachedEntry struct {
	mapSize int64
	mapRoot [32]byte
	entry   translog.MapEntry
}

// setupWitnesses parses Options.Witnesses and checks Options.Quorum.
func (o *Options) setupWitnesses() ([]*translog.WitnessVerifier, error) {
	if o.Quorum < 0 {
		return nil, coffer.Errorf(coffer.EINVALID, "Options.Quorum must not be negative")
	}
	if o.MaxStaleness < 0 {
		return nil, coffer.Errorf(coffer.EINVALID, "Options.MaxStaleness must not be negative")
	}
	if o.MaxStaleness == 0 {
		o.MaxStaleness = defaultMaxStaleness
	}
	var out []*translog.WitnessVerifier
	names := map[string]bool{}
	for _, k := range o.Witnesses {
		w, err := translog.NewWitnessVerifier(k)
		if err != nil {
			return nil, coffer.Errorf(coffer.EINVALID, "Options.Witnesses: %v", err)
		}
		if names[w.Name()] {
			// Cosignatures are counted by name: two keys of one name would
			// let one witness count twice, or hide each other.
			return nil, coffer.Errorf(coffer.EINVALID, "Options.Witnesses names witness %q twice", w.Name())
		}
		names[w.Name()] = true
		out = append(out, w)
	}
	if o.Quorum == 0 && len(out) > 0 {
		o.Quorum = len(out)
	}
	if o.Quorum > len(out) {
		return nil, coffer.Errorf(coffer.EINVALID, "Options.Quorum is %d, but only %d witness keys are configured", o.Quorum, len(out))
	}
	return out, nil
}

// stale is the retryable error of a checkpoint that is too old or carries
// too few cosignatures.
func stale(format string, args ...any) error {
	return coffer.Errorf(coffer.ESTALECHECKPOINT, format+"; nothing was written: retry later", args...)
}

func b64(h []byte) string { return base64.StdEncoding.EncodeToString(h) }

// viewOf names a checkpoint for an error: size, roots, time.
func viewOf(cp translog.Checkpoint) string {
	return fmt.Sprintf("log size %d root %s, heads map size %d root %s, signed at %s",
		cp.Size, b64(cp.Root[:]), cp.MapSize, b64(cp.MapRoot[:]), time.Unix(cp.Time, 0).UTC().Format(time.RFC3339))
}

// forkError is the security error of two checkpoints that contradict each
// other, naming both. Its check is "log", like every failed log proof.
func forkError(held, shown translog.Checkpoint, err error) error {
	return coffer.Security("log", fmt.Errorf("fork: this device holds the checkpoint [%s]; the server now shows [%s], which contradicts it (%v): "+
		"the server showed different parties different logs", viewOf(held), viewOf(shown), err))
}

// fetchWitnessed fetches the server's cosigned checkpoint and checks it:
// the log's signature, the cosignatures, consistency with every checkpoint
// this device holds, the quorum and the freshness window, in that order (a
// fork is reported even by a stale checkpoint).
func (c *Client) fetchWitnessed(ctx context.Context) (*witnessed, error) {
	note, err := c.getText(ctx, cosignedPath)
	if err != nil {
		return nil, err
	}
	c.fresh.mu.Lock()
	last := c.fresh.last
	c.fresh.mu.Unlock()
	if last != nil && last.note == note {
		return last, c.checkFresh(last)
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	v, err := c.logVerifier(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := translog.OpenCosigned(note, v, c.witnesses)
	if err != nil {
		return nil, logSecurity("%v", err)
	}
	w := &witnessed{note: note, cp: cs.Checkpoint}
	for name := range cs.Witnessed {
		w.names = append(w.names, name)
	}
	slices.Sort(w.names)
	at, quorate := cs.Oldest(c.opts.Quorum)
	// A held cosigned checkpoint that the new one contradicts is a fork
	// whatever the new one's cosignatures.
	if held, err := c.storedCosigned(v); err != nil {
		return nil, err
	} else if held != nil {
		if err := c.proveConsistent(ctx, held.Checkpoint, cs.Checkpoint); err != nil {
			return nil, err
		}
	}
	if err := c.adopt(ctx, v, cs.Checkpoint, note); err != nil {
		return nil, err
	}
	if !quorate {
		return nil, stale("the log's checkpoint of size %d carries valid cosignatures of %d witnesses (%s) of the %d this device requires",
			cs.Checkpoint.Size, len(w.names), strings.Join(w.names, ", "), c.opts.Quorum)
	}
	w.at = at
	if err := c.checkFresh(w); err != nil {
		return nil, err
	}
	if err := c.keepCosigned(v, cs, note); err != nil {
		return nil, err
	}
	c.fresh.mu.Lock()
	if c.fresh.last == nil || c.fresh.last.cp.Size <= w.cp.Size {
		c.fresh.last = w
	}
	c.fresh.mu.Unlock()
	return w, nil
}

// checkFresh fails with ESTALECHECKPOINT when w is older than
// Options.MaxStaleness.
func (c *Client) checkFresh(w *witnessed) error {
	age := time.Since(w.at)
	if age > c.opts.MaxStaleness {
		return stale("the newest checkpoint the witnesses cosigned (log size %d) is %v old, more than the %v this device accepts",
			w.cp.Size, age.Round(time.Second), c.opts.MaxStaleness)
	}
	if -age > maxFutureSkew {
		return stale("the checkpoint's cosignatures are dated %v in the future: check this device's clock", (-age).Round(time.Second))
	}
	return nil
}

// storedCosigned returns the largest cosigned checkpoint this device kept.
func (c *Client) storedCosigned(v *translog.Verifier) (*translog.Cosigned, error) {
	b, err := c.ks.Get(ksLogCosigned)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cs, err := translog.OpenCosigned(string(b), v, c.witnesses)
	if err != nil {
		return nil, logSecurity("the cosigned checkpoint this device stored does not verify: %v", err)
	}
	return &cs, nil
}

// keepCosigned stores cs when it is at least as large as the one held, so
// that a later checkpoint must be consistent with it.
func (c *Client) keepCosigned(v *translog.Verifier, cs translog.Cosigned, note string) error {
	held, err := c.storedCosigned(v)
	if err != nil {
		return err
	}
	if held != nil && held.Checkpoint.Size > cs.Checkpoint.Size {
		return nil
	}
	return c.ks.Put(ksLogCosigned, []byte(note))
}

// mapEntry proves key's entry in the heads map of cp. found is false when
// the server says the map has no entry for key.
func (c *Client) mapEntry(ctx context.Context, cp translog.Checkpoint, key translog.MapKey) (translog.MapEntry, bool, error) {
	es, found, err := c.mapEntries(ctx, cp, []translog.MapKey{key})
	if err != nil {
		return translog.MapEntry{}, false, err
	}
	return es[0], found[0], nil
}

// mapEntries proves the entries of up to logBatch keys in the heads map of
// cp, in order.
func (c *Client) mapEntries(ctx context.Context, cp translog.Checkpoint, keys []translog.MapKey) ([]translog.MapEntry, []bool, error) {
	entries, found := make([]translog.MapEntry, len(keys)), make([]bool, len(keys))
	if cp.Size == 0 {
		return entries, found, nil
	}
	req := api.MapProofsRequest{Size: cp.Size, Keys: make([]api.MapKeyRef, len(keys))}
	for i, k := range keys {
		req.Keys[i] = mapKeyRef(k)
	}
	var resp api.MapProofs
	if err := c.call(ctx, http.MethodPost, "/v1/log/map/proofs", false, req, &resp); err != nil {
		return nil, nil, err
	}
	if resp.Size != cp.Size || len(resp.Proofs) != len(keys) {
		return nil, nil, logSecurity("the server answered another map proof request (size %d, %d proofs) than the one for %s (and %d more) at size %d",
			resp.Size, len(resp.Proofs), keys[0], len(keys)-1, cp.Size)
	}
	for i, p := range resp.Proofs {
		if p.Index < 0 {
			if len(p.Entry) != 0 || len(p.Proof) != 0 {
				return nil, nil, logSecurity("the server answered both absent and an entry for %s", keys[i])
			}
			continue
		}
		proof, err := translog.BytesToHashes(p.Proof)
		if err != nil {
			return nil, nil, logSecurity("%v", err)
		}
		e, err := translog.CheckMapEntry(cp, keys[i], translog.MapProof{Index: p.Index, Entry: p.Entry, Proof: proof})
		if err != nil {
			return nil, nil, logSecurity("%v", err)
		}
		entries[i], found[i] = e, true
	}
	return entries, found, nil
}

func mapKeyRef(k translog.MapKey) api.MapKeyRef {
	r := api.MapKeyRef{Kind: k.Kind.String()}
	switch k.Kind {
	case translog.MapAccount:
		r.Account = &k.Account
	case translog.MapGroup:
		r.Group = &k.Group
	case translog.MapResource:
		r.Group, r.Resource = &k.Group, &k.Resource
	}
	return r
}

// groupHead is a group's entry in a witnessed heads map.
type groupHead struct {
	w     *witnessed
	entry translog.MapEntry
	found bool
}

func (h groupHead) describe() string {
	if !h.found {
		return fmt.Sprintf("no entry for the group in the heads map of the cosigned checkpoint [%s]", viewOf(h.w.cp))
	}
	return fmt.Sprintf("head seq %d hash %s (log leaf %d) in the heads map of the cosigned checkpoint [%s]",
		h.entry.Counter, b64(h.entry.Hash[:]), h.entry.LogIndex, viewOf(h.w.cp))
}

// witnessedHead fetches the current cosigned checkpoint and proves g's
// entry in its map, reusing the cached proof when the checkpoint is the one
// it was made against.
func (c *Client) witnessedHead(ctx context.Context, g coffer.GroupID) (groupHead, error) {
	w, err := c.fetchWitnessed(ctx)
	if err != nil {
		return groupHead{}, err
	}
	c.fresh.mu.Lock()
	ce, ok := c.fresh.entries[g]
	c.fresh.mu.Unlock()
	if ok && ce.mapSize == w.cp.MapSize && ce.mapRoot == w.cp.MapRoot {
		return groupHead{w: w, entry: ce.entry, found: true}, nil
	}
	e, found, err := c.mapEntry(ctx, w.cp, translog.GroupKey(g))
	if err != nil {
		return groupHead{}, err
	}
	if found {
		c.fresh.mu.Lock()
		if c.fresh.entries == nil {
			c.fresh.entries = map[coffer.GroupID]cachedEntry{}
		}
		c.fresh.entries[g] = cachedEntry{mapSize: w.cp.MapSize, mapRoot: w.cp.MapRoot, entry: e}
		c.fresh.mu.Unlock()
	}
	return groupHead{w: w, entry: e, found: found}, nil
}

// checkAgainst compares a verified state with the witnessed head: nil when
// they are the same head, errNewer when the map is ahead, errBehind when it
// lags, and a security error when they contradict.
func (h groupHead) checkAgainst(s *coffer.GroupState) error {
	switch {
	case !h.found || h.entry.Counter < s.Seq:
		return errMapBehind
	case h.entry.Counter > s.Seq:
		return errMapAhead
	case h.entry.Hash != s.Head:
		return coffer.Security("fork", fmt.Errorf("this device verified head seq %d hash %s of group %s, but the witnesses vouch for %s: "+
			"the server showed different members different histories", s.Seq, b64(s.Head[:]), s.Group, h.describe()))
	}
	return nil
}

var (
	errMapAhead  = errors.New("clientlib: the witnessed heads map is ahead of the verified head")
	errMapBehind = errors.New("clientlib: the witnessed heads map lags the verified head")
)

// checkCommitAt checks a verified commit at seq against the witnessed head
// when the map names that seq, so a fork is caught as soon as the server
// serves it, before any other check waits on it.
func (h groupHead) checkCommitAt(g coffer.GroupID, seq uint64, hash [32]byte) error {
	if !h.found || h.entry.Counter != seq || h.entry.Hash == hash {
		return nil
	}
	return coffer.Security("fork", fmt.Errorf("the server serves commit %d of group %s with hash %s, but the witnesses vouch for %s: "+
		"the server showed different members different histories", seq, g, b64(hash[:]), h.describe()))
}

// proveHead proves that s is the current head of its group in a fresh
// witnessed map. first is what the sync that verified s started from, reused
// when it already matches. While the witnesses lag behind s it waits, up to
// Options.LogWait; errMapAhead tells the caller to sync again.
func (c *Client) proveHead(ctx context.Context, s *coffer.GroupState, first groupHead) (HeadProof, error) {
	deadline := time.Now().Add(c.opts.LogWait)
	h := first
	for attempt := 0; ; attempt++ {
		if h.w == nil {
			var err error
			if h, err = c.witnessedHead(ctx, s.Group); err != nil {
				return HeadProof{}, err
			}
		}
		err := h.checkAgainst(s)
		if err == nil {
			p := HeadProof{Seq: s.Seq, Head: s.Head, CheckpointSize: h.w.cp.Size, Witnessed: h.w.at, Witnesses: h.w.names, w: h.w}
			c.fresh.mu.Lock()
			if c.fresh.proofs == nil {
				c.fresh.proofs = map[coffer.GroupID]HeadProof{}
			}
			if old, ok := c.fresh.proofs[s.Group]; !ok || old.Seq < p.Seq || (old.Seq == p.Seq && !old.Witnessed.After(p.Witnessed)) {
				c.fresh.proofs[s.Group] = p
			}
			c.fresh.mu.Unlock()
			return p, nil
		}
		if err != errMapBehind {
			return HeadProof{}, err
		}
		if time.Now().After(deadline) {
			what := "has no entry for it"
			if h.found {
				what = fmt.Sprintf("shows seq %d", h.entry.Counter)
			}
			return HeadProof{}, stale("this device verified head seq %d of group %s, but after %v the newest checkpoint the witnesses cosigned (log size %d) %s",
				s.Seq, s.Group, c.opts.LogWait, h.w.cp.Size, what)
		}
		d := min(time.Duration(10<<min(attempt, 5))*time.Millisecond, 250*time.Millisecond)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return HeadProof{}, coffer.Errorf(coffer.ECANCELED, "waiting for the witnesses: %v", ctx.Err())
		}
		h = groupHead{}
	}
}

// cachedProof returns the cached head proof of g when it proves s and is
// within the freshness window.
func (c *Client) cachedProof(s *coffer.GroupState) (HeadProof, bool) {
	c.fresh.mu.Lock()
	p, ok := c.fresh.proofs[s.Group]
	c.fresh.mu.Unlock()
	if !ok || p.Seq != s.Seq || p.Head != s.Head || p.Age() > c.opts.MaxStaleness {
		return HeadProof{}, false
	}
	return p, true
}

// HeadProof returns the latest proof of g's head this client made, and
// whether there is one. Its Age says how old the view it proves is.
func (c *Client) HeadProof(g coffer.GroupID) (HeadProof, bool) {
	c.fresh.mu.Lock()
	defer c.fresh.mu.Unlock()
	p, ok := c.fresh.proofs[g]
	return p, ok
}
