package engine_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

func peerConfig(t testing.TB, name, local, remote string) *ike.PeerConfig {
	props, err := proposal.ParseIKE("aes256gcm16-prfsha256-x25519")
	if err != nil {
		t.Fatal(err)
	}
	esp, err := proposal.ParseESP("aes256gcm16")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := ts.Parse(local)
	r, _ := ts.Parse(remote)
	return &ike.PeerConfig{Name: name, Proposals: props, PSK: func(_, _ ike.Identity) ([]byte, bool) { return []byte("psk"), true },
		Children: []*ike.ChildConfig{{Name: name + "-net", LocalTS: []ts.Selector{l}, RemoteTS: []ts.Selector{r}, Proposals: esp}}}
}

// pair is two engines, A (initiator) and B (responder), on a fake network in virtual time.
type pair struct {
	net          *enginetest.Net
	a, b         *enginetest.Host
	ca, cb       *ike.PeerConfig
	addrA, addrB netip.AddrPort
}

type pairOptions struct {
	a, b enginetest.HostOptions
}

func newPair(t testing.TB, opts *pairOptions) *pair {
	if opts == nil {
		opts = &pairOptions{}
	}
	p := &pair{net: enginetest.NewNet(), addrA: netip.MustParseAddrPort("192.0.2.1:500"), addrB: netip.MustParseAddrPort("192.0.2.2:500")}
	p.ca = peerConfig(t, "a", "10.1.0.0/24", "10.2.0.0/24")
	p.cb = peerConfig(t, "b", "10.2.0.0/24", "10.1.0.0/24")
	ob := opts.b
	if ob.Configs == nil {
		ob.Configs = func(netip.Addr, netip.Addr) []*ike.PeerConfig { return []*ike.PeerConfig{p.cb} }
	}
	p.a = p.net.AddHost(t, "A", p.addrA.Addr(), opts.a)
	p.b = p.net.AddHost(t, "B", p.addrB.Addr(), ob)
	return p
}

func (p *pair) run(d time.Duration)     { p.net.Run(d, 100*time.Millisecond, false) }
func (p *pair) traffic(d time.Duration) { p.net.Run(d, 10*time.Millisecond, true) }

func (p *pair) initiate(t testing.TB) {
	t.Helper()
	if err := p.a.Engine.Initiate(p.ca, p.ca.Children, p.addrA, p.addrB); err != nil {
		t.Fatal(err)
	}
}

func (p *pair) up(t testing.TB) {
	t.Helper()
	p.initiate(t)
	p.run(time.Second)
	if len(p.a.IKEUp()) != 1 || len(p.b.IKEUp()) != 1 || len(p.a.Children()) != 1 || len(p.b.Children()) != 1 {
		t.Fatalf("not up: A ike=%d children=%d failed=%v; B ike=%d children=%d failed=%v", len(p.a.IKEUp()), len(p.a.Children()), p.a.Failures(false),
			len(p.b.IKEUp()), len(p.b.Children()), p.b.Failures(false))
	}
	checkPaired(t, p)
}

func checkPaired(t testing.TB, p *pair) {
	t.Helper()
	if err := enginetest.CheckPaired(p.a, p.b); err != nil {
		t.Fatal(err)
	}
}

// noLoss asserts that no data packet met a missing SA on either side.
func noLoss(t testing.TB, p *pair) {
	t.Helper()
	for _, h := range []*enginetest.Host{p.a, p.b} {
		sent, received, noSA, lost := h.Plane.Counters()
		if noSA != 0 {
			t.Errorf("%s received %d data packets for SAs it did not have (sent %d, received %d, lost on the wire %d)", h.Name, noSA, sent, received, lost)
		}
		if received == 0 {
			t.Errorf("%s received no data packets", h.Name)
		}
	}
}

func onlyChild(t testing.TB, h *enginetest.Host) *ike.ChildInstall {
	t.Helper()
	cs := h.Children()
	if len(cs) != 1 {
		t.Fatalf("%s has %d Child SAs, want 1", h.Name, len(cs))
	}
	for _, c := range cs {
		return c
	}
	return nil
}

func TestEstablish(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	sas := p.a.Engine.SAs()
	if len(sas) != 1 || sas[0].State != ike.StateEstablished || len(sas[0].Children) != 1 {
		t.Fatalf("A's SAs: %+v", sas)
	}
	if st := p.b.Engine.Stats(); st.HandshakesOK != 1 || st.HalfOpen != 0 {
		t.Fatalf("B's stats: %+v", st)
	}
}

func TestRetransmitAndDuplicateRequests(t *testing.T) {
	p := newPair(t, nil)
	// Lose the first IKE_SA_INIT request and the first IKE_AUTH response.
	lostInit, lostAuth := false, false
	p.net.Drop = func(pk enginetest.Packet) bool {
		if pk.To == p.addrB && !lostInit {
			lostInit = true
			return true
		}
		if pk.From.Addr() == p.addrB.Addr() && len(p.b.IKEUp()) == 1 && !lostAuth {
			lostAuth = true
			return true
		}
		return false
	}
	p.initiate(t)
	p.run(10 * time.Second)
	if !lostInit || !lostAuth {
		t.Fatalf("the test did not lose what it meant to (init %v, auth %v)", lostInit, lostAuth)
	}
	if len(p.a.IKEUp()) != 1 || len(p.b.IKEUp()) != 1 {
		t.Fatalf("A up %d, B up %d; failures %v %v", len(p.a.IKEUp()), len(p.b.IKEUp()), p.a.Failures(false), p.b.Failures(false))
	}
	// B answered the retransmitted IKE_AUTH from its cache: it installed the child only once.
	if n := len(p.b.ChildUps()); n != 1 {
		t.Fatalf("B installed %d Child SAs, want 1 (the retransmission must be answered from the cache)", n)
	}
	if st := p.a.Engine.Stats(); st.Retransmits < 2 {
		t.Fatalf("A retransmitted %d times, want ≥ 2", st.Retransmits)
	}
	checkPaired(t, p)
}

func TestDeadPeer(t *testing.T) {
	p := newPair(t, nil)
	p.net.Drop = func(enginetest.Packet) bool { return true }
	p.initiate(t)
	p.run(60 * time.Second)
	if f := p.a.Failures(false); len(f) != 1 || !strings.Contains(f[0], "did not answer 3 retransmissions of IKE_SA_INIT") {
		t.Fatalf("failures %v", f)
	}
	// 1 s, 1.8 s, 3.24 s, then give up at 5.8 s: 4 sends in all.
	if p.net.Sent != 4 {
		t.Fatalf("sent %d packets, want 4", p.net.Sent)
	}
	if n := len(p.a.Engine.SAs()); n != 0 {
		t.Fatal("the failed SA is still listed")
	}
	if d := p.a.IKEDown(); len(d) != 1 || d[0].Reason != ike.ReasonDeadPeer || d[0].Up {
		t.Fatalf("IKE down events %+v", d)
	}
}

func TestCookie(t *testing.T) {
	p := newPair(t, &pairOptions{b: enginetest.HostOptions{Modify: func(c *engine.Config) { c.CookieThreshold = -1 }}})
	p.up(t)
	if st := p.b.Engine.Stats(); st.CookiesSent != 1 {
		t.Fatalf("cookies sent %d, want 1", st.CookiesSent)
	}
}

func TestRekeyChildAndIKE(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	old := onlyChild(t, p.a).SPIIn
	if !p.a.Engine.RekeyChild(old) {
		t.Fatal("RekeyChild found nothing")
	}
	p.run(time.Second)
	if n := len(p.a.ChildUps()); n != 2 || p.a.Children()[old] != nil {
		t.Fatalf("after child rekey A installed %d, has %d", n, len(p.a.Children()))
	}
	checkPaired(t, p)
	if !p.b.Engine.RekeyIKE("b") {
		t.Fatal("RekeyIKE found nothing")
	}
	p.run(time.Second)
	if len(p.a.Rekeyed()) != 1 || len(p.b.Rekeyed()) != 1 {
		t.Fatalf("IKE rekeyed A %d B %d", len(p.a.Rekeyed()), len(p.b.Rekeyed()))
	}
	if na, nb := len(p.a.Engine.SAs()), len(p.b.Engine.SAs()); na != 1 || nb != 1 {
		t.Fatalf("SAs after IKE rekey: A %d B %d", na, nb)
	}
	// The moved Child SA still works, and the new IKE SA can rekey it.
	old = onlyChild(t, p.a).SPIIn
	if !p.a.Engine.RekeyChild(old) {
		t.Fatal("RekeyChild on the new IKE SA found nothing")
	}
	p.run(time.Second)
	checkPaired(t, p)
	for _, d := range append(p.a.IKEDown(), p.b.IKEDown()...) {
		if !d.Replaced {
			t.Fatalf("an IKE SA went down: %+v", d)
		}
	}
}

func TestTerminate(t *testing.T) {
	p := newPair(t, nil)
	p.up(t)
	if n := p.a.Engine.Terminate("a"); n != 1 {
		t.Fatalf("Terminate = %d", n)
	}
	p.run(time.Second)
	if len(p.a.Children()) != 0 || len(p.b.Children()) != 0 || len(p.a.Engine.SAs()) != 0 || len(p.b.Engine.SAs()) != 0 {
		t.Fatalf("left: A children %d SAs %d, B children %d SAs %d", len(p.a.Children()), len(p.a.Engine.SAs()), len(p.b.Children()), len(p.b.Engine.SAs()))
	}
	if d := p.b.IKEDown(); len(d) != 1 || d[0].Reason != ike.ReasonDeletedByPeer {
		t.Fatalf("B's IKE down events %+v", d)
	}
}

func TestAutomaticRekeyAndDPD(t *testing.T) {
	p := newPair(t, nil)
	p.ca.Children[0].RekeyTime = time.Minute
	p.ca.Children[0].LifeTime = 2 * time.Minute
	p.ca.RekeyTime = 3 * time.Minute
	p.ca.DPDDelay = 30 * time.Second
	p.up(t)
	p.run(10 * time.Minute)
	// Child rekeys every 54-60 s (jitter), IKE rekeys do not restart that clock: at least 9 Child
	// rekeys in 10 minutes; 7 leaves room.
	if len(p.a.Children()) != 1 || len(p.a.ChildUps()) < 7 {
		t.Fatalf("after 10 minutes: %d children, %d installed", len(p.a.Children()), len(p.a.ChildUps()))
	}
	if n := len(p.a.Rekeyed()); n < 3 {
		t.Fatalf("IKE rekeys %d", n)
	}
	checkPaired(t, p)
	// Now B vanishes: DPD notices.
	p.net.Drop = func(enginetest.Packet) bool { return true }
	p.run(5 * time.Minute)
	down := p.a.IKEDown()
	if len(down) == 0 || down[len(down)-1].Reason != ike.ReasonDeadPeer {
		t.Fatalf("DPD did not take the IKE SA down: %+v", down)
	}
}

// TestChildRekeyNotPostponedByIKERekey: a Child SA's rekey and lifetime deadlines are its own; an
// IKE rekey moves the Child SA to the new IKE SA but must not restart its clock.
func TestChildRekeyNotPostponedByIKERekey(t *testing.T) {
	p := newPair(t, nil)
	p.ca.Children[0].RekeyTime = 10 * time.Minute
	p.ca.Children[0].LifeTime = 11 * time.Minute
	p.ca.RekeyTime = 2 * time.Minute
	p.up(t)
	first := onlyChild(t, p.a).SPIIn
	p.run(11 * time.Minute)
	if n := len(p.a.Rekeyed()); n < 4 {
		t.Fatalf("IKE rekeys %d, want ≥ 4", n)
	}
	if p.a.Children()[first] != nil {
		t.Fatal("the first Child SA outlived its rekey time")
	}
	if d := p.a.IKEDown(); len(d) != 0 && !d[len(d)-1].Replaced {
		t.Fatalf("IKE SA went down: %+v", d)
	}
	checkPaired(t, p)
}

// TestNATKeepalives: the side behind a NAT sends a keepalive every interval to the peer's NAT-T
// port (RFC 3948 §2.3); encap = yes without a NAT fakes one toward the peer, floats to port 4500
// and encapsulates, but sends no keepalives: no mapping needs keeping (strongSwan's behaviour).
func TestNATKeepalives(t *testing.T) {
	for _, tc := range []struct {
		name      string
		realNAT   bool
		wantSent  int
		wantFaked bool
	}{
		{name: "behind a NAT", realNAT: true, wantSent: 3},
		{name: "encap=yes", wantSent: 0, wantFaked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent []netip.AddrPort
			p := newPair(t, &pairOptions{a: enginetest.HostOptions{Modify: func(c *engine.Config) {
				c.Keepalive = func(_, remote netip.AddrPort) { sent = append(sent, remote) }
				c.KeepaliveInterval = 10 * time.Second
			}}})
			if tc.realNAT {
				p.net.AddNAT(netip.MustParseAddr("203.0.113.1"), p.addrA.Addr())
			} else {
				p.ca.ForceEncap = true
			}
			p.up(t)
			p.run(35 * time.Second)
			if len(sent) != tc.wantSent {
				t.Fatalf("keepalives %v, want %d", sent, tc.wantSent)
			}
			for _, to := range sent {
				if to != netip.AddrPortFrom(p.addrB.Addr(), 4500) {
					t.Fatalf("keepalive to %s, want %s:4500", to, p.addrB.Addr())
				}
			}
			sas := p.a.Engine.SAs()
			if len(sas) != 1 {
				t.Fatalf("A holds %d IKE SAs", len(sas))
			}
			sa := sas[0]
			if sa.Remote.Port() != 4500 || sa.NATLocal != tc.realNAT || sa.NATFake != tc.wantFaked || !sa.NAT {
				t.Fatalf("A's IKE SA: remote %s, nat_local %v, nat_fake %v, nat %v", sa.Remote, sa.NATLocal, sa.NATFake, sa.NAT)
			}
		})
	}
}

func TestSnapshotShowsDeadlines(t *testing.T) {
	p := newPair(t, nil)
	p.ca.RekeyTime = time.Hour
	p.ca.Children[0].RekeyTime = 10 * time.Minute
	p.ca.Children[0].LifeTime = 20 * time.Minute
	start := p.net.Clock.Now()
	p.up(t)
	sas := p.a.Engine.SAs()
	if len(sas) != 1 || len(sas[0].Children) != 1 {
		t.Fatalf("A's SAs: %+v", sas)
	}
	sa, ch := sas[0], sas[0].Children[0]
	if d := sa.RekeyAt.Sub(start); d < 54*time.Minute || d > time.Hour+2*time.Second {
		t.Fatalf("IKE RekeyAt %v after start, want within [54m, 1h]", d)
	}
	if d := ch.RekeyAt.Sub(start); d < 9*time.Minute || d > 10*time.Minute+2*time.Second {
		t.Fatalf("Child RekeyAt %v after start", d)
	}
	if d := ch.ExpireAt.Sub(start); d < 20*time.Minute || d > 20*time.Minute+2*time.Second {
		t.Fatalf("Child ExpireAt %v after start", d)
	}
	if sa.LastReceived.Before(start) || sa.LastReceived.After(p.net.Clock.Now()) {
		t.Fatalf("LastReceived %v outside the test's time", sa.LastReceived)
	}
	if sa.NATLocal || sa.NATRemote || ch.State != ike.ChildInstalled {
		t.Fatalf("snapshot %+v", sa)
	}
}

// TestManySAsOneTimerEach: 300 IKE SAs with DPD and rekey timers and a Child SA each keep the
// deadline heap at about one entry per SA, however often their deadlines move.
func TestManySAsOneTimerEach(t *testing.T) {
	p := newPair(t, nil)
	p.ca.DPDDelay = 10 * time.Second
	p.ca.RekeyTime = time.Hour
	p.ca.Children[0].RekeyTime = 30 * time.Minute
	p.ca.Unique = ike.UniqueNever
	const n = 300
	for range n {
		p.initiate(t)
	}
	p.run(2 * time.Second)
	if got := len(p.b.Engine.SAs()); got != n {
		t.Fatalf("B holds %d IKE SAs, want %d", got, n)
	}
	p.run(2 * time.Minute)
	for _, h := range []*enginetest.Host{p.a, p.b} {
		if got := h.Engine.TimerEntries(); got > 2*n {
			t.Fatalf("%s's deadline heap holds %d entries for %d SAs", h.Name, got, n)
		}
	}
	if got := len(p.a.IKEDown()) + len(p.b.IKEDown()); got != 0 {
		t.Fatalf("%d IKE SAs went down", got)
	}
}

func TestHex16MatchesFmt(t *testing.T) {
	for _, v := range []uint64{0, 1, 0xf, 0x10, 0xdeadbeef, 0x0123456789abcdef, ^uint64(0)} {
		if got, want := engine.Hex16(v), fmt.Sprintf("%016x", v); got != want {
			t.Errorf("hex16(%#x) = %q, want %q", v, got, want)
		}
	}
}
