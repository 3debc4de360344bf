package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/status"
)

func watchSnapshot(spi string, in, out uint64) *status.Status {
	st := &status.Status{Connections: []status.Connection{{Name: "site", State: status.StateUp, RemoteAddrs: []string{"192.0.2.2"},
		Children: []status.ChildConfig{{Name: "net"}},
		IKESAs: []status.IKESA{{State: "established", Remote: "192.0.2.2:4500", Children: []status.ChildSA{{Name: "net", SPIIn: spi,
			In: status.Traffic{Bytes: in}, Out: status.Traffic{Bytes: out}}}}}}}}
	st.Normalize()
	return st
}

// TestWatchRates: rates come from counter differences per SA, so a rekey (new SPI starting at
// zero) does not show as negative or missing traffic.
func TestWatchRates(t *testing.T) {
	w := newWatcher()
	t0 := time.Unix(1000, 0)
	w.update(watchSnapshot("c1", 0, 0), t0)
	w.update(watchSnapshot("c1", 125000, 250000), t0.Add(time.Second))
	tr := w.tunnels["site/net"]
	if tr == nil || tr.in != 125000 || tr.out != 250000 {
		t.Fatalf("rates %+v", tr)
	}
	// Rekeyed: c1 is gone, c2 carried 1000 bytes in its first second.
	w.update(watchSnapshot("c2", 1000, 0), t0.Add(2*time.Second))
	if tr.in != 1000 || tr.out != 0 || len(tr.history) != 2 {
		t.Fatalf("after a rekey: %+v", tr)
	}
	var b bytes.Buffer
	w.render(&b, t0.Add(2*time.Second), 100)
	out := b.String()
	for _, want := range []string{"1 connection(s), 1 up", "site/net", "up", "8.0 kb/s", "0 b/s", "█"} {
		if !strings.Contains(out, want) {
			t.Errorf("view lacks %q:\n%s", want, out)
		}
	}
}

func TestSparkline(t *testing.T) {
	if got := sparkline([]float64{0, 1, 2, 4, 8}, 6); got != "  ▁▂▄█" {
		t.Errorf("sparkline = %q", got)
	}
	if got := sparkline(make([]float64, 100), 5); len([]rune(got)) != 5 {
		t.Errorf("sparkline longer than its width: %q", got)
	}
}

func TestRateText(t *testing.T) {
	for bps, want := range map[float64]string{0: "0 b/s", 100: "800 b/s", 125000: "1.0 Mb/s", 1.25e9: "10.0 Gb/s"} {
		if got := rateText(bps); got != want {
			t.Errorf("rateText(%v) = %q, want %q", bps, got, want)
		}
	}
}
