package witness

// SetSnapshotEvery sets the journal size that triggers a snapshot, for
// tests of both halves of the state.
func SetSnapshotEvery(n int64) { snapshotEvery = n }
