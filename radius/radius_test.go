package radius

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"
	"layeh.com/radius/vendors/microsoft"

	"github.com/goipsec/goipsec/ike/eap"
)

var secret = []byte("testing123")

// fakeServer is a RADIUS server running our own EAP server per State, answering with
// Message-Authenticator, the MSK in MS-MPPE keys, Framed-IP-Address and Class; it records
// accounting requests.
type fakeServer struct {
	mu       sync.Mutex
	sessions map[string]*eap.Server
	acct     []*radius.Packet
	badMA    int
}

func (f *fakeServer) serve(t *testing.T) netip.AddrPort {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &radius.PacketServer{Handler: radius.HandlerFunc(f.handle), SecretSource: radius.StaticSecretSource(secret)}
	go srv.Serve(conn)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return netip.MustParseAddrPort(conn.LocalAddr().String())
}

func messageAuth(p *radius.Packet, auth [16]byte) []byte {
	cp := *p
	cp.Attributes = append(radius.Attributes(nil), p.Attributes...)
	cp.Authenticator = auth
	cp.Set(rfc2869.MessageAuthenticator_Type, make([]byte, 16))
	b, _ := cp.MarshalBinary()
	m := hmac.New(md5.New, secret)
	m.Write(b)
	return m.Sum(nil)
}

func (f *fakeServer) handle(w radius.ResponseWriter, r *radius.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Code == radius.CodeAccountingRequest {
		f.acct = append(f.acct, r.Packet)
		w.Write(r.Response(radius.CodeAccountingResponse))
		return
	}
	if ma := rfc2869.MessageAuthenticator_Get(r.Packet); !bytes.Equal(ma, messageAuth(r.Packet, r.Authenticator)) {
		f.badMA++
		return
	}
	state := string(rfc2865.State_Get(r.Packet))
	msg := rfc2869.EAPMessage_Get(r.Packet)
	var out []byte
	var res *eap.Result
	if state == "" {
		s, _ := eap.NewServer(eap.ServerConfig{Methods: []eap.Type{eap.TypeMSCHAPv2}, AskIdentity: true,
			Password: func(u string) ([]byte, bool) { return []byte("pw"), u == "carol" }})
		s.Start()
		state = "s1"
		f.sessions[state] = s
		// Answer the identity response the relay opened with: the identifier must match.
		p, _ := eap.Parse(msg)
		out, res, _ = s.Process(append([]byte{2, s.LastID()}, msg[2:]...))
		_ = p
	} else {
		out, res, _ = f.sessions[state].Process(msg)
	}
	code := radius.CodeAccessChallenge
	if res != nil {
		code = radius.CodeAccessReject
		if res.Success {
			code = radius.CodeAccessAccept
		}
	}
	resp := r.Response(code)
	rfc2869.EAPMessage_Set(resp, out)
	rfc2865.State_Set(resp, []byte(state))
	if code == radius.CodeAccessAccept {
		microsoft.MSMPPERecvKey_Add(resp, res.MSK[:16])
		microsoft.MSMPPESendKey_Add(resp, res.MSK[16:])
		rfc2865.FramedIPAddress_Set(resp, net.ParseIP("10.3.0.77"))
		rfc2865.Class_Add(resp, []byte("gold"))
	}
	resp.Add(rfc2869.MessageAuthenticator_Type, make([]byte, 16))
	resp.Set(rfc2869.MessageAuthenticator_Type, messageAuth(resp, r.Authenticator))
	w.Write(resp)
}

// The relay runs MS-CHAPv2 through a RADIUS server; the first configured server is dead and
// the client fails over; the MSK, address and Class come back; accounting carries the Class and
// the counters.
func TestRelayFailoverAccounting(t *testing.T) {
	f := &fakeServer{sessions: map[string]*eap.Server{}}
	good := f.serve(t)
	// A server that never answers: a bound socket nobody reads.
	dead, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer dead.Close()
	deadAP := netip.MustParseAddrPort(dead.LocalAddr().String())
	c, err := New(Config{Servers: []Server{
		{Name: "dead", Addr: deadAP.Addr(), AuthPort: deadAP.Port(), AcctPort: deadAP.Port(), Secret: secret, Preference: 10},
		{Name: "good", Addr: good.Addr(), AuthPort: good.Port(), AcctPort: good.Port(), Secret: secret},
	}, Timeout: 300 * time.Millisecond, Retry: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sess := Session{ID: "00000001", User: "carol", Local: netip.MustParseAddrPort("192.0.2.1:4500"), Remote: netip.MustParseAddrPort("192.0.2.2:4500"), NASPort: 1}
	relay := c.NewEAPRelay(sess)
	client := eap.NewClient(eap.ClientConfig{Identity: "carol", Password: func() ([]byte, bool) { return []byte("pw"), true }})
	req, err := relay.Start()
	if err != nil {
		t.Fatal(err)
	}
	var res *eap.Result
	for range 10 {
		resp, err := client.Process(req)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		out, res, err = relay.Process(resp)
		if err != nil {
			t.Fatal(err)
		}
		if res != nil {
			client.Process(out)
			break
		}
		req = out
	}
	if res == nil || !res.Success || !bytes.Equal(res.MSK, client.Result().MSK) || len(res.FramedIPs) != 1 || res.FramedIPs[0] != netip.MustParseAddr("10.3.0.77") ||
		len(res.Class) != 1 || string(res.Class[0]) != "gold" {
		t.Fatalf("result %+v (client MSK %x)", res, client.Result().MSK)
	}
	if st := c.Stats(); st.Failovers != 1 {
		t.Fatalf("stats %+v, want one failover", st)
	}
	f.mu.Lock()
	bad := f.badMA
	f.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d requests with a wrong Message-Authenticator", bad)
	}
	start := time.Now().Add(-5 * time.Second)
	for _, st := range []rfc2866.AcctStatusType{rfc2866.AcctStatusType_Value_Start, rfc2866.AcctStatusType_Value_Stop} {
		if err := c.Account(Record{Status: st, Session: sess, Start: start, VIPs: res.FramedIPs, Class: res.Class,
			Usage: Usage{InOctets: 5<<32 + 7, OutOctets: 9, InPackets: 2, OutPackets: 3}, Cause: rfc2866.AcctTerminateCause_Value_UserRequest}); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	acct := append([]*radius.Packet(nil), f.acct...)
	f.mu.Unlock()
	if len(acct) != 2 {
		t.Fatalf("%d accounting requests", len(acct))
	}
	stop := acct[1]
	if rfc2866.AcctStatusType_Get(stop) != rfc2866.AcctStatusType_Value_Stop || string(rfc2865.Class_Get(stop)) != "gold" ||
		rfc2866.AcctInputOctets_Get(stop) != 7 || rfc2869.AcctInputGigawords_Get(stop) != 5 || rfc2866.AcctSessionTime_Get(stop) < 5 ||
		rfc2866.AcctSessionID_GetString(stop) != "00000001" || rfc2865.FramedIPAddress_Get(stop).String() != "10.3.0.77" {
		t.Fatalf("stop record %v", stop.Attributes)
	}
}

// A server whose Access-Accept and Access-Reject carry no EAP-Message: the relay makes up the
// Success or Failure with the Identifier of the response it answers (RFC 3748 §4.2), not 0.
func TestRelayMadeUpSuccessIdentifier(t *testing.T) {
	for _, code := range []radius.Code{radius.CodeAccessAccept, radius.CodeAccessReject} {
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &radius.PacketServer{SecretSource: radius.StaticSecretSource(secret), Handler: radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			resp := r.Response(code)
			resp.Add(rfc2869.MessageAuthenticator_Type, make([]byte, 16))
			resp.Set(rfc2869.MessageAuthenticator_Type, messageAuth(resp, r.Authenticator))
			w.Write(resp)
		})}
		go srv.Serve(conn)
		defer srv.Shutdown(context.Background())
		ap := netip.MustParseAddrPort(conn.LocalAddr().String())
		c, err := New(Config{Servers: []Server{{Name: "s", Addr: ap.Addr(), AuthPort: ap.Port(), AcctPort: ap.Port(), Secret: secret}},
			Timeout: time.Second, Retry: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		relay := c.NewEAPRelay(Session{ID: "1", User: "carol", NASPort: 1})
		resp := (&eap.Packet{Code: eap.CodeResponse, Identifier: 7, Type: eap.TypeMD5, Data: make([]byte, 17)}).Marshal()
		out, res, err := relay.Process(resp)
		if err != nil || res == nil {
			t.Fatalf("%v: %v %v", code, res, err)
		}
		want := eap.CodeSuccess
		if code == radius.CodeAccessReject {
			want = eap.CodeFailure
		}
		if p, err := eap.Parse(out); err != nil || p.Code != want || p.Identifier != 7 || res.Success != (code == radius.CodeAccessAccept) {
			t.Fatalf("%v: relay answered %x (%+v, %v), want code %d identifier 7", code, out, p, err, want)
		}
	}
}

func TestDAE(t *testing.T) {
	var ended atomic.Int32
	d := &DAE{Secret: secret,
		Disconnect: func(sid, user string, vip netip.Addr) int {
			if user == "carol" {
				ended.Add(1)
				return 1
			}
			return 0
		},
		Reauthorize: func(sid, user string, vip netip.Addr, timeout uint32) bool { return user == "carol" && timeout == 60 }}
	conn, _ := net.ListenPacket("udp", "127.0.0.1:0")
	go d.Serve(conn)
	defer d.Close()
	ask := func(code radius.Code, user string, extra func(*radius.Packet)) *radius.Packet {
		p := radius.New(code, secret)
		rfc2865.UserName_SetString(p, user)
		if extra != nil {
			extra(p)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := radius.Exchange(ctx, p, conn.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := ask(radius.CodeDisconnectRequest, "carol", nil); r.Code != radius.CodeDisconnectACK || ended.Load() != 1 {
		t.Fatalf("disconnect: %v", r.Code)
	}
	if r := ask(radius.CodeDisconnectRequest, "mallory", nil); r.Code != radius.CodeDisconnectNAK || rfc3576.ErrorCause_Get(r) != rfc3576.ErrorCause_Value_SessionContextNotFound {
		t.Fatalf("unknown session: %v", r.Code)
	}
	if r := ask(radius.CodeCoARequest, "carol", func(p *radius.Packet) { rfc2865.SessionTimeout_Set(p, 60) }); r.Code != radius.CodeCoAACK {
		t.Fatalf("CoA: %v", r.Code)
	}
	if r := ask(radius.CodeCoARequest, "carol", func(p *radius.Packet) { rfc2865.FilterID_SetString(p, "x") }); r.Code != radius.CodeCoANAK ||
		rfc3576.ErrorCause_Get(r) != rfc3576.ErrorCause_Value_UnsupportedAttribute {
		t.Fatalf("CoA with Filter-Id: %v", r.Code)
	}
}

type discardWriter struct{ n int }

func (d *discardWriter) Write(*radius.Packet) error { d.n++; return nil }

// FuzzDAE feeds arbitrary datagrams to the Disconnect/CoA handler, as the network would.
func FuzzDAE(f *testing.F) {
	p := radius.New(radius.CodeDisconnectRequest, secret)
	rfc2865.UserName_SetString(p, "carol")
	b, _ := p.Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt, err := radius.Parse(b, secret)
		if err != nil {
			return
		}
		d := &DAE{Secret: secret, Disconnect: func(string, string, netip.Addr) int { return 1 },
			Reauthorize: func(string, string, netip.Addr, uint32) bool { return true }}
		d.Log = nil
		w := &discardWriter{}
		d.handle(w, &radius.Request{Packet: pkt, RemoteAddr: &net.UDPAddr{}})
	})
}
