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
// twice the live data before collecting, so a daemon holding 100,000 tunnels would keep about as
// much memory again in garbage as in SAs. Above largeHeap of live data the headroom goes down to
// half the live data (GOGC=50): more collection work per handshake, about a third less memory. A
// GOGC set in the environment is left alone.
const (
	largeHeap      = 256 << 20
	largeHeapGOGC  = 50
	defaultGOGC    = 100
	gcTuneInterval = 10 * time.Second
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
			if want != current {
				debug.SetGCPercent(want)
				log.Info("garbage collector headroom changed", "gogc", want, "live_bytes", sample[0].Value.Uint64())
				current = want
			}
		}
	}()
}

// gcPercentFor is the GOGC for a live heap of the given size.
func gcPercentFor(live uint64) int {
	if live > largeHeap {
		return largeHeapGOGC
	}
	return defaultGOGC
}
