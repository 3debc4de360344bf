package daemon

import "testing"

// The second SA of a Child SA reaching its soft limit must not start a second rekey; another
// Child SA still may.
func TestSoftExpiriesOncePerChild(t *testing.T) {
	var s softExpiries
	if !s.add(0x1001) {
		t.Fatal("first soft expiry of a Child SA refused")
	}
	if s.add(0x1001) {
		t.Fatal("second soft expiry of the same Child SA accepted: it would rekey twice")
	}
	if !s.add(0x2002) {
		t.Fatal("another Child SA's soft expiry refused")
	}
	for i := range uint32(maxSoftExpiries + 10) {
		s.add(0x10000 + i)
	}
	if len(s.seen) > maxSoftExpiries {
		t.Fatalf("%d entries kept, bound %d", len(s.seen), maxSoftExpiries)
	}
}
