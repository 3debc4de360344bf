package engine_test

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// wireLog records the IKE messages on the fake network: exchange, direction, sender, whether it
// was a fragment.
type wireLog struct {
	mu   sync.Mutex
	msgs []wireMsg
}

type wireMsg struct {
	ex       wire.ExchangeType
	response bool
	from     netip.Addr
	fragment bool
	size     int
}

func (l *wireLog) watch(n *enginetest.Net) {
	n.Drop = func(p enginetest.Packet) bool {
		if p.ESP {
			return false
		}
		m, err := wire.Decode(p.B)
		if err != nil {
			return false
		}
		frag := false
		if len(m.Payloads) > 0 {
			_, frag = m.Payloads[len(m.Payloads)-1].(*wire.EncryptedFragment)
		}
		l.mu.Lock()
		l.msgs = append(l.msgs, wireMsg{ex: m.Exchange, response: m.IsResponse(), from: p.From.Addr(), fragment: frag, size: len(p.B)})
		l.mu.Unlock()
		return false
	}
}

// count returns how many messages of an exchange went the given way (requests or responses).
func (l *wireLog) count(ex wire.ExchangeType, response bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m.ex == ex && m.response == response && !m.fragment {
			n++
		}
	}
	return n
}

func (l *wireLog) fragments(ex wire.ExchangeType) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m.ex == ex && m.fragment {
			n++
		}
	}
	return n
}

func (l *wireLog) reset() {
	l.mu.Lock()
	l.msgs = nil
	l.mu.Unlock()
}

// pqPair is a pair whose connections use the given IKE and ESP proposals.
func pqPair(t *testing.T, ikeA, ikeB, espA, espB string, opts *pairOptions) (*pair, *wireLog) {
	t.Helper()
	p := newPair(t, opts)
	set := func(c *ike.PeerConfig, ikeP, espP string) {
		var err error
		if c.Proposals, err = proposal.ParseIKE(ikeP); err != nil {
			t.Fatal(err)
		}
		if c.Children[0].Proposals, err = proposal.ParseESP(espP); err != nil {
			t.Fatal(err)
		}
	}
	set(p.ca, ikeA, espA)
	set(p.cb, ikeB, espB)
	l := &wireLog{}
	l.watch(p.net)
	return p, l
}

func proposalOf(t *testing.T, h *enginetest.Host) string {
	t.Helper()
	sas := h.Engine.SAs()
	if len(sas) != 1 {
		t.Fatalf("%s has %d IKE SAs", h.Name, len(sas))
	}
	return sas[0].Proposal
}

// TestAdditionalKeyExchanges: IKE_SA_INIT chooses additional key exchanges, which run one per
// IKE_INTERMEDIATE exchange (RFC 9370 §2.2.2) before IKE_AUTH authenticates them all (RFC 9242
// §3.3): both sides agree on the keys (the Child SA keys match and AUTH verified).
func TestAdditionalKeyExchanges(t *testing.T) {
	for _, tc := range []struct {
		name, ikeA, ikeB string
		intermediates    int
		want             string
	}{
		{"hybrid", "aes256gcm16-prfsha256-x25519-ke1_mlkem768", "aes256gcm16-prfsha256-x25519-ke1_mlkem768", 1, "aes256gcm16-prfsha256-x25519-ke1_mlkem768"},
		{"two", "aes256gcm16-prfsha384-ecp256-ke1_mlkem1024-ke2_x25519", "aes256gcm16-prfsha384-ecp256-ke1_mlkem1024-ke2_x25519", 2,
			"aes256gcm16-prfsha384-ecp256-ke1_mlkem1024-ke2_x25519"},
		{"gap", "aes256gcm16-prfsha256-x25519-ke1_none-ke3_mlkem768", "aes256gcm16-prfsha256-x25519-ke3_mlkem768", 1,
			"aes256gcm16-prfsha256-x25519-ke1_none-ke3_mlkem768"},
		{"optional, peer classic", "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha256-x25519", 0,
			"aes256gcm16-prfsha256-x25519-ke1_none"},
		{"default both", "default", "default", 1, "aes256gcm16-prfsha256-x25519-ke1_mlkem768"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, l := pqPair(t, tc.ikeA, tc.ikeB, "aes256gcm16", "aes256gcm16", nil)
			p.up(t)
			if n := l.count(wire.ExchangeIKEIntermediate, false); n != tc.intermediates {
				t.Errorf("%d IKE_INTERMEDIATE requests, want %d", n, tc.intermediates)
			}
			if n := l.count(wire.ExchangeIKEIntermediate, true); n != tc.intermediates {
				t.Errorf("%d IKE_INTERMEDIATE responses, want %d", n, tc.intermediates)
			}
			for _, h := range []*enginetest.Host{p.a, p.b} {
				if got := proposalOf(t, h); got != tc.want {
					t.Errorf("%s negotiated %s, want %s", h.Name, got, tc.want)
				}
			}
			p.traffic(time.Second)
			noLoss(t, p)
		})
	}
}

// TestHybridDefaultFallsBack: goipsec's default proposals offer the X25519+ML-KEM-768 hybrid
// first; a classic responder picks the classic proposal in the same round trip, since the KE
// payload (X25519) fits it: no INVALID_KE_PAYLOAD, no IKE_INTERMEDIATE.
func TestHybridDefaultFallsBack(t *testing.T) {
	p, l := pqPair(t, "default", "aes256gcm16-prfsha384-x25519", "aes256gcm16", "aes256gcm16", nil)
	p.up(t)
	if n := l.count(wire.ExchangeIKESAInit, false); n != 1 {
		t.Errorf("%d IKE_SA_INIT requests, want 1 (no INVALID_KE_PAYLOAD round trip)", n)
	}
	if n := l.count(wire.ExchangeIKEIntermediate, false); n != 0 {
		t.Errorf("%d IKE_INTERMEDIATE requests with a classic peer", n)
	}
	if got := proposalOf(t, p.a); got != "aes256gcm16-prfsha384-x25519" {
		t.Errorf("negotiated %s", got)
	}
}

// TestAdditionalKEMismatch: a peer that requires ML-KEM against one that has only X25519: the
// failure names both sides' proposals in one line.
func TestAdditionalKEMismatch(t *testing.T) {
	p, _ := pqPair(t, "aes256gcm16-prfsha256-x25519-ke1_mlkem768", "aes256gcm16-prfsha256-x25519", "aes256gcm16", "aes256gcm16", nil)
	p.initiate(t)
	p.run(time.Second)
	fa, fb := strings.Join(p.a.Failures(false), "\n"), strings.Join(p.b.Failures(false), "\n")
	if !strings.Contains(fa, "x25519-ke1_mlkem768") || !strings.Contains(fb, "x25519-ke1_mlkem768") || !strings.Contains(fb, "we accept b: aes256gcm16-prfsha256-x25519") {
		t.Fatalf("failures do not explain the mismatch:\nA: %s\nB: %s", fa, fb)
	}
	if len(p.a.IKEUp()) != 0 {
		t.Fatal("came up without the required key exchange")
	}
}

// TestIntermediateFragmented: an ML-KEM-1024 encapsulation key (1568 bytes) does not fit a
// 1280-byte datagram, so the IKE_INTERMEDIATE request travels in IKEv2 fragments (RFC 7383, the
// reason RFC 9242 exists); IntAuth is computed over the reassembled message, so AUTH verifies.
func TestIntermediateFragmented(t *testing.T) {
	frag := enginetest.HostOptions{Modify: func(c *engine.Config) { c.MaxDatagram = 1280 }}
	p, l := pqPair(t, "aes256gcm16-prfsha256-x25519-ke1_mlkem1024", "aes256gcm16-prfsha256-x25519-ke1_mlkem1024", "aes256gcm16", "aes256gcm16",
		&pairOptions{a: frag, b: frag})
	p.ca.Fragmentation, p.cb.Fragmentation = true, true
	p.up(t)
	if n := l.fragments(wire.ExchangeIKEIntermediate); n < 4 {
		t.Fatalf("%d IKE_INTERMEDIATE fragments, want the request and the response fragmented", n)
	}
	l.mu.Lock()
	for _, m := range l.msgs {
		if m.size > 1280 {
			t.Errorf("%s message of %d bytes exceeds the datagram budget", m.ex, m.size)
		}
	}
	l.mu.Unlock()
}

// TestFollowupKE: with additional key exchanges in the ESP and IKE proposals, every
// CREATE_CHILD_SA (new Child SA, Child SA rekey, IKE SA rekey), started by either side, is
// followed by one IKE_FOLLOWUP_KE exchange per additional key exchange (RFC 9370 §2.2.4); the keys
// agree and no packet meets a missing SA.
func TestFollowupKE(t *testing.T) {
	ikeP := "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke2_ecp256"
	espP := "aes256gcm16-x25519-ke1_mlkem768"
	for _, who := range []string{"initiator", "responder"} {
		t.Run(who, func(t *testing.T) {
			p, l := pqPair(t, ikeP, ikeP, espP, espP, nil)
			p.up(t)
			p.traffic(time.Second)
			h, conn := p.a, "a"
			if who == "responder" {
				h, conn = p.b, "b"
			}
			l.reset()
			if !h.Engine.RekeyChild(onlyChild(t, h).SPIIn) {
				t.Fatal("RekeyChild found nothing")
			}
			p.traffic(3 * time.Second)
			checkPaired(t, p)
			if n := l.count(wire.ExchangeIKEFollowupKE, true); n != 1 {
				t.Fatalf("Child SA rekey: %d IKE_FOLLOWUP_KE exchanges, want 1", n)
			}
			l.reset()
			if !h.Engine.RekeyIKE(conn) {
				t.Fatal("RekeyIKE found nothing")
			}
			p.traffic(3 * time.Second)
			if n := l.count(wire.ExchangeIKEFollowupKE, true); n != 2 {
				t.Fatalf("IKE SA rekey: %d IKE_FOLLOWUP_KE exchanges, want 2", n)
			}
			if len(p.a.Rekeyed()) != 1 || len(p.b.Rekeyed()) != 1 {
				t.Fatalf("IKE SA rekeyed %d/%d times; failures A %v B %v", len(p.a.Rekeyed()), len(p.b.Rekeyed()), p.a.Failures(false), p.b.Failures(false))
			}
			// The new IKE SA's keys agree: a Child SA rekey on it (with its own follow-up) works.
			l.reset()
			if !h.Engine.RekeyChild(onlyChild(t, h).SPIIn) {
				t.Fatal("RekeyChild on the new IKE SA found nothing")
			}
			p.traffic(3 * time.Second)
			checkPaired(t, p)
			if n := l.count(wire.ExchangeIKEFollowupKE, true); n != 1 {
				t.Fatalf("Child SA rekey on the new IKE SA: %d IKE_FOLLOWUP_KE exchanges, want 1", n)
			}
			noLoss(t, p)
			if f := append(p.a.Failures(false), p.b.Failures(false)...); len(f) != 0 {
				t.Fatalf("failures: %v", f)
			}
			for _, c := range p.a.Children() {
				if !strings.Contains(c.Proposal.String(), "ke1_mlkem768") {
					t.Fatalf("Child SA proposal %s", c.Proposal)
				}
			}
		})
	}
}
