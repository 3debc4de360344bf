package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{{0, 100}, {256 << 20, 100}, {maxHeadroom, 100}, {maxHeadroom + 1, 99}, {640 << 20, 80},
		{768 << 20, 66}, {1 << 30, 50}, {4 << 30, 50}} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
	// The headroom (live × GOGC / 100) never shrinks as the live heap grows.
	prev := uint64(0)
	for live := uint64(1 << 20); live <= 3<<30; live += 1 << 20 {
		h := live * uint64(gcPercentFor(live)) / 100
		if h+live/100 < prev { // integer GOGC: allow 1% of rounding
			t.Fatalf("headroom %d at %d live is below %d one MiB less", h, live, prev)
		}
		prev = h
	}
}
