package engine_test

import (
	"bytes"
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
		// ML-KEM-512 (circl) is offered only when configured: the responder prefers it when the
		// initiator puts it first.
		{"mlkem512", "aes128gcm16-prfsha256-x25519-ke1_mlkem512-ke1_mlkem768", "aes128gcm16-prfsha256-x25519-ke1_mlkem512", 1,
			"aes128gcm16-prfsha256-x25519-ke1_mlkem512"},
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

// keyRecorder collects the IKE keys a host's engine reports (Config.KeyLog), in order.
type keyRecorder struct {
	mu   sync.Mutex
	keys []ike.KeysDerived
}

func (r *keyRecorder) options() enginetest.HostOptions {
	return enginetest.HostOptions{Modify: func(c *engine.Config) {
		c.KeyLog = true
		c.Events.Keys = func(k ike.KeysDerived) { r.mu.Lock(); r.keys = append(r.keys, k); r.mu.Unlock() }
	}}
}

func (r *keyRecorder) all() []ike.KeysDerived {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ike.KeysDerived(nil), r.keys...)
}

// TestSevenAdditionalKeyExchanges: the most RFC 9370 allows — ADDKE1 to ADDKE7, each a different
// method (RFC 9370 §2.2.1: no method twice) — run in seven IKE_INTERMEDIATE exchanges. After
// IKE_SA_INIT and after each of them both sides derive the same SK_d, SK_a, SK_e and SK_p (RFC
// 9370 §2.2.2), every step changes them, AUTH verifies over all seven (RFC 9242 §3.3), and the
// Child SA carries traffic both ways; an IKE SA rekey repeats the seven in IKE_FOLLOWUP_KE.
func TestSevenAdditionalKeyExchanges(t *testing.T) {
	const prop = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024-ke3_ecp256-ke4_ecp384-ke5_ecp521-ke6_modp2048-ke7_modp3072"
	var ka, kb keyRecorder
	p, l := pqPair(t, prop, prop, "aes256gcm16", "aes256gcm16", &pairOptions{a: ka.options(), b: kb.options()})
	p.up(t)
	if n, m := l.count(wire.ExchangeIKEIntermediate, false), l.count(wire.ExchangeIKEIntermediate, true); n != 7 || m != 7 {
		t.Fatalf("%d IKE_INTERMEDIATE requests and %d responses, want 7 each", n, m)
	}
	for _, h := range []*enginetest.Host{p.a, p.b} {
		if got := proposalOf(t, h); got != prop {
			t.Errorf("%s negotiated %s", h.Name, got)
		}
	}
	a, b := ka.all(), kb.all()
	if len(a) != 8 || len(b) != 8 {
		t.Fatalf("keys derived %d and %d times, want 8 (IKE_SA_INIT and seven IKE_INTERMEDIATE)", len(a), len(b))
	}
	seen := map[string]bool{}
	for i := range a {
		x, y := a[i], b[i]
		for _, f := range []struct {
			name string
			x, y []byte
		}{{"SK_d", x.SKd, y.SKd}, {"SK_ai", x.SKai, y.SKai}, {"SK_ar", x.SKar, y.SKar}, {"SK_ei", x.SKei, y.SKei},
			{"SK_er", x.SKer, y.SKer}, {"SK_pi", x.SKpi, y.SKpi}, {"SK_pr", x.SKpr, y.SKpr}} {
			// SK_ai and SK_ar are empty with AES-GCM (RFC 5282 §7); the others never are.
			if (len(f.x) == 0 && !strings.HasPrefix(f.name, "SK_a")) || !bytes.Equal(f.x, f.y) {
				t.Fatalf("step %d: %s differs between initiator and responder", i, f.name)
			}
		}
		if seen[string(x.SKd)] {
			t.Fatalf("step %d did not change SK_d", i)
		}
		seen[string(x.SKd)] = true
	}
	p.traffic(time.Second)

	// The IKE SA rekey runs the seven again, in IKE_FOLLOWUP_KE (RFC 9370 §2.2.4), and the new IKE
	// SA's last keys agree too.
	l.reset()
	if !p.a.Engine.RekeyIKE("a") {
		t.Fatal("RekeyIKE found nothing")
	}
	p.traffic(3 * time.Second)
	if n := l.count(wire.ExchangeIKEFollowupKE, true); n != 7 {
		t.Fatalf("IKE SA rekey: %d IKE_FOLLOWUP_KE exchanges, want 7", n)
	}
	if len(p.a.Rekeyed()) != 1 || len(p.b.Rekeyed()) != 1 {
		t.Fatalf("IKE SA rekeyed %d/%d times; failures A %v B %v", len(p.a.Rekeyed()), len(p.b.Rekeyed()), p.a.Failures(false), p.b.Failures(false))
	}
	a, b = ka.all(), kb.all()
	if x, y := a[len(a)-1], b[len(b)-1]; len(a) <= 8 || !bytes.Equal(x.SKd, y.SKd) || !bytes.Equal(x.SKei, y.SKei) || seen[string(x.SKd)] {
		t.Fatalf("after the rekey (%d/%d key reports) the new IKE SA's keys differ or are old ones", len(a), len(b))
	}
	noLoss(t, p)
}

// TestInvalidKEIsAStep: a responder that wants another group answers INVALID_KE_PAYLOAD and the
// initiator retries with it. That is how IKEv2 negotiates groups, not a failure: neither side
// reports a failed negotiation (the daemon logs such steps at INFO, failures at WARN).
func TestInvalidKEIsAStep(t *testing.T) {
	p, l := pqPair(t, "aes256gcm16-prfsha256-x25519-ecp256", "aes256gcm16-prfsha256-ecp256", "aes256gcm16", "aes256gcm16", nil)
	p.up(t)
	if n := l.count(wire.ExchangeIKESAInit, false); n != 2 {
		t.Errorf("%d IKE_SA_INIT requests, want 2 (one INVALID_KE_PAYLOAD round trip)", n)
	}
	if got := proposalOf(t, p.a); got != "aes256gcm16-prfsha256-ecp256" {
		t.Errorf("negotiated %s", got)
	}
	for _, h := range []*enginetest.Host{p.a, p.b} {
		if f := h.Failures(false); len(f) != 0 {
			t.Errorf("%s reports failures for a normal INVALID_KE_PAYLOAD retry: %q", h.Name, f)
		}
		if f := h.Failures(true); len(f) != 1 || !strings.Contains(f[0], "group") {
			t.Errorf("%s reports steps %q, want the one group change", h.Name, f)
		}
	}
}
