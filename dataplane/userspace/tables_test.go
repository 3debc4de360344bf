package userspace

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ts"
)

// TestRCUTableAgainstMap applies random inserts, replacements and removals (enough to grow and
// shrink the table several times) to an rcuTable and to a plain map, and compares them after each
// step.
func TestRCUTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tab := newRCUTable[uint32, *int](func(k uint32) uint64 { return mix64(uint64(k)) })
	ref := map[uint32]*int{}
	peak := 0
	for step := range 40000 {
		k := uint32(r.IntN(3000))
		if step > 20000 {
			k = uint32(r.IntN(300)) // fewer keys: the table shrinks again
		}
		old, ok := ref[k]
		switch {
		case step > 20000 && len(ref) > 300:
			// Also take out the keys of the first phase that no longer come up.
			for k, v := range ref {
				if k >= 300 {
					if !tab.remove(k, v) {
						t.Fatalf("step %d: remove(%d) found nothing", step, k)
					}
					delete(ref, k)
				}
			}
			continue
		case !ok:
			v := new(int)
			tab.insert(k, v)
			ref[k] = v
		case r.IntN(2) == 0:
			v := new(int)
			if !tab.replace(k, old, v) {
				t.Fatalf("step %d: replace(%d) found nothing", step, k)
			}
			ref[k] = v
		default:
			if !tab.remove(k, old) {
				t.Fatalf("step %d: remove(%d) found nothing", step, k)
			}
			delete(ref, k)
		}
		peak = max(peak, len(tab.buckets.Load().heads))
		if got, _ := tab.load(k); got != ref[k] {
			t.Fatalf("step %d: load(%d) = %p, want %p", step, k, got, ref[k])
		}
	}
	if tab.len() != len(ref) {
		t.Fatalf("len %d, want %d", tab.len(), len(ref))
	}
	n := 0
	tab.each(func(k uint32, v *int) bool {
		n++
		if ref[k] != v {
			t.Errorf("entry %d holds %p, want %p", k, v, ref[k])
		}
		return true
	})
	if n != len(ref) {
		t.Fatalf("each visited %d entries, want %d", n, len(ref))
	}
	if b := tab.buckets.Load(); peak < 2048 || len(b.heads) >= peak || len(b.heads) > 8*len(ref) {
		t.Errorf("the table grew to %d buckets and kept %d for %d entries", peak, len(b.heads), len(ref))
	}
}

// TestRCUTableReadersNeverMiss: readers keep finding a fixed set of entries while one writer adds
// and removes thousands of others (growing and shrinking the table) and replaces the fixed ones'
// values. Run with -race, this also checks that readers and the writer share no unsynchronised
// memory.
func TestRCUTableReadersNeverMiss(t *testing.T) {
	tab := newRCUTable[uint32, *int](func(k uint32) uint64 { return mix64(uint64(k)) })
	const stable = 64
	vals := make([]*int, stable)
	for i := range stable {
		vals[i] = new(int)
		tab.insert(uint32(i), vals[i])
	}
	var stop atomic.Bool
	var misses atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for i := range stable {
					if _, ok := tab.load(uint32(i)); !ok {
						misses.Add(1)
					}
				}
			}
		}()
	}
	for round := range 5 {
		for i := range 5000 {
			tab.insert(uint32(1000+i), new(int))
		}
		for i := range stable {
			v := new(int)
			tab.replace(uint32(i), vals[i], v)
			vals[i] = v
		}
		tab.each(func(k uint32, v *int) bool {
			if k >= 1000 {
				tab.remove(k, v)
			}
			return true
		})
		runtime.Gosched()
		_ = round
	}
	stop.Store(true)
	wg.Wait()
	if m := misses.Load(); m != 0 {
		t.Fatalf("readers missed a stable entry %d times", m)
	}
}

// randomSelector returns an IPv4 selector from a small address space (so that random packets hit
// it often): a prefix of a random length or a small range, sometimes restricted to a protocol and
// port range.
func randomSelector(r *rand.Rand) ts.Selector {
	base := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(16))})
	var s ts.Selector
	if r.IntN(5) == 0 {
		end := base
		for range r.IntN(6) {
			end = end.Next()
		}
		s = ts.Selector{Start: base, End: end, EndPort: 0xffff}
	} else {
		bits := []int{0, 8, 16, 22, 24, 28, 30, 32}[r.IntN(8)]
		s = ts.FromPrefix(netip.PrefixFrom(base, bits))
	}
	switch r.IntN(6) {
	case 0:
		s.Protocol = 17
	case 1:
		s.Protocol = 6
		s.StartPort = uint16(r.IntN(4))
		s.EndPort = s.StartPort + uint16(r.IntN(3))
	}
	return s
}

func randomFlow(r *rand.Rand) flow {
	f := flow{
		src:   netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(16))}),
		dst:   netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(16))}),
		proto: []uint8{6, 17, 1}[r.IntN(3)],
	}
	if f.proto != 1 || r.IntN(2) == 0 {
		f.hasPorts = true
		f.srcPort, f.dstPort = uint16(r.IntN(5)), uint16(r.IntN(5))
	}
	return f
}

// linearLookup is the definition the SPD index must reproduce: the first policy, in rank order
// (sorted is sorted by rank), whose selectors match.
func linearLookup(sorted []*policy, f *flow) *policy {
	for _, p := range sorted {
		if p.matches(f) {
			return p
		}
	}
	return nil
}

// TestSPDMatchesLinearScan installs random policies (random priorities, prefixes of many lengths,
// ranges, protocol and port restrictions, several selectors each), removes some, and checks that
// the indexed lookup returns what a scan of all policies in rank order returns, for thousands of
// random packets.
func TestSPDMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	s := newSPD(r.Uint64())
	var live []*policy
	for id := 1; id <= 400; id++ {
		p := dataplane.PolicyParams{Priority: r.IntN(3), Action: dataplane.Protect}
		for range 1 + r.IntN(2) {
			p.Local = append(p.Local, randomSelector(r))
		}
		for range 1 + r.IntN(3) {
			p.Remote = append(p.Remote, randomSelector(r))
		}
		pol := &policy{params: p, rank: dataplane.RankOf(dataplane.PolicyID(id), &p), prefixes: remotePrefixes(&p)}
		s.add(pol)
		live = append(live, pol)
		if r.IntN(4) == 0 {
			i := r.IntN(len(live))
			s.remove(live[i])
			live = slices.Delete(live, i, i+1)
		}
	}
	if got := len(s.all()); got != len(live) {
		t.Fatalf("index holds %d policies, want %d", got, len(live))
	}
	sorted := slices.Clone(live)
	slices.SortFunc(sorted, func(a, b *policy) int {
		if a.rank.Before(b.rank) {
			return -1
		}
		return 1
	})
	hits := 0
	for range 20000 {
		f := randomFlow(r)
		got, want := s.lookup(&f), linearLookup(sorted, &f)
		if got != want {
			t.Fatalf("flow %v:%d > %v:%d proto %d: index chose %v, linear scan %v", f.src, f.srcPort, f.dst, f.dstPort, f.proto, policyName(got), policyName(want))
		}
		if got != nil {
			hits++
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d of 20000 random packets matched a policy: the test does not exercise the index", hits)
	}
	for _, p := range live {
		s.remove(p)
	}
	if l := s.lens.Load(); s.table.len() != 0 || len(l.v4) != 0 || len(l.v6) != 0 {
		t.Fatalf("after removing every policy: %d entries, lengths %v", s.table.len(), l)
	}
}

func policyName(p *policy) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("policy %d (prio %d, local %s, remote %s)", p.rank.ID, p.params.Priority, ts.FormatList(p.params.Local), ts.FormatList(p.params.Remote))
}

// TestSPDIPv6: IPv6 prefixes of lengths that straddle the two halves of the address.
func TestSPDIPv6(t *testing.T) {
	s := newSPD(7)
	mk := func(id int, remote string) *policy {
		p := dataplane.PolicyParams{Local: []ts.Selector{ts.Any(true)}, Remote: []ts.Selector{ts.FromPrefix(netip.MustParsePrefix(remote))}}
		pol := &policy{params: p, rank: dataplane.RankOf(dataplane.PolicyID(id), &p), prefixes: remotePrefixes(&p)}
		s.add(pol)
		return pol
	}
	all := mk(1, "::/0")
	p48 := mk(2, "2001:db8:1::/48")
	p64 := mk(3, "2001:db8:1:2::/64")
	p100 := mk(4, "2001:db8:1:2:3::/100")
	host := mk(5, "2001:db8:1:2:3::7/128")
	for dst, want := range map[string]*policy{
		"2001:db8:1:2:3::7":  host,
		"2001:db8:1:2:3::8":  p100,
		"2001:db8:1:2:4::1":  p64,
		"2001:db8:1:3::1":    p48,
		"2001:db8:2::1":      all,
		"fe80::1":            all,
		"2001:db8:1:2:3::ff": p100,
	} {
		f := flow{src: netip.MustParseAddr("fd00::1"), dst: netip.MustParseAddr(dst)}
		if got := s.lookup(&f); got != want {
			t.Errorf("%s: got %s, want %s", dst, policyName(got), policyName(want))
		}
	}
	f := flow{src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2")}
	if got := s.lookup(&f); got != nil {
		t.Errorf("an IPv4 packet matched %s", policyName(got))
	}
}

// headless returns an engine with tables but no devices: SAs must be ESP in UDP (no raw sockets)
// and policies install no routes.
func headless(t testing.TB, ev dataplane.Events) *Engine {
	t.Helper()
	cfg := Config{NoRawSockets: true, Events: ev}
	cfg.setDefaults()
	e := newEngine(cfg)
	e.natt = true // no sockets: SAs are only installed, never used for sending
	return e
}

func gcmKey(seed byte) []byte {
	k := make([]byte, 36)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// saParams returns an ESP-in-UDP AES-256-GCM SA between 192.0.2.1 (local) and peer.
func saParams(dir dataplane.Direction, spi uint32, peer netip.Addr) dataplane.SAParams {
	p := dataplane.SAParams{Name: "t", Direction: dir, Protocol: dataplane.ESP, SPI: spi, Encap: true,
		Encryption: esp.EncrAESGCM16, EncKey: gcmKey(byte(spi))}
	local := netip.MustParseAddr("192.0.2.1")
	if dir == dataplane.Out {
		p.Src, p.Dst, p.SrcPort, p.DstPort = local, peer, 4500, 4500
	} else {
		p.Src, p.Dst, p.SrcPort, p.DstPort = peer, local, 4500, 4500
	}
	return p
}

// TestPoliciesFollowSAs checks the bookkeeping between policies and outbound SAs: a policy
// installed before its SA binds when the SA arrives, SetPolicySA repoints, DeleteSA unbinds, and
// UpdateSAAddresses moves the SA to a new key that the policy follows.
func TestPoliciesFollowSAs(t *testing.T) {
	e := headless(t, dataplane.Events{})
	peer := netip.MustParseAddr("198.51.100.7")
	out := saParams(dataplane.Out, 0x100, peer)
	outKey := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x100, Dst: peer}
	pp := dataplane.PolicyParams{Name: "t", Local: []ts.Selector{ts.FromPrefix(netip.MustParsePrefix("10.1.0.0/16"))},
		Remote: []ts.Selector{ts.Host(netip.MustParseAddr("10.9.0.7"))}, Action: dataplane.Protect, SA: outKey}
	id, err := e.InstallPolicy(pp)
	if err != nil {
		t.Fatal(err)
	}
	f := flow{src: netip.MustParseAddr("10.1.2.3"), dst: netip.MustParseAddr("10.9.0.7"), proto: 6, hasPorts: true}
	pol := e.spd.lookup(&f)
	if pol == nil || pol.rank.ID != id || pol.sa.Load() != nil {
		t.Fatalf("before the SA: lookup %v", policyName(pol))
	}
	if err := e.InstallSA(out); err != nil {
		t.Fatal(err)
	}
	if pol.sa.Load() == nil {
		t.Fatal("the policy did not bind to its SA when the SA was installed")
	}
	if err := e.InstallSA(out); !errors.Is(err, dataplane.ErrSAExists) {
		t.Fatalf("second install: %v, want ErrSAExists", err)
	}

	// Move the SA: new peer address and port (a NAT mapping changed).
	newPeer := netip.MustParseAddr("198.51.100.9")
	sa := pol.sa.Load()
	newKey, err := e.UpdateSAAddresses(outKey, dataplane.AddressUpdate{Src: out.Src, Dst: newPeer, Encap: true, SrcPort: 4500, DstPort: 31000})
	if err != nil {
		t.Fatal(err)
	}
	if want := (dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x100, Dst: newPeer}); newKey != want {
		t.Fatalf("new key %v, want %v", newKey, want)
	}
	if pol.sa.Load() != sa || pol.params.SA != newKey {
		t.Fatalf("the policy did not follow the moved SA: bound %p (want %p), names %v", pol.sa.Load(), sa, pol.params.SA)
	}
	if a := sa.addr.Load(); a.dst != newPeer || a.dstPort != 31000 || sa.key() != newKey {
		t.Fatalf("moved SA sends to %s:%d, key %v", a.dst, a.dstPort, sa.key())
	}
	if _, ok := e.SAStats(outKey); ok {
		t.Fatal("the old key still finds the SA")
	}
	list := e.SAs()
	if len(list) != 1 || list[0].Key != newKey || list[0].Params.Dst != newPeer || list[0].Params.DstPort != 31000 {
		t.Fatalf("SAs() = %+v", list)
	}
	if _, err := e.UpdateSAAddresses(outKey, dataplane.AddressUpdate{Src: out.Src, Dst: newPeer}); !errors.Is(err, dataplane.ErrNoSA) {
		t.Fatalf("moving a key that is gone: %v, want ErrNoSA", err)
	}
	// A move onto the key of another installed SA is refused and changes nothing.
	other := saParams(dataplane.Out, 0x100, netip.MustParseAddr("198.51.100.20"))
	if err := e.InstallSA(other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateSAAddresses(newKey, dataplane.AddressUpdate{Src: out.Src, Dst: other.Dst, Encap: true, DstPort: 4500}); !errors.Is(err, dataplane.ErrSAExists) {
		t.Fatalf("moving onto an installed key: %v, want ErrSAExists", err)
	}
	if pol.sa.Load() != sa {
		t.Fatal("a refused move changed the policy")
	}
	// An invalid update is refused.
	if _, err := e.UpdateSAAddresses(newKey, dataplane.AddressUpdate{Src: out.Src, Dst: netip.MustParseAddr("2001:db8::1"), Encap: true, DstPort: 4500}); err == nil {
		t.Fatal("a move to mixed address families was accepted")
	}

	// SetPolicySA to the other SA, then back; DeleteSA unbinds.
	otherKey := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x100, Dst: other.Dst}
	if err := e.SetPolicySA(id, otherKey); err != nil {
		t.Fatal(err)
	}
	if pol.sa.Load() == sa || pol.sa.Load() == nil {
		t.Fatal("SetPolicySA did not repoint the policy")
	}
	if err := e.DeleteSA(otherKey); err != nil {
		t.Fatal(err)
	}
	if pol.sa.Load() != nil {
		t.Fatal("the policy still points at a deleted SA")
	}
	if err := e.SetPolicySA(id, newKey); err != nil || pol.sa.Load() != sa {
		t.Fatalf("SetPolicySA back: %v", err)
	}
	if err := e.DeletePolicy(id); err != nil {
		t.Fatal(err)
	}
	if e.spd.lookup(&f) != nil || len(e.bySA) != 0 {
		t.Fatalf("after DeletePolicy: lookup finds a policy or %d SA links remain", len(e.bySA))
	}
	if err := e.DeletePolicy(id); !errors.Is(err, dataplane.ErrNoPolicy) {
		t.Fatalf("second DeletePolicy: %v", err)
	}
}

// TestInboundMoveKeepsState: moving an inbound SA keeps its replay window (a packet accepted
// before the move is a replay after it) and its counters, and the SAD still finds it by SPI.
func TestInboundMoveKeepsState(t *testing.T) {
	var fired []dataplane.SAKey
	e := headless(t, dataplane.Events{FirstInbound: func(k dataplane.SAKey, name string) { fired = append(fired, k) }})
	peer := netip.MustParseAddr("198.51.100.7")
	in := saParams(dataplane.In, 0x200, peer)
	in.NotifyFirstInbound = true
	in.Local = []ts.Selector{ts.FromPrefix(netip.MustParsePrefix("10.1.0.0/16"))}
	in.Remote = []ts.Selector{ts.FromPrefix(netip.MustParsePrefix("10.9.0.0/16"))}
	if err := e.InstallSA(in); err != nil {
		t.Fatal(err)
	}
	rx := &rxPipeline{e: e, hdrs: make([]byte, 1024)}
	sender, err := esp.NewSA(esp.Params{SPI: 0x200, Encryption: esp.EncrAESGCM16, EncKey: in.EncKey})
	if err != nil {
		t.Fatal(err)
	}
	packet := func(seq uint64) []byte {
		p, err := sender.Seal(nil, seq, 4, innerUDP([4]byte{10, 9, 0, 1}, [4]byte{10, 1, 0, 1}, "x"), 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	deliver := func(pkt []byte) (dataplane.DropReason, bool) {
		sa := e.sad.lookup(dataplane.ESP, 0x200, netip.Addr{})
		if sa == nil {
			t.Fatal("SAD lost the SA")
		}
		_, _, r, ok := rx.open(sa, append([]byte(nil), pkt...))
		return r, ok
	}
	first := packet(1)
	if _, ok := deliver(first); !ok {
		t.Fatal("first packet dropped")
	}
	if _, ok := deliver(packet(2)); !ok {
		t.Fatal("second packet dropped")
	}
	oldKey := dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x200, Dst: in.Dst}
	if len(fired) != 1 || fired[0] != oldKey {
		t.Fatalf("FirstInbound fired %v, want once for %v", fired, oldKey)
	}
	e.account(e.sad.lookup(dataplane.ESP, 0x200, netip.Addr{}), 2, 100)
	newLocal := netip.MustParseAddr("192.0.2.99")
	newKey, err := e.UpdateSAAddresses(oldKey, dataplane.AddressUpdate{Src: peer, Dst: newLocal, Encap: true, SrcPort: 1234, DstPort: 4500})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := deliver(first); ok || r != dataplane.DropReplay {
		t.Fatalf("a packet from before the move: ok %v, reason %v; want a replay drop", ok, r)
	}
	if _, ok := deliver(packet(3)); !ok {
		t.Fatal("packet after the move dropped")
	}
	if len(fired) != 1 {
		t.Fatalf("FirstInbound fired again after the move: %v", fired)
	}
	st, ok := e.SAStats(newKey)
	if !ok || st.Packets != 2 {
		t.Fatalf("stats under the new key: %+v %v (want the 2 packets counted before the move)", st, ok)
	}
	// A tampered packet does not count as the first authenticated one on another SA.
	in2 := saParams(dataplane.In, 0x201, peer)
	in2.NotifyFirstInbound = true
	if err := e.InstallSA(in2); err != nil {
		t.Fatal(err)
	}
	bad := packet(4)
	bad[len(bad)-1] ^= 1
	sa2 := e.sad.lookup(dataplane.ESP, 0x201, netip.Addr{})
	binary := append([]byte{0, 0, 0x02, 0x01}, bad[4:]...)
	if _, _, r, ok := rx.open(sa2, binary); ok || r != dataplane.DropAuth {
		t.Fatalf("forged packet: ok %v, reason %v", ok, r)
	}
	if len(fired) != 1 {
		t.Fatalf("FirstInbound fired for a packet that failed authentication: %v", fired)
	}
}

// TestSADSharedSPI: manual SAs may reuse an SPI for different local addresses; the destination
// tells them apart, and a single SA is found whatever the destination (NAT).
func TestSADSharedSPI(t *testing.T) {
	e := headless(t, dataplane.Events{})
	a := saParams(dataplane.In, 0x300, netip.MustParseAddr("198.51.100.7"))
	if err := e.InstallSA(a); err != nil {
		t.Fatal(err)
	}
	if sa := e.sad.lookup(dataplane.ESP, 0x300, netip.MustParseAddr("203.0.113.1")); sa == nil {
		t.Fatal("a lone SA was not found for another destination")
	}
	b := a
	b.Dst = netip.MustParseAddr("192.0.2.2")
	b.EncKey = gcmKey(9)
	if err := e.InstallSA(b); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []netip.Addr{a.Dst, b.Dst} {
		sa := e.sad.lookup(dataplane.ESP, 0x300, dst)
		if sa == nil || sa.key().Dst != dst {
			t.Fatalf("lookup for %v found %v", dst, sa)
		}
	}
	if sa := e.sad.lookup(dataplane.ESP, 0x300, netip.MustParseAddr("203.0.113.1")); sa != nil {
		t.Fatal("with two SAs sharing the SPI an unknown destination was matched")
	}
	if err := e.DeleteSA(dataplane.SAKey{Protocol: dataplane.ESP, SPI: 0x300, Dst: a.Dst}); err != nil {
		t.Fatal(err)
	}
	if sa := e.sad.lookup(dataplane.ESP, 0x300, a.Dst); sa == nil || sa.key().Dst != b.Dst {
		t.Fatal("after deleting one, the other is not found")
	}
}

// TestSPDKeyPrefix: an index key turns back into the prefix it was made from (routes are made
// from the keys).
func TestSPDKeyPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 2000 {
		var a netip.Addr
		if r.IntN(2) == 0 {
			a = netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		} else {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			a = netip.AddrFrom16(b)
		}
		p := netip.PrefixFrom(a, r.IntN(a.BitLen()+1))
		if got := prefixKey(p.Addr(), p.Bits()).prefix(); got != p.Masked() {
			t.Fatalf("%v: key gives back %v", p, got)
		}
	}
}
