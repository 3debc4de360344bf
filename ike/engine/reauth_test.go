package engine_test

import (
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
)

// reauth_time: A re-authenticates with a new IKE SA and Child SA before it deletes the old ones;
// traffic flows throughout without a packet for a missing SA, and the virtual IP stays.
func TestReauthMakeBeforeBreak(t *testing.T) {
	p, p4, _ := vipPair(t)
	p.ca.ReauthTime = 20 * time.Second
	p.up(t)
	firstA := p.a.Engine.SAs()[0].SPIi
	p.traffic(25 * time.Second)
	sas := p.a.Engine.SAs()
	if len(sas) != 1 || sas[0].SPIi == firstA {
		t.Fatalf("A's IKE SAs after re-authentication: %+v", sas)
	}
	downs := p.a.IKEDown()
	if len(downs) != 1 || downs[0].Reason != ike.ReasonReauthenticated || downs[0].IKE.SPIi != firstA {
		t.Fatalf("A's IKE SA downs: %+v", downs)
	}
	if len(p.b.IKEUp()) != 2 || len(p.b.Engine.SAs()) != 1 {
		t.Fatalf("B: %d IKE SAs up in total, %d now", len(p.b.IKEUp()), len(p.b.Engine.SAs()))
	}
	_, recvA, noA, _ := p.a.Plane.Counters()
	_, recvB, noB, _ := p.b.Plane.Counters()
	if noA+noB != 0 || recvA == 0 || recvB == 0 {
		t.Fatalf("traffic: %d/%d received, %d/%d for a missing SA", recvA, recvB, noA, noB)
	}
	// The same virtual IP, still one lease (held by the new IKE SA).
	vips := p.a.VirtualIPs()
	if len(vips) != 2 || vips[0].Addrs[0] != vips[1].Addrs[0] || p4.Held() != 1 {
		t.Fatalf("virtual IPs %+v, held %d", vips, p4.Held())
	}
	checkPaired(t, p)
}
