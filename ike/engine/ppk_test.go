package engine_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
)

// ppkConf gives a connection a PPK the way the daemon does: every connection can look PPKs up
// (so a responder answers USE_PPK_INT or USE_PPK), id names ours, key "" means no secret at all.
func ppkConf(c *ike.PeerConfig, id, key string, required, only8784 bool) {
	c.PPKID, c.PPKRequired, c.PPKNoIntermediate = []byte(id), required, only8784
	c.PPK = func(want []byte) ([]byte, bool) {
		if key == "" || string(want) != id {
			return nil, false
		}
		return []byte(key), true
	}
}

// initNotifies records the notifications of IKE_SA_INIT requests and responses on the fake
// network (they travel in the clear), besides what wireLog records.
type initNotifies struct {
	mu        sync.Mutex
	req, resp map[wire.NotifyType]bool
}

func (w *initNotifies) watch(n *enginetest.Net, l *wireLog) {
	w.req, w.resp = map[wire.NotifyType]bool{}, map[wire.NotifyType]bool{}
	l.watch(n)
	inner := n.Drop
	n.Drop = func(p enginetest.Packet) bool {
		if m, err := wire.Decode(p.B); err == nil && !p.ESP && m.Exchange == wire.ExchangeIKESAInit {
			w.mu.Lock()
			for _, pl := range m.Payloads {
				if no, ok := pl.(*wire.Notify); ok {
					if m.IsResponse() {
						w.resp[no.NotifyType] = true
					} else {
						w.req[no.NotifyType] = true
					}
				}
			}
			w.mu.Unlock()
		}
		return inner(p)
	}
}

func (w *initNotifies) has(response bool, n wire.NotifyType) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if response {
		return w.resp[n]
	}
	return w.req[n]
}

func ikePPK(t *testing.T, h *enginetest.Host) bool {
	t.Helper()
	sas := h.Engine.SAs()
	if len(sas) != 1 {
		t.Fatalf("%s has %d IKE SAs", h.Name, len(sas))
	}
	return sas[0].PPK
}

func spiBytes(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// TestPPKIntermediate: RFC 9867 goipsec↔goipsec. Both sides announce USE_PPK_INT (and the
// responder answers it alone, not USE_PPK); the PPK rides in the IKE_INTERMEDIATE exchange of the
// last additional key exchange, or in one of its own without any. Both sides derive the same keys
// at every step, and the last step is exactly RFC 9867's derivation from the step before
// (suite.PPKIntermediateKeys, itself checked against crypto/hmac); IKE_AUTH verifies with them
// and the Child SA carries traffic. Child SA and IKE SA rekeys (with ML-KEM in IKE_FOLLOWUP_KE)
// then work from the PPK's SK_d, and the new IKE SA still counts as PPK-protected.
func TestPPKIntermediate(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, ike, esp string
		intermediates  int
		steps          int // key derivations: IKE_SA_INIT, each additional key exchange, the PPK
	}{
		{"hybrid", "aes256gcm16-prfsha256-x25519-ke1_mlkem768", "aes256gcm16-x25519-ke1_mlkem768", 1, 3},
		{"two additional key exchanges", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_ecp256", "aes256gcm16", 2, 4},
		{"classic", "aes256gcm16-prfsha256-x25519", "aes256gcm16-x25519", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ka, kb keyRecorder
			p, l := pqPair(t, tc.ike, tc.ike, tc.esp, tc.esp, &pairOptions{a: ka.options(), b: kb.options()})
			var w initNotifies
			w.watch(p.net, l)
			ppkConf(p.ca, "site", key, false, false)
			ppkConf(p.cb, "site", key, false, false)
			p.up(t)
			if !w.has(false, wire.UsePPKInt) || !w.has(false, wire.UsePPK) || !w.has(false, wire.IntermediateExchangeSupported) {
				t.Error("IKE_SA_INIT request lacks USE_PPK_INT, USE_PPK or INTERMEDIATE_EXCHANGE_SUPPORTED")
			}
			if !w.has(true, wire.UsePPKInt) || w.has(true, wire.UsePPK) {
				t.Error("the responder must answer USE_PPK_INT and not USE_PPK (RFC 9867)")
			}
			if n, m := l.count(wire.ExchangeIKEIntermediate, false), l.count(wire.ExchangeIKEIntermediate, true); n != tc.intermediates || m != tc.intermediates {
				t.Fatalf("%d IKE_INTERMEDIATE requests and %d responses, want %d", n, m, tc.intermediates)
			}
			if !ikePPK(t, p.a) || !ikePPK(t, p.b) {
				t.Fatalf("PPK in use: A %v, B %v", ikePPK(t, p.a), ikePPK(t, p.b))
			}
			// The initiator reports every step; the responder, whose keys of one exchange take
			// over together once its response is sealed, reports the additional key exchange and
			// the PPK of the last IKE_INTERMEDIATE exchange as one step.
			a, b := ka.all(), kb.all()
			if len(a) != tc.steps || len(b) < 2 {
				t.Fatalf("keys derived %d and %d times, want %d by the initiator", len(a), len(b), tc.steps)
			}
			same := func(x, y ike.KeysDerived) bool {
				return bytes.Equal(x.SKd, y.SKd) && bytes.Equal(x.SKei, y.SKei) && bytes.Equal(x.SKer, y.SKer) && bytes.Equal(x.SKpi, y.SKpi) && bytes.Equal(x.SKpr, y.SKpr)
			}
			for i, y := range b {
				found := false
				for _, x := range a {
					found = found || same(x, y)
				}
				if !found {
					t.Fatalf("the responder's keys of step %d are none of the initiator's", i)
				}
			}
			if !same(a[len(a)-1], b[len(b)-1]) {
				t.Fatal("the final keys differ between initiator and responder")
			}
			prev, last := a[len(a)-2], a[len(a)-1]
			want, err := suite.PPKIntermediateKeys(prev.Transforms, &suite.Keys{SKd: prev.SKd}, []byte(key), prev.Ni, prev.Nr, spiBytes(prev.IKE.SPIi), spiBytes(prev.IKE.SPIr))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				name      string
				got, want []byte
			}{{"SK_d", last.SKd, want.SKd}, {"SK_ei", last.SKei, want.SKei}, {"SK_er", last.SKer, want.SKer}, {"SK_pi", last.SKpi, want.SKpi}, {"SK_pr", last.SKpr, want.SKpr}} {
				if !bytes.Equal(f.got, f.want) {
					t.Fatalf("after the PPK %s = %x, want prf+(prf+(PPK, SK_d), Ni | Nr | SPIi | SPIr) = %x", f.name, f.got, f.want)
				}
			}
			p.traffic(time.Second)

			// Rekeys build on the PPK's SK_d: Child SA, then IKE SA, then a Child SA on the new
			// IKE SA.
			if !p.a.Engine.RekeyChild(onlyChild(t, p.a).SPIIn) {
				t.Fatal("RekeyChild found nothing")
			}
			p.traffic(3 * time.Second)
			checkPaired(t, p)
			if !p.b.Engine.RekeyIKE("b") {
				t.Fatal("RekeyIKE found nothing")
			}
			p.traffic(3 * time.Second)
			if len(p.a.Rekeyed()) != 1 || len(p.b.Rekeyed()) != 1 {
				t.Fatalf("IKE SA rekeyed %d/%d times; failures A %v B %v", len(p.a.Rekeyed()), len(p.b.Rekeyed()), p.a.Failures(false), p.b.Failures(false))
			}
			if !ikePPK(t, p.a) || !ikePPK(t, p.b) {
				t.Fatal("the rekeyed IKE SA lost the PPK flag")
			}
			a, b = ka.all(), kb.all()
			if x, y := a[len(a)-1], b[len(b)-1]; len(a) <= tc.steps || !bytes.Equal(x.SKd, y.SKd) || bytes.Equal(x.SKd, last.SKd) {
				t.Fatal("the new IKE SA's keys differ between the sides or are the old ones")
			}
			if !p.a.Engine.RekeyChild(onlyChild(t, p.a).SPIIn) {
				t.Fatal("RekeyChild on the new IKE SA found nothing")
			}
			p.traffic(3 * time.Second)
			checkPaired(t, p)
			noLoss(t, p)
			if f := append(p.a.Failures(true), p.b.Failures(true)...); len(f) != 0 {
				t.Fatalf("failures: %v", f)
			}
		})
	}
}

// TestPPKIntermediateFallback: a responder that answers USE_PPK and not USE_PPK_INT (RFC 8784
// only, as strongSwan 6.0.1 does; here goipsec with PPKNoIntermediate) gets RFC 8784: no
// IKE_INTERMEDIATE, the PPK in IKE_AUTH, and both sides use it.
func TestPPKIntermediateFallback(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	p, l := pqPair(t, "aes256gcm16-prfsha256-x25519", "aes256gcm16-prfsha256-x25519", "aes256gcm16", "aes256gcm16", nil)
	var w initNotifies
	w.watch(p.net, l)
	ppkConf(p.ca, "site", key, true, false)
	ppkConf(p.cb, "site", key, true, true)
	p.up(t)
	if !w.has(false, wire.UsePPKInt) || !w.has(true, wire.UsePPK) || w.has(true, wire.UsePPKInt) {
		t.Fatal("want USE_PPK_INT offered and USE_PPK alone answered")
	}
	if n := l.count(wire.ExchangeIKEIntermediate, false); n != 0 {
		t.Fatalf("%d IKE_INTERMEDIATE exchanges, want none", n)
	}
	if !ikePPK(t, p.a) || !ikePPK(t, p.b) {
		t.Fatal("the PPK is not in use")
	}
	p.traffic(time.Second)
	noLoss(t, p)
}

// TestPPKIntermediateRefused: required PPKs that the peer lacks, and PPKs that differ under the
// same id, which the responder sees from the PPK Confirmation in IKE_INTERMEDIATE (RFC 9867),
// before IKE_AUTH. Each failure is one line naming the cause; a mismatch where neither side
// requires a PPK goes on without it, and both sides say so.
func TestPPKIntermediateRefused(t *testing.T) {
	type side struct {
		id, key  string
		required bool
	}
	for _, tc := range []struct {
		name       string
		a, b       side
		wantA      string // A's failure ("" : the IKE SA comes up)
		wantB      string
		wantUp     bool
		wantNotice string // said by B (and A) when going on without the PPK
	}{
		{name: "initiator requires, responder has no PPK", a: side{"site", "k1", true}, b: side{"", "", false},
			wantA: `peer 192.0.2.2:500 does not accept our post-quantum preshared key "site" (no PPK_IDENTITY in the IKE_INTERMEDIATE response, RFC 9867): it has no key with that id, or a different one`},
		{name: "responder requires, initiator has no PPK", a: side{"", "", false}, b: side{"site", "k1", true},
			wantB: "connection b requires a post-quantum preshared key, but peer 192.0.2.1:500 offered none (RFC 8784)"},
		{name: "mismatch, responder requires", a: side{"site", "key-one", false}, b: side{"site", "key-two", true},
			wantA: `peer 192.0.2.2:500 refused our post-quantum preshared key "site" with AUTHENTICATION_FAILED (RFC 9867)`,
			wantB: `connection b requires a post-quantum preshared key, but peer 192.0.2.1:500 offered "site" and our PPK of that id is a different key (the PPK Confirmation does not match) (RFC 9867)`},
		{name: "mismatch, initiator requires", a: side{"site", "key-one", true}, b: side{"site", "key-two", false},
			wantA: `peer 192.0.2.2:500 does not accept our post-quantum preshared key "site"`},
		{name: "mismatch, neither requires", a: side{"site", "key-one", false}, b: side{"site", "key-two", false}, wantUp: true,
			wantNotice: "our PPK of that id is a different key (the PPK Confirmation does not match): continuing without it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, l := pqPair(t, "aes256gcm16-prfsha256-x25519", "aes256gcm16-prfsha256-x25519", "aes256gcm16", "aes256gcm16", nil)
			ppkConf(p.ca, tc.a.id, tc.a.key, tc.a.required, false)
			ppkConf(p.cb, tc.b.id, tc.b.key, tc.b.required, false)
			if tc.wantUp {
				p.up(t)
				if ikePPK(t, p.a) || ikePPK(t, p.b) {
					t.Fatal("a mismatching PPK is in use")
				}
				if n := l.count(wire.ExchangeIKEIntermediate, true); n != 1 {
					t.Fatalf("%d IKE_INTERMEDIATE exchanges, want 1", n)
				}
				found := false
				for _, f := range p.b.Failures(true) {
					found = found || strings.Contains(f, tc.wantNotice)
				}
				if !found {
					t.Fatalf("B did not say why it goes on without the PPK: %v", p.b.Failures(true))
				}
				p.traffic(time.Second)
				noLoss(t, p)
				return
			}
			p.initiate(t)
			p.run(time.Second)
			if len(p.a.IKEUp()) != 0 || len(p.b.IKEUp()) != 0 {
				t.Fatal("the IKE SA came up")
			}
			for _, c := range []struct {
				h    *enginetest.Host
				want string
			}{{p.a, tc.wantA}, {p.b, tc.wantB}} {
				if c.want == "" {
					continue
				}
				fs := c.h.Failures(false)
				if len(fs) == 0 || !strings.Contains(fs[0], c.want) || strings.Contains(fs[0], "\n") {
					t.Errorf("%s failed with %q, want one line with %q", c.h.Name, fs, c.want)
				}
			}
		})
	}
}
