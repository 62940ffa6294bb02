package clientlib

import (
	"context"
	"net/http"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer"
)

// Suite v2 groups name their members' keys by hash (coffer.MemberKeys).
// The client fetches the keys from the server, which stores the keys every
// account chain published, and checks each answer against the hash that
// the commits (signed by the group's admins and by the members themselves)
// carry: a server can withhold keys, which fails the verification, but
// cannot substitute them. Checked keys are cached for the client's
// lifetime; a hash names the same keys forever.

// maxMemberKeysPerRequest is the server's limit on one POST /v1/member-keys.
const maxMemberKeysPerRequest = 1000

// memberKeyCache holds keys already checked against their hash.
type memberKeyCache struct {
	mu sync.Mutex
	m  map[[32]byte]*coffer.MemberKeys
}

// memberKeysRequest and memberKeysResponse are the bodies of
// POST /v1/member-keys.
type memberKeysRequest struct {
	Hashes [][]byte `json:"hashes"`
}

type memberKeysResponse struct {
	Keys [][]byte `json:"keys"`
}

// fetchMemberKeys makes sure the cache holds the keys of every hash in
// hashes, asking the server for those it lacks. Keys the server does not
// return stay missing: the verifier then fails with RuleMemberKeys, which
// names the member. An answer that does not parse, or that no requested
// hash names, is a security error: the server made it up.
func (c *Client) fetchMemberKeys(ctx context.Context, hashes [][32]byte) error {
	kc := &c.memberKeys
	kc.mu.Lock()
	if kc.m == nil {
		kc.m = make(map[[32]byte]*coffer.MemberKeys)
	}
	var missing [][32]byte
	seen := make(map[[32]byte]bool, len(hashes))
	for _, h := range hashes {
		if _, ok := kc.m[h]; !ok && !seen[h] {
			seen[h] = true
			missing = append(missing, h)
		}
	}
	kc.mu.Unlock()
	// Several batches at once: each answer's keys are parsed (an X-Wing
	// key check each), on every core.
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(maxIdentityFetches)
	for start := 0; start < len(missing); start += maxMemberKeysPerRequest {
		batch := missing[start:min(start+maxMemberKeysPerRequest, len(missing))]
		eg.Go(func() error { return c.fetchMemberKeysBatch(gctx, batch) })
	}
	return eg.Wait()
}

// fetchMemberKeysBatch asks for one batch of fetchMemberKeys.
func (c *Client) fetchMemberKeysBatch(ctx context.Context, batch [][32]byte) error {
	req := memberKeysRequest{Hashes: make([][]byte, len(batch))}
	want := make(map[[32]byte]bool, len(batch))
	for i, h := range batch {
		req.Hashes[i] = h[:]
		want[h] = true
	}
	var resp memberKeysResponse
	if err := c.call(ctx, http.MethodPost, "/v1/member-keys", true, req, &resp); err != nil {
		return err
	}
	if len(resp.Keys) > len(batch) {
		return coffer.Security("member-keys", coffer.Errorf(coffer.EINVALID, "the server returned %d member keys for %d hashes", len(resp.Keys), len(batch)))
	}
	got := make(map[[32]byte]*coffer.MemberKeys, len(resp.Keys))
	for _, enc := range resp.Keys {
		k, err := coffer.ParseMemberKeys(enc)
		if err != nil {
			return coffer.Security("member-keys", err)
		}
		h := coffer.MemberKeysHash(enc)
		if !want[h] {
			return coffer.Security("member-keys", coffer.Errorf(coffer.EINVALID, "the server returned member keys that no requested hash names"))
		}
		got[h] = k
	}
	kc := &c.memberKeys
	kc.mu.Lock()
	for h, k := range got {
		kc.m[h] = k
	}
	kc.mu.Unlock()
	return nil
}

// memberKeySource returns the keys source for verifying commits as the
// continuation of s (nil for a genesis): nil for a suite v1 group, which
// carries its keys; otherwise a snapshot of the cache after fetching the
// keys the verifier will ask for, those of each commit's author as the
// chain so far names them and the new keys of each update-key. The keys
// of members who are added but never author anything are not fetched: the
// verifier does not check them, and withMemberKeysIn fetches those of the
// members in a check's scope afterwards.
// The verifier checks each key it uses against its hash.
func (c *Client) memberKeySource(ctx context.Context, s *coffer.GroupState, commits []coffer.SignedCommit) (coffer.MemberKeySource, error) {
	hashes, v2 := memberKeyHashes(s, commits)
	if !v2 {
		return nil, nil
	}
	return c.cachedMemberKeys(ctx, hashes)
}

// cachedMemberKeys fetches the keys of hashes this client lacks and
// returns a snapshot of the cache's entries for hashes.
func (c *Client) cachedMemberKeys(ctx context.Context, hashes [][32]byte) (coffer.MemberKeyMap, error) {
	if err := c.fetchMemberKeys(ctx, hashes); err != nil {
		return nil, err
	}
	kc := &c.memberKeys
	kc.mu.Lock()
	defer kc.mu.Unlock()
	snap := make(coffer.MemberKeyMap, len(hashes))
	for _, h := range hashes {
		if k := kc.m[h]; k != nil {
			snap[h] = k
		}
	}
	return snap, nil
}

// memberKeyHashes lists the hashes of the member keys the verifier asks
// for when it verifies commits as the continuation of s (see
// memberKeySource), with repeats; v2 is false for a suite v1 chain, which
// needs none. The stored tail keeps the same keys (statetail.go).
func memberKeyHashes(s *coffer.GroupState, commits []coffer.SignedCommit) (hashes [][32]byte, v2 bool) {
	v2 = s != nil && s.Suite == coffer.SuiteV2
	latest := map[coffer.AccountID][32]byte{}
	current := func(id coffer.AccountID) ([32]byte, bool) {
		if h, ok := latest[id]; ok {
			return h, true
		}
		if s != nil {
			if m := s.Members[id]; m != nil && m.KeysHash != ([32]byte{}) {
				return m.KeysHash, true
			}
		}
		return [32]byte{}, false
	}
	for _, sc := range commits {
		if len(sc.Body) == 0 || sc.Body[0] != coffer.SuiteV2 && sc.Body[0] != coffer.CommitVersionTree {
			continue
		}
		v2 = true
		cm, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			continue // the verifier reports it
		}
		if cm.Seq == 1 && len(cm.Ops) > 0 {
			latest[cm.Ops[0].Member] = cm.Ops[0].KeysHash
		}
		if h, ok := current(cm.Author); ok {
			hashes = append(hashes, h)
		}
		for _, op := range cm.Ops {
			switch op.Kind {
			case coffer.OpAdd:
				latest[op.Member] = op.KeysHash
			case coffer.OpUpdateKey:
				latest[op.Member] = op.KeysHash
				hashes = append(hashes, op.KeysHash)
			}
		}
	}
	return hashes, v2
}

// verifyChain is coffer.VerifyChainKeysOnUse with the member keys a suite v2
// chain needs, fetched first. A chain that fails verification is a
// security error ("chain"); failing to fetch the keys is returned as it
// is: a network error stays one, and a lying answer is already a security
// error of its own.
func (c *Client) verifyChain(ctx context.Context, trusted *coffer.GroupState, commits []coffer.SignedCommit) (*coffer.GroupState, error) {
	src, err := c.memberKeySource(ctx, trusted, commits)
	if err != nil {
		return nil, err
	}
	s, err := coffer.VerifyChainKeysOnUse(trusted, commits, src)
	if err != nil {
		return nil, coffer.Security("chain", err)
	}
	return s, nil
}

// withMemberKeysIn resolves the keys of the members of a suite v2 state in
// scope (coffer.GroupState.WithMemberKeysOf), fetching those this client
// lacks, so that wrapping and the contact and log checks see each member's
// keys. A suite v1 state is returned as it is. Keys the server withholds,
// or that are not the ones the entry names, are a security error.
//
// Members outside scope keep their keys or their lack of them
// (memberscope.go): pass allMembers unless the state was checked before.
func (c *Client) withMemberKeysIn(ctx context.Context, s *coffer.GroupState, scope *memberScope) (*coffer.GroupState, error) {
	if s == nil || s.Suite != coffer.SuiteV2 {
		return s, nil
	}
	var (
		ids    []coffer.AccountID
		hashes [][32]byte
	)
	for id, m := range scope.members(s) {
		if m.Keys == nil {
			ids, hashes = append(ids, id), append(hashes, m.KeysHash)
		}
	}
	if len(ids) == 0 {
		// Most syncs: a commit changes a few entries, the rest keep the
		// keys they were resolved with.
		return s, nil
	}
	src, err := c.cachedMemberKeys(ctx, hashes)
	if err != nil {
		return nil, err
	}
	r, err := s.WithMemberKeysOf(src, ids)
	if err != nil {
		return nil, coffer.Security("member-keys", err)
	}
	return r, nil
}

// ownMemberKeys returns this account's suite v2 member keys and its hybrid
// user signing key, after putting the keys in the cache (they are checked
// against nothing: this device made them). It fails for a suite v1
// identity.
func (c *Client) ownMemberKeys(id *Identity) (*coffer.MemberKeys, *coffer.HybridPrivateKey, error) {
	if id.acct == nil || id.hybrid == nil {
		return nil, nil, coffer.Errorf(coffer.EINVALID, "suite v2 groups need a suite v2 account (coffer init creates one)")
	}
	k := id.acct.MemberKeys()
	if !k.SigningKey.Equal(id.hybrid.Public()) {
		return nil, nil, coffer.Errorf(coffer.EINTERNAL, "this device's user signing key is not its account's current one")
	}
	c.cacheMemberKeys(k)
	return k, id.hybrid, nil
}

// signCommit signs commit, a successor of a state of suite suite: with the
// account's hybrid user signing key in suite v2, with the identity's
// Ed25519 key in suite v1.
func (c *Client) signCommit(id *Identity, suite uint8, commit *coffer.Commit) (coffer.SignedCommit, error) {
	if suite != coffer.SuiteV2 {
		return coffer.SignCommit(commit, id.signing), nil
	}
	if id.hybrid == nil {
		return coffer.SignedCommit{}, coffer.Errorf(coffer.EINVALID, "suite v2 groups need a suite v2 account (coffer init creates one)")
	}
	return coffer.SignCommitHybrid(commit, id.hybrid), nil
}

// applyOwn applies a commit this device made to a copy of s, with the keys
// the commit needs, and resolves the new state's member keys.
func (c *Client) applyOwn(ctx context.Context, s *coffer.GroupState, sc coffer.SignedCommit) (*coffer.GroupState, error) {
	src, err := c.memberKeySource(ctx, s, []coffer.SignedCommit{sc})
	if err != nil {
		return nil, err
	}
	next := s.Clone()
	if err := next.ApplyWith(sc, src); err != nil {
		return nil, err
	}
	// From a state whose members passed the sync's checks, only the
	// entries the commit changed can lack their keys (memberscope.go).
	scope := allMembers
	if e, ok := c.checked.lookup(s); ok {
		scope = newMemberScope(false).with(e.pending).add(next)
	}
	r, err := c.withMemberKeysIn(ctx, next, scope)
	if err != nil {
		return nil, err
	}
	c.checked.derive(s, r, next, r)
	return r, nil
}

// cacheMemberKeys puts keys this device verified itself (a contact's chain)
// in the cache.
func (c *Client) cacheMemberKeys(k *coffer.MemberKeys) {
	kc := &c.memberKeys
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if kc.m == nil {
		kc.m = make(map[[32]byte]*coffer.MemberKeys)
	}
	kc.m[k.Hash()] = k
}
