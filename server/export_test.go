package server

// SetStreamWrapsFrom sets the number of wraps from which an append streams
// them, and returns the function that restores it.
func SetStreamWrapsFrom(n int) (restore func()) {
	old := streamWrapsFrom
	streamWrapsFrom = n
	return func() { streamWrapsFrom = old }
}
