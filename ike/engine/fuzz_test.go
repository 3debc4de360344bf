package engine

import (
	"net/netip"
	"testing"

	"github.com/goipsec/goipsec/ike"
)

// FuzzReceive feeds arbitrary datagrams to a responder engine, seeded with a real IKE_SA_INIT
// request and a real IKE_AUTH request: whatever arrives, the engine must not panic, and anything
// it answers must be a well-formed IKE message.
func FuzzReceive(f *testing.F) {
	p := newPeers(f, nil)
	if err := p.a.Initiate(p.ca, p.ca.Children[0], p.addrA, p.addrB); err != nil {
		f.Fatal(err)
	}
	// Capture the initiator's first two requests as seeds.
	p.net.mu.Lock()
	for _, pk := range p.net.queue {
		f.Add(pk.b)
	}
	p.net.mu.Unlock()
	p.net.deliver()
	p.net.mu.Lock()
	for _, pk := range p.net.queue {
		f.Add(pk.b)
	}
	p.net.mu.Unlock()
	f.Add([]byte{})
	f.Add(make([]byte, 28))
	f.Fuzz(func(t *testing.T, data []byte) {
		net := &fakeNet{engines: map[netip.Addr]*Engine{}}
		e := New(Config{Transport: fakeTransport{net}, Clock: newManualClock(), CookieThreshold: 1000,
			Configs: func(netip.Addr, netip.Addr) []*ike.PeerConfig {
				return []*ike.PeerConfig{peerConfig(t, "b", "10.2.0.0/24", "10.1.0.0/24")}
			}})
		e.Receive(data, netip.MustParseAddrPort("192.0.2.2:500"), netip.MustParseAddrPort("192.0.2.1:500"))
		// A second copy exercises the retransmission path.
		e.Receive(data, netip.MustParseAddrPort("192.0.2.2:500"), netip.MustParseAddrPort("192.0.2.1:500"))
		net.mu.Lock()
		defer net.mu.Unlock()
		for _, pk := range net.queue {
			if len(pk.b) < 28 {
				t.Fatalf("engine sent a %d-byte message", len(pk.b))
			}
		}
	})
}
