package userspace

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

// espSeqs reads a pcap of Ethernet frames and returns, in capture order, the sequence number of
// every ESP-in-UDP packet of spi (with UDP GSO a frame holds several ESP packets: its first
// one's number is taken).
func espSeqs(t *testing.T, path string, spi uint32) []uint32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(data[20:]) != 1 {
		t.Fatalf("%s is not a little-endian Ethernet pcap", path)
	}
	var out []uint32
	for p := data[24:]; len(p) >= 16; {
		n := int(binary.LittleEndian.Uint32(p[8:]))
		if 16+n > len(p) {
			break // the last record may be cut off
		}
		frame := p[16 : 16+n]
		p = p[16+n:]
		// Ethernet (14), IPv4 without options (20), UDP (8), SPI, sequence number.
		if len(frame) < 14+20+8+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 || frame[14+9] != 17 {
			continue
		}
		esp := frame[14+int(frame[14]&0x0f)*4+8:]
		if binary.BigEndian.Uint32(esp) == spi {
			out = append(out, binary.BigEndian.Uint32(esp[4:]))
		}
	}
	return out
}

// TestMultiQueueSequenceOrder: eight TCP flows through one SA of an engine with four pipelines.
// The kernel spreads the flows over the TUN queues, so several pipelines seal packets of the SA
// at once; sequence numbers must still leave in order (each pipeline waits for the SA's turn).
// The capture on the wire shows them strictly increasing, and more than one pipeline carried
// the SA's packets.
func TestMultiQueueSequenceOrder(t *testing.T) {
	a, b := newPairWith(t, Config{Queues: 4})
	sc := scenario{name: "order", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36}
	inst := install(t, sc, a, b)
	stop := startCapture(t, a.ns, "veth0", "udp and src host", inst.outerA.String(), "and dst port 4500")
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
	for _, s := range []*side{a, b} {
		for _, sa := range s.eng.SAs() {
			if d := sa.Stats.Drops; d[dataplane.DropReplay] != 0 || d[dataplane.DropAuth] != 0 {
				t.Errorf("%s: SA %s drops %v", s.ns.Name, sa.Key, d)
			}
		}
	}
}
