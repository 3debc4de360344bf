package ppp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/goipsec/goipsec/pool"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type link struct {
	server, client *Session
	sEvents        []Event
	cEvents        []Event
	drop           func(toServer bool, frame []byte) bool
	frames         int
}

// run moves frames between both sessions until neither has anything to say.
func (l *link) run(t *testing.T, now time.Time) {
	t.Helper()
	for range 200 {
		so, co := l.server.Take(), l.client.Take()
		if len(so) == 0 && len(co) == 0 {
			return
		}
		for _, o := range so {
			if o.Event != nil {
				l.sEvents = append(l.sEvents, o.Event)
			} else if l.drop == nil || !l.drop(false, o.Frame) {
				l.frames++
				l.client.Input(o.Frame, now)
			}
		}
		for _, o := range co {
			if o.Event != nil {
				l.cEvents = append(l.cEvents, o.Event)
			} else if l.drop == nil || !l.drop(true, o.Frame) {
				l.frames++
				l.server.Input(o.Frame, now)
			}
		}
	}
	t.Fatal("the sessions did not settle")
}

func newLink(t *testing.T, auth Auth, password string) (*link, *pool.Pool) {
	p, err := pool.FromPrefix("l2tp", netip.MustParsePrefix("10.3.0.0/24"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dns := []netip.Addr{netip.MustParseAddr("10.3.0.53"), netip.MustParseAddr("10.3.0.54")}
	users := SecretsVerifier{Password: func(u string) (string, bool) { return "s3cret", u == "alice" }}
	server := NewSession(Config{Server: true, Auths: []Auth{auth}, Verifier: users, LocalIP: netip.MustParseAddr("10.3.0.254"), Pool: p, DNS: dns})
	client := NewSession(Config{User: "alice", Password: password})
	server.Start(t0)
	client.Start(t0)
	return &link{server: server, client: client}, p
}

func TestSessionEachAuth(t *testing.T) {
	for _, a := range []Auth{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		t.Run(a.String(), func(t *testing.T) {
			l, p := newLink(t, a, "s3cret")
			l.run(t, t0)
			if !l.server.Up() || !l.client.Up() {
				t.Fatalf("not up: server events %v, client events %v", l.sEvents, l.cEvents)
			}
			su, cu := l.sEvents[0].(Up), l.cEvents[0].(Up)
			if su.User != "alice" || su.Peer.String() != "10.3.0.1" || cu.Peer.String() != "10.3.0.254" || cu.Local != su.Peer || su.Auth != a {
				t.Fatalf("server %+v client %+v", su, cu)
			}
			if len(cu.DNS) != 2 || cu.DNS[0].String() != "10.3.0.53" || cu.DNS[1].String() != "10.3.0.54" {
				t.Fatalf("client DNS %v", cu.DNS)
			}
			// IPv4 both ways.
			ip := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 64, 17, 0, 0, 10, 3, 0, 1, 10, 3, 0, 254}
			l.server.Input(l.client.Frame(ip), t0)
			if out := l.server.Take(); len(out) != 1 || !bytes.Equal(out[0].Event.(IPPacket).B, ip) {
				t.Fatalf("server received %v", out)
			}
			// The client hangs up: the server's lease goes back to the pool.
			l.client.Close("bye")
			l.run(t, t0)
			if !l.server.Dead() || len(p.Leases()) != 0 {
				t.Fatalf("after terminate: server dead %v, leases %v", l.server.Dead(), p.Leases())
			}
		})
	}
}

func TestSessionWrongPassword(t *testing.T) {
	for _, a := range []Auth{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		l, p := newLink(t, a, "wrong")
		l.run(t, t0)
		if l.server.Up() || l.client.Up() || len(p.Leases()) != 0 {
			t.Fatalf("%s: up with a wrong password", a)
		}
		l.server.Tick(t0.Add(10 * time.Second))
		l.client.Tick(t0.Add(10 * time.Second))
		l.run(t, t0.Add(10*time.Second))
		if !l.server.Dead() {
			t.Fatalf("%s: server session alive after a failed authentication: %v", a, l.sEvents)
		}
	}
}

// TestSessionAuthFallback: a client that naks MS-CHAPv2 gets the next configured protocol.
func TestSessionAuthFallback(t *testing.T) {
	l, _ := newLink(t, AuthMSCHAPv2, "s3cret")
	l.server.cfg.Auths = []Auth{AuthMSCHAPv2, AuthPAP}
	// The client only speaks PAP: it naks every other Authentication-Protocol.
	l.client.cfg.Auths = nil
	l.drop = func(toServer bool, f []byte) bool {
		if !toServer {
			proto, info, _ := DecodeFrame(f)
			if proto == ProtoLCP {
				p, _ := DecodePacket(info)
				opts, _ := DecodeOptions(p.Data)
				for _, o := range opts {
					if p.Code == CodeConfigureRequest && o.Type == LCPAuth && authFromOption(o.Data) != AuthPAP {
						nak := Packet{Code: CodeConfigureNak, ID: p.ID, Data: AppendOptions(nil, []Option{{Type: LCPAuth, Data: AuthPAP.lcpOption()}})}
						l.server.Input(AppendFrame(nil, ProtoLCP, nak.Append(nil)), t0)
						return true
					}
				}
			}
		}
		return false
	}
	l.run(t, t0)
	if !l.server.Up() || l.sEvents[0].(Up).Auth != AuthPAP {
		t.Fatalf("events %v", l.sEvents)
	}
}

func TestSessionRetransmitAndEcho(t *testing.T) {
	l, _ := newLink(t, AuthCHAPMD5, "s3cret")
	lost := 0
	l.drop = func(bool, []byte) bool {
		lost++
		return lost <= 3 // the first three frames are lost
	}
	l.run(t, t0)
	now := t0
	for i := 0; i < 10 && !(l.server.Up() && l.client.Up()); i++ {
		now = now.Add(restartTimer)
		l.server.Tick(now)
		l.client.Tick(now)
		l.run(t, now)
	}
	if !l.server.Up() || !l.client.Up() {
		t.Fatal("no recovery from lost frames")
	}
	// Echo requests are answered; a silent peer is declared dead.
	now = now.Add(21 * time.Second)
	l.server.Tick(now)
	l.run(t, now)
	if l.server.Dead() {
		t.Fatal("an answered echo killed the link")
	}
	l.drop = func(bool, []byte) bool { return true }
	for range 5 {
		now = now.Add(21 * time.Second)
		l.server.Tick(now)
		l.run(t, now)
	}
	if !l.server.Dead() {
		t.Fatal("a silent peer was not declared dead")
	}
}

func TestProtocolReject(t *testing.T) {
	l, _ := newLink(t, AuthPAP, "s3cret")
	l.run(t, t0)
	l.server.Input(AppendFrame(nil, ProtoIPv6CP, Packet{Code: 1, ID: 1}.Append(nil)), t0)
	out := l.server.Take()
	if len(out) != 1 {
		t.Fatalf("%d outputs", len(out))
	}
	proto, info, _ := DecodeFrame(out[0].Frame)
	p, _ := DecodePacket(info)
	if proto != ProtoLCP || p.Code != CodeProtocolReject || !bytes.HasPrefix(p.Data, []byte{0x80, 0x57}) {
		t.Fatalf("answer %x", out[0].Frame)
	}
}

func TestDecodeFrame(t *testing.T) {
	for _, tc := range []struct {
		in    []byte
		proto uint16
		ok    bool
	}{
		{[]byte{0xff, 0x03, 0xc0, 0x21, 1}, ProtoLCP, true},
		{[]byte{0xc0, 0x21, 1}, ProtoLCP, true},
		{[]byte{0x21, 0x45}, ProtoIPv4, true},
		{[]byte{0xff, 0x03}, 0, false},
		{[]byte{0x00, 0x20}, 0, false},
		{[]byte{0xc0}, 0, false},
	} {
		p, _, err := DecodeFrame(tc.in)
		if (err == nil) != tc.ok || p != tc.proto {
			t.Errorf("%x: %04x %v", tc.in, p, err)
		}
	}
	if _, err := DecodePacket([]byte{1, 1, 0, 9, 0}); err == nil {
		t.Error("packet longer than its bytes accepted")
	}
	if _, err := DecodeOptions([]byte{1, 4, 0}); err == nil {
		t.Error("cut option accepted")
	}
}

// FuzzSession: a server session never panics on any frame, in any phase.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 14, 1, 4, 5, 0xdc, 5, 6, 1, 2, 3, 4})
	f.Add([]byte{0xc0, 0x23, 1, 1, 0, 12, 5, 'a', 'l', 'i', 'c', 'e', 0})
	f.Add([]byte{0xc2, 0x23, 2, 1, 0, 6, 1, 0})
	f.Add([]byte{0x80, 0x21, 1, 1, 0, 10, 3, 6, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _ := pool.FromPrefix("f", netip.MustParsePrefix("10.9.0.0/24"), nil)
		s := NewSession(Config{Server: true, Auths: []Auth{AuthPAP}, Pool: p, LocalIP: netip.MustParseAddr("10.9.0.254"),
			Verifier: SecretsVerifier{Password: func(string) (string, bool) { return "x", true }}})
		s.Start(t0)
		s.phase = phase(len(b) % int(phaseDead+1))
		s.Input(b, t0)
		s.Tick(t0.Add(time.Minute))
		for _, o := range s.Take() {
			if o.Frame != nil {
				if _, _, err := DecodeFrame(o.Frame); err != nil {
					t.Fatalf("sent an undecodable frame %x", o.Frame)
				}
			}
		}
	})
}

// TestSessionDeferredVerdict: with Config.Deferred the server reports the credentials in a
// Verify event, waits (the client's retransmissions change nothing, no new challenge), and
// comes up or fails on the owner's Verdict; a stale token is ignored; a verdict that never
// comes closes the session after verifyWait.
func TestSessionDeferredVerdict(t *testing.T) {
	users := SecretsVerifier{Password: func(u string) (string, bool) { return "s3cret", u == "alice" }}
	for _, a := range []Auth{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		for _, good := range []bool{true, false} {
			l, p := newLink(t, a, map[bool]string{true: "s3cret", false: "wrong"}[good])
			l.server.cfg.Deferred = true
			l.run(t, t0)
			var v *Verify
			for _, e := range l.sEvents {
				if x, ok := e.(Verify); ok {
					v = &x
				}
			}
			if v == nil || v.Credentials.Auth != a || v.Credentials.User != "alice" || l.server.Up() {
				t.Fatalf("%s: no Verify event or up without a verdict: %v", a, l.sEvents)
			}
			// Time passes while the owner asks RADIUS: the client retransmits, the server waits.
			l.client.Tick(t0.Add(5 * time.Second))
			l.server.Tick(t0.Add(5 * time.Second))
			l.run(t, t0.Add(5*time.Second))
			if l.server.Dead() || l.server.Up() {
				t.Fatalf("%s: server gave up or came up while waiting", a)
			}
			// The owner checks the credentials where it may block (here: the secrets).
			verdict := check(users, v.Credentials)
			if l.server.Verdict(v.Token+1, verdict) {
				t.Fatal("a verdict with another token was taken")
			}
			if !l.server.Verdict(v.Token, verdict) {
				t.Fatal("verdict refused")
			}
			l.run(t, t0.Add(5*time.Second))
			if good != (l.server.Up() && l.client.Up()) {
				t.Fatalf("%s good=%v: server up %v client up %v; events %v / %v", a, good, l.server.Up(), l.client.Up(), l.sEvents, l.cEvents)
			}
			if good && len(p.Leases()) != 1 {
				t.Fatalf("%s: leases %v", a, p.Leases())
			}
			if l.server.Verdict(v.Token, verdict) {
				t.Fatal("a second verdict was taken")
			}
		}
	}
	// Nobody answers: the session ends after verifyWait.
	l, _ := newLink(t, AuthMSCHAPv2, "s3cret")
	l.server.cfg.Deferred = true
	l.run(t, t0)
	l.server.Tick(t0.Add(verifyWait + time.Second))
	l.run(t, t0.Add(verifyWait+time.Second))
	if l.server.Up() || l.server.phase != phaseTerminate && !l.server.Dead() {
		t.Fatalf("session still waiting after %v: %v", verifyWait, l.sEvents)
	}
}
