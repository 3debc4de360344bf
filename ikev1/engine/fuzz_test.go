package engine

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/goipsec/goipsec/ikev1/wire"
)

// FuzzReceive: whatever arrives — as a first message, or with the cookies of an established SA
// (so that it reaches phase 1, Quick Mode, informational and transaction processing) — the
// engine neither panics nor sends anything that does not decode as ISAKMP.
func FuzzReceive(f *testing.F) {
	body, _ := wire.EncodePayloads([]wire.Payload{&wire.Hash{Data: make([]byte, 32)}, &wire.Nonce{Data: make([]byte, 16)}})
	f.Add(wire.Assemble(wire.Header{ICookie: 1, Exchange: wire.ExchangeQuick, MessageID: 7, Flags: wire.FlagEncryption}, wire.PayloadHash, body))
	f.Add(wire.Assemble(wire.Header{ICookie: 1, Exchange: wire.ExchangeMain}, wire.PayloadHash, body))
	f.Add(wire.Assemble(wire.Header{ICookie: 1, Exchange: wire.ExchangeInformational}, wire.PayloadHash, body))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, a, bside := pair(t, "aes128-sha256-ecp256", "aes128gcm16", false, "k", "k")
		a.initiate(t, addrB)
		n.pump(t)
		sas := bside.e.SAs()
		if len(sas) != 1 {
			t.Fatalf("the seeded handshake left %d ISAKMP SAs, want 1", len(sas))
		}
		n.sent = nil
		// As a first message from a new peer.
		bside.e.Receive(append([]byte(nil), b...), netip.AddrPortFrom(addrB, 500), netip.MustParseAddrPort("198.51.100.9:500"))
		// With the established SA's cookies.
		if len(b) >= wire.HeaderLen {
			c := append([]byte(nil), b...)
			binary.BigEndian.PutUint64(c[0:], sas[0].SPIi)
			binary.BigEndian.PutUint64(c[8:], sas[0].SPIr)
			c[17] = wire.Version
			binary.BigEndian.PutUint32(c[24:], uint32(len(c)))
			bside.e.Receive(c, netip.AddrPortFrom(addrB, 500), netip.AddrPortFrom(addrA, 500))
		}
		n.mu.Lock()
		sent := n.sent
		n.mu.Unlock()
		for _, p := range sent {
			if _, err := wire.DecodeHeader(p.b); err != nil {
				t.Fatalf("sent %x: %v", p.b, err)
			}
		}
	})
}
