package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Suite v2 member keys: what the hashes in suite v2 commits name. The
// store writes them with the account links that set a user key; clients
// fetch them here and check each against its hash, and the server resolves
// them itself to verify suite v2 commits (groups.go).

// memberKeysBody bounds a lookup's body: MaxMemberKeysLookup hashes of 44
// base64 characters, quoted and separated, with room for whitespace. A
// body this small is read whole before the count and sizes are checked.
const memberKeysBody = 96 << 10

// memberKeyStore returns the member keys store, or EUNAVAILABLE.
func (s *Server) memberKeyStore() (coffer.MemberKeyService, error) {
	if s.memberKeys == nil {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "suite v2 member keys are not available on this server")
	}
	return s.memberKeys, nil
}

func (s *Server) handleMemberKeys(w http.ResponseWriter, r *http.Request) {
	mk, err := s.memberKeyStore()
	if err != nil {
		Error(w, r, err)
		return
	}
	var req api.MemberKeysRequest
	if err := decode(w, r, memberKeysBody, &req); err != nil {
		Error(w, r, err)
		return
	}
	if len(req.Hashes) == 0 || len(req.Hashes) > coffer.MaxMemberKeysLookup {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "hashes must hold 1 to %d member keys hashes, not %d", coffer.MaxMemberKeysLookup, len(req.Hashes)))
		return
	}
	hashes := make([][32]byte, len(req.Hashes))
	for i, h := range req.Hashes {
		if len(h) != len(hashes[i]) {
			Error(w, r, coffer.Errorf(coffer.EINVALID, "hashes[%d] is %d bytes, a member keys hash is 32", i, len(h)))
			return
		}
		copy(hashes[i][:], h)
	}
	found, err := mk.MemberKeysByHash(r.Context(), hashes)
	if err != nil {
		Error(w, r, err)
		return
	}
	resp := api.MemberKeysResponse{Keys: make([][]byte, 0, len(found))}
	for _, k := range found {
		resp.Keys = append(resp.Keys, k.Encoding)
	}
	respond(w, http.StatusOK, resp)
}

// memberKeySource resolves the hashes a suite v2 commit may need from the
// store, in one query, into a coffer.MemberKeyMap: the author's keys (the
// entry's, or for a genesis the keys its first op names) and the keys of
// every add and update-key op. The verifier checks each against its hash
// and member, so the map only has to hold what the store has. An encoding
// the store holds but that no longer parses is left out, which the verifier
// then reports as unavailable keys.
func (s *Server) memberKeySource(ctx context.Context, prev *coffer.GroupState, c *coffer.Commit) (coffer.MemberKeyMap, error) {
	mk, err := s.memberKeyStore()
	if err != nil {
		return nil, err
	}
	seen := map[[32]byte]bool{}
	var hashes [][32]byte
	want := func(h [32]byte) {
		if !seen[h] {
			seen[h] = true
			hashes = append(hashes, h)
		}
	}
	if prev != nil && prev.Suite == coffer.SuiteV2 {
		if m := prev.Members[c.Author]; m != nil {
			want(m.KeysHash)
		}
	}
	for _, op := range c.Ops {
		if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
			want(op.KeysHash)
		}
	}
	return memberKeyMap(ctx, mk, hashes)
}

// memberKeyMap reads the stored keys of hashes into a MemberKeyMap, in one
// query, leaving out an encoding that no longer parses (the verifier then
// reports those keys as unavailable).
func memberKeyMap(ctx context.Context, mk coffer.MemberKeyService, hashes [][32]byte) (coffer.MemberKeyMap, error) {
	src := coffer.MemberKeyMap{}
	if len(hashes) == 0 {
		return src, nil
	}
	found, err := mk.MemberKeysByHash(ctx, hashes)
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		if k, err := coffer.ParseMemberKeys(f.Encoding); err == nil {
			src.Add(k)
		}
	}
	return src, nil
}

// memberKeysConflict makes the verifier's member-keys refusal (keys the
// store does not have, or another account's) the server's: 409 with rule
// member-keys, as the store refuses keys that are not the account's
// current ones. The account chains are what the commit conflicts with: the
// client re-reads them and names the keys they end with.
func memberKeysConflict(err error) error {
	var ce *coffer.Error
	if errors.As(err, &ce) && ce.Rule == coffer.RuleMemberKeys {
		return &coffer.Error{Code: coffer.ECONFLICT, Rule: ce.Rule, Message: ce.Message}
	}
	return err
}

// isMemberKeysRefusal tells a member-keys refusal from a lost race for the
// head, which is ECONFLICT too.
func isMemberKeysRefusal(err error) bool {
	var ce *coffer.Error
	return errors.As(err, &ce) && ce.Rule == coffer.RuleMemberKeys
}

// checkOpKeys resolves, in next (the state after the suite v2 commit c),
// the keys of every member c adds or updates, as a client does before it
// wraps to them: the verifier checks an author's keys, not an added
// member's, and GroupState.MemberKeys requires the keys to hash to the
// entry's reference and to name the member's account and handle. Whether
// they are the account's current keys the store checks in the commit's
// transaction.
func checkOpKeys(next *coffer.GroupState, c *coffer.Commit, src coffer.MemberKeySource) error {
	for _, op := range c.Ops {
		if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
			continue
		}
		if next.Members[op.Member] == nil {
			continue // left or removed by a later op; nothing is wrapped to it
		}
		if _, err := next.MemberKeys(op.Member, src); err != nil {
			return err
		}
	}
	return nil
}
