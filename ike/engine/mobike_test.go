package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
)

// MOBIKE: A (the initiator) moves to another address during traffic; it sends
// UPDATE_SA_ADDRESSES from there, B follows with the IKE SA and every Child SA, and the data
// flows again; only the packets sent while A was gone and before B moved are lost.
func TestMOBIKEMove(t *testing.T) {
	p := newPair(t, nil)
	p.ca.MOBIKE, p.cb.MOBIKE = true, true
	p.up(t)
	p.traffic(time.Second)
	newAddr := netip.MustParseAddr("198.51.100.7")
	p.net.MoveHost(p.a, newAddr)
	p.traffic(200 * time.Millisecond) // the move is noticed a little later, as on a real host
	if n := p.a.Engine.Roam(func(local, remote netip.AddrPort) netip.Addr { return newAddr }); n != 1 {
		t.Fatalf("Roam asked %d IKE SAs to move", n)
	}
	_, recvBefore, _, lostBefore := p.b.Plane.Counters()
	p.traffic(2 * time.Second)
	sas := p.b.Engine.SAs()
	if len(sas) != 1 || sas[0].Remote.Addr() != newAddr {
		t.Fatalf("B's IKE SA: %+v", sas)
	}
	moves := p.b.Moves()
	if len(moves) != 1 || moves[0].IKE.Remote.Addr() != newAddr {
		t.Fatalf("B's Child SA moves: %+v", moves)
	}
	if len(p.a.Moves()) != 1 {
		t.Fatalf("A's Child SAs did not move: %+v", p.a.Moves())
	}
	sentB, recvAfter, noSA, _ := p.b.Plane.Counters()
	sentA, recvA, noSAA, _ := p.a.Plane.Counters()
	if noSA+noSAA != 0 {
		t.Fatalf("%d packets met a missing SA", noSA+noSAA)
	}
	// After the move both directions flow again.
	if recvAfter-recvBefore < 150 {
		t.Fatalf("B received %d packets after the move", recvAfter-recvBefore)
	}
	// Lost: what B sent to A's old address in the 200 ms until A noticed, plus the update's
	// round trip (10 ms steps: about 20 packets); A's packets reach B throughout (B accepts the
	// SA's packets from anywhere, as the data plane looks up SPIs).
	lost := (sentB - recvA) + (sentA - recvAfter) - lostBefore
	if lost > 30 {
		t.Fatalf("%d packets lost across the move", lost)
	}
	t.Logf("lost %d of %d packets across the move", lost, sentA+sentB)
	if p.a.Engine.SAs()[0].Local.Addr() != newAddr || len(p.a.Failures(false)) != 0 {
		t.Fatalf("A: %+v %v", p.a.Engine.SAs()[0], p.a.Failures(false))
	}
	_ = ike.ReasonNone
}

// Without MOBIKE negotiated (the peer does not support it), Roam does nothing.
func TestMOBIKENotNegotiated(t *testing.T) {
	p := newPair(t, nil)
	p.ca.MOBIKE = true
	p.up(t)
	if n := p.a.Engine.Roam(func(local, remote netip.AddrPort) netip.Addr { return netip.MustParseAddr("198.51.100.7") }); n != 0 {
		t.Fatalf("Roam moved %d IKE SAs without MOBIKE", n)
	}
}
