package heapstat

import (
	"runtime"
	"testing"
)

// TestLiveCountsWhatIsKept: keeping 10,000 objects of 64 bytes raises both figures by at least
// that much, and dropping them gives it back.
func TestLiveCountsWhatIsKept(t *testing.T) {
	const n = 10000
	b0, o0 := Live()
	keep := make([]*[64]byte, n)
	for i := range keep {
		keep[i] = new([64]byte)
	}
	b1, o1 := Live()
	if o1 < o0+n || b1 < b0+n*64 {
		t.Fatalf("kept %d objects of 64 bytes: objects %d → %d, bytes %d → %d", n, o0, o1, b0, b1)
	}
	clear(keep)
	_, o2 := Live()
	runtime.KeepAlive(keep)
	if o2 >= o1-n/2 {
		t.Fatalf("dropped %d objects: objects %d → %d", n, o1, o2)
	}
}
