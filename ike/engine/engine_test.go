package engine

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// packet is a datagram in flight on the fake network.
type packet struct {
	b        []byte
	from, to netip.AddrPort
}

// fakeNet connects engines by address; packets queue until deliver runs, so no engine is entered
// while another holds its lock. drop decides losses.
type fakeNet struct {
	mu      sync.Mutex
	queue   []packet
	engines map[netip.Addr]*Engine
	drop    func(p packet) bool
	sent    int
}

type fakeTransport struct {
	n *fakeNet
}

func (t fakeTransport) Send(b []byte, local, remote netip.AddrPort) error {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	t.n.sent++
	t.n.queue = append(t.n.queue, packet{append([]byte(nil), b...), local, remote})
	return nil
}

func (n *fakeNet) deliver() int {
	count := 0
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return count
		}
		p := n.queue[0]
		n.queue = n.queue[1:]
		drop := n.drop != nil && n.drop(p)
		e := n.engines[p.to.Addr()]
		n.mu.Unlock()
		count++
		if drop || e == nil {
			continue
		}
		e.Receive(p.b, p.to, p.from)
	}
}

// testWriter sends log lines to t.Log, shown only for failing tests.
type testWriter struct {
	t    testing.TB
	name string
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimSpace(string(b)))
	return len(b), nil
}

// recorder collects an engine's events.
type recorder struct {
	mu       sync.Mutex
	ikeUp    int
	ikeDown  []string
	childUp  []*ike.ChildSA
	children map[uint32]*ike.ChildSA // installed, by inbound SPI
	failed   []string
	rekeyed  int
}

func (r *recorder) events() Events {
	r.children = map[uint32]*ike.ChildSA{}
	return Events{
		IKEUp:   func(*ike.SA) { r.mu.Lock(); r.ikeUp++; r.mu.Unlock() },
		IKEDown: func(_ *ike.SA, why string) { r.mu.Lock(); r.ikeDown = append(r.ikeDown, why); r.mu.Unlock() },
		ChildUp: func(_ *ike.SA, c *ike.ChildSA) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.childUp = append(r.childUp, c)
			r.children[c.SPIIn] = c
			return nil
		},
		ChildDown: func(_ *ike.SA, c *ike.ChildSA, _ string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			delete(r.children, c.SPIIn)
		},
		IKERekeyed: func(_, _ *ike.SA) { r.mu.Lock(); r.rekeyed++; r.mu.Unlock() },
		Failed:     func(conn string, err error) { r.mu.Lock(); r.failed = append(r.failed, err.Error()); r.mu.Unlock() },
	}
}

type testPeers struct {
	net    *fakeNet
	clock  *manualClock
	a, b   *Engine
	ra, rb *recorder
	ca, cb *ike.PeerConfig
	addrA  netip.AddrPort
	addrB  netip.AddrPort
}

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

func newPeers(t testing.TB, modB func(*Config)) *testPeers {
	p := &testPeers{net: &fakeNet{engines: map[netip.Addr]*Engine{}}, clock: newManualClock(), ra: &recorder{}, rb: &recorder{},
		addrA: netip.MustParseAddrPort("192.0.2.1:500"), addrB: netip.MustParseAddrPort("192.0.2.2:500")}
	p.ca = peerConfig(t, "a", "10.1.0.0/24", "10.2.0.0/24")
	p.cb = peerConfig(t, "b", "10.2.0.0/24", "10.1.0.0/24")
	logA := slog.New(slog.NewTextHandler(testWriter{t, "A"}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logB := slog.New(slog.NewTextHandler(testWriter{t, "B"}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ca := Config{Transport: fakeTransport{p.net}, Clock: p.clock, Events: p.ra.events(), RetransmitTimeout: time.Second, RetransmitTries: 3, Logger: logA}
	cb := Config{Transport: fakeTransport{p.net}, Clock: p.clock, Events: p.rb.events(), RetransmitTimeout: time.Second, RetransmitTries: 3, Logger: logB,
		Configs: func(netip.Addr, netip.Addr) []*ike.PeerConfig { return []*ike.PeerConfig{p.cb} }}
	if modB != nil {
		modB(&cb)
	}
	p.a, p.b = New(ca), New(cb)
	p.net.engines[p.addrA.Addr()] = p.a
	p.net.engines[p.addrB.Addr()] = p.b
	return p
}

// run delivers packets and advances virtual time in steps until nothing is left to do.
func (p *testPeers) run(d time.Duration) {
	for elapsed := time.Duration(0); elapsed <= d; elapsed += 100 * time.Millisecond {
		p.net.deliver()
		p.clock.Advance(100 * time.Millisecond)
	}
	p.net.deliver()
}

func (p *testPeers) up(t *testing.T) {
	t.Helper()
	if err := p.a.Initiate(p.ca, p.ca.Children[0], p.addrA, p.addrB); err != nil {
		t.Fatal(err)
	}
	p.run(time.Second)
	if p.ra.ikeUp != 1 || p.rb.ikeUp != 1 || len(p.ra.children) != 1 || len(p.rb.children) != 1 {
		t.Fatalf("not up: A ike=%d children=%d failed=%v; B ike=%d children=%d failed=%v", p.ra.ikeUp, len(p.ra.children), p.ra.failed, p.rb.ikeUp, len(p.rb.children), p.rb.failed)
	}
	checkPaired(t, p.ra, p.rb)
}

// checkPaired asserts that each side's installed Child SAs pair up with the other's.
func checkPaired(t *testing.T, a, b *recorder) {
	t.Helper()
	if len(a.children) != len(b.children) {
		t.Fatalf("A has %d Child SAs, B %d", len(a.children), len(b.children))
	}
	for _, c := range a.children {
		o := b.children[c.SPIOut]
		if o == nil || o.SPIOut != c.SPIIn || string(o.EncrIn) != string(c.EncrOut) {
			t.Fatalf("A's Child SA %08x/%08x has no matching SA at B", c.SPIIn, c.SPIOut)
		}
	}
}

func TestEstablish(t *testing.T) {
	p := newPeers(t, nil)
	p.up(t)
	if got := p.a.SAs(); len(got) != 1 || got[0].State != ike.StateEstablished {
		t.Fatalf("A's SAs: %+v", got)
	}
}

func TestRetransmitAndDuplicateRequests(t *testing.T) {
	p := newPeers(t, nil)
	// Lose the first IKE_SA_INIT request and the first IKE_AUTH response; duplicate every request.
	lostInit, lostAuth := false, false
	p.net.drop = func(pk packet) bool {
		if pk.to == p.addrB && !lostInit {
			lostInit = true
			return true
		}
		if pk.from.Addr() == p.addrB.Addr() && len(pk.b) > 100 && !lostAuth && p.rb.ikeUp == 1 {
			lostAuth = true
			return true
		}
		return false
	}
	if err := p.a.Initiate(p.ca, p.ca.Children[0], p.addrA, p.addrB); err != nil {
		t.Fatal(err)
	}
	p.run(10 * time.Second)
	if !lostInit || !lostAuth {
		t.Fatalf("the test did not lose what it meant to (init %v, auth %v)", lostInit, lostAuth)
	}
	if p.ra.ikeUp != 1 || p.rb.ikeUp != 1 {
		t.Fatalf("A up %d, B up %d; failures %v %v", p.ra.ikeUp, p.rb.ikeUp, p.ra.failed, p.rb.failed)
	}
	// B answered the retransmitted IKE_AUTH from its cache: it installed the child only once.
	if len(p.rb.childUp) != 1 {
		t.Fatalf("B installed %d Child SAs, want 1 (the retransmission must be answered from the cache)", len(p.rb.childUp))
	}
	if st := p.a.Stats(); st.Retransmits < 2 {
		t.Fatalf("A retransmitted %d times, want ≥ 2", st.Retransmits)
	}
	checkPaired(t, p.ra, p.rb)
}

func TestDeadPeer(t *testing.T) {
	p := newPeers(t, nil)
	p.net.drop = func(packet) bool { return true }
	if err := p.a.Initiate(p.ca, p.ca.Children[0], p.addrA, p.addrB); err != nil {
		t.Fatal(err)
	}
	p.run(60 * time.Second)
	if len(p.ra.failed) != 1 || !strings.Contains(p.ra.failed[0], "did not answer 3 retransmissions") {
		t.Fatalf("failures %v", p.ra.failed)
	}
	// 1 s, 1.8 s, 3.24 s, then give up at 5.8 s: 4 sends in all.
	if p.net.sent != 4 {
		t.Fatalf("sent %d packets, want 4", p.net.sent)
	}
	if len(p.a.SAs()) != 0 {
		t.Fatal("the failed SA is still listed")
	}
}

func TestCookie(t *testing.T) {
	p := newPeers(t, func(c *Config) { c.CookieThreshold = -1 })
	p.up(t)
	if st := p.b.Stats(); st.CookiesSent != 1 {
		t.Fatalf("cookies sent %d, want 1", st.CookiesSent)
	}
}

func TestRekeyChildAndIKE(t *testing.T) {
	p := newPeers(t, nil)
	p.up(t)
	var old uint32
	for spi := range p.ra.children {
		old = spi
	}
	if !p.a.RekeyChild(old) {
		t.Fatal("RekeyChild found nothing")
	}
	p.run(time.Second)
	if len(p.ra.childUp) != 2 || len(p.ra.children) != 1 || p.ra.children[old] != nil {
		t.Fatalf("after child rekey A installed %d, has %d", len(p.ra.childUp), len(p.ra.children))
	}
	checkPaired(t, p.ra, p.rb)
	if !p.b.RekeyIKE("b") {
		t.Fatal("RekeyIKE found nothing")
	}
	p.run(time.Second)
	if p.ra.rekeyed != 1 || p.rb.rekeyed != 1 {
		t.Fatalf("IKE rekeyed A %d B %d", p.ra.rekeyed, p.rb.rekeyed)
	}
	if n := len(p.a.SAs()); n != 1 || len(p.b.SAs()) != 1 {
		t.Fatalf("SAs after IKE rekey: A %d B %d", n, len(p.b.SAs()))
	}
	// The moved Child SA still works, and the new IKE SA can rekey it.
	for spi := range p.ra.children {
		old = spi
	}
	if !p.a.RekeyChild(old) {
		t.Fatal("RekeyChild on the new IKE SA found nothing")
	}
	p.run(time.Second)
	checkPaired(t, p.ra, p.rb)
	if len(p.ra.ikeDown) != 0 || len(p.rb.ikeDown) != 0 {
		t.Fatalf("IKE SAs went down: %v %v", p.ra.ikeDown, p.rb.ikeDown)
	}
}

func TestTerminate(t *testing.T) {
	p := newPeers(t, nil)
	p.up(t)
	if n := p.a.Terminate("a"); n != 1 {
		t.Fatalf("Terminate = %d", n)
	}
	p.run(time.Second)
	if len(p.ra.children) != 0 || len(p.rb.children) != 0 || len(p.a.SAs()) != 0 || len(p.b.SAs()) != 0 {
		t.Fatalf("left: A children %d SAs %d, B children %d SAs %d", len(p.ra.children), len(p.a.SAs()), len(p.rb.children), len(p.b.SAs()))
	}
}

func TestAutomaticRekeyAndDPD(t *testing.T) {
	p := newPeers(t, nil)
	p.ca.Children[0].RekeyTime = time.Minute
	p.ca.Children[0].LifeTime = 2 * time.Minute
	p.ca.RekeyTime = 3 * time.Minute
	p.ca.DPDDelay = 30 * time.Second
	p.up(t)
	p.run(10 * time.Minute)
	// Child rekeys every 54-60 s (jitter), IKE rekeys do not restart that clock: at least 9 Child
	// rekeys in 10 minutes; 7 leaves room.
	if len(p.ra.children) != 1 || len(p.ra.childUp) < 7 {
		t.Fatalf("after 10 minutes: %d children, %d installed", len(p.ra.children), len(p.ra.childUp))
	}
	if p.ra.rekeyed < 3 {
		t.Fatalf("IKE rekeys %d", p.ra.rekeyed)
	}
	checkPaired(t, p.ra, p.rb)
	// Now B vanishes: DPD notices.
	p.net.drop = func(packet) bool { return true }
	p.run(5 * time.Minute)
	if len(p.ra.ikeDown) == 0 {
		t.Fatal("DPD did not take the IKE SA down")
	}

}

// TestChildRekeyNotPostponedByIKERekey: a Child SA's rekey and lifetime deadlines are its own; an
// IKE rekey moves the Child SA to the new IKE SA but must not restart its clock. With the IKE SA
// rekeying more often than the Child SA, restarting it would postpone the Child rekey forever and
// keep its keys past their lifetime.
func TestChildRekeyNotPostponedByIKERekey(t *testing.T) {
	p := newPeers(t, nil)
	p.ca.RekeyTime = 30 * time.Second
	p.ca.Children[0].RekeyTime = time.Minute
	p.ca.Children[0].LifeTime = 70 * time.Second
	p.up(t)
	first := p.ra.childUp[0]
	p.run(5 * time.Minute)
	if p.ra.rekeyed < 9 {
		t.Fatalf("IKE rekeys in 5 minutes: %d, want ≥ 9", p.ra.rekeyed)
	}
	// Every 54-60 s: at least 5 Child rekeys in 5 minutes, and the first Child SA is long gone.
	if n := len(p.ra.childUp) - 1; n < 5 {
		t.Fatalf("Child rekeys in 5 minutes: %d, want ≥ 5", n)
	}
	if p.ra.children[first.SPIIn] != nil {
		t.Fatalf("the first Child SA is still installed after 5 minutes (rekey every minute, life 70 s)")
	}
	if len(p.ra.children) != 1 || len(p.ra.ikeDown) != 0 {
		t.Fatalf("after 5 minutes: %d Child SAs, IKE SAs down %v", len(p.ra.children), p.ra.ikeDown)
	}
	checkPaired(t, p.ra, p.rb)
}

func TestNATKeepalives(t *testing.T) {
	var mu sync.Mutex
	sent := map[string]int{}
	p := newPeers(t, nil)
	count := func(name string) func(local, remote netip.AddrPort) {
		return func(local, remote netip.AddrPort) {
			mu.Lock()
			defer mu.Unlock()
			if local.Port() != 4500 || remote.Port() != 4500 {
				t.Errorf("keepalive %s -> %s not on the NAT-T port", local, remote)
			}
			sent[name]++
		}
	}
	p.a.cfg.Keepalive, p.b.cfg.Keepalive = count("a"), count("b")
	// encap = yes makes A look NATed to B and both float to 4500; A (the "NATed" side) keeps
	// the mapping alive.
	p.ca.ForceEncap = true
	p.up(t)
	p.run(65 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if sent["a"] != 3 || sent["b"] != 0 {
		t.Fatalf("keepalives sent: %v, want a=3 (every 20s), b=0", sent)
	}
}

// TestChildRekeyCollision: both peers rekey the same Child SA at once; afterwards each side has
// exactly one Child SA, and they pair up (RFC 7296 §2.8.1).
func TestChildRekeyCollision(t *testing.T) {
	p := newPeers(t, nil)
	p.up(t)
	var spiA, spiB uint32
	for spi := range p.ra.children {
		spiA = spi
	}
	for spi := range p.rb.children {
		spiB = spi
	}
	if !p.a.RekeyChild(spiA) || !p.b.RekeyChild(spiB) {
		t.Fatal("RekeyChild found nothing")
	}
	p.run(2 * time.Second)
	if len(p.ra.children) != 1 || len(p.rb.children) != 1 {
		t.Fatalf("after a rekey collision: A has %d Child SAs, B %d", len(p.ra.children), len(p.rb.children))
	}
	checkPaired(t, p.ra, p.rb)
	if p.ra.children[spiA] != nil || p.rb.children[spiB] != nil {
		t.Fatal("the replaced Child SA survived")
	}
}

// TestIKERekeyCollision: both peers rekey the IKE SA at once; afterwards each side has one IKE SA,
// carrying the Child SA, and the pair still works (RFC 7296 §2.8.2).
func TestIKERekeyCollision(t *testing.T) {
	p := newPeers(t, nil)
	p.up(t)
	if !p.a.RekeyIKE("a") || !p.b.RekeyIKE("b") {
		t.Fatal("RekeyIKE found nothing")
	}
	p.run(2 * time.Second)
	sa, sb := p.a.SAs(), p.b.SAs()
	if len(sa) != 1 || len(sb) != 1 {
		t.Fatalf("after an IKE rekey collision: A has %d IKE SAs, B %d", len(sa), len(sb))
	}
	if sa[0].SPIi != sb[0].SPIi || sa[0].SPIr != sb[0].SPIr || len(sa[0].Children) != 1 || len(sb[0].Children) != 1 {
		t.Fatalf("the surviving IKE SAs differ or lost their Child SA: A %+v, B %+v", sa[0], sb[0])
	}
	if len(p.ra.ikeDown) != 0 || len(p.rb.ikeDown) != 0 {
		t.Fatalf("an IKE rekey collision reported the connection down: %v %v", p.ra.ikeDown, p.rb.ikeDown)
	}
	// The survivor can still rekey the Child SA.
	for spi := range p.ra.children {
		if !p.a.RekeyChild(spi) {
			t.Fatal("RekeyChild on the surviving IKE SA found nothing")
		}
	}
	p.run(time.Second)
	checkPaired(t, p.ra, p.rb)
}

func TestSnapshotShowsDeadlines(t *testing.T) {
	p := newPeers(t, nil)
	p.ca.RekeyTime = time.Hour
	p.ca.Children[0].RekeyTime = 10 * time.Minute
	p.ca.Children[0].LifeTime = 20 * time.Minute
	start := p.clock.Now()
	p.up(t)
	sas := p.a.SAs()
	if len(sas) != 1 || len(sas[0].Children) != 1 {
		t.Fatalf("A's SAs: %+v", sas)
	}
	sa, ch := sas[0], sas[0].Children[0]
	// Rekeys are jittered by up to 10% earlier.
	if d := sa.RekeyAt.Sub(start); d < 54*time.Minute || d > time.Hour+2*time.Second {
		t.Fatalf("IKE RekeyAt %v after start, want within [54m, 1h]", d)
	}
	if d := ch.RekeyAt.Sub(start); d < 9*time.Minute || d > 10*time.Minute+2*time.Second {
		t.Fatalf("Child RekeyAt %v after start", d)
	}
	if d := ch.ExpireAt.Sub(start); d < 20*time.Minute || d > 20*time.Minute+2*time.Second {
		t.Fatalf("Child ExpireAt %v after start", d)
	}
	if sa.LastReceived.Before(start) || sa.LastReceived.After(p.clock.Now()) {
		t.Fatalf("LastReceived %v outside the test's time", sa.LastReceived)
	}
	if sa.NATLocal || sa.NATRemote {
		t.Fatal("no NAT between the fake peers")
	}
}
