package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/cofferhq/coffer"
)

// checkAccountChains replays every stored suite v2 account chain with the
// account-chain verifier, and checks that the accounts row holds what the
// chain says: its head (chain_seq), the verifier's state after it
// (chain_state) and its identity (the identity column, from which the key
// columns were checked against above). A link the server made up, edited,
// dropped or reordered fails the replay; an identity the server swapped
// fails the comparison.
func (a *dbAudit) checkAccountChains(ctx context.Context) error {
	rows, err := a.conns[0].Query(ctx, `SELECT id, chain_seq, chain_state, identity FROM accounts WHERE chain_seq > 0 OR chain_state IS NOT NULL`)
	if err != nil {
		return err
	}
	heads := map[coffer.AccountID]*chainRow{}
	for rows.Next() {
		var (
			id coffer.AccountID
			cr chainRow
		)
		if err := rows.Scan(&id, &cr.seq, &cr.state, &cr.identity); err != nil {
			rows.Close()
			return err
		}
		heads[id] = &cr
	}
	if err := rows.Err(); err != nil {
		return err
	}

	links, err := newStream(ctx, a.conns[1], `SELECT account_id, seq, body, signature, device_signature, hash FROM account_links ORDER BY account_id, seq`)
	if err != nil {
		return err
	}
	defer links.close()
	seen := map[coffer.AccountID]bool{}
	for links.ok {
		var (
			id    coffer.AccountID
			chain []coffer.SignedLink
		)
		for links.ok {
			var (
				lid            coffer.AccountID
				seq            int64
				body, sig, dev []byte
				hash           []byte
			)
			if err := links.rows.Scan(&lid, &seq, &body, &sig, &dev, &hash); err != nil {
				return err
			}
			if len(chain) > 0 && lid != id {
				break
			}
			id = lid
			links.next()
			a.r.count("account_links", 1)
			sl := coffer.SignedLink{Body: body, Signature: sig, DeviceSignature: dev}
			obj := fmt.Sprintf("account %s link %d", id, seq)
			if seq != int64(len(chain))+1 {
				a.r.Fail("account-chain", obj, "links are not numbered 1, 2, 3, …: expected seq %d", len(chain)+1)
			}
			if h := sl.Hash(); !bytes.Equal(hash, h[:]) {
				a.r.Fail("account-chain", obj, "stored hash is not the link's hash")
			}
			chain = append(chain, sl)
		}
		if err := links.err; err != nil {
			return err
		}
		seen[id] = true
		a.checkAccountChain(id, chain, heads[id])
	}
	if err := links.err; err != nil {
		return err
	}
	for id := range heads {
		if !seen[id] {
			a.r.Fail("account-chain", "account "+id.String(), "accounts row says it has a chain, and no link is stored")
		}
	}
	return nil
}

// chainRow is what an accounts row says of its chain.
type chainRow struct {
	seq      int64
	state    []byte
	identity []byte
}

// checkAccountChain replays one account's links and compares the result
// with its row. It records every identity the chain set, for the log check.
func (a *dbAudit) checkAccountChain(id coffer.AccountID, chain []coffer.SignedLink, row *chainRow) {
	obj := "account " + id.String()
	info := a.accounts[id]
	if row == nil || info == nil {
		a.r.Fail("account-chain", obj, "links stored for an account whose row has no chain (chain_seq 0)")
		return
	}
	a.r.count("account_chains", 1)
	info.chainIdentities = map[[32]byte]bool{}
	st := &coffer.AccountState{Account: id}
	for i, sl := range chain {
		next, err := coffer.VerifyAccountChain(st, []coffer.SignedLink{sl})
		if err != nil {
			rule := ""
			if e, ok := err.(*coffer.Error); ok && e.Rule != "" {
				rule = " (rule " + e.Rule + ")"
			}
			a.r.Fail("account-chain", fmt.Sprintf("%s link %d", obj, i+1), "chain does not verify: %s%s", coffer.ErrorMessage(err), rule)
			return
		}
		if next.UserKeyGeneration != st.UserKeyGeneration {
			info.chainIdentities[sha256.Sum256(next.Identity().Marshal())] = true
			info.chainSigningKeys = append(info.chainSigningKeys, next.Identity().SigningKey)
			k := next.MemberKeys()
			h := k.Hash()
			a.memberKeys[h] = &keyRecord{account: k.Account, handle: k.Handle, enc: k.Marshal()}
			info.memberKeys = append(info.memberKeys, h)
		}
		st = next
	}
	if uint64(row.seq) != st.Seq {
		a.r.Fail("account-chain", obj, "accounts.chain_seq is %d, the verified chain's head is %d", row.seq, st.Seq)
	}
	if want, err := st.MarshalBinary(); err != nil || !bytes.Equal(want, row.state) {
		a.r.Fail("account-chain", obj, "accounts.chain_state is not the verifier's state after the chain")
	}
	if !bytes.Equal(row.identity, st.Identity().Marshal()) {
		a.r.Fail("account-chain", obj, "the account's identity is not the one its chain sets (handle, user signing key, user key)")
	}
}
