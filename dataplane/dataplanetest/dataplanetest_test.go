package dataplanetest

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
	"github.com/goipsec/goipsec/ts"
)

var (
	local = netip.MustParseAddr("192.0.2.1")
	peer  = netip.MustParseAddr("198.51.100.7")
)

func child(dir dataplane.Direction, spi uint32) dataplane.SAParams {
	p := dataplane.SAParams{Name: "gw/net", Direction: dir, Protocol: dataplane.ESP, SPI: spi, Encap: true,
		SrcPort: 4500, DstPort: 4500, Encryption: esp.EncrAESGCM16, EncKey: make([]byte, 36)}
	if dir == dataplane.Out {
		p.Src, p.Dst = local, peer
	} else {
		p.Src, p.Dst = peer, local
	}
	return p
}

func key(spi uint32, dst netip.Addr) dataplane.SAKey {
	return dataplane.SAKey{Protocol: dataplane.ESP, SPI: spi, Dst: dst}
}

func sel(s string) []ts.Selector {
	x, err := ts.Parse(s)
	if err != nil {
		panic(err)
	}
	return []ts.Selector{x}
}

// TestLogAndHistory drives a make-before-break rekey through the fake and checks the log's order
// and what InstalledAt answers for packets in between.
func TestLogAndHistory(t *testing.T) {
	b := New()
	var first []dataplane.SAKey
	b.SetEvents(dataplane.Events{FirstInbound: func(k dataplane.SAKey, _ string) { first = append(first, k) }})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.InstallSA(child(dataplane.In, 0x10)))
	must(b.InstallSA(child(dataplane.Out, 0x20)))
	id, err := b.InstallPolicy(dataplane.PolicyParams{Name: "gw/net", Local: sel("10.1.0.0/24"), Remote: sel("10.2.0.0/24"),
		Action: dataplane.Protect, SA: key(0x20, peer), Route: true})
	must(err)
	// Rekey: new inbound SA with notification, new outbound SA, then the switch.
	newIn := child(dataplane.In, 0x11)
	newIn.NotifyFirstInbound = true
	must(b.InstallSA(newIn))
	must(b.InstallSA(child(dataplane.Out, 0x21)))
	before, err := b.Receive(key(0x10, local))
	must(err)
	firstNew, err := b.Receive(key(0x11, local))
	must(err)
	if _, err := b.Receive(key(0x11, local)); err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0] != key(0x11, local) {
		t.Fatalf("FirstInbound: %v", first)
	}
	must(b.SetPolicySA(id, key(0x21, peer)))
	mark := b.Mark("old SAs go")
	must(b.DeleteSA(key(0x20, peer)))
	must(b.DeleteSA(key(0x10, local)))
	late, err := b.Receive(key(0x10, local))
	if !errors.Is(err, dataplane.ErrNoSA) {
		t.Fatalf("packet on a deleted SA: %v", err)
	}

	var ops []Op
	for _, c := range b.Calls() {
		ops = append(ops, c.Op)
	}
	want := []Op{OpInstallSA, OpInstallSA, OpInstallPolicy, OpInstallSA, OpInstallSA, OpReceive, OpReceive, OpReceive,
		OpSetPolicySA, OpMark, OpDeleteSA, OpDeleteSA, OpReceive}
	if !slices.Equal(ops, want) {
		t.Fatalf("log %v, want %v", ops, want)
	}
	for _, q := range []struct {
		k    dataplane.SAKey
		seq  int
		want bool
	}{
		{key(0x10, local), before, true},
		{key(0x11, local), before, true},
		{key(0x11, local), firstNew, true},
		{key(0x10, local), mark, true},
		{key(0x10, local), late, false},
		{key(0x20, peer), mark + 1, false}, // deleted at mark+1
		{key(0x21, peer), 1, false},
	} {
		if got := b.InstalledAt(q.k, q.seq); got != q.want {
			t.Errorf("InstalledAt(%v, %d) = %v, want %v", q.k, q.seq, got, q.want)
		}
	}
	if p, ok := b.Policy(id); !ok || p.SA != key(0x21, peer) {
		t.Fatalf("policy after rekey: %+v %v", p, ok)
	}
	if st, _ := b.SAStats(key(0x11, local)); st.Packets != 2 {
		t.Fatalf("new inbound SA counted %d packets", st.Packets)
	}
	if c := b.CallsOf(OpInstallSA); len(c) != 4 || c[2].SA.SPI != 0x11 || !c[2].SA.NotifyFirstInbound || len(c[2].SA.EncKey) != 36 {
		t.Fatalf("InstallSA calls: %v", c)
	}
}

// TestMove: UpdateSAAddresses renames the SA, keeps its counters, and the policy follows.
func TestMove(t *testing.T) {
	b := New()
	if err := b.InstallSA(child(dataplane.Out, 0x20)); err != nil {
		t.Fatal(err)
	}
	id, _ := b.InstallPolicy(dataplane.PolicyParams{Local: sel("10.1.0.0/24"), Remote: sel("10.2.0.0/24"), Action: dataplane.Protect, SA: key(0x20, peer)})
	pkt := Packet{Src: netip.MustParseAddr("10.1.0.5"), Dst: netip.MustParseAddr("10.2.0.9"), Protocol: 6}
	if o, err := b.Send(pkt); err != nil || !o.Installed {
		t.Fatalf("send: %+v %v", o, err)
	}
	moved := netip.MustParseAddr("198.51.100.99")
	nk, err := b.UpdateSAAddresses(key(0x20, peer), dataplane.AddressUpdate{Src: local, Dst: moved, Encap: true, SrcPort: 4500, DstPort: 1024})
	if err != nil || nk != key(0x20, moved) {
		t.Fatalf("move: %v %v", nk, err)
	}
	o, err := b.Send(pkt)
	if err != nil || o.SA != nk || !o.Installed {
		t.Fatalf("send after move: %+v %v", o, err)
	}
	if p, _ := b.Policy(id); p.SA != nk {
		t.Fatalf("policy names %v", p.SA)
	}
	st, ok := b.SAStats(nk)
	if !ok || st.Packets != 2 {
		t.Fatalf("stats after move: %+v %v", st, ok)
	}
	if p, _ := b.Installed(nk); p.DstPort != 1024 || p.Dst != moved {
		t.Fatalf("moved SA: %+v", p)
	}
	if b.InstalledAt(key(0x20, peer), o.Seq) || !b.InstalledAt(nk, o.Seq) {
		t.Fatal("history does not show the move")
	}
	if _, err := b.UpdateSAAddresses(key(0x20, peer), dataplane.AddressUpdate{Src: local, Dst: moved}); !errors.Is(err, dataplane.ErrNoSA) {
		t.Fatalf("moving the old key: %v", err)
	}
}

// TestSendRankOrder: priority, then specificity decide; trap policies raise Acquire; bypass and
// discard are reported; packets matching nothing are dropped.
func TestSendRankOrder(t *testing.T) {
	b := New()
	var acquires []dataplane.Acquire
	b.SetEvents(dataplane.Events{Acquire: func(a dataplane.Acquire) { acquires = append(acquires, a) }})
	wide, _ := b.InstallPolicy(dataplane.PolicyParams{Name: "wide", Local: sel("0.0.0.0/0"), Remote: sel("10.0.0.0/8"), Action: dataplane.Protect})
	narrow, _ := b.InstallPolicy(dataplane.PolicyParams{Name: "narrow", Local: sel("0.0.0.0/0"), Remote: sel("10.2.0.0/16"), Action: dataplane.Protect, SA: key(0x20, peer)})
	hole, _ := b.InstallPolicy(dataplane.PolicyParams{Name: "dns", Local: sel("0.0.0.0/0"), Remote: sel("10.2.0.53[udp/53]"), Action: dataplane.Bypass})
	drop, _ := b.InstallPolicy(dataplane.PolicyParams{Name: "drop", Local: sel("0.0.0.0/0"), Remote: sel("10.0.0.0/8"), Action: dataplane.Discard, Priority: -1})
	if err := b.InstallSA(child(dataplane.Out, 0x20)); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("10.1.0.1")
	check := func(dst string, proto uint8, port uint16, wantPolicy dataplane.PolicyID, wantInstalled bool) {
		t.Helper()
		o, _ := b.Send(Packet{Src: src, Dst: netip.MustParseAddr(dst), Protocol: proto, DstPort: port, HasPorts: true})
		if o.Policy != wantPolicy || o.Installed != wantInstalled {
			t.Errorf("%s proto %d port %d: policy %d installed %v, want %d %v", dst, proto, port, o.Policy, o.Installed, wantPolicy, wantInstalled)
		}
	}
	check("10.2.0.1", 6, 80, drop, false) // the discard policy has the best priority
	if err := b.DeletePolicy(drop); err != nil {
		t.Fatal(err)
	}
	check("10.2.0.1", 6, 80, narrow, true)
	check("10.2.0.53", 17, 53, hole, false)
	check("10.2.0.53", 6, 53, narrow, true)
	check("10.3.0.1", 6, 80, wide, false)
	check("192.168.0.1", 6, 80, 0, false)
	if len(acquires) != 1 || acquires[0].Policy != wide || acquires[0].Dst != netip.MustParseAddr("10.3.0.1") {
		t.Fatalf("acquires %+v", acquires)
	}
	if got := b.PolicyIDs(); !slices.Equal(got, []dataplane.PolicyID{hole, narrow, wide}) {
		t.Fatalf("rank order %v", got)
	}
	st := b.Stats()
	if st.Drops[dataplane.DropDiscard] != 1 || st.Drops[dataplane.DropNoSA] != 1 || st.Drops[dataplane.DropNoPolicy] != 1 || st.Bypassed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRefusals: the fake refuses what the engine refuses, and FailNext injects failures; neither
// changes state.
func TestRefusals(t *testing.T) {
	b := New()
	short := child(dataplane.Out, 0x20)
	short.EncKey = make([]byte, 20-1)
	ah := child(dataplane.Out, 0x21)
	ah.Protocol, ah.Encryption, ah.EncKey, ah.Integrity, ah.IntegKey = dataplane.AH, 0, nil, esp.IntegHMACSHA2_256_128, make([]byte, 32)
	mixed := child(dataplane.Out, 0x22)
	mixed.Dst = netip.MustParseAddr("2001:db8::1")
	for name, p := range map[string]dataplane.SAParams{"short key": short, "AH in UDP": ah, "mixed families": mixed} {
		if err := b.InstallSA(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := b.InstallSA(child(dataplane.Out, 0x20)); err != nil {
		t.Fatal(err)
	}
	if err := b.InstallSA(child(dataplane.Out, 0x20)); !errors.Is(err, dataplane.ErrSAExists) {
		t.Fatalf("duplicate: %v", err)
	}
	injected := errors.New("netlink busy")
	b.FailNext(OpDeleteSA, injected)
	if err := b.DeleteSA(key(0x20, peer)); err != injected {
		t.Fatalf("injected failure: %v", err)
	}
	if _, ok := b.Installed(key(0x20, peer)); !ok {
		t.Fatal("a failed delete removed the SA")
	}
	if err := b.DeleteSA(key(0x20, peer)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.InstallPolicy(dataplane.PolicyParams{Local: sel("10.0.0.0/8")}); err == nil {
		t.Fatal("a policy without remote selectors was accepted")
	}
	if err := b.SetPolicySA(99, key(1, peer)); !errors.Is(err, dataplane.ErrNoPolicy) {
		t.Fatalf("SetPolicySA of an unknown policy: %v", err)
	}
	if len(b.SAs()) != 0 {
		t.Fatalf("SAs left: %v", b.SAs())
	}
	b.Close()
	if err := b.InstallSA(child(dataplane.Out, 0x23)); err == nil {
		t.Fatal("install after Close accepted")
	}
}
