package store

// Test hooks for the log append benchmark: it swaps what runs in the
// registration transaction to compare the log against no log and against a
// counter row.
var (
	AfterAccountCreated = &afterAccountCreated
	LogIdentity         = logIdentity
	AppendLeaf          = appendLeaf
)

// MapError is the one pgx-to-code mapping, for its table test.
var MapError = mapError
