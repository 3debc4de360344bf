package engine

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	ikeengine "github.com/goipsec/goipsec/ike/engine"
	ikewire "github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/ikev1"
	"github.com/goipsec/goipsec/ikev1/wire"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/ts"
)

// net is an in-memory network between engines: datagrams queue until pump delivers them.
type net struct {
	mu      sync.Mutex
	queue   []packet
	engines map[netip.Addr]*Engine
	// nat rewrites the source of packets from one address (a NAT in front of it).
	nat map[netip.Addr]netip.AddrPort
	// drop decides about each datagram (tests of loss).
	drop func(p packet) bool
	sent []packet
}

type packet struct {
	b             []byte
	local, remote netip.AddrPort
}

type transport struct {
	n    *net
	self netip.Addr
}

func (t transport) Send(b []byte, local, remote netip.AddrPort) error {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	p := packet{b: append([]byte(nil), b...), local: local, remote: remote}
	t.n.sent = append(t.n.sent, p)
	t.n.queue = append(t.n.queue, p)
	return nil
}

func (n *net) pump(t *testing.T) {
	t.Helper()
	for range 1000 {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return
		}
		p := n.queue[0]
		n.queue = n.queue[1:]
		drop := n.drop != nil && n.drop(p)
		n.mu.Unlock()
		if drop {
			continue
		}
		src := p.local
		if m, ok := n.nat[src.Addr()]; ok {
			src = netip.AddrPortFrom(m.Addr(), m.Port()+src.Port()-500)
		}
		to := p.remote
		for inner, m := range n.nat {
			if m.Addr() == to.Addr() {
				to = netip.AddrPortFrom(inner, to.Port()-m.Port()+500)
			}
		}
		dst := n.engines[to.Addr()]
		if dst == nil {
			t.Fatalf("no engine at %s", p.remote)
		}
		dst.Receive(p.b, to, src)
	}
	t.Fatal("the engines did not settle")
}

// host records what an engine's events reported.
type host struct {
	mu       sync.Mutex
	ups      []ike.IKEUp
	downs    []ike.IKEDown
	children map[uint32]*ike.ChildInstall // by inbound SPI, keys copied
	gone     []ike.ChildDown
	failed   []ike.Failed
}

func (h *host) events() ikeengine.Events {
	return ikeengine.Events{
		IKEUp:   func(x ike.IKEUp) { h.mu.Lock(); h.ups = append(h.ups, x); h.mu.Unlock() },
		IKEDown: func(x ike.IKEDown) { h.mu.Lock(); h.downs = append(h.downs, x); h.mu.Unlock() },
		ChildUp: func(c *ike.ChildInstall) error {
			cp := *c
			cp.EncrIn, cp.IntegIn = bytes.Clone(c.EncrIn), bytes.Clone(c.IntegIn)
			cp.EncrOut, cp.IntegOut = bytes.Clone(c.EncrOut), bytes.Clone(c.IntegOut)
			h.mu.Lock()
			h.children[c.SPIIn] = &cp
			h.mu.Unlock()
			return nil
		},
		ChildDown: func(x ike.ChildDown) {
			h.mu.Lock()
			delete(h.children, x.SPIIn)
			h.gone = append(h.gone, x)
			h.mu.Unlock()
		},
		Failed: func(x ike.Failed) { h.mu.Lock(); h.failed = append(h.failed, x); h.mu.Unlock() },
	}
}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

func mustIKE(t *testing.T, s string) []proposal.Proposal {
	t.Helper()
	p, err := proposal.ParseIKE(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustESP(t *testing.T, s string) []proposal.Proposal {
	t.Helper()
	p, err := proposal.ParseESP(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type side struct {
	e    *Engine
	h    *host
	cfg  *ikev1.Config
	addr netip.Addr
}

func pair(t *testing.T, ikeProp, espProp string, aggressive bool, pskA, pskB string) (*net, *side, *side) {
	t.Helper()
	n := &net{engines: map[netip.Addr]*Engine{}, nat: map[netip.Addr]netip.AddrPort{}}
	mk := func(self, peer netip.Addr, psk string, lnet, rnet string) *side {
		h := &host{children: map[uint32]*ike.ChildInstall{}}
		child := &ike.ChildConfig{Name: "net", Proposals: mustESP(t, espProp),
			LocalTS: []ts.Selector{ts.FromPrefix(netip.MustParsePrefix(lnet))}, RemoteTS: []ts.Selector{ts.FromPrefix(netip.MustParsePrefix(rnet))},
			RekeyTime: time.Hour, LifeTime: 66 * time.Minute}
		cfg := &ikev1.Config{Aggressive: aggressive, Peer: &ike.PeerConfig{Name: "gt", Proposals: mustIKE(t, ikeProp),
			LocalID: ike.AddrIdentity(self), RemoteID: ike.AddrIdentity(peer),
			PSK:      func(ike.Identity, ike.Identity) ([]byte, bool) { return []byte(psk), true },
			Children: []*ike.ChildConfig{child}, DPDDelay: 30 * time.Second}}
		var spi uint32 = 0x1000
		if self == addrB {
			spi = 0x2000
		}
		var mu sync.Mutex
		e := New(Config{Transport: transport{n, self}, Events: h.events(),
			Configs:  func(netip.Addr, netip.Addr) []*ikev1.Config { return []*ikev1.Config{cfg} },
			AllocSPI: func() (uint32, error) { mu.Lock(); defer mu.Unlock(); spi++; return spi, nil }})
		n.engines[self] = e
		t.Cleanup(e.Close)
		return &side{e: e, h: h, cfg: cfg, addr: self}
	}
	a := mk(addrA, addrB, pskA, "10.1.0.0/24", "10.2.0.0/24")
	b := mk(addrB, addrA, pskB, "10.2.0.0/24", "10.1.0.0/24")
	return n, a, b
}

func (s *side) initiate(t *testing.T, peer netip.Addr) {
	t.Helper()
	if err := s.e.Initiate(s.cfg, s.cfg.Peer.Children, netip.AddrPortFrom(s.addr, 500), netip.AddrPortFrom(peer, 500)); err != nil {
		t.Fatal(err)
	}
}

// checkKeys asserts that each side's outbound keys are the other's inbound keys, SPI by SPI.
func checkKeys(t *testing.T, a, b *side, want int) {
	t.Helper()
	a.h.mu.Lock()
	defer a.h.mu.Unlock()
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	if len(a.h.children) != want || len(b.h.children) != want {
		t.Fatalf("%d and %d Child SAs installed, want %d (failures: %v %v)", len(a.h.children), len(b.h.children), want, a.h.failed, b.h.failed)
	}
	for spi, ca := range a.h.children {
		cb := b.h.children[ca.SPIOut]
		if cb == nil || cb.SPIOut != spi {
			t.Fatalf("no matching Child SA for SPI %08x", spi)
		}
		if !bytes.Equal(ca.EncrOut, cb.EncrIn) || !bytes.Equal(ca.IntegOut, cb.IntegIn) || !bytes.Equal(ca.EncrIn, cb.EncrOut) ||
			!bytes.Equal(ca.IntegIn, cb.IntegOut) || len(ca.EncrOut) == 0 || bytes.Equal(ca.EncrIn, ca.EncrOut) {
			t.Fatalf("keys of %08x do not match", spi)
		}
		if !ca.Activate || ca.LocalTS[0] != cb.RemoteTS[0] {
			t.Fatalf("child %+v / %+v", ca, cb)
		}
	}
}

func TestMainModeAndQuickMode(t *testing.T) {
	for _, tc := range []struct{ name, ike, esp string }{
		{"aes256-sha256-modp2048/aes256gcm16", "aes256-sha256-modp2048", "aes256gcm16"},
		{"aes128-sha384-ecp256/aes128-sha256-pfs", "aes128-sha384-ecp256", "aes128-sha256-ecp256"},
		{"aes256-sha512-x25519/aes256-sha512", "aes256-sha512-x25519", "aes256-sha512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, a, b := pair(t, tc.ike, tc.esp, false, "secret", "secret")
			a.initiate(t, addrB)
			n.pump(t)
			checkKeys(t, a, b, 1)
			if len(a.h.ups) != 1 || len(b.h.ups) != 1 || a.h.ups[0].InitialContact {
				t.Fatalf("IKE up events %v %v", a.h.ups, b.h.ups)
			}
			if !b.h.ups[0].InitialContact {
				t.Fatal("INITIAL-CONTACT not seen by the responder")
			}
			sas := a.e.SAs()
			if len(sas) != 1 || sas[0].Version != 1 || sas[0].State != ike.StateEstablished || len(sas[0].Children) != 1 {
				t.Fatalf("status %+v", sas)
			}
			// Delete from the responder: both sides remove everything.
			b.e.Terminate("gt")
			n.pump(t)
			if len(a.h.children) != 0 || len(b.h.children) != 0 || len(a.h.downs) != 1 || a.h.downs[0].Reason != ike.ReasonDeletedByPeer {
				t.Fatalf("after delete: children %d/%d, downs %v", len(a.h.children), len(b.h.children), a.h.downs)
			}
			if len(a.e.SAs()) != 0 || len(b.e.SAs()) != 0 {
				t.Fatal("SAs left after delete")
			}
		})
	}
}

func TestAggressiveMode(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256-sha256-modp2048", true, "secret", "secret")
	a.initiate(t, addrB)
	n.pump(t)
	checkKeys(t, a, b, 1)
	var exchanges []wire.ExchangeType
	for _, p := range n.sent {
		h, _ := wire.DecodeHeader(p.b)
		exchanges = append(exchanges, h.Exchange)
	}
	if len(exchanges) != 6 || exchanges[0] != wire.ExchangeAggressive || exchanges[3] != wire.ExchangeQuick {
		t.Fatalf("exchanges %v, want 3 Aggressive then 3 Quick", exchanges)
	}
}

func TestWrongPSK(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", false, "secret", "other")
	a.initiate(t, addrB)
	n.pump(t)
	if len(a.h.children) != 0 || len(b.h.children) != 0 || len(b.h.failed) == 0 {
		t.Fatalf("children %d/%d, failures %v", len(a.h.children), len(b.h.children), b.h.failed)
	}
	if len(b.e.SAs()) != 0 {
		t.Fatal("the responder kept the SA")
	}
}

func TestNoProposal(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", false, "secret", "secret")
	b.cfg.Peer.Proposals = mustIKE(t, "aes128-sha512-ecp384")
	a.initiate(t, addrB)
	n.pump(t)
	if len(b.h.failed) != 1 || len(a.h.failed) != 1 || len(a.e.SAs()) != 0 {
		t.Fatalf("failures %v / %v; initiator SAs %v", a.h.failed, b.h.failed, a.e.SAs())
	}
}

func TestRetransmittedRequestAnsweredFromCache(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", false, "secret", "secret")
	// Deliver every message twice: the copies are answered from the cache and change nothing.
	first := true
	n.drop = func(p packet) bool {
		if first {
			n.queue = append(n.queue, p)
		}
		first = !first
		return false
	}
	a.initiate(t, addrB)
	n.pump(t)
	checkKeys(t, a, b, 1)
	if len(a.h.ups) != 1 || len(b.h.ups) != 1 {
		t.Fatalf("ups %d/%d", len(a.h.ups), len(b.h.ups))
	}
}

func TestNATDetectionAndFloat(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", false, "secret", "secret")
	// A NAT in front of A maps its ports to 198.51.100.7:40000+.
	n.nat[addrA] = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 40000)
	b.cfg.Peer.RemoteID = ike.AddrIdentity(addrA)
	a.initiate(t, addrB)
	n.pump(t)
	checkKeys(t, a, b, 1)
	sa := b.e.SAs()[0]
	if !sa.NATRemote || sa.NATLocal || sa.Remote.Port() != 44000 || sa.Local.Port() != 4500 {
		t.Fatalf("responder sees %+v", sa)
	}
	as := a.e.SAs()[0]
	if !as.NATLocal || as.Remote.Port() != 4500 {
		t.Fatalf("initiator sees %+v", as)
	}
	for _, c := range b.h.children {
		if !c.Encap {
			t.Fatal("Child SA without UDP encapsulation behind a NAT")
		}
	}
}

func TestChildRekeyAndDelete(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16-modp2048", false, "secret", "secret")
	a.initiate(t, addrB)
	n.pump(t)
	checkKeys(t, a, b, 1)
	var old uint32
	for spi := range a.h.children {
		old = spi
	}
	if !a.e.RekeyChild(old) {
		t.Fatal("no Child SA to rekey")
	}
	n.pump(t)
	// The new pair is installed and the old one deleted on both sides.
	checkKeys(t, a, b, 1)
	if _, still := a.h.children[old]; still {
		t.Fatal("the rekeyed Child SA is still installed")
	}
	if len(b.h.gone) != 1 || b.h.gone[0].Reason != ike.ReasonDeletedByPeer {
		t.Fatalf("responder's removals %v", b.h.gone)
	}
}

func TestDPD(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", false, "secret", "secret")
	a.initiate(t, addrB)
	n.pump(t)
	before := len(n.sent)
	en := a.e.entries("gt")[0]
	// Send R-U-THERE now: the peer acknowledges it.
	en.mu.Lock()
	en.sa.Tick(time.Now().Add(31 * time.Second))
	en.mu.Unlock()
	a.e.finish(en)
	n.pump(t)
	if len(n.sent) != before+2 {
		t.Fatalf("%d messages for a DPD round trip, want 2", len(n.sent)-before)
	}
	var types []wire.NotifyType
	for _, p := range n.sent[before:] {
		h, _ := wire.DecodeHeader(p.b)
		if h.Exchange != wire.ExchangeInformational || !h.Encrypted() {
			t.Fatalf("DPD message %v", h)
		}
		types = append(types, 0)
	}
	_ = types
	if len(a.h.downs) != 0 {
		t.Fatal("SA went down after an answered R-U-THERE")
	}
	// A peer that stops answering is declared dead after the DPD timeout.
	n.drop = func(packet) bool { return true }
	start := time.Now().Add(31 * time.Second)
	for i := range 20 {
		en.mu.Lock()
		en.sa.Tick(start.Add(time.Duration(i) * 10 * time.Second))
		en.mu.Unlock()
		a.e.finish(en)
		n.pump(t)
	}
	if len(a.h.downs) != 1 || a.h.downs[0].Reason != ike.ReasonDeadPeer {
		t.Fatalf("downs %v", a.h.downs)
	}
	_ = b
}

// rsaAuth is a SignatureAuth with a fixed RSA key per identity (the certificate checks are
// ike/auth's, tested there and against strongSwan).
type rsaAuth struct {
	own  *rsa.PrivateKey
	peer *rsa.PublicKey
	id   ike.Identity // the peer's
}

func (a *rsaAuth) UsesSignatures() bool                { return true }
func (a *rsaAuth) RemoteMatches(id ike.Identity) bool  { return a.id.Matches(id) }
func (a *rsaAuth) InitPayloads(bool) []ikewire.Payload { return nil }
func (a *rsaAuth) Build(*ike.AuthInput) ([]ikewire.Payload, *ikewire.AUTH, error) {
	return nil, nil, errors.New("IKEv2 not used here")
}
func (a *rsaAuth) Verify(*ike.AuthInput, []ikewire.Payload) error {
	return errors.New("IKEv2 not used here")
}
func (a *rsaAuth) SignV1(_ ike.Identity, hash []byte) ([][]byte, []byte, error) {
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.own, crypto.Hash(0), hash)
	return [][]byte{[]byte("certificate")}, sig, err
}
func (a *rsaAuth) VerifyV1(remote ike.Identity, certs [][]byte, hash, sig []byte) error {
	if len(certs) != 1 || !a.id.Matches(remote) {
		return errors.New("no certificate or wrong identity")
	}
	return rsa.VerifyPKCS1v15(a.peer, crypto.Hash(0), hash, sig)
}

func TestSignatures(t *testing.T) {
	ka, _ := rsa.GenerateKey(rand.Reader, 2048)
	kb, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, aggressive := range []bool{false, true} {
		n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", aggressive, "", "")
		a.cfg.Peer.Authenticator = &rsaAuth{own: ka, peer: &kb.PublicKey, id: ike.AddrIdentity(addrB)}
		b.cfg.Peer.Authenticator = &rsaAuth{own: kb, peer: &ka.PublicKey, id: ike.AddrIdentity(addrA)}
		a.cfg.Peer.PSK, b.cfg.Peer.PSK = nil, nil
		a.initiate(t, addrB)
		n.pump(t)
		checkKeys(t, a, b, 1)
		// A signature by the wrong key is refused.
		n, a, b = pair(t, "aes256-sha256-modp2048", "aes256gcm16", aggressive, "", "")
		a.cfg.Peer.Authenticator = &rsaAuth{own: ka, peer: &kb.PublicKey, id: ike.AddrIdentity(addrB)}
		b.cfg.Peer.Authenticator = &rsaAuth{own: kb, peer: &kb.PublicKey, id: ike.AddrIdentity(addrA)}
		a.initiate(t, addrB)
		n.pump(t)
		if len(b.h.children) != 0 || len(b.h.failed) == 0 {
			t.Fatalf("aggressive=%v: a wrong signature was accepted", aggressive)
		}
	}
}

// TestNATTransportMode: a client behind a NAT names its private address in a transport-mode
// Quick Mode (as L2TP/IPsec clients do); the responder accepts it as the address its packets come
// from (RFC 3947 §5.2).
func TestNATTransportMode(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", false, "secret", "secret")
	n.nat[addrA] = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 40000)
	for _, s := range []*side{a, b} {
		c := s.cfg.Peer.Children[0]
		c.Mode = ike.Transport
		c.LocalTS, c.RemoteTS = nil, nil
		c.LocalDynamic, c.RemoteDynamic = true, true
	}
	b.cfg.Peer.RemoteID = ike.AddrIdentity(addrA)
	a.initiate(t, addrB)
	n.pump(t)
	if len(a.h.children) != 1 {
		t.Fatalf("initiator installed %d Child SAs (failures %v)", len(a.h.children), a.h.failed)
	}
	for _, ca := range a.h.children {
		cb := b.h.children[ca.SPIOut]
		if cb == nil || !bytes.Equal(ca.EncrOut, cb.EncrIn) {
			t.Fatal("Child SAs do not pair")
		}
	}
	for _, c := range b.h.children {
		if c.RemoteTS[0] != ts.Host(netip.MustParseAddr("198.51.100.7")) || !c.Encap || c.Mode != ike.Transport {
			t.Fatalf("responder's Child SA %+v", c)
		}
	}
	if len(b.h.children) != 1 {
		t.Fatalf("responder installed %d Child SAs (failures %v)", len(b.h.children), b.h.failed)
	}
}

// TestHalfOpenTimeout: a responder SA whose initiator goes away after the first message is
// dropped once an initiator's retransmissions would be over.
func TestHalfOpenTimeout(t *testing.T) {
	n, a, b := pair(t, "aes256-sha256-modp2048", "aes256gcm16", false, "secret", "secret")
	delivered := 0
	n.drop = func(packet) bool { delivered++; return delivered > 1 }
	a.initiate(t, addrB)
	n.pump(t)
	if st := b.e.Stats(); st.HalfOpen != 1 || len(b.e.SAs()) != 1 {
		t.Fatalf("half-open %d, SAs %d", st.HalfOpen, len(b.e.SAs()))
	}
	en := b.e.entries("gt")[0]
	en.mu.Lock()
	en.sa.Tick(time.Now().Add(10 * time.Minute))
	en.mu.Unlock()
	b.e.finish(en)
	if st := b.e.Stats(); st.HalfOpen != 0 || len(b.e.SAs()) != 0 || len(b.h.failed) != 1 {
		t.Fatalf("after the timeout: half-open %d, SAs %d, failures %v", st.HalfOpen, len(b.e.SAs()), b.h.failed)
	}
}
