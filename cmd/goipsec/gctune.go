package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Garbage collector policy for large gateways. Go's default (GOGC=100) lets the heap grow to
// twice the live data before collecting, so a daemon holding hundreds of thousands of tunnels
// would keep about as much memory again in garbage as in SAs. goipsec run keeps GOGC=100 while
// the headroom that gives is at most maxHeadroom (512 MiB: 100,000 idle tunnels are about
// 470 MB live right after their handshakes, gctrace), then holds the headroom at maxHeadroom, and from 1 GiB live on gives half the
// live heap (GOGC=50). The headroom never shrinks as the heap grows, so the collector's work per
// handshake changes smoothly with the tunnels held instead of doubling at one size (a step at
// 256 MB did, and made the handshake rate depend on which side of it a measurement fell).
// A GOGC set in the environment is left alone.
const (
	maxHeadroom    = 512 << 20
	minGOGC        = 50
	defaultGOGC    = 100
	gcTuneInterval = 2 * time.Second
	// gcTuneStep: smaller changes of the wanted GOGC are not applied (no churn as the heap
	// grows through the range where the headroom is held).
	gcTuneStep = 5
)

func tuneGC(ctx context.Context, log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		current := defaultGOGC
		t := time.NewTicker(gcTuneInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				return
			}
			want := gcPercentFor(sample[0].Value.Uint64())
			if want != current && (want-current >= gcTuneStep || current-want >= gcTuneStep || want == defaultGOGC || want == minGOGC) {
				debug.SetGCPercent(want)
				log.Debug("garbage collector headroom changed", "gogc", want, "live_bytes", sample[0].Value.Uint64())
				current = want
			}
		}
	}()
}

// gcPercentFor is the GOGC for a live heap of the given size: headroom max(live/2, min(live,
// maxHeadroom)) as a percentage of live.
func gcPercentFor(live uint64) int {
	if live <= maxHeadroom {
		return defaultGOGC
	}
	return max(minGOGC, int(maxHeadroom*100/live))
}
