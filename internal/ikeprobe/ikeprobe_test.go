package ikeprobe

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

func mustIKE(t testing.TB, s string) []proposal.Proposal {
	p, err := proposal.ParseIKE(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRequestOffersProposalsWithAnUnusedGroup: the probe is a well-formed IKE_SA_INIT that the
// codec reads back, offering our proposals and a KE of a group none of them names, so that a
// responder accepting them answers INVALID_KE_PAYLOAD and keeps no state.
func TestRequestOffersProposalsWithAnUnusedGroup(t *testing.T) {
	for _, tc := range []struct {
		props string
		group uint16
		n     int
	}{
		{"aes256gcm16-prfsha256-x25519", 19, 64},
		{"aes256gcm16-prfsha256-ecp256", 31, 32},
		{"aes256gcm16-prfsha256-x25519-ecp256-modp2048", 20, 96},
	} {
		b, err := Request(0x1122334455667788, mustIKE(t, tc.props), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		m, err := wire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := wire.CheckGrammar(m, nil); err != nil {
			t.Errorf("%s: grammar: %v", tc.props, err)
		}
		if m.SPIi != 0x1122334455667788 || m.SPIr != 0 || m.Exchange != wire.ExchangeIKESAInit || !m.IsInitiator() || m.IsResponse() {
			t.Errorf("%s: header %+v", tc.props, m.Header)
		}
		var ke *wire.KE
		var sa *wire.SA
		for _, p := range m.Payloads {
			switch p := p.(type) {
			case *wire.KE:
				ke = p
			case *wire.SA:
				sa = p
			}
		}
		if ke == nil || ke.Group != tc.group || len(ke.Data) != tc.n {
			t.Errorf("%s: KE %+v, want group %d with %d bytes", tc.props, ke, tc.group, tc.n)
		}
		if sa == nil || len(sa.Proposals) != 1 {
			t.Errorf("%s: SA %+v", tc.props, sa)
		}
	}
}

func response(t testing.TB, spi uint64, notify wire.NotifyType) []byte {
	m := wire.Message{Header: wire.Header{SPIi: spi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagResponse},
		Payloads: []wire.Payload{&wire.Notify{NotifyType: notify, Data: []byte{0, 31}}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAnswer(t *testing.T) {
	for notify, want := range map[wire.NotifyType]string{
		wire.InvalidKEPayload: "accepts one of our IKE proposals",
		wire.NoProposalChosen: "accepts none of our IKE proposals",
		wire.InvalidSyntax:    "INVALID_SYNTAX",
	} {
		got, err := ParseAnswer(response(t, 7, notify), 7)
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("%v: %q %v", notify, got, err)
		}
	}
	if _, err := ParseAnswer(response(t, 8, wire.NoProposalChosen), 7); err == nil {
		t.Error("a response for another SPI was taken")
	}
	if _, err := ParseAnswer([]byte("not ike"), 7); err == nil {
		t.Error("garbage was taken for an answer")
	}
}

// responder answers every IKE_SA_INIT on a loopback UDP port with notify (after the marker on a
// NAT-T port).
func responder(t *testing.T, notify wire.NotifyType, natt bool) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg := buf[:n]
			if natt {
				if !bytes.HasPrefix(msg, natTMarker) {
					continue
				}
				msg = msg[4:]
			}
			h, err := wire.DecodeHeader(msg)
			if err != nil {
				continue
			}
			out := response(t, h.SPIi, notify)
			if natt {
				out = append(append([]byte(nil), natTMarker...), out...)
			}
			c.WriteToUDP(out, from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestProbeVerdicts(t *testing.T) {
	props := mustIKE(t, "aes256gcm16-prfsha256-x25519")
	live := responder(t, wire.InvalidKEPayload, false)
	r := Probe(context.Background(), live, Options{Proposals: props, Timeout: 2 * time.Second})
	if r.Verdict != Answered || !strings.Contains(r.Detail, "accepts one of our") {
		t.Errorf("live responder: %+v", r)
	}
	// A closed port: nothing listens, the kernel answers ICMP port unreachable.
	closed := func() netip.AddrPort {
		c, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		a := c.LocalAddr().(*net.UDPAddr).AddrPort()
		c.Close()
		return a
	}()
	if r := Probe(context.Background(), closed, Options{Proposals: props, Timeout: 2 * time.Second}); r.Verdict != Refused {
		t.Errorf("closed port: %+v", r)
	}
	// A port that swallows everything.
	silent, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer silent.Close()
	start := time.Now()
	r = Probe(context.Background(), silent.LocalAddr().(*net.UDPAddr).AddrPort(), Options{Proposals: props, Timeout: 300 * time.Millisecond})
	if r.Verdict != Silent || time.Since(start) > 2*time.Second {
		t.Errorf("silent port: %+v after %v", r, time.Since(start))
	}
}

// TestProbeNATTPort: on the NAT-T port the probe carries the non-ESP marker and reads the answer
// after it (RFC 3948 §2.2); the responder here drops anything without the marker.
func TestProbeNATTPort(t *testing.T) {
	natt := responder(t, wire.NoProposalChosen, true)
	r := Probe(context.Background(), natt, Options{Proposals: mustIKE(t, "aes256gcm16-prfsha256-x25519"), Timeout: 2 * time.Second, NATTPort: natt.Port()})
	if r.Verdict != Answered || !strings.Contains(r.Detail, "accepts none of our") {
		t.Errorf("NAT-T responder: %+v", r)
	}
}

// FuzzParseAnswer: whatever a network peer sends back, parsing it never panics.
func FuzzParseAnswer(f *testing.F) {
	f.Add(response(f, 7, wire.InvalidKEPayload), uint64(7))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, spi uint64) {
		ParseAnswer(b, spi)
	})
}
