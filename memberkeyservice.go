package coffer

import "context"

// StoredMemberKeys is one generation of a suite v2 account's member keys as
// the server stores them: the canonical MemberKeys encoding under its hash,
// with the account and generation it names, which the store reads out of
// the verified account state that produced it.
type StoredMemberKeys struct {
	Hash       [32]byte
	Encoding   []byte
	Account    AccountID
	Generation uint64
}

// MaxMemberKeysLookup caps the hashes of one member keys lookup.
const MaxMemberKeysLookup = 1000

// MemberKeyService reads the member keys the store keeps for every
// generation of every suite v2 account. The store writes them itself, in
// the transaction of the account link that sets a user key, and refuses,
// in a commit's transaction, a suite v2 add or update-key whose keys are
// not the named account's current ones, and a suite v2 commit signed with
// keys its author has retired unless it is the author's self-update
// (GroupAppend.AuthorKeys): RuleMemberKeys, ECONFLICT.
type MemberKeyService interface {
	// MemberKeysByHash returns the stored keys among hashes, in any
	// order; unknown hashes are absent.
	MemberKeysByHash(ctx context.Context, hashes [][32]byte) ([]StoredMemberKeys, error)
}
