package userspace

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/netlab"
)

// TestMoveSAMidTraffic moves B's end of a tunnel to a new outer address while a TCP transfer runs
// through it (what MOBIKE or a changed NAT mapping does): both engines move their SAs with
// UpdateSAAddresses, the old address is removed, and the transfer completes with no packet
// refused for authentication or replay — keys, sequence numbers and replay windows carried over.
func TestMoveSAMidTraffic(t *testing.T) {
	for _, sc := range []scenario{
		{name: "udp", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36},
		{name: "raw", proto: dataplane.ESP, enc: esp.EncrAESGCM16, encKeyLen: 36},
	} {
		t.Run(sc.name, func(t *testing.T) {
			a, b := newPair(t)
			inst := install(t, sc, a, b)
			moved := netip.MustParseAddr("192.0.2.3")
			// Deleting the primary address would take the secondary .3 with it unless it is
			// promoted.
			if _, err := b.ns.Exec("sysctl", "-qw", "net.ipv4.conf.veth0.promote_secondaries=1"); err != nil {
				t.Fatal(err)
			}
			if err := b.ns.AddAddr("veth0", "192.0.2.3/24"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7790), 12<<20)
			}()
			aOut := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1001, Dst: b.outer}
			waitFor(t, func() bool { st, _ := a.eng.SAStats(aOut); return st.Packets > 300 })

			// B moves from .2 to .3. Each side moves what refers to B's address.
			upd := func(src, dst netip.Addr) dataplane.AddressUpdate {
				return dataplane.AddressUpdate{Src: src, Dst: dst, Encap: sc.encap, SrcPort: 4500, DstPort: 4500}
			}
			newAOut, err := a.eng.UpdateSAAddresses(aOut, upd(a.outer, moved))
			if err != nil {
				t.Fatal(err)
			}
			bIn := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1001, Dst: b.outer}
			newBIn, err := b.eng.UpdateSAAddresses(bIn, upd(a.outer, moved))
			if err != nil {
				t.Fatal(err)
			}
			bOut := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x2001, Dst: a.outer}
			if k, err := b.eng.UpdateSAAddresses(bOut, upd(moved, a.outer)); err != nil || k != bOut {
				t.Fatalf("move B's outbound SA: key %v, %v", k, err)
			}
			aIn := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x2001, Dst: a.outer}
			if k, err := a.eng.UpdateSAAddresses(aIn, upd(moved, a.outer)); err != nil || k != aIn {
				t.Fatalf("move A's inbound SA: key %v, %v", k, err)
			}
			atMove, _ := b.eng.SAStats(newBIn)
			// Without the old address nothing can reach B there any more.
			if _, err := b.ns.IP("addr", "del", "192.0.2.2/24", "dev", "veth0"); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("TCP transfer across the move: %v; A %+v, B %+v", err, a.eng.Stats(), b.eng.Stats())
			}
			after, ok := b.eng.SAStats(newBIn)
			if !ok || after.Packets <= atMove.Packets+100 {
				t.Fatalf("B's moved inbound SA carried %d packets after the move (%d before)", after.Packets-atMove.Packets, atMove.Packets)
			}
			for _, s := range []*side{a, b} {
				for _, sa := range s.eng.SAs() {
					if d := sa.Stats.Drops; d[dataplane.DropAuth] != 0 || d[dataplane.DropReplay] != 0 || d[dataplane.DropMalformed] != 0 {
						t.Errorf("%s: SA %s drops %v", s.ns.Name, sa.Key, d)
					}
				}
			}
			if st, ok := a.eng.SAStats(newAOut); !ok || st.Packets == 0 {
				t.Errorf("A's moved outbound SA: %+v %v", st, ok)
			}
		})
	}
}

// TestFirstInboundFiresOnce: a rekey done make-before-break. B installs a new inbound SA asking
// for FirstInbound while traffic flows on the old one; the event stays silent until A moves its
// policy to the new SA, then fires exactly once, for the new SA, however many packets follow.
func TestFirstInboundFiresOnce(t *testing.T) {
	var mu sync.Mutex
	var fired []dataplane.SAKey
	ev := dataplane.Events{FirstInbound: func(k dataplane.SAKey, name string) {
		mu.Lock()
		fired = append(fired, k)
		mu.Unlock()
	}}
	sc := scenario{name: "rekey", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36}
	a, b := newPairWith(t, Config{Events: ev})
	inst := install(t, sc, a, b)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(fired)
	}
	ping := func() {
		t.Helper()
		res, err := a.ns.Ping(inst.src, inst.dst, 3, 20*time.Millisecond, 2*time.Second)
		if err != nil || res.Received != 3 {
			t.Fatalf("ping: %v %v", res, err)
		}
	}
	ping()
	// The new Child SA: B's inbound side asks to be told, A's outbound side is installed but unused.
	key := randKey(36)
	newIn := dataplane.SAParams{Name: "rekey", Direction: dataplane.In, Protocol: dataplane.ESP, SPI: 0x1002,
		Src: a.outer, Dst: b.outer, Encap: true, SrcPort: 4500, DstPort: 4500, Encryption: esp.EncrAESGCM16, EncKey: key,
		NotifyFirstInbound: true}
	if err := b.eng.InstallSA(newIn); err != nil {
		t.Fatal(err)
	}
	newOut := newIn
	newOut.Direction, newOut.Src, newOut.Dst, newOut.NotifyFirstInbound = dataplane.Out, a.outer, b.outer, false
	if err := a.eng.InstallSA(newOut); err != nil {
		t.Fatal(err)
	}
	ping()
	if n := count(); n != 0 {
		t.Fatalf("FirstInbound fired %d times before the peer used the new SA", n)
	}
	newKey := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x1002, Dst: b.outer}
	var polID dataplane.PolicyID
	a.eng.mu.Lock()
	for id := range a.eng.policies {
		polID = id
	}
	a.eng.mu.Unlock()
	if err := a.eng.SetPolicySA(polID, newKey); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := netlab.Echo(ctx, a.ns, inst.src, b.ns, netip.AddrPortFrom(inst.dst, 7791), 2<<20); err != nil {
		t.Fatal(err)
	}
	st, _ := b.eng.SAStats(newKey)
	if st.Packets < 100 {
		t.Fatalf("the new SA carried only %d packets", st.Packets)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fired) != 1 || fired[0] != newKey {
		t.Fatalf("FirstInbound fired for %v, want exactly once for %v", fired, newKey)
	}
}
