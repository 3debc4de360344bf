package engine_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/ike/wire"
)

// restartB replaces B by a fresh engine at the same address, as a crash and restart would.
func restartB(t *testing.T, p *pair) {
	t.Helper()
	p.net.Remove(p.b)
	p.b = p.net.AddHost(t, "B2", p.addrB.Addr(), enginetest.HostOptions{Configs: func(netip.Addr, netip.Addr) []*ike.PeerConfig { return []*ike.PeerConfig{p.cb} }})
}

// TestPeerRestartDetectedByInvalidSPI: B restarts and forgets everything; A's next liveness
// check is answered INVALID_IKE_SPI (RFC 7296 §2.21.4), so A notices at once instead of after
// its whole retransmission schedule.
func TestPeerRestartDetectedByInvalidSPI(t *testing.T) {
	p := newPair(t, nil)
	p.ca.DPDDelay = 5 * time.Second
	p.up(t)
	restartB(t, p)
	start := p.net.Clock.Now()
	p.run(8 * time.Second)
	down := p.a.IKEDown()
	if len(down) != 1 || down[0].Reason != ike.ReasonPeerRestarted {
		t.Fatalf("A's IKE down events %+v", down)
	}
	if took := p.net.Clock.Now().Sub(start); took > 8*time.Second {
		t.Fatalf("took %v", took)
	}
	if st := p.a.Engine.Stats(); st.Retransmits != 0 {
		t.Fatalf("A retransmitted %d times before it noticed", st.Retransmits)
	}
}

// TestForgedInvalidSPIIgnored: an INVALID_IKE_SPI that does not name our SPIs, or does not come
// from the peer, changes nothing.
func TestForgedInvalidSPIIgnored(t *testing.T) {
	p := newPair(t, nil)
	p.ca.DPDDelay = 5 * time.Second
	p.up(t)
	sa := p.a.Engine.SAs()[0]
	// A forged answer with a wrong responder SPI, as for A's first liveness check (message ID 2).
	m := &wire.Message{Header: wire.Header{SPIi: sa.SPIi, SPIr: sa.SPIr + 1, Exchange: wire.ExchangeInformational, MessageID: 2, Flags: wire.FlagResponse},
		Payloads: []wire.Payload{&wire.Notify{NotifyType: wire.InvalidIKESPI}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p.net.Clock.Advance(5 * time.Second)
	p.net.Poll()
	p.a.Engine.Receive(b, p.addrA, netip.MustParseAddrPort("203.0.113.9:500"))
	p.run(3 * time.Second)
	if len(p.a.IKEDown()) != 0 {
		t.Fatalf("a forged INVALID_IKE_SPI took the SA down: %+v", p.a.IKEDown())
	}
}

// TestRestartedPeerWithInitialContactReplacesStaleSA: B restarts and initiates again; its
// INITIAL_CONTACT makes A drop the stale IKE SA, so A ends with one IKE SA, not two.
func TestRestartedPeerWithInitialContactReplacesStaleSA(t *testing.T) {
	p := newPair(t, &pairOptions{a: enginetest.HostOptions{Configs: func(netip.Addr, netip.Addr) []*ike.PeerConfig { return nil }}})
	// A responds too: give A the mirrored configuration.
	p.a.Engine.Close()
	p.net.Remove(p.a)
	p.a = p.net.AddHost(t, "A", p.addrA.Addr(), enginetest.HostOptions{Configs: func(netip.Addr, netip.Addr) []*ike.PeerConfig { return []*ike.PeerConfig{p.ca} }})
	p.up(t)
	restartB(t, p)
	if err := p.b.Engine.Initiate(p.cb, p.cb.Children, p.addrB, p.addrA); err != nil {
		t.Fatal(err)
	}
	p.run(2 * time.Second)
	sas := p.a.Engine.SAs()
	if len(sas) != 1 || sas[0].Initiator {
		t.Fatalf("A's IKE SAs after B's restart: %+v", sas)
	}
	down := p.a.IKEDown()
	if len(down) != 1 || down[0].Reason != ike.ReasonInitialContact {
		t.Fatalf("A's IKE down events %+v", down)
	}
	if len(p.a.Children()) != 1 {
		t.Fatalf("A has %d Child SAs", len(p.a.Children()))
	}
	checkPaired(t, p)
}

// TestHalfOpenOutlivesRetransmissions: the responder keeps a half-open IKE SA as long as the
// initiator may retransmit IKE_AUTH, so a handshake whose IKE_AUTH requests are lost for a while
// still completes (it once waited only 30 s while initiators retransmit for much longer).
func TestHalfOpenOutlivesRetransmissions(t *testing.T) {
	p := newPair(t, &pairOptions{
		a: enginetest.HostOptions{Modify: func(c *engine.Config) { c.RetransmitTimeout, c.RetransmitTries = 4*time.Second, 5 }},
		b: enginetest.HostOptions{Modify: func(c *engine.Config) { c.RetransmitTimeout, c.RetransmitTries = 4*time.Second, 5 }},
	})
	lose := true
	p.net.Drop = func(pk enginetest.Packet) bool {
		// After IKE_SA_INIT, lose everything A sends for 80 seconds.
		return lose && pk.From.Addr() == p.addrA.Addr() && p.b.Engine.Stats().HalfOpen == 1
	}
	p.initiate(t)
	p.run(80 * time.Second)
	lose = false
	p.run(90 * time.Second)
	if len(p.a.IKEUp()) != 1 || len(p.b.IKEUp()) != 1 {
		t.Fatalf("not up: A %v, B %v", p.a.Failures(false), p.b.Failures(false))
	}
}

// TestHalfOpenExpires: a half-open SA goes once no retransmission can come any more.
func TestHalfOpenExpires(t *testing.T) {
	p := newPair(t, nil)
	p.net.Drop = func(pk enginetest.Packet) bool {
		return pk.From.Addr() == p.addrA.Addr() && p.b.Engine.Stats().HalfOpen == 1
	}
	p.initiate(t)
	budget := engine.RetransmitBudget(time.Second, 1.8, 3, 0)
	p.run(budget + 11*time.Second)
	if st := p.b.Engine.Stats(); st.HalfOpen != 0 || len(p.b.Engine.SAs()) != 0 {
		t.Fatalf("B still holds %d half-open SAs", st.HalfOpen)
	}
	if f := p.b.Failures(false); len(f) != 1 || !strings.Contains(f[0], "half-open") {
		t.Fatalf("B's failures %v", f)
	}
}

// TestNATMappingChange: A sits behind a NAT whose mapping changes; B follows the new address
// with the IKE SA and its ESP-in-UDP SAs on the next authenticated message, and data flows again.
func TestNATMappingChange(t *testing.T) {
	p := newPair(t, nil)
	nat := p.net.AddNAT(netip.MustParseAddr("198.51.100.1"), p.addrA.Addr())
	p.ca.DPDDelay = 2 * time.Second
	p.up(t)
	sb := p.b.Engine.SAs()[0]
	if !sb.NATRemote || sb.Remote.Addr() != nat.Public || sb.Remote.Port() == 4500 {
		t.Fatalf("B sees %s (NAT remote %v)", sb.Remote, sb.NATRemote)
	}
	p.traffic(time.Second)
	p.net.Rebind(nat)
	p.traffic(5 * time.Second)
	moves := p.b.Moves()
	if len(moves) != 1 || moves[0].IKE.Remote == sb.Remote || !moves[0].Encap {
		t.Fatalf("B's Child SA moves %+v", moves)
	}
	if got := p.b.Engine.SAs()[0].Remote; got == sb.Remote || got.Addr() != nat.Public {
		t.Fatalf("B's IKE SA still at %s", got)
	}
	// Data from B reaches A through the new mapping.
	_, before, _, _ := p.a.Plane.Counters()
	p.traffic(time.Second)
	_, after, _, _ := p.a.Plane.Counters()
	if after-before < 50 {
		t.Fatalf("A received %d packets after the move", after-before)
	}
	if len(p.a.Moves()) != 0 {
		t.Fatal("A, the side behind the NAT, moved its SAs")
	}
}

// TestNoFollowWithoutPeerNAT: with no NAT in front of the peer, a message from another address
// (authenticated) is answered there, but the IKE SA stays where it was (RFC 7296 §2.23 only asks
// to follow a peer behind a NAT; address changes otherwise are MOBIKE's business).
func TestNoFollowWithoutPeerNAT(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	// Re-send A's next request from another source port by rewriting it in flight.
	p.net.Drop = nil
	before := p.b.Engine.SAs()[0].Remote
	if !p.a.Engine.RekeyChild(onlyChild(t, p.a).SPIIn) {
		t.Fatal("RekeyChild found nothing")
	}
	p.net.Poll()
	for _, pk := range p.net.Queued() {
		p.b.Engine.Receive(pk.B, pk.To, netip.AddrPortFrom(pk.From.Addr(), 600))
	}
	p.net.Poll()
	if got := p.b.Engine.SAs()[0].Remote; got != before {
		t.Fatalf("B moved its IKE SA to %s without a NAT in front of A", got)
	}
	if len(p.b.Moves()) != 0 {
		t.Fatal("B moved Child SAs")
	}
}
