package log

// SetMaxIndexTail sets how many entries may wait to be indexed, and
// returns a function that restores it.
func SetMaxIndexTail(n int) (restore func()) {
	old := maxIndexTail
	maxIndexTail = n
	return func() { maxIndexTail = old }
}
