package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/internal/heapstat"
	"github.com/goipsec/goipsec/ts"
)

// child is what the IKE daemon hands the data plane for one road warrior's Child SA: an inbound
// and an outbound AES-256-GCM ESP-in-UDP SA and one policy, local 10.0.0.0/16 to the client's /32
// (a virtual IP), naming the outbound SA. The selector lists and keys belong to the IKE side's
// Child SA; the data plane keeps references to the selectors and copies of the keys.
type child struct {
	in, out dataplane.SAParams
	pol     dataplane.PolicyParams
}

var localNet = []ts.Selector{ts.FromPrefix(netip.MustParsePrefix("10.0.0.0/16"))}

// newChild describes client i's Child SA.
func newChild(i int) child {
	var ip [4]byte
	binary.BigEndian.PutUint32(ip[:], 0x64400000+uint32(i)) // 100.64.0.0/10, one per client
	vip := netip.AddrFrom4(ip)
	peer := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	remote := []ts.Selector{ts.Host(vip)}
	key := make([]byte, 36)
	binary.BigEndian.PutUint32(key, uint32(i))
	in := dataplane.SAParams{Name: "rw/net", Direction: dataplane.In, Protocol: dataplane.ESP, SPI: 0xc0000000 | uint32(i),
		Src: peer, Dst: netip.MustParseAddr("192.0.2.1"), Encap: true, SrcPort: 4500, DstPort: 4500,
		Encryption: esp.EncrAESGCM16, EncKey: key, Local: localNet, Remote: remote, NotifyFirstInbound: true}
	out := in
	out.Direction, out.SPI, out.Src, out.Dst, out.NotifyFirstInbound = dataplane.Out, 0x40000000|uint32(i), in.Dst, peer, false
	return child{in: in, out: out, pol: dataplane.PolicyParams{Name: "rw/net", Local: localNet, Remote: remote,
		Action: dataplane.Protect, SA: dataplane.SAKey{Protocol: dataplane.ESP, SPI: out.SPI, Dst: peer}, Route: true}}
}

// install installs the Child SA as the daemon does: inbound SA, outbound SA, policy.
func (c *child) install(e *Engine) (dataplane.PolicyID, error) {
	if err := e.InstallSA(c.in); err != nil {
		return 0, err
	}
	if err := e.InstallSA(c.out); err != nil {
		return 0, err
	}
	return e.InstallPolicy(c.pol)
}

// remove deletes what install installed.
func (c *child) remove(e *Engine, id dataplane.PolicyID) error {
	return errors.Join(e.DeletePolicy(id),
		e.DeleteSA(dataplane.SAKey{Protocol: dataplane.ESP, SPI: c.out.SPI, Dst: c.out.Dst}),
		e.DeleteSA(dataplane.SAKey{Protocol: dataplane.ESP, SPI: c.in.SPI, Dst: c.in.Dst}))
}

// TestHeapPerChildSA installs 20,000 Child SA pairs as IKE installs them and checks the data
// plane's heap per pair — two SAs with their keys and replay window, one policy, the SAD/SPD
// index entries — against its budget of 1.6 KiB while the tunnels are idle, and of 3.1 KiB once
// both SAs have carried a packet (each builds its AES-GCM state then: 768 bytes and one object).
// The IKE side's own memory (its Child SA with the selector lists and keys it hands over) is
// allocated before the measurement starts.
func TestHeapPerChildSA(t *testing.T) {
	const n, idleBudget, busyBudget = 20000, 1600, 3200
	e := headless(t, dataplane.Events{})
	children := make([]child, n)
	for i := range children {
		children[i] = newChild(i)
	}
	before, objsBefore := heapstat.Bytes(), heapstat.Objects()
	for i := range children {
		if _, err := children[i].install(e); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(heapstat.Bytes()-before) / n
	objs := float64(heapstat.Objects()-objsBefore) / n
	t.Logf("idle: %.0f bytes and %.2f objects of heap per Child SA pair (%d pairs)", per, objs, n)
	if per > idleBudget {
		t.Fatalf("%.0f bytes of heap per idle Child SA pair, budget %d", per, idleBudget)
	}
	// The garbage collector marks every live object at every cycle: the ESP SA, its keys, its
	// first addressing and the replay ring live in the SA record's allocations, the AEAD waits
	// for traffic (18 objects per pair at first, 9 now; docs/performance.md, "IKE with tunnels
	// held").
	if objs > 9.5 {
		t.Fatalf("%.2f heap objects per idle Child SA pair, budget 9", objs)
	}

	payload := make([]byte, 100)
	for i := range children {
		for _, p := range []dataplane.SAParams{children[i].in, children[i].out} {
			e.mu.Lock()
			st := e.findLocked(dataplane.SAKey{Protocol: dataplane.ESP, SPI: p.SPI, Dst: p.Dst})
			e.mu.Unlock()
			if st == nil {
				t.Fatalf("SA %08x not installed", p.SPI)
			}
			if _, err := st.esp.Seal(nil, 1, 4, payload, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	per = float64(heapstat.Bytes()-before) / n
	objs = float64(heapstat.Objects()-objsBefore) / n
	t.Logf("with traffic: %.0f bytes and %.2f objects of heap per Child SA pair", per, objs)
	if per > busyBudget {
		t.Fatalf("%.0f bytes of heap per Child SA pair with traffic, budget %d", per, busyBudget)
	}
	if objs > 13.5 {
		t.Fatalf("%.2f heap objects per Child SA pair with traffic, budget 13", objs)
	}
	runtime.KeepAlive(e)
	runtime.KeepAlive(children)
}

// BenchmarkInstall measures installing and deleting one Child SA pair (two SAs, one policy) while
// others stay installed, and reports the heap each held pair takes.
func BenchmarkInstall(b *testing.B) {
	for _, held := range []int{0, 10000, 100000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			e := headless(b, dataplane.Events{})
			children := make([]child, held+1000)
			for i := range children {
				children[i] = newChild(i)
			}
			before := heapstat.Bytes()
			for i := range held {
				if _, err := children[i].install(e); err != nil {
					b.Fatal(err)
				}
			}
			perPair := 0.0
			if held > 0 {
				perPair = float64(heapstat.Bytes()-before) / float64(held)
			}
			b.ResetTimer()
			for i := range b.N {
				c := &children[held+i%1000]
				id, err := c.install(e)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.remove(e, id); err != nil {
					b.Fatal(err)
				}
			}
			if held > 0 {
				b.ReportMetric(perPair, "heap-B/pair")
			}
		})
	}
}

// BenchmarkLookup measures the packet path's table lookups — the SPD for an outbound packet (without
// the per-batch flow memo) and the SAD for an inbound one — with 0 and 100,000 other Child SAs
// installed: the cost must not grow with the number of SAs.
func BenchmarkLookup(b *testing.B) {
	for _, held := range []int{0, 100000} {
		e := headless(b, dataplane.Events{})
		for i := range held {
			c := newChild(i + 1)
			if _, err := c.install(e); err != nil {
				b.Fatal(err)
			}
		}
		// The measured tunnel: site-to-site subnets.
		c := newChild(0)
		c.pol.Local = []ts.Selector{ts.FromPrefix(netip.MustParsePrefix("10.1.0.0/24"))}
		c.pol.Remote = []ts.Selector{ts.FromPrefix(netip.MustParsePrefix("10.2.0.0/24"))}
		if _, err := c.install(e); err != nil {
			b.Fatal(err)
		}
		f := flow{src: netip.MustParseAddr("10.1.0.1"), dst: netip.MustParseAddr("10.2.0.1"), proto: 6, srcPort: 40000, dstPort: 5201, hasPorts: true}
		b.Run(fmt.Sprintf("spd/held=%d", held), func(b *testing.B) {
			for b.Loop() {
				if e.spd.lookup(&f) == nil {
					b.Fatal("no policy")
				}
			}
		})
		b.Run(fmt.Sprintf("sad/held=%d", held), func(b *testing.B) {
			for b.Loop() {
				if e.sad.lookup(dataplane.ESP, c.in.SPI, c.in.Dst) == nil {
					b.Fatal("no SA")
				}
			}
		})
	}
}
