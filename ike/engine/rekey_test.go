package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
)

// TestZeroLossChildRekey rekeys the Child SA from either side while data flows both ways every
// 10 ms; no packet may meet a missing SA (make-before-break, RFC 7296 §2.8).
func TestZeroLossChildRekey(t *testing.T) {
	for _, who := range []string{"initiator", "responder"} {
		t.Run(who+" rekeys", func(t *testing.T) {
			p := newPair(t, nil)
			p.up(t)
			p.traffic(time.Second)
			for round := range 5 {
				h := p.a
				if who == "responder" {
					h = p.b
				}
				if !h.Engine.RekeyChild(onlyChild(t, h).SPIIn) {
					t.Fatalf("round %d: RekeyChild found nothing", round)
				}
				p.traffic(3 * time.Second)
				checkPaired(t, p)
			}
			noLoss(t, p)
			if n := len(p.a.ChildUps()); n != 6 {
				t.Fatalf("A installed %d Child SAs, want 6", n)
			}
		})
	}
}

// TestZeroLossIKERekey rekeys the IKE SA from either side while data flows: the Child SAs move to
// the new IKE SA without a gap, and can be rekeyed there.
func TestZeroLossIKERekey(t *testing.T) {
	for _, who := range []string{"initiator", "responder"} {
		t.Run(who+" rekeys", func(t *testing.T) {
			p := newPair(t, nil)
			p.up(t)
			p.traffic(time.Second)
			h, conn := p.a, "a"
			if who == "responder" {
				h, conn = p.b, "b"
			}
			if !h.Engine.RekeyIKE(conn) {
				t.Fatal("RekeyIKE found nothing")
			}
			p.traffic(2 * time.Second)
			if !h.Engine.RekeyChild(onlyChild(t, h).SPIIn) {
				t.Fatal("RekeyChild after the IKE rekey found nothing")
			}
			p.traffic(3 * time.Second)
			noLoss(t, p)
			checkPaired(t, p)
			if len(p.a.Rekeyed()) != 1 || len(p.b.Rekeyed()) != 1 || len(p.a.Engine.SAs()) != 1 || len(p.b.Engine.SAs()) != 1 {
				t.Fatalf("rekeyed %d/%d, SAs %d/%d", len(p.a.Rekeyed()), len(p.b.Rekeyed()), len(p.a.Engine.SAs()), len(p.b.Engine.SAs()))
			}
		})
	}
}

// scripted gives A and B nonces whose order is known: the side with the lower prefix makes the
// redundant SA of every collision.
func scripted(aLow bool) *pairOptions {
	lo, hi := &enginetest.Nonces{Prefix: 0x10}, &enginetest.Nonces{Prefix: 0xe0}
	if !aLow {
		lo, hi = hi, lo
	}
	return &pairOptions{a: enginetest.HostOptions{Nonces: lo}, b: enginetest.HostOptions{Nonces: hi}}
}

// collide starts two exchanges, one at each side, so that both requests cross on the wire.
func collide(t *testing.T, p *pair, a, b func() bool) {
	t.Helper()
	if !a() || !b() {
		t.Fatal("an exchange could not be started")
	}
	p.net.Poll()
	if q := len(p.net.Queued()); q < 2 {
		t.Fatalf("%d requests on the wire, want both", q)
	}
}

// TestChildRekeyCollision: both sides rekey the same Child SA at once (RFC 7296 §2.8.1), with
// either nonce order; one Child SA pair survives, and no packet meets a missing SA.
func TestChildRekeyCollision(t *testing.T) {
	for _, aLow := range []bool{true, false} {
		t.Run(fmt.Sprintf("A's nonces lower %v", aLow), func(t *testing.T) {
			p := newPair(t, scripted(aLow))
			p.up(t)
			p.traffic(time.Second)
			spiA, spiB := onlyChild(t, p.a).SPIIn, onlyChild(t, p.b).SPIIn
			collide(t, p, func() bool { return p.a.Engine.RekeyChild(spiA) }, func() bool { return p.b.Engine.RekeyChild(spiB) })
			p.traffic(5 * time.Second)
			checkPaired(t, p)
			noLoss(t, p)
			survivor := onlyChild(t, p.a)
			// Each side made one new Child SA; the survivor is the one of the exchange with the
			// higher nonces: B's exchange when A's nonces are lower (B initiated it, so B's side
			// installed it as initiator).
			if got := p.b.Plane.Outbound("b", "b-net"); got != survivor.SPIIn {
				t.Fatalf("B sends on %08x, the surviving pair is %08x/%08x", got, survivor.SPIIn, survivor.SPIOut)
			}
			initiatorOfSurvivor := p.a
			if aLow {
				initiatorOfSurvivor = p.b
			}
			found := false
			for _, c := range initiatorOfSurvivor.ChildUps() {
				if c.Activate && (c.SPIIn == survivor.SPIIn || c.SPIIn == survivor.SPIOut) && c.Replaces != 0 {
					found = true
				}
			}
			if !found {
				t.Fatalf("the surviving Child SA was not made by %s's exchange", initiatorOfSurvivor.Name)
			}
		})
	}
}

// TestChildRekeyDeleteCollision: one side rekeys a Child SA while the other deletes it (RFC 7296
// §2.25.1). The delete wins; the rekey's new Child SA, if the peer made one, stands alone.
func TestChildRekeyDeleteCollision(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	spiA, spiB := onlyChild(t, p.a).SPIIn, onlyChild(t, p.b).SPIIn
	collide(t, p, func() bool { return p.a.Engine.RekeyChild(spiA) }, func() bool { return p.b.Engine.DeleteChild(spiB) })
	p.run(5 * time.Second)
	checkPaired(t, p)
	if p.a.Children()[spiA] != nil || p.b.Children()[spiB] != nil {
		t.Fatal("the deleted Child SA survived")
	}
	if len(p.a.IKEDown()) != 0 || len(p.b.IKEDown()) != 0 {
		t.Fatal("the IKE SA went down")
	}
}

// TestIKERekeyCollision: both sides rekey the IKE SA at once (RFC 7296 §2.8.2), with either nonce
// order: one new IKE SA survives on each side, carrying the Child SA, and data keeps flowing.
func TestIKERekeyCollision(t *testing.T) {
	for _, aLow := range []bool{true, false} {
		t.Run(fmt.Sprintf("A's nonces lower %v", aLow), func(t *testing.T) {
			p := newPair(t, scripted(aLow))
			p.up(t)
			p.traffic(time.Second)
			collide(t, p, func() bool { return p.a.Engine.RekeyIKE("a") }, func() bool { return p.b.Engine.RekeyIKE("b") })
			p.traffic(5 * time.Second)
			noLoss(t, p)
			checkPaired(t, p)
			sa, sb := p.a.Engine.SAs(), p.b.Engine.SAs()
			if len(sa) != 1 || len(sb) != 1 {
				t.Fatalf("IKE SAs left: A %d, B %d", len(sa), len(sb))
			}
			if sa[0].SPIi != sb[0].SPIi || sa[0].SPIr != sb[0].SPIr || len(sa[0].Children) != 1 || len(sb[0].Children) != 1 {
				t.Fatalf("A keeps %016x/%016x with %d children, B %016x/%016x with %d", sa[0].SPIi, sa[0].SPIr, len(sa[0].Children), sb[0].SPIi, sb[0].SPIr, len(sb[0].Children))
			}
			// The survivor was created by the exchange with the higher nonces: its initiator is
			// the side whose nonces are higher.
			wantInitiator := aLow == false
			if sa[0].Initiator != wantInitiator {
				t.Fatalf("A is initiator of the surviving IKE SA: %v, want %v", sa[0].Initiator, wantInitiator)
			}
			// The new IKE SA works: a Child rekey on it.
			if !p.a.Engine.RekeyChild(onlyChild(t, p.a).SPIIn) {
				t.Fatal("RekeyChild on the surviving IKE SA found nothing")
			}
			p.traffic(3 * time.Second)
			noLoss(t, p)
			checkPaired(t, p)
			for _, d := range append(p.a.IKEDown(), p.b.IKEDown()...) {
				if !d.Replaced {
					t.Fatalf("an IKE SA went down as the connection's end: %+v", d)
				}
			}
		})
	}
}

// TestIKERekeyDeleteCollision: one side rekeys the IKE SA while the other deletes it (RFC 7296
// §2.25.2): the delete wins and both sides end with nothing.
func TestIKERekeyDeleteCollision(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	collide(t, p, func() bool { return p.a.Engine.RekeyIKE("a") }, func() bool { return p.b.Engine.Terminate("b") == 1 })
	p.run(10 * time.Second)
	if na, nb := len(p.a.Engine.SAs()), len(p.b.Engine.SAs()); na != 0 || nb != 0 {
		t.Fatalf("IKE SAs left: A %d, B %d", na, nb)
	}
	if len(p.a.Children()) != 0 || len(p.b.Children()) != 0 {
		t.Fatal("Child SAs left")
	}
}

// TestChildCreateDuringIKERekey: a new Child SA asked for while the peer rekeys the IKE SA is
// answered TEMPORARY_FAILURE and retried later on the new IKE SA (RFC 7296 §2.25).
func TestChildCreateDuringIKERekey(t *testing.T) {
	p := newPair(t, nil)
	extraA := peerConfig(t, "a", "10.1.1.0/24", "10.2.1.0/24").Children[0]
	extraA.Name = "extra"
	extraB := peerConfig(t, "b", "10.2.1.0/24", "10.1.1.0/24").Children[0]
	extraB.Name = "extra"
	p.cb.Children = append(p.cb.Children, extraB)
	p.up(t)
	collide(t, p, func() bool { return p.a.Engine.CreateChild("a", extraA) }, func() bool { return p.b.Engine.RekeyIKE("b") })
	p.run(30 * time.Second)
	checkPaired(t, p)
	if n := len(p.a.Children()); n != 2 {
		t.Fatalf("A has %d Child SAs, want 2", n)
	}
	sa := p.a.Engine.SAs()
	if len(sa) != 1 || len(sa[0].Children) != 2 {
		t.Fatalf("A's IKE SAs %+v", sa)
	}
}

// TestRekeyResponderKeepsOldSAUntilPeerSwitches: when the peer rekeys, we keep sending on the old
// Child SA until the peer's Delete (or its first packet on the new one).
func TestRekeyResponderKeepsOldSAUntilPeerSwitches(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	old := onlyChild(t, p.b)
	// Hold back A's Delete of the old Child SA, and A's data packets.
	holdDelete := true
	p.net.Drop = func(pk enginetest.Packet) bool {
		return holdDelete && pk.From.Addr() == p.addrA.Addr() && (pk.ESP || len(p.a.ChildUps()) == 2)
	}
	if !p.a.Engine.RekeyChild(onlyChild(t, p.a).SPIIn) {
		t.Fatal("RekeyChild found nothing")
	}
	p.traffic(200 * time.Millisecond)
	if got := p.b.Plane.Outbound("b", "b-net"); got != old.SPIOut {
		t.Fatalf("B moved its traffic to %08x before A showed it uses the new Child SA (old %08x)", got, old.SPIOut)
	}
	holdDelete = false
	p.traffic(3 * time.Second)
	if got := p.b.Plane.Outbound("b", "b-net"); got == old.SPIOut || got == 0 {
		t.Fatalf("B still sends on %08x", got)
	}
	checkPaired(t, p)
	_, _, noSA, _ := p.a.Plane.Counters()
	if noSA != 0 {
		t.Fatalf("A received %d packets for missing SAs", noSA)
	}
	if c := onlyChild(t, p.b); c.SPIIn == old.SPIIn {
		t.Fatal("the old Child SA was not replaced")
	}
	_ = ike.ChildInstalled
}
