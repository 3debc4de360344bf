package engine_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/ike/wire"
)

// refusingTCP is a transport whose TCP connections are always refused (nothing listens).
type refusingTCP struct {
	engine.Transport
	tries *int
}

func (r refusingTCP) SendStream([]byte, netip.AddrPort, netip.AddrPort, bool) error {
	*r.tries++
	return errors.New("connection refused")
}

// TestTCPFallbackRefused: the responder answers IKE_SA_INIT, but the answers get lost; after two
// unanswered retransmissions the initiator tries TCP, which is refused, and goes back to UDP with
// the same key exchange value and nonce, so that the responder's replayed (cached) answer still
// fits: the IKE SA comes up.
func TestTCPFallbackRefused(t *testing.T) {
	tries := 0
	opts := &pairOptions{a: enginetest.HostOptions{Modify: func(c *engine.Config) { c.Transport = refusingTCP{c.Transport, &tries} }}}
	p := newPair(t, opts)
	p.ca.TCPPort = 4500
	lost := 0
	p.net.Drop = func(pk enginetest.Packet) bool {
		if pk.ESP || lost >= 3 {
			return false
		}
		if h, err := wire.DecodeHeader(pk.B); err == nil && h.Exchange == wire.ExchangeIKESAInit && h.IsResponse() {
			lost++
			return true
		}
		return false
	}
	p.initiate(t)
	p.run(30 * time.Second)
	if len(p.a.IKEUp()) != 1 || len(p.b.IKEUp()) != 1 {
		t.Fatalf("not up: A %v, B %v", p.a.Failures(true), p.b.Failures(true))
	}
	if tries == 0 {
		t.Fatal("TCP was never tried")
	}
	if f := strings.Join(p.a.Failures(true), "\n"); !strings.Contains(f, "trying TCP") || !strings.Contains(f, "goes on over UDP") {
		t.Fatalf("A's steps: %s", f)
	}
}
