//go:build !race

// The race detector makes sync.Pool drop items on purpose, so allocation counts are only
// meaningful without it.

package esp

import (
	"fmt"
	"testing"
)

func TestNoAllocations(t *testing.T) {
	for _, s := range suites {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/esn=%v", s.name, esn), func(t *testing.T) {
				p := s.params(esn)
				p.ReplayWindow = -1 // the same packet is opened repeatedly
				out, in := mustSA(t, p), mustSA(t, p)
				payload := payloadOf(1400)
				buf := make([]byte, 0, 1400+out.Overhead(1400))
				seq := uint64(0)
				if n := testing.AllocsPerRun(100, func() {
					seq++
					if _, err := out.Seal(buf, seq, 4, payload, 0); err != nil {
						t.Fatal(err)
					}
				}); n != 0 {
					t.Fatalf("Seal: %v allocations per packet", n)
				}
				pkt, err := out.Seal(nil, 1, 4, payload, 0)
				if err != nil {
					t.Fatal(err)
				}
				work := make([]byte, len(pkt))
				if n := testing.AllocsPerRun(100, func() {
					copy(work, pkt)
					if _, _, _, err := in.Open(work); err != nil {
						t.Fatal(err)
					}
				}); n != 0 {
					t.Fatalf("Open: %v allocations per packet", n)
				}
			})
		}
	}
}
