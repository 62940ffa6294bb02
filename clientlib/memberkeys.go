package clientlib

import (
	"context"
	"net/http"
	"sync"

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
	for len(missing) > 0 {
		n := min(len(missing), maxMemberKeysPerRequest)
		batch := missing[:n]
		missing = missing[n:]
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
		kc.mu.Lock()
		for h, k := range got {
			kc.m[h] = k
		}
		kc.mu.Unlock()
	}
	return nil
}

// memberKeySource returns the keys source for verifying commits as the
// continuation of s (nil for a genesis): nil for a suite v1 group, which
// carries its keys; otherwise a snapshot of the cache after fetching the
// keys of every current member of s and every key an op of commits names.
// The verifier checks each key it uses against its hash.
func (c *Client) memberKeySource(ctx context.Context, s *coffer.GroupState, commits []coffer.SignedCommit) (coffer.MemberKeySource, error) {
	var hashes [][32]byte
	v2 := s != nil && s.Suite == coffer.SuiteV2
	if v2 {
		for _, m := range s.Members {
			hashes = append(hashes, m.KeysHash)
		}
	}
	for _, sc := range commits {
		if len(sc.Body) == 0 || sc.Body[0] != coffer.SuiteV2 {
			continue
		}
		v2 = true
		cm, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			continue // the verifier reports it
		}
		for _, op := range cm.Ops {
			if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
				hashes = append(hashes, op.KeysHash)
			}
		}
	}
	if !v2 {
		return nil, nil
	}
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

// verifyChain is coffer.VerifyChainWith with the member keys a suite v2
// chain needs, fetched first.
func (c *Client) verifyChain(ctx context.Context, trusted *coffer.GroupState, commits []coffer.SignedCommit) (*coffer.GroupState, error) {
	src, err := c.memberKeySource(ctx, trusted, commits)
	if err != nil {
		return nil, err
	}
	return coffer.VerifyChainWith(trusted, commits, src)
}
