package engine_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/proposal"
)

// withChildProposals replaces both sides' child proposals: ah and esp are proposal lists (empty:
// none), offered AH first.
func withChildProposals(t *testing.T, p *pair, ah, esp string) {
	t.Helper()
	var props []proposal.Proposal
	if ah != "" {
		l, err := proposal.ParseAH(ah)
		if err != nil {
			t.Fatal(err)
		}
		props = append(props, l...)
	}
	if esp != "" {
		l, err := proposal.ParseESP(esp)
		if err != nil {
			t.Fatal(err)
		}
		props = append(props, l...)
	}
	p.ca.Children[0].Proposals = props
	p.cb.Children[0].Proposals = props
}

// allAH asserts that every Child SA a host installed was AH.
func allAH(t *testing.T, h *enginetest.Host) {
	t.Helper()
	for _, c := range h.ChildUps() {
		if c.Protocol() != proposal.ProtoAH || len(c.EncrIn) != 0 || c.Encap {
			t.Fatalf("%s installed %08x as %s (encryption keys %d bytes, encap %v), want plain AH", h.Name, c.SPIIn, c.Protocol(), len(c.EncrIn), c.Encap)
		}
	}
}

// TestAHChildRekeyAndCollisions: an AH Child SA, with PFS on rekeys, rekeyed by either side and by
// both at once with either nonce order, while data flows both ways every 10 ms: no data packet
// meets a missing SA (the fake data plane finds SAs by protocol and SPI, so an AH packet on an
// SA the peer installed as ESP would count), every Child SA is AH, and both sides pair up.
func TestAHChildRekeyAndCollisions(t *testing.T) {
	for _, who := range []string{"initiator", "responder", "both, A's nonces lower", "both, B's nonces lower"} {
		t.Run(who, func(t *testing.T) {
			var opts *pairOptions
			if strings.HasPrefix(who, "both") {
				opts = scripted(strings.Contains(who, "A's"))
			}
			p := newPair(t, opts)
			withChildProposals(t, p, "sha256-x25519", "")
			p.up(t)
			p.traffic(time.Second)
			for round := range 3 {
				spiA, spiB := onlyChild(t, p.a).SPIIn, onlyChild(t, p.b).SPIIn
				switch who {
				case "initiator":
					if !p.a.Engine.RekeyChild(spiA) {
						t.Fatalf("round %d: RekeyChild found nothing", round)
					}
				case "responder":
					if !p.b.Engine.RekeyChild(spiB) {
						t.Fatalf("round %d: RekeyChild found nothing", round)
					}
				default:
					collide(t, p, func() bool { return p.a.Engine.RekeyChild(spiA) }, func() bool { return p.b.Engine.RekeyChild(spiB) })
				}
				p.traffic(5 * time.Second)
				checkPaired(t, p)
			}
			noLoss(t, p)
			allAH(t, p.a)
			allAH(t, p.b)
			if n := len(p.a.ChildUps()); n < 4 {
				t.Fatalf("A installed %d Child SAs, want at least 4", n)
			}
			// Deleting it removes it on both sides.
			if !p.a.Engine.DeleteChild(onlyChild(t, p.a).SPIIn) {
				t.Fatal("DeleteChild found nothing")
			}
			p.run(time.Second)
			if len(p.a.Children()) != 0 || len(p.b.Children()) != 0 {
				t.Fatalf("after the delete A has %d, B %d Child SAs", len(p.a.Children()), len(p.b.Children()))
			}
			if len(p.a.IKEDown()) != 0 {
				t.Fatal("the IKE SA went down")
			}
		})
	}
}

// TestAHBehindNAT: a NAT between the peers rules AH out (RFC 3948 encapsulates ESP only): a child
// that offers only AH fails with a message saying so; one that also offers ESP gets ESP in UDP,
// and data flows.
func TestAHBehindNAT(t *testing.T) {
	for _, esp := range []string{"", "aes256gcm16"} {
		t.Run(fmt.Sprintf("esp %q", esp), func(t *testing.T) {
			p := newPair(t, nil)
			p.net.AddNAT(netip.MustParseAddr("198.51.100.1"), p.addrA.Addr())
			withChildProposals(t, p, "sha256", esp)
			p.initiate(t)
			p.run(time.Second)
			if esp == "" {
				f := p.a.Failures(false)
				if len(f) == 0 || !strings.Contains(f[0], "AH is not possible here: a NAT lies between the peers") {
					t.Fatalf("A's failures %v", f)
				}
				if len(p.a.ChildUps())+len(p.b.ChildUps()) != 0 {
					t.Fatal("an AH Child SA was installed across a NAT")
				}
				return
			}
			if len(p.a.Children()) != 1 || len(p.b.Children()) != 1 {
				t.Fatalf("children %d/%d, failures %v %v", len(p.a.Children()), len(p.b.Children()), p.a.Failures(false), p.b.Failures(false))
			}
			if c := onlyChild(t, p.a); c.Protocol() != proposal.ProtoESP || !c.Encap {
				t.Fatalf("negotiated %s (encap %v), want ESP in UDP", c.Protocol(), c.Encap)
			}
			p.traffic(time.Second)
			noLoss(t, p)
			checkPaired(t, p)
		})
	}
}

// TestAHPacketsDoNotCrossNAT keeps the fake network honest: an AH data packet through a NAT is
// lost (there is nothing to translate it with), so the test above would notice an AH SA behind
// a NAT.
func TestAHPacketsDoNotCrossNAT(t *testing.T) {
	p := newPair(t, nil)
	withChildProposals(t, p, "sha256", "")
	p.up(t)
	p.traffic(100 * time.Millisecond)
	_, before, _, lostBefore := p.b.Plane.Counters()
	if before == 0 || lostBefore != 0 {
		t.Fatalf("B received %d, lost %d before the NAT", before, lostBefore)
	}
	p.net.AddNAT(netip.MustParseAddr("198.51.100.1"), p.addrA.Addr())
	p.traffic(100 * time.Millisecond)
	_, after, _, lost := p.b.Plane.Counters()
	if after != before || lost == 0 {
		t.Fatalf("AH through a NAT: B received %d more, lost %d", after-before, lost)
	}
}
