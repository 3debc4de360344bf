//go:build !race

// The race detector makes sync.Pool drop items on purpose, so allocation counts are only
// meaningful without it.

package ah

import (
	"fmt"
	"testing"
)

func TestNoAllocations(t *testing.T) {
	for _, alg := range algs {
		for _, ipv6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/ipv6=%v", alg, ipv6), func(t *testing.T) {
				p := params(alg, true)
				out := mustSA(t, p)
				p.ReplayWindow = -1
				in := mustSA(t, p)
				payload := payloadOf(1400)
				buf := make([]byte, 0, 2048)
				seq := uint64(0)
				if n := testing.AllocsPerRun(100, func() {
					seq++
					var err error
					if ipv6 {
						_, err = out.SealIPv6(buf, v6Hdr, seq, 41, payload)
					} else {
						_, err = out.SealIPv4(buf, v4Hdr, seq, 4, payload)
					}
					if err != nil {
						t.Fatal(err)
					}
				}); n != 0 {
					t.Fatalf("Seal: %v allocations per packet", n)
				}
				pkt := seal(t, out, ipv6, 1, 41, payload)
				if n := testing.AllocsPerRun(100, func() {
					if _, err := in.Open(pkt); err != nil {
						t.Fatal(err)
					}
				}); n != 0 {
					t.Fatalf("Open: %v allocations per packet", n)
				}
			})
		}
	}
}
