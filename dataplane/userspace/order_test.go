package userspace

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

// espSeqs returns, in capture order, the sequence numbers of the ESP packets of spi in a pcap
// (espPackets: raw or in UDP, the first of a UDP GSO frame's packets).
func espSeqs(t *testing.T, path string, spi uint32) []uint32 {
	t.Helper()
	var out []uint32
	for _, p := range espPackets(t, path) {
		if p.spi == spi {
			out = append(out, p.seq)
		}
	}
	return out
}

// TestMultiQueueSequenceOrder: eight TCP flows through one SA of an engine with four pipelines.
// The kernel spreads the flows over the TUN queues, so several pipelines seal packets of the SA
// at once; sequence numbers must still leave in order (each pipeline waits for the SA's turn).
// The capture on the wire shows them strictly increasing, and more than one pipeline carried
// the SA's packets. With ESP in UDP, and with raw ESP through the pipelines' TX rings, where the
// kicker (pkttx.go) gives up an SA's turn only after sending the frames before it.
func TestMultiQueueSequenceOrder(t *testing.T) {
	t.Run("udp", func(t *testing.T) { testMultiQueueSequenceOrder(t, true) })
	t.Run("raw-ring", func(t *testing.T) { testMultiQueueSequenceOrder(t, false) })
}

func testMultiQueueSequenceOrder(t *testing.T, encap bool) {
	a, b := newPairWith(t, Config{Queues: 4})
	sc := scenario{name: "order", proto: dataplane.ESP, encap: encap, enc: esp.EncrAESGCM16, encKeyLen: 36}
	inst := install(t, sc, a, b)
	filter := []string{"udp and src host", inst.outerA.String(), "and dst port 4500"}
	if !encap {
		filter = []string{"esp and src host", inst.outerA.String()}
		// Resolve the peer's link-layer address, and let the pipelines' cached paths expire,
		// so that the ring carries the flows.
		if ping, err := a.ns.Ping(inst.src, inst.dst, 2, 50*time.Millisecond, 2*time.Second); err != nil || ping.Received != 2 {
			t.Fatalf("ping: %v %v", ping, err)
		}
		time.Sleep(l2PathTTL + 100*time.Millisecond)
	}
	ringBefore := a.eng.stats.ring.sent.Load()
	stop := startCapture(t, a.ns, "veth0", filter...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, uint16(7800+i)), 4<<20); err != nil {
				errs <- fmt.Errorf("flow %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	seqs := espSeqs(t, stop(), 0x1001)
	if len(seqs) < 100 {
		t.Fatalf("only %d ESP packets of the SA captured", len(seqs))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("sequence number %d left after %d (capture position %d of %d)", seqs[i], seqs[i-1], i, len(seqs))
		}
	}
	busy := 0
	for _, p := range a.eng.txp {
		if p.sent.Load() > 100 {
			busy++
		}
	}
	if busy < 2 {
		t.Fatalf("only %d of %d pipelines carried the flows: the test did not exercise ordering across pipelines", busy, len(a.eng.txp))
	}
	if ring := a.eng.stats.ring.sent.Load() - ringBefore; !encap && ring < uint64(len(seqs))/2 {
		t.Fatalf("only %d of %d packets through the TX rings: the test did not exercise the kicker", ring, len(seqs))
	}
	for _, s := range []*side{a, b} {
		for _, sa := range s.eng.SAs() {
			if d := sa.Stats.Drops; d[dataplane.DropReplay] != 0 || d[dataplane.DropAuth] != 0 {
				t.Errorf("%s: SA %s drops %v", s.ns.Name, sa.Key, d)
			}
		}
	}
}
