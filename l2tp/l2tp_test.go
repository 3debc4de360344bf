package l2tp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/goipsec/goipsec/pool"
	"github.com/goipsec/goipsec/ppp"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lacAdr = netip.MustParseAddrPort("192.0.2.1:1701")
	lnsAdr = netip.MustParseAddrPort("192.0.2.2:1701")
)

type pair struct {
	lns      *Server
	lac      *Tunnel
	lnsEv    []Event
	lacEv    []Event
	drop     func(toLNS bool, b []byte) bool
	messages int
}

func newPair(t *testing.T, password string) (*pair, *pool.Pool) {
	t.Helper()
	p, _ := pool.FromPrefix("l2tp", netip.MustParsePrefix("10.3.0.0/24"), nil)
	users := ppp.SecretsVerifier{Password: func(u string) (string, bool) { return "pw", u == "bob" }}
	lns := NewServer(Config{PPP: func(netip.AddrPort) ppp.Config {
		return ppp.Config{Server: true, Verifier: users, Pool: p, LocalIP: netip.MustParseAddr("10.3.0.254"),
			DNS: []netip.Addr{netip.MustParseAddr("10.3.0.53")}}
	}})
	lac := Dial(Config{PPP: func(netip.AddrPort) ppp.Config { return ppp.Config{User: "bob", Password: password} }}, lnsAdr, t0)
	return &pair{lns: lns, lac: lac}, p
}

func (p *pair) run(t *testing.T, now time.Time) {
	t.Helper()
	for range 500 {
		a, b := p.lac.Take(), p.lns.Take()
		if len(a) == 0 && len(b) == 0 {
			return
		}
		for _, o := range a {
			if o.Event != nil {
				p.lacEv = append(p.lacEv, o.Event)
				continue
			}
			if o.To != lnsAdr {
				t.Fatalf("LAC sent to %s", o.To)
			}
			if p.drop == nil || !p.drop(true, o.B) {
				p.messages++
				if err := p.lns.Input(o.B, lacAdr, now); err != nil {
					t.Fatalf("LNS refused %x: %v", o.B, err)
				}
			}
		}
		for _, o := range b {
			if o.Event != nil {
				p.lnsEv = append(p.lnsEv, o.Event)
				continue
			}
			if p.drop == nil || !p.drop(false, o.B) {
				p.messages++
				h, payload, err := DecodeHeader(o.B)
				if err != nil {
					t.Fatalf("LNS sent %x: %v", o.B, err)
				}
				if h.Tunnel != p.lac.LocalID {
					t.Fatalf("LNS addressed tunnel %d, LAC is %d", h.Tunnel, p.lac.LocalID)
				}
				p.lac.Input(h, payload, now)
			}
		}
	}
	t.Fatal("the ends did not settle")
}

func up(evs []Event) *SessionUp {
	for _, e := range evs {
		if u, ok := e.(SessionUp); ok {
			return &u
		}
	}
	return nil
}

func TestDialAndCarryIP(t *testing.T) {
	p, pl := newPair(t, "pw")
	p.run(t, t0)
	su, cu := up(p.lnsEv), up(p.lacEv)
	if su == nil || cu == nil {
		t.Fatalf("no session up: LNS %v LAC %v", p.lnsEv, p.lacEv)
	}
	if su.PPP.User != "bob" || su.PPP.Peer.String() != "10.3.0.1" || cu.PPP.Local != su.PPP.Peer {
		t.Fatalf("LNS %+v LAC %+v", su.PPP, cu.PPP)
	}
	ip := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 3, 0, 254, 10, 3, 0, 1}
	b, to := p.lns.Send(su.Tunnel, su.Session, ip)
	if to != lacAdr || b == nil {
		t.Fatalf("LNS send to %s", to)
	}
	h, payload, _ := DecodeHeader(b)
	p.lac.Input(h, payload, t0)
	got := false
	for _, o := range p.lac.Take() {
		if e, ok := o.Event.(SessionPacket); ok && bytes.Equal(e.B, ip) {
			got = true
		}
	}
	if !got {
		t.Fatal("the LAC did not receive the packet")
	}
	// The LAC hangs up: CDN, the lease goes back.
	p.lac.CloseSession(cu.Session, "user hung up")
	p.run(t, t0)
	var down *SessionDown
	for _, e := range p.lnsEv {
		if d, ok := e.(SessionDown); ok {
			down = &d
		}
	}
	if down == nil || down.PeerIP.String() != "10.3.0.1" || len(pl.Leases()) != 0 {
		t.Fatalf("LNS events %v, leases %v", p.lnsEv, pl.Leases())
	}
	p.lac.Close("done")
	p.run(t, t0)
	if len(p.lns.Tunnels()) != 0 {
		t.Fatal("the LNS kept the tunnel after StopCCN")
	}
}

func TestWrongPasswordEndsSession(t *testing.T) {
	p, pl := newPair(t, "nope")
	p.run(t, t0)
	if up(p.lnsEv) != nil || len(pl.Leases()) != 0 {
		t.Fatal("a wrong password came up")
	}
	now := t0
	for range 5 {
		now = now.Add(3 * time.Second)
		p.lns.Tick(now)
		p.lac.Tick(now)
		p.run(t, now)
	}
	for _, tn := range p.lns.Tunnels() {
		if len(tn.Sessions()) != 0 {
			t.Fatalf("LNS kept the session: %v", p.lnsEv)
		}
	}
}

// TestLossAndRetransmission: control messages lost on the way are retransmitted; duplicates are
// acknowledged and not processed twice.
func TestLossAndRetransmission(t *testing.T) {
	p, _ := newPair(t, "pw")
	n := 0
	p.drop = func(toLNS bool, b []byte) bool {
		h, _, _ := DecodeHeader(b)
		if !h.Control {
			return false
		}
		n++
		return n%3 == 0 // every third control message is lost
	}
	now := t0
	p.run(t, now)
	for i := 0; i < 30 && (up(p.lnsEv) == nil || up(p.lacEv) == nil); i++ {
		now = now.Add(time.Second)
		p.lac.Tick(now)
		p.lns.Tick(now)
		p.run(t, now)
	}
	if up(p.lnsEv) == nil || up(p.lacEv) == nil {
		t.Fatalf("not up through loss: %v / %v", p.lnsEv, p.lacEv)
	}
	// A peer that vanishes: the tunnel is given up after the retransmissions.
	p.drop = func(bool, []byte) bool { return true }
	p.lns.Tunnels()[0].CloseSession(up(p.lnsEv).Session, "admin")
	for range 60 {
		now = now.Add(2 * time.Second)
		p.lns.Tick(now)
		p.run(t, now)
	}
	if len(p.lns.Tunnels()) != 0 {
		t.Fatal("tunnel to a vanished peer kept")
	}
}

func TestDecodeHeader(t *testing.T) {
	good := AppendControl(nil, Header{Control: true, Tunnel: 7, Session: 9, Ns: 1, Nr: 2}, []AVP{msgAVP(MsgHello)})
	h, payload, err := DecodeHeader(good)
	if err != nil || h.Tunnel != 7 || h.Session != 9 || h.Ns != 1 || h.Nr != 2 || !h.Control {
		t.Fatalf("%+v %v", h, err)
	}
	m, err := ParseMessage(payload)
	if err != nil || m.Type != MsgHello {
		t.Fatalf("%+v %v", m, err)
	}
	bad := [][]byte{
		good[:5],
		append([]byte{0xc8, 0x03}, good[2:]...), // version 3
		append([]byte{0x88, 0x02}, good[2:]...), // control without L
		func() []byte { b := bytes.Clone(good); b[3] = 0xff; return b }(),
		AppendData(nil, 1, 2, nil)[:5],
		{0x02, 0x02, 0, 1, 0, 1, 0xff, 0xff}, // offset beyond the end
	}
	for _, b := range bad {
		if _, _, err := DecodeHeader(b); err == nil {
			t.Errorf("%x accepted", b)
		}
	}
	if _, err := DecodeAVPs([]byte{0x80, 0x07, 0, 0, 0, 0}); err == nil {
		t.Error("AVP longer than its bytes accepted")
	}
	// A data message with an offset.
	d := []byte{0x02, 0x02, 0, 5, 0, 6, 0, 2, 0xaa, 0xbb, 0xff, 0x03}
	h, payload, err = DecodeHeader(d)
	if err != nil || h.Control || h.Session != 6 || !bytes.Equal(payload, []byte{0xff, 0x03}) {
		t.Fatalf("offset data message: %+v %x %v", h, payload, err)
	}
}

// FuzzServerInput: the LNS never panics, whatever arrives, and answers only with datagrams that
// decode.
func FuzzServerInput(f *testing.F) {
	f.Add(AppendControl(nil, Header{Control: true}, []AVP{msgAVP(MsgSCCRQ), u16AVP(AVPTunnelID, 5), u16AVP(AVPWindow, 4)}))
	f.Add(AppendData(nil, 1, 1, []byte{0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := NewServer(Config{PPP: func(netip.AddrPort) ppp.Config { return ppp.Config{Server: true} }})
		sccrq := AppendControl(nil, Header{Control: true}, []AVP{msgAVP(MsgSCCRQ), u16AVP(AVPTunnelID, 5)})
		s.Input(sccrq, lacAdr, t0)
		var tid uint16
		for _, tn := range s.Tunnels() {
			tid = tn.LocalID
		}
		if len(b) >= 6 && b[1]&0x0f == 2 {
			b[len(b)/2%len(b)] ^= 0 // keep b as is; also try it addressed to the live tunnel
			c := bytes.Clone(b)
			off := 2
			if c[0]&0x40 != 0 {
				off = 4
			}
			if len(c) >= off+2 {
				c[off], c[off+1] = byte(tid>>8), byte(tid)
				s.Input(c, lacAdr, t0)
			}
		}
		s.Input(b, lacAdr, t0)
		s.Tick(t0.Add(time.Minute))
		for _, o := range s.Take() {
			if o.B != nil {
				if _, _, err := DecodeHeader(o.B); err != nil {
					t.Fatalf("sent an undecodable datagram %x", o.B)
				}
			}
		}
	})
}

// TestRetransmitNow: a LAC whose first SCCRQ was held back by a trap policy resends it at once
// when the SA comes up, without counting a retransmission.
func TestRetransmitNow(t *testing.T) {
	lac := Dial(Config{}, lnsAdr, t0)
	first := lac.Take()
	if len(first) != 1 {
		t.Fatalf("%d outputs after Dial", len(first))
	}
	lac.RetransmitNow(t0.Add(100 * time.Millisecond))
	again := lac.Take()
	if len(again) != 1 || !bytes.Equal(again[0].B, first[0].B) || lac.unacked[0].tries != 0 ||
		!lac.NextDeadline().Equal(t0.Add(1100*time.Millisecond)) {
		t.Fatalf("resent %d, tries %d, next %v", len(again), lac.unacked[0].tries, lac.NextDeadline())
	}
}

// TestServerDeferredVerdict: an LNS whose PPP defers the credentials' check reports
// SessionVerify with the tunnel and session, stays quiet until Verdict, then the session comes
// up; a verdict for a session that does not exist changes nothing.
func TestServerDeferredVerdict(t *testing.T) {
	p, _ := newPair(t, "pw")
	users := ppp.SecretsVerifier{Password: func(u string) (string, bool) { return "pw", u == "bob" }}
	inner := p.lns.cfg.PPP
	p.lns.cfg.PPP = func(peer netip.AddrPort) ppp.Config {
		c := inner(peer)
		c.Verifier, c.Deferred = nil, true // only the owner knows the users
		return c
	}
	p.run(t, t0)
	var sv *SessionVerify
	for _, e := range p.lnsEv {
		switch x := e.(type) {
		case SessionVerify:
			sv = &x
		case SessionUp:
			t.Fatal("up before the verdict")
		}
	}
	if sv == nil || sv.Verify.Credentials.User != "bob" || sv.Peer != lacAdr {
		t.Fatalf("no SessionVerify: %v", p.lnsEv)
	}
	if p.lns.Verdict(sv.Tunnel, sv.Session+1, sv.Verify.Token, ppp.Verdict{OK: true}) {
		t.Fatal("verdict for an unknown session taken")
	}
	ar, ok := users.VerifyMSCHAPv2(sv.Verify.Credentials.User, sv.Verify.Credentials.Challenge, sv.Verify.Credentials.PeerChallenge, sv.Verify.Credentials.Response)
	if !p.lns.Verdict(sv.Tunnel, sv.Session, sv.Verify.Token, ppp.Verdict{OK: ok, AuthenticatorResponse: ar}) {
		t.Fatal("verdict refused")
	}
	p.run(t, t0)
	up := false
	for _, e := range p.lnsEv {
		if u, ok := e.(SessionUp); ok && u.PPP.User == "bob" {
			up = true
		}
	}
	if !up {
		t.Fatalf("no session up after the verdict: %v", p.lnsEv)
	}
}
