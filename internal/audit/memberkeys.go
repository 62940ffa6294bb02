package audit

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/cofferhq/coffer"
)

// Suite v2 groups name their members' keys by hash (coffer.MemberKeys).
// The db audit resolves those hashes only from the account chains it
// verified, never from the server's member_keys table, which it checks
// against the chains instead.

// keyRecord is what the audit keeps of a user key's member keys: the
// encoding, and the fields the add checks read without parsing it.
type keyRecord struct {
	account coffer.AccountID
	handle  coffer.Handle
	enc     []byte
}

// keySource is the coffer.MemberKeySource one group's chain is verified
// with: it parses each key once for the group, and is safe for the
// verifier's concurrent calls.
type keySource struct {
	recs   map[[32]byte]*keyRecord // read only
	parsed sync.Map                // [32]byte → *coffer.MemberKeys
}

func (s *keySource) MemberKeys(h [32]byte) (*coffer.MemberKeys, error) {
	if k, ok := s.parsed.Load(h); ok {
		return k.(*coffer.MemberKeys), nil
	}
	rec := s.recs[h]
	if rec == nil {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "no verified account chain set member keys %x", h[:8])
	}
	k, err := coffer.ParseMemberKeys(rec.enc)
	if err != nil {
		return nil, err
	}
	s.parsed.Store(h, k)
	return k, nil
}

// signatureSize is the signature length a commit body's suite calls for.
func signatureSize(body []byte) int {
	if c, err := coffer.ParseCommit(body); err == nil && c.Suite == coffer.SuiteV2 {
		return coffer.HybridSignatureSize
	}
	return coffer.SignatureSize
}

// checkAddedMemberKeys checks every add and update-key of suite v2 commit
// c, in a chain that verified: the keys it names are a user key that the
// member's own account's verified chain set, under the member's handle.
// The verifier checks this for the author and its update-key; an add names
// keys no one signs with, so only this check finds an add of keys the
// server made up or took from another account. The db audit does not know
// when each commit was made, so keys of a retired user key are not a
// finding here; the witnesses, which replay the log in order, refuse them.
func (a *dbAudit) checkAddedMemberKeys(obj string, c *coffer.Commit) {
	cobj := fmt.Sprintf("%s commit %d", obj, c.Seq)
	for _, op := range c.Ops {
		if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
			continue
		}
		what := fmt.Sprintf("adds %s (%s)", op.Member, op.Handle)
		if op.Kind == coffer.OpUpdateKey {
			what = fmt.Sprintf("updates %s", op.Member)
		}
		k := a.memberKeys[op.KeysHash]
		switch {
		case k == nil:
			a.r.Fail("member-keys", cobj, "%s with member keys %x that belong to no account: no verified account chain set them", what, op.KeysHash[:8])
		case k.account != op.Member:
			a.r.Fail("member-keys", cobj, "%s with the member keys of account %s", what, k.account)
		case op.Kind == coffer.OpAdd && k.handle != op.Handle:
			a.r.Fail("member-keys", cobj, "%s with member keys that name handle %s", what, k.handle)
		}
	}
}

// signedByAccount reports whether suite v2 commit c verifies under the
// hybrid signing key of some user key of its author's verified chain.
func (a *dbAudit) signedByAccount(c *coffer.Commit, sc coffer.SignedCommit) bool {
	acct := a.accounts[c.Author]
	if acct == nil {
		return false
	}
	src := &keySource{recs: a.memberKeys}
	for _, h := range acct.memberKeys {
		if k, err := src.MemberKeys(h); err == nil && k.SigningKey.Verify(coffer.LabelCommit, sc.Body, sc.Signature) == nil {
			return true
		}
	}
	return false
}

// checkMemberKeys compares the server's member_keys table, from which
// clients resolve the hashes in suite v2 commits, with the verified
// account chains: each row is a canonical encoding under its own hash, of
// the account and generation its columns name, and a user key that
// account's chain set. A row of keys no chain set is a key the server can
// hand out for a member (clients check the hash, so it must also be in a
// commit to matter: checkAddedMemberKeys finds that). A user key missing
// from the table cannot be resolved by clients: a note, not a finding,
// since it costs availability only.
func (a *dbAudit) checkMemberKeys(ctx context.Context) error {
	rows, err := newStream(ctx, a.conns[1], `SELECT hash, account_id, generation, keys FROM member_keys ORDER BY account_id, generation`)
	if err != nil {
		return err
	}
	defer rows.close()
	seen := map[[32]byte]bool{}
	for rows.ok {
		var (
			hash, enc []byte
			id        coffer.AccountID
			gen       int64
		)
		if err := rows.rows.Scan(&hash, &id, &gen, &enc); err != nil {
			return err
		}
		rows.next()
		a.r.count("member_keys", 1)
		obj := fmt.Sprintf("member keys of account %s generation %d", id, gen)
		k, err := coffer.ParseMemberKeys(enc)
		if err != nil {
			a.r.Fail("member-keys", obj, "keys: %s", coffer.ErrorMessage(err))
			continue
		}
		h := coffer.MemberKeysHash(enc)
		if !bytes.Equal(hash, h[:]) {
			a.r.Fail("member-keys", obj, "hash is not the hash of the keys")
			continue
		}
		if k.Account != id || k.Generation != uint64(gen) {
			a.r.Fail("member-keys", obj, "the keys are those of account %s generation %d", k.Account, k.Generation)
			continue
		}
		if a.memberKeys[h] == nil {
			a.r.Fail("member-keys", obj, "keys that belong to no account: the account's verified chain never set them")
			continue
		}
		seen[h] = true
	}
	if err := rows.close(); err != nil {
		return err
	}
	missing := 0
	for h := range a.memberKeys {
		if !seen[h] {
			missing++
		}
	}
	if missing > 0 {
		a.r.Note("%d user keys set by verified account chains are not in member_keys: suite v2 groups cannot refer to them", missing)
	}
	return nil
}

// hashAt is a suite v2 member's keys hash from epoch from on.
type hashAt struct {
	from uint64
	hash [32]byte
}

// recordSignersV2 keeps the keys history of every member of suite v2
// group g: an add names the keys from its epoch, an update-key replaces
// them from its epoch. Resource headers are held to the keys at their
// epoch.
func (a *dbAudit) recordSignersV2(g coffer.GroupID, chain []coffer.SignedCommit) {
	hist := map[coffer.AccountID][]hashAt{}
	for _, sc := range chain {
		c, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			continue
		}
		for _, op := range c.Ops {
			if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
				hist[op.Member] = append(hist[op.Member], hashAt{c.Epoch, op.KeysHash})
			}
		}
	}
	if a.v2Signers == nil {
		a.v2Signers = map[coffer.GroupID]map[coffer.AccountID][]hashAt{}
	}
	a.v2Signers[g] = hist
}

// headerKeys parses member keys for the resources of one group at a time
// (the rows come ordered by group), so it holds at most a group's keys.
type headerKeys struct {
	parsed map[[32]byte]*coffer.MemberKeys
}

// verifyHeader verifies a suite v2 group's resource header with the
// hybrid key the author's entry named at epoch, and returns the header,
// or why it fails.
func (hk *headerKeys) verifyHeader(a *dbAudit, hist []hashAt, epoch uint64, sh coffer.SignedHeader) (*coffer.ResourceHeader, string) {
	var h [32]byte
	found := false
	for _, k := range hist {
		if k.from <= epoch {
			h, found = k.hash, true
		}
	}
	if !found {
		return nil, fmt.Sprintf("the author had no keys in the group at epoch %d", epoch)
	}
	k := hk.parsed[h]
	if k == nil {
		rec := a.memberKeys[h]
		if rec == nil {
			return nil, fmt.Sprintf("the author's keys at epoch %d belong to no account", epoch)
		}
		var err error
		if k, err = coffer.ParseMemberKeys(rec.enc); err != nil {
			return nil, "the author's member keys do not parse: " + coffer.ErrorMessage(err)
		}
		if hk.parsed == nil || len(hk.parsed) >= 64 {
			hk.parsed = map[[32]byte]*coffer.MemberKeys{}
		}
		hk.parsed[h] = k
	}
	hdr, err := sh.VerifyHybrid(k.SigningKey)
	if err != nil {
		return nil, fmt.Sprintf("header signature does not verify under the author's hybrid key at epoch %d: %s", epoch, coffer.ErrorMessage(err))
	}
	return hdr, ""
}
