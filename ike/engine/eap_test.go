package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/eap"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
)

// eapSetup makes A authenticate with EAP (method cm on its side, sm on B's) towards B, which
// authenticates with its PSK (or, eapOnly, only through EAP).
func eapSetup(t *testing.T, p *pair, cm, sm []eap.Type, password string, second, eapOnly bool) {
	p.ca.LocalEAP = &ike.EAPClientSpec{Second: second, EAPOnly: eapOnly, New: func() *eap.Client {
		return eap.NewClient(eap.ClientConfig{Identity: "carol", Methods: cm, Password: func() ([]byte, bool) { return []byte(password), true }})
	}}
	p.cb.RemoteEAP = &ike.EAPServerSpec{Second: second, EAPOnly: eapOnly, New: func(ike.EAPPeer) (ike.EAPServer, error) {
		return eap.NewServer(eap.ServerConfig{Methods: sm, AskIdentity: true, Password: func(u string) ([]byte, bool) {
			return []byte("carol-pw"), u == "carol"
		}})
	}}
}

func TestEAP(t *testing.T) {
	ms, md5 := []eap.Type{eap.TypeMSCHAPv2}, []eap.Type{eap.TypeMD5}
	for _, tc := range []struct {
		name            string
		cm, sm          []eap.Type
		password        string
		second, eapOnly bool
		wantFail        string // A's failure
	}{
		{"mschapv2", ms, ms, "carol-pw", false, false, ""},
		{"md5", md5, md5, "carol-pw", false, false, ""},
		{"dynamic", ms, []eap.Type{eap.TypeMD5, eap.TypeMSCHAPv2}, "carol-pw", false, false, ""},
		{"psk then mschapv2 (RFC 4739)", ms, ms, "carol-pw", true, false, ""},
		{"eap-only mschapv2 (RFC 5998)", ms, ms, "carol-pw", false, true, ""},
		{"eap-only md5 refused", md5, md5, "carol-pw", false, true, "AUTHENTICATION_FAILED"},
		{"wrong password", ms, ms, "nope", false, false, "refused our EAP authentication"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, nil)
			eapSetup(t, p, tc.cm, tc.sm, tc.password, tc.second, tc.eapOnly)
			p.initiate(t)
			p.run(2 * time.Second)
			if tc.wantFail != "" {
				if len(p.a.IKEUp()) != 0 || len(p.b.IKEUp()) != 0 {
					t.Fatal("IKE SA came up")
				}
				if f := strings.Join(p.a.Failures(false), "\n"); !strings.Contains(f, tc.wantFail) {
					t.Fatalf("A's failures %q, want %q (B: %q)", f, tc.wantFail, p.b.Failures(false))
				}
				return
			}
			if len(p.a.IKEUp()) != 1 || len(p.b.IKEUp()) != 1 || len(p.a.Children()) != 1 || len(p.b.Children()) != 1 {
				t.Fatalf("not up: A %v, B %v", p.a.Failures(false), p.b.Failures(false))
			}
			checkPaired(t, p)
			if id := p.b.IKEUp()[0].IKE.EAPID; id != "carol" {
				t.Fatalf("gateway's EAP identity %q", id)
			}
			p.traffic(time.Second)
			_, _, noA, _ := p.a.Plane.Counters()
			if noA != 0 {
				t.Fatalf("%d packets met a missing SA", noA)
			}
		})
	}
}

// The failure names the side that wants EAP, in both directions of the mismatch.
func TestEAPMismatchNamed(t *testing.T) {
	p := newPair(t, nil)
	eapSetup(t, p, nil, []eap.Type{eap.TypeMSCHAPv2}, "carol-pw", false, false)
	p.cb.RemoteEAP = nil // B expects a PSK
	p.initiate(t)
	p.run(2 * time.Second)
	if f := strings.Join(p.b.Failures(false), "\n"); !strings.Contains(f, "wants EAP authentication (IKE_AUTH without AUTH), but connection b expects a PSK") {
		t.Fatalf("gateway's failure %q", f)
	}
	q := newPair(t, nil)
	eapSetup(t, q, nil, []eap.Type{eap.TypeMSCHAPv2}, "carol-pw", false, false)
	q.ca.LocalEAP = nil // A authenticates with a PSK, B wants EAP
	q.initiate(t)
	q.run(2 * time.Second)
	if f := strings.Join(q.b.Failures(false), "\n"); !strings.Contains(f, "authenticated with a PSK, but connection b wants EAP from it") {
		t.Fatalf("gateway's failure %q", f)
	}
}

// blockingServer wraps an EAP server as a RADIUS relay would be: every step "blocks" (runs off the
// SA through ike.Async) and counts how often it ran.
type blockingServer struct {
	inner ike.EAPServer
	steps *int
}

func (b blockingServer) Start() ([]byte, error) {
	*b.steps++
	return b.inner.Start()
}

func (b blockingServer) Process(p []byte) ([]byte, *eap.Result, error) {
	*b.steps++
	return b.inner.Process(p)
}

// With a blocking EAP server (RADIUS) the responder holds each IKE_AUTH request while the step
// runs outside the SA; retransmissions meanwhile are dropped (awaiting_aaa), not answered with a
// stale response, and the exchange goes on once the step is done.
func TestEAPBlockingServer(t *testing.T) {
	p := newPair(t, &pairOptions{b: enginetest.HostOptions{Modify: func(c *engine.Config) { c.HoldAsync = true }}})
	ms := []eap.Type{eap.TypeMSCHAPv2}
	eapSetup(t, p, ms, ms, "carol-pw", false, false)
	steps := 0
	inner := p.cb.RemoteEAP.New
	p.cb.RemoteEAP.Blocking = true
	p.cb.RemoteEAP.New = func(peer ike.EAPPeer) (ike.EAPServer, error) {
		srv, err := inner(peer)
		return blockingServer{inner: srv, steps: &steps}, err
	}
	p.initiate(t)
	rounds := 0
	for range 10 {
		// The step takes longer than the initiator's retransmission timeout.
		p.run(1500 * time.Millisecond)
		if p.b.Engine.RunHeldAsync() > 0 {
			rounds++
		}
		if len(p.b.IKEUp()) == 1 {
			break
		}
	}
	p.run(time.Second)
	if len(p.a.IKEUp()) != 1 || len(p.b.IKEUp()) != 1 || len(p.b.Children()) != 1 {
		t.Fatalf("not up: A %v, B %v", p.a.Failures(false), p.b.Failures(false))
	}
	// Start, then the identity, the challenge response and the success response.
	if steps != 4 || rounds != 4 {
		t.Fatalf("%d blocking steps in %d rounds, want 4", steps, rounds)
	}
	if held := p.b.Engine.Stats().Drops[engine.DropHeld]; held == 0 {
		t.Fatal("no retransmission was dropped while a step was pending")
	}
	checkPaired(t, p)
}
