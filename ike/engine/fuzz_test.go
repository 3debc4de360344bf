package engine_test

import (
	"net/netip"
	"testing"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/ike/wire"
)

// FuzzReceive feeds arbitrary datagrams to a responder engine, seeded with a real IKE_SA_INIT
// request and a real IKE_AUTH request: whatever arrives, the engine must not panic, and anything
// it answers must be a well-formed IKE message.
func FuzzReceive(f *testing.F) {
	p := newPair(f, nil)
	p.initiate(f)
	p.net.Poll()
	for _, pk := range p.net.Queued() {
		f.Add(pk.B)
	}
	p.net.Deliver()
	p.run(0)
	f.Add([]byte{})
	f.Add(make([]byte, 28))
	cb := peerConfig(f, "b", "10.2.0.0/24", "10.1.0.0/24")
	f.Fuzz(func(t *testing.T, data []byte) {
		n := enginetest.NewNet()
		h := n.AddHost(t, "B", netip.MustParseAddr("192.0.2.2"), enginetest.HostOptions{
			Configs: func(netip.Addr, netip.Addr) []*ike.PeerConfig { return []*ike.PeerConfig{cb} },
			Modify:  func(c *engine.Config) { c.CookieThreshold = 1000 },
			Log:     discard{},
		})
		from, to := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
		h.Engine.Receive(data, to, from)
		n.Poll()
		// A second copy exercises the retransmission path.
		h.Engine.Receive(data, to, from)
		n.Poll()
		for _, pk := range n.Queued() {
			if _, err := wire.DecodeHeader(pk.B); err != nil {
				t.Fatalf("engine sent a malformed message: %v", err)
			}
		}
	})
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
