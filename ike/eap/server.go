package eap

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// ServerConfig configures a server conversation.
type ServerConfig struct {
	// Methods are the methods offered, preferred first; the client may Nak to another of them
	// (eap-dynamic). One entry: only that method.
	Methods []Type
	// AskIdentity starts with an EAP-Identity request; otherwise Identity is the user (the
	// client's IKE identity or the configured eap_id).
	AskIdentity bool
	Identity    string
	// Password returns a user's password (secrets.eap). It is called inside the conversation.
	Password func(user string) ([]byte, bool)
	// ServerName is the MS-CHAPv2 authenticator name.
	ServerName string
	// TLS is the gateway's certificate and the check of the client's (EAP-TLS, EAP-TTLS); TLSFor,
	// when set, makes it for the EAP identity once it is known.
	TLS    *TLSConfig
	TLSFor func(identity string) (*TLSConfig, error)
	Rand   io.Reader
}

// Result is how a conversation ended.
type Result struct {
	Success bool
	// Identity is the authenticated EAP identity.
	Identity string
	Method   Type
	// MSK is the master session key (nil for methods without one, such as MD5: IKEv2 then
	// uses SK_pi/SK_pr for AUTH, RFC 7296 §2.16).
	MSK []byte
	// Err explains a failure in one line (never the password).
	Err error
	// What an AAA server (RADIUS) decided with the Access-Accept: the client's virtual IPs
	// (Framed-IP-Address, Framed-IPv6-Address), a pool to take one from (Framed-Pool), and the
	// Class values to echo in accounting.
	FramedIPs  []netip.Addr
	FramedPool string
	Class      [][]byte
}

// methodServer is one method's server side.
type methodServer interface {
	// start returns the Type-Data of the first request.
	start() ([]byte, error)
	// process handles a response's Type-Data and returns the next request's, or done with the
	// outcome (err: the client failed to authenticate).
	process(data []byte) (next []byte, done bool, msk []byte, err error)
}

// Server is the gateway's side of one conversation.
type Server struct {
	cfg      ServerConfig
	id       uint8
	identity string
	method   Type
	m        methodServer
	last     *Packet // the outstanding request
	done     bool
}

// NewServer starts a conversation.
func NewServer(cfg ServerConfig) (*Server, error) {
	if len(cfg.Methods) == 0 {
		return nil, errors.New("eap: no method configured")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	s := &Server{cfg: cfg, identity: cfg.Identity}
	var b [1]byte
	io.ReadFull(cfg.Rand, b[:])
	s.id = b[0]
	return s, nil
}

// Method returns the method in use (0 before it is chosen).
func (s *Server) Method() Type { return s.method }

// Identity returns the EAP identity (known after the Identity exchange).
func (s *Server) Identity() string { return s.identity }

// Start returns the first request.
func (s *Server) Start() ([]byte, error) {
	if s.cfg.AskIdentity || s.identity == "" {
		return s.request(TypeIdentity, nil), nil
	}
	return s.startMethod(s.cfg.Methods[0])
}

func (s *Server) request(t Type, data []byte) []byte {
	s.id++
	s.last = &Packet{Code: CodeRequest, Identifier: s.id, Type: t, Data: data}
	return s.last.Marshal()
}

func (s *Server) startMethod(t Type) ([]byte, error) {
	m, err := s.newMethod(t)
	if err != nil {
		return nil, err
	}
	s.method, s.m = t, m
	data, err := m.start()
	if err != nil {
		return nil, err
	}
	return s.request(t, data), nil
}

func (s *Server) newMethod(t Type) (methodServer, error) {
	switch t {
	case TypeMD5:
		return &md5Server{s: s}, nil
	case TypeMSCHAPv2:
		return newMSCHAPv2Server(s), nil
	}
	if f := extraMethods[t]; f != nil {
		return f(s)
	}
	return nil, fmt.Errorf("eap: method %s is not available as server", t)
}

// extraMethods are server methods registered by other files of the package (TLS, TTLS).
var extraMethods = map[Type]func(*Server) (methodServer, error){}

// Process handles the client's response. It returns the next packet to send: a request, or the
// final Success or Failure, then with res set.
func (s *Server) Process(resp []byte) (out []byte, res *Result, err error) {
	if s.done {
		return nil, nil, errors.New("eap: conversation is over")
	}
	p, err := Parse(resp)
	if err != nil {
		return nil, nil, err
	}
	if p.Code != CodeResponse || s.last == nil || p.Identifier != s.last.Identifier {
		return nil, nil, fmt.Errorf("eap: unexpected packet (code %d, identifier %d)", p.Code, p.Identifier)
	}
	fail := func(e error) ([]byte, *Result, error) {
		s.done = true
		s.id++
		return (&Packet{Code: CodeFailure, Identifier: s.id}).Marshal(), &Result{Identity: s.identity, Method: s.method, Err: e}, nil
	}
	switch {
	case p.Type == TypeIdentity && s.last.Type == TypeIdentity:
		if len(p.Data) == 0 || len(p.Data) > 253 {
			return fail(fmt.Errorf("EAP-Identity of %d bytes", len(p.Data)))
		}
		s.identity = string(p.Data)
		out, err := s.startMethod(s.cfg.Methods[0])
		if err != nil {
			return fail(err)
		}
		return out, nil, nil
	case p.Type == TypeNak:
		// RFC 3748 §5.3.1: the client names the methods it would use instead.
		if s.method == 0 || s.last.Type != s.method {
			return fail(errors.New("EAP Nak to a request that offered no method"))
		}
		for _, want := range p.Data {
			for _, have := range s.cfg.Methods {
				if Type(want) == have && have != s.method {
					out, err := s.startMethod(have)
					if err != nil {
						return fail(err)
					}
					return out, nil, nil
				}
			}
		}
		return fail(fmt.Errorf("client %s refused EAP-%s and asked for %v, none of which is offered (%v)", s.identity, s.method, typeList(p.Data), s.cfg.Methods))
	case p.Type == s.method && s.m != nil:
		next, done, msk, merr := s.m.process(p.Data)
		if merr != nil {
			return fail(merr)
		}
		if !done {
			return s.request(s.method, next), nil, nil
		}
		s.done = true
		s.id++
		return (&Packet{Code: CodeSuccess, Identifier: s.id}).Marshal(), &Result{Success: true, Identity: s.identity, Method: s.method, MSK: msk}, nil
	}
	return fail(fmt.Errorf("unexpected EAP response type %s to a %s request", p.Type, s.last.Type))
}

func typeList(b []byte) []Type {
	out := make([]Type, len(b))
	for i, t := range b {
		out[i] = Type(t)
	}
	return out
}

func (s *Server) password() ([]byte, error) {
	if s.cfg.Password == nil {
		return nil, fmt.Errorf("no password for EAP identity %q", s.identity)
	}
	pw, ok := s.cfg.Password(s.identity)
	if !ok {
		return nil, fmt.Errorf("no password for EAP identity %q (secrets.eap)", s.identity)
	}
	return pw, nil
}

// md5Server is EAP-MD5-Challenge (RFC 3748 §5.4, the CHAP computation of RFC 1994 §4.1).
type md5Server struct {
	s         *Server
	challenge []byte
}

func (m *md5Server) start() ([]byte, error) {
	m.challenge = make([]byte, 16)
	if _, err := io.ReadFull(m.s.cfg.Rand, m.challenge); err != nil {
		return nil, err
	}
	return append([]byte{byte(len(m.challenge))}, m.challenge...), nil
}

func (m *md5Server) process(data []byte) ([]byte, bool, []byte, error) {
	if len(data) < 1 || int(data[0]) != md5.Size || len(data) < 1+md5.Size {
		return nil, false, nil, errors.New("malformed EAP-MD5 response")
	}
	pw, err := m.s.password()
	if err != nil {
		return nil, false, nil, err
	}
	want := md5Value(m.s.last.Identifier, pw, m.challenge)
	if subtle.ConstantTimeCompare(want, data[1:1+md5.Size]) != 1 {
		return nil, false, nil, fmt.Errorf("EAP-MD5 response of %q does not verify: wrong password", m.s.identity)
	}
	// MD5 derives no key (RFC 3748 §5.4).
	return nil, true, nil, nil
}

// md5Value is MD5(Identifier | secret | challenge).
func md5Value(id uint8, secret, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	return h.Sum(nil)
}

// LastID is the identifier of the outstanding request (a relay opening the conversation on the
// server's behalf answers it).
func (s *Server) LastID() uint8 {
	if s.last == nil {
		return 0
	}
	return s.last.Identifier
}
