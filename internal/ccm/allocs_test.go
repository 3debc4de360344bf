//go:build !race

// The race detector makes sync.Pool drop items on purpose, so allocation counts are only
// meaningful without it.

package ccm

import (
	"crypto/aes"
	"testing"
)

func TestAllocations(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 16))
	c, _ := New(b, 11, 16)
	nonce := make([]byte, 11)
	buf := make([]byte, 1400+16)
	if n := testing.AllocsPerRun(50, func() {
		ct := c.Seal(buf[:0], nonce, buf[:1400], buf[:8])
		if _, err := c.Open(ct[:0], nonce, ct, buf[1400:1408]); err == nil {
			panic("opened with other additional data")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per Seal and Open", n)
	}
}
