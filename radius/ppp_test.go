package radius

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"

	"github.com/goipsec/goipsec/ppp"
)

// RFC 2759 §9.2's example: user "User", password "clientPass".
const (
	rfcUser     = "User"
	rfcPassword = "clientPass"
	rfcAuthChal = "5B5D7C7D7B3F2F3E3C2C602132262628"
	rfcPeerChal = "21402324255E262A28295F2B3A337C7E"
	rfcNT       = "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF"
	rfcAuthResp = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pppServer answers PPP authentications as FreeRADIUS does, from the user's cleartext password
// (ppp.SecretsVerifier recomputes CHAP and MS-CHAPv2 responses), and records the requests.
type pppServer struct {
	mu   sync.Mutex
	reqs []*radius.Packet
	// noSuccess leaves MS-CHAP2-Success out of an Accept (a broken server); noMA leaves
	// Message-Authenticator out (FreeRADIUS 3.2.1 answers PAP, CHAP and MS-CHAP so).
	noSuccess, noMA bool
}

func (f *pppServer) handle(w radius.ResponseWriter, r *radius.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Packet)
	noSuccess, noMA := f.noSuccess, f.noMA
	f.mu.Unlock()
	v := ppp.SecretsVerifier{Password: func(u string) (string, bool) { return rfcPassword, u == rfcUser }}
	user := rfc2865.UserName_GetString(r.Packet)
	ok, success := false, []byte(nil)
	switch {
	case rfc2865.UserPassword_GetString(r.Packet) != "":
		ok = v.VerifyPAP(user, rfc2865.UserPassword_GetString(r.Packet))
	case rfc2865.CHAPPassword_Get(r.Packet) != nil:
		cp := rfc2865.CHAPPassword_Get(r.Packet)
		ok = len(cp) == 17 && v.VerifyCHAP(user, cp[0], rfc2865.CHAPChallenge_Get(r.Packet), cp[1:])
	case microsoft.MSCHAP2Response_Get(r.Packet) != nil:
		resp := microsoft.MSCHAP2Response_Get(r.Packet)
		if len(resp) == 50 {
			var ar string
			ar, ok = v.VerifyMSCHAPv2(user, microsoft.MSCHAPChallenge_Get(r.Packet), resp[2:18], resp[26:50])
			success = append([]byte{resp[0]}, ar...)
		}
	}
	code := radius.CodeAccessReject
	if ok {
		code = radius.CodeAccessAccept
	}
	out := r.Response(code)
	if ok {
		if success != nil && !noSuccess {
			microsoft.MSCHAP2Success_Set(out, success)
		}
		rfc2865.FramedIPAddress_Set(out, net.ParseIP("10.3.0.77"))
		rfc2865.Class_Add(out, []byte("gold"))
	} else {
		rfc2865.ReplyMessage_SetString(out, "bad password")
	}
	if !noMA {
		out.Add(rfc2869.MessageAuthenticator_Type, make([]byte, 16))
		out.Set(rfc2869.MessageAuthenticator_Type, messageAuth(out, r.Authenticator))
	}
	w.Write(out)
}

func (f *pppServer) last() *radius.Packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

func startPPPServer(t *testing.T) (*pppServer, *Client) {
	t.Helper()
	f := &pppServer{}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &radius.PacketServer{Handler: radius.HandlerFunc(f.handle), SecretSource: radius.StaticSecretSource(secret)}
	go srv.Serve(conn)
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	ap := netip.MustParseAddrPort(conn.LocalAddr().String())
	c, err := New(Config{Servers: []Server{{Name: "fake", Addr: ap.Addr(), AuthPort: ap.Port(), Secret: secret}}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

var pppSession = Session{ID: "l2tp-1", User: rfcUser, Local: netip.MustParseAddrPort("192.0.2.1:1701"), Remote: netip.MustParseAddrPort("192.0.2.2:1701")}

// TestPPPMSCHAPv2RFC2548: the Access-Request carries RFC 2759 §9.2's exchange in RFC 2548's
// attributes byte for byte, and the server's MS-CHAP2-Success yields §9.2's authenticator
// response.
func TestPPPMSCHAPv2RFC2548(t *testing.T) {
	f, c := startPPPServer(t)
	a := PPPAuth{Method: PPPMSCHAPv2, User: rfcUser, ID: 0x2a, Challenge: unhex(t, rfcAuthChal), PeerChallenge: unhex(t, rfcPeerChal), Response: unhex(t, rfcNT)}
	res, err := c.AuthenticatePPP(pppSession, a)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.AuthenticatorResponse != rfcAuthResp {
		t.Fatalf("result %+v, want OK with %s", res, rfcAuthResp)
	}
	if res.FramedIP != netip.MustParseAddr("10.3.0.77") || len(res.Class) != 1 || string(res.Class[0]) != "gold" {
		t.Fatalf("framed IP %s, class %q", res.FramedIP, res.Class)
	}
	req := f.last()
	// RFC 2548 §2.3.2: Ident, Flags 0, Peer-Challenge, 8 reserved zeros, NT-Response.
	want := append(append(append([]byte{0x2a, 0}, unhex(t, rfcPeerChal)...), make([]byte, 8)...), unhex(t, rfcNT)...)
	if got := microsoft.MSCHAP2Response_Get(req); !bytes.Equal(got, want) {
		t.Fatalf("MS-CHAP2-Response\n got %x\nwant %x", got, want)
	}
	if got := microsoft.MSCHAPChallenge_Get(req); !bytes.Equal(got, unhex(t, rfcAuthChal)) {
		t.Fatalf("MS-CHAP-Challenge %x", got)
	}
	if rfc2865.FramedProtocol_Get(req) != rfc2865.FramedProtocol_Value_PPP || rfc2865.UserName_GetString(req) != rfcUser {
		t.Fatal("Framed-Protocol PPP or User-Name missing")
	}
	// A wrong NT-Response is rejected with the server's message.
	a.Response = append([]byte{a.Response[0] ^ 1}, a.Response[1:]...)
	if res, err := c.AuthenticatePPP(pppSession, a); err != nil || res.OK || res.Reason != "RADIUS server fake: bad password" {
		t.Fatalf("wrong response: %+v %v", res, err)
	}
	// An Accept without MS-CHAP2-Success cannot prove the server to the client: no verdict.
	f.mu.Lock()
	f.noSuccess = true
	f.mu.Unlock()
	a.Response = unhex(t, rfcNT)
	if _, err := c.AuthenticatePPP(pppSession, a); err == nil {
		t.Fatal("Accept without MS-CHAP2-Success taken")
	}
}

// TestPPPPAPUserPassword: User-Password is hidden as RFC 2865 §5.2 says (the password padded to
// 16 bytes, XOR MD5(secret | Request Authenticator)), and the server checks it.
func TestPPPPAPUserPassword(t *testing.T) {
	f, c := startPPPServer(t)
	res, err := c.AuthenticatePPP(pppSession, PPPAuth{Method: PPPPAP, User: rfcUser, Password: rfcPassword})
	if err != nil || !res.OK {
		t.Fatalf("PAP: %+v %v", res, err)
	}
	req := f.last()
	raw, ok := req.Lookup(rfc2865.UserPassword_Type)
	if !ok || len(raw) != 16 {
		t.Fatalf("User-Password of %d bytes", len(raw))
	}
	h := md5.Sum(append(append([]byte(nil), secret...), req.Authenticator[:]...))
	plain := make([]byte, 16)
	copy(plain, rfcPassword)
	for i := range plain {
		if raw[i] != plain[i]^h[i] {
			t.Fatalf("User-Password %x is not the RFC 2865 §5.2 hiding of the password", []byte(raw))
		}
	}
	if res, _ := c.AuthenticatePPP(pppSession, PPPAuth{Method: PPPPAP, User: rfcUser, Password: "wrong"}); res.OK {
		t.Fatal("wrong PAP password accepted")
	}
	// Without Message-Authenticator (not required without EAP, RFC 3579 §3.2) the answer counts;
	// a forged one would not (the Response Authenticator covers the packet).
	f.mu.Lock()
	f.noMA = true
	f.mu.Unlock()
	if res, err := c.AuthenticatePPP(pppSession, PPPAuth{Method: PPPPAP, User: rfcUser, Password: rfcPassword}); err != nil || !res.OK {
		t.Fatalf("PAP answer without Message-Authenticator: %+v %v", res, err)
	}
	if err := checkMessageAuthenticator(radius.New(radius.CodeAccessAccept, secret), [16]byte{}, true); err == nil {
		t.Fatal("an answer to EAP without Message-Authenticator was taken")
	}
}

// TestPPPCHAP: CHAP-Password is Ident then the MD5 response (RFC 2865 §5.3), CHAP-Challenge the
// challenge (§5.40); the server recomputes MD5(Ident | password | challenge) (RFC 1994 §4.1).
func TestPPPCHAP(t *testing.T) {
	f, c := startPPPServer(t)
	chal := []byte("0123456789abcdef0")
	sum := md5.Sum(append(append([]byte{7}, rfcPassword...), chal...))
	res, err := c.AuthenticatePPP(pppSession, PPPAuth{Method: PPPCHAP, User: rfcUser, ID: 7, Challenge: chal, Response: sum[:]})
	if err != nil || !res.OK {
		t.Fatalf("CHAP: %+v %v", res, err)
	}
	req := f.last()
	if got := rfc2865.CHAPPassword_Get(req); !bytes.Equal(got, append([]byte{7}, sum[:]...)) {
		t.Fatalf("CHAP-Password %x", got)
	}
	if got := rfc2865.CHAPChallenge_Get(req); !bytes.Equal(got, chal) {
		t.Fatalf("CHAP-Challenge %x", got)
	}
	sum[0] ^= 1
	if res, _ := c.AuthenticatePPP(pppSession, PPPAuth{Method: PPPCHAP, User: rfcUser, ID: 7, Challenge: chal, Response: sum[:]}); res.OK {
		t.Fatal("wrong CHAP response accepted")
	}
	// Malformed input never reaches the wire.
	if _, err := c.AuthenticatePPP(pppSession, PPPAuth{Method: PPPCHAP, User: rfcUser, Response: []byte{1}}); err == nil {
		t.Fatal("short CHAP response sent")
	}
}
