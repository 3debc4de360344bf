// Package appendbuf holds the one helper the AEADs and packet builders share: growing a caller's
// slice by n bytes the way the standard library's cipher.AEAD implementations do, so that a
// caller passing dst[:0] of a large enough buffer gets its output there without an allocation.
package appendbuf

// Grow extends in by n bytes, reusing its capacity when possible, and returns the whole slice and
// the n new bytes.
func Grow(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return head, tail
}
