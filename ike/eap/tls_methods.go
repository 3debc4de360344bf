package eap

import (
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/goipsec/goipsec/ike/eap/mschapv2"
)

func init() {
	extraMethods[TypeTLS] = func(s *Server) (methodServer, error) { return newTLSServer(s, false) }
	extraMethods[TypeTTLS] = func(s *Server) (methodServer, error) { return newTLSServer(s, true) }
	clientMethods[TypeTLS] = func(c *Client) (methodClient, error) { return &tlsClient{c: c, ttls: false}, nil }
	clientMethods[TypeTTLS] = func(c *Client) (methodClient, error) { return &tlsClient{c: c, ttls: true}, nil }
}

// Exporter labels of the MSK (RFC 5216 §2.3, RFC 5281 §8) and of TTLS' MS-CHAPv2 challenge
// (RFC 5281 §11.2.4).
const (
	labelTLS       = "client EAP encryption"
	labelTTLS      = "ttls keying material"
	labelChallenge = "ttls challenge"
)

// tlsServer is EAP-TLS (the client proves itself with a certificate) or EAP-TTLS (the tunnel
// authenticates only us; the client's password goes inside: PAP or MS-CHAPv2 AVPs).
type tlsServer struct {
	s    *Server
	ttls bool
	tlsBase
	user string // the user the inner phase authenticated
}

func newTLSServer(s *Server, ttls bool) (*tlsServer, error) {
	if s.cfg.TLSFor != nil {
		tc, err := s.cfg.TLSFor(s.identity)
		if err != nil {
			return nil, err
		}
		s.cfg.TLS = tc
	}
	if s.cfg.TLS == nil || s.cfg.TLS.Certificate == nil {
		return nil, errors.New("EAP-TLS/TTLS server needs a certificate (the gateway's)")
	}
	m := &tlsServer{s: s, ttls: ttls}
	m.label = labelTLS
	if ttls {
		m.label = labelTTLS
	}
	return m, nil
}

func (m *tlsServer) start() ([]byte, error) {
	cfg := baseTLSConfig(m.s.cfg.TLS)
	cfg.Certificates = []tls.Certificate{*m.s.cfg.TLS.Certificate}
	cfg.Rand = m.s.cfg.Rand
	var app func(*tls.Conn) error
	if m.ttls {
		cfg.ClientAuth = tls.NoClientCert
		app = m.innerPhase
	} else {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	p := newPump()
	cfg.KeyLogWriter = &p.master
	m.s0(startTLS(tls.Server(p, cfg), p, app, m.s.cfg.TLS.FragmentSize))
	return []byte{flagStart}, nil
}

func (m *tlsServer) s0(s *tlsSession) { m.tlsBase.s = s }

func (m *tlsServer) process(data []byte) ([]byte, bool, []byte, error) {
	if m.finished && !m.sending {
		// The client acknowledged our last flight.
		if len(data) != 1 || data[0] != 0 {
			return nil, false, nil, errors.New("expected the acknowledgement of the last TLS flight")
		}
		return nil, true, m.msk, nil
	}
	reply, ended, err := m.in(data)
	if err != nil {
		m.s2close()
		return nil, false, nil, fmt.Errorf("EAP-%s with %q: %v", m.name(), m.s.identity, err)
	}
	if ended && !m.sending && len(reply) == 1 {
		// TLS ended without anything left to send (TTLS after PAP): success now.
		return nil, true, m.msk, nil
	}
	return reply, false, nil, nil
}

func (m *tlsServer) s2close() { m.tlsBase.s.close() }

func (m *tlsServer) name() string {
	if m.ttls {
		return "TTLS"
	}
	return "TLS"
}

// --- TTLS inner phase (RFC 5281 §11.2) ---

// Diameter AVPs (RFC 5281 §10.1): Code, flags (V: vendor, M: mandatory), 24-bit length, vendor.
const (
	avpUserName     = 1
	avpUserPassword = 2
	avpEAPMessage   = 79
	vendorMicrosoft = 311
	msCHAPChallenge = 11
	msCHAP2Response = 25
	msCHAP2Success  = 26
	avpFlagVendor   = 0x80
	avpFlagMand     = 0x40
)

type avp struct {
	code   uint32
	vendor uint32
	data   []byte
}

func parseAVPs(b []byte) ([]avp, error) {
	var out []avp
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, errors.New("truncated AVP header")
		}
		code := binary.BigEndian.Uint32(b)
		flags := b[4]
		length := int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		hdr := 8
		var vendor uint32
		if flags&avpFlagVendor != 0 {
			if len(b) < 12 {
				return nil, errors.New("truncated vendor AVP")
			}
			vendor = binary.BigEndian.Uint32(b[8:])
			hdr = 12
		}
		if length < hdr || length > len(b) {
			return nil, fmt.Errorf("AVP length %d", length)
		}
		out = append(out, avp{code: code, vendor: vendor, data: b[hdr:length]})
		padded := (length + 3) &^ 3
		if padded > len(b) {
			padded = len(b)
		}
		b = b[padded:]
	}
	return out, nil
}

func appendAVP(b []byte, code, vendor uint32, data []byte) []byte {
	hdr := 8
	flags := byte(avpFlagMand)
	if vendor != 0 {
		hdr = 12
		flags |= avpFlagVendor
	}
	length := hdr + len(data)
	b = binary.BigEndian.AppendUint32(b, code)
	b = append(b, flags, byte(length>>16), byte(length>>8), byte(length))
	if vendor != 0 {
		b = binary.BigEndian.AppendUint32(b, vendor)
	}
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func findAVP(list []avp, code, vendor uint32) []byte {
	for _, a := range list {
		if a.code == code && a.vendor == vendor {
			return a.data
		}
	}
	return nil
}

// innerPhase checks the password the client sends in the tunnel.
func (m *tlsServer) innerPhase(conn *tls.Conn) error {
	buf := make([]byte, 16384)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	avps, err := parseAVPs(buf[:n])
	if err != nil {
		return err
	}
	user := string(findAVP(avps, avpUserName, 0))
	if user == "" {
		return errors.New("TTLS inner phase without User-Name")
	}
	m.user, m.s.identity = user, user
	pw, err := m.s.password()
	if err != nil {
		return err
	}
	if pap := findAVP(avps, avpUserPassword, 0); pap != nil {
		// PAP (RFC 5281 §11.2.5): the password, padded with zeros to a multiple of 16.
		got := trimZeros(pap)
		if subtle.ConstantTimeCompare(got, pw) != 1 {
			return fmt.Errorf("TTLS-PAP password of %q is wrong", user)
		}
		return nil
	}
	resp := findAVP(avps, msCHAP2Response, vendorMicrosoft)
	chal := findAVP(avps, msCHAPChallenge, vendorMicrosoft)
	if resp == nil || chal == nil {
		return errors.New("TTLS inner phase is neither PAP nor MS-CHAPv2 (inner EAP is not supported)")
	}
	// The challenge is not sent by us: both sides derive it (17 octets: challenge, identifier).
	want, err := m.tlsBase.s.p.export(conn, labelChallenge, 17)
	if err != nil {
		return err
	}
	if len(resp) != 50 || subtle.ConstantTimeCompare(chal, want[:16]) != 1 || resp[0] != want[16] {
		return errors.New("TTLS MS-CHAPv2 challenge or identifier does not match the tunnel's")
	}
	peer := resp[2:18]
	var nt [mschapv2.NTResponseLen]byte
	copy(nt[:], resp[26:50])
	expect := mschapv2.GenerateNTResponse(want[:16], peer, user, pw)
	if subtle.ConstantTimeCompare(expect[:], nt[:]) != 1 {
		return fmt.Errorf("TTLS MS-CHAPv2 response of %q does not verify: wrong password", user)
	}
	ar := mschapv2.AuthenticatorResponse(want[:16], peer, user, pw, nt)
	if _, err := conn.Write(appendAVP(nil, msCHAP2Success, vendorMicrosoft, append([]byte{want[16]}, ar...))); err != nil {
		return err
	}
	// The client acknowledges with an empty packet (no TLS data): the exchange is over.
	return nil
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// --- clients ---

// tlsClient is EAP-TLS (our certificate) or EAP-TTLS (PAP or MS-CHAPv2 inside) as client.
type tlsClient struct {
	c    *Client
	ttls bool
	tlsBase
	started bool
	ar      string
}

func (m *tlsClient) process(data []byte) ([]byte, error) {
	cfg := m.c.cfg.TLS
	if !m.started {
		if len(data) < 1 || data[0]&flagStart == 0 {
			return nil, errors.New("EAP-TLS request without Start")
		}
		if cfg == nil {
			return nil, errors.New("EAP-TLS/TTLS needs credentials (aaa_id and trust anchors)")
		}
		tc := baseTLSConfig(cfg)
		tc.Rand = m.c.cfg.Rand
		if !m.ttls {
			if cfg.Certificate == nil {
				return nil, fmt.Errorf("EAP-TLS needs a certificate for %q", m.c.cfg.Identity)
			}
			tc.Certificates = []tls.Certificate{*cfg.Certificate}
		}
		m.label = labelTLS
		var app func(*tls.Conn) error
		if m.ttls {
			m.label = labelTTLS
			app = m.innerPhase
		}
		p := newPump()
		tc.KeyLogWriter = &p.master
		m.tlsBase.s = startTLS(tls.Client(p, tc), p, app, cfg.FragmentSize)
		m.started = true
		out, _, err := m.tlsBase.s.step(nil)
		if err != nil {
			return nil, err
		}
		return m.out(out), nil
	}
	reply, ended, err := m.in(data)
	if err != nil {
		m.tlsBase.s.close()
		return nil, err
	}
	if ended {
		m.c.mutual = true // the server's certificate verified and the handshake completed
	}
	return reply, nil
}

func (m *tlsClient) key() []byte { return m.msk }

// innerPhase sends the password: MS-CHAPv2 AVPs (when the method list allows, else PAP).
func (m *tlsClient) innerPhase(conn *tls.Conn) error {
	pw, err := m.c.password()
	if err != nil {
		return err
	}
	defer clear(pw)
	user := []byte(m.c.cfg.Identity)
	if m.c.cfg.TTLSInner == "pap" {
		padded := append([]byte(nil), pw...)
		for len(padded)%16 != 0 || len(padded) == 0 {
			padded = append(padded, 0)
		}
		_, err := conn.Write(appendAVP(appendAVP(nil, avpUserName, 0, user), avpUserPassword, 0, padded))
		return err
	}
	ch, err := m.tlsBase.s.p.export(conn, labelChallenge, 17)
	if err != nil {
		return err
	}
	peer := make([]byte, 16)
	if _, err := io.ReadFull(m.c.cfg.Rand, peer); err != nil {
		return err
	}
	nt := mschapv2.GenerateNTResponse(ch[:16], peer, string(user), pw)
	m.ar = mschapv2.AuthenticatorResponse(ch[:16], peer, string(user), pw, nt)
	resp := append([]byte{ch[16], 0}, peer...)
	resp = append(resp, make([]byte, 8)...)
	resp = append(resp, nt[:]...)
	msg := appendAVP(nil, avpUserName, 0, user)
	msg = appendAVP(msg, msCHAPChallenge, vendorMicrosoft, ch[:16])
	msg = appendAVP(msg, msCHAP2Response, vendorMicrosoft, resp)
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	avps, err := parseAVPs(buf[:n])
	if err != nil {
		return err
	}
	ok := findAVP(avps, msCHAP2Success, vendorMicrosoft)
	if len(ok) < 1 || ok[0] != ch[16] || !mschapv2.CheckAuthenticatorResponse(string(ok[1:]), m.ar) {
		return errors.New("TTLS MS-CHAPv2: the server did not prove it knows our password")
	}
	return nil
}
