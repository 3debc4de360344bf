package eap

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// ClientConfig configures a client conversation.
type ClientConfig struct {
	// Identity is our EAP identity (eap_id, else the IKE identity).
	Identity string
	// Methods we accept, preferred first (empty: any method we implement).
	Methods []Type
	// Password returns our password (secrets.eap for Identity).
	Password func() ([]byte, bool)
	Rand     io.Reader
	// TLS holds our certificate (EAP-TLS) and how to check the server's (EAP-TLS and -TTLS).
	TLS *TLSConfig
	// TTLSInner is "pap" or "mschapv2" (default) inside EAP-TTLS.
	TTLSInner string
}

type methodClient interface {
	process(data []byte) ([]byte, error)
	key() []byte
}

// Client is the road warrior's side of one conversation.
type Client struct {
	cfg    ClientConfig
	method Type
	m      methodClient
	done   bool
	result *Result
	// mutual: the server proved knowledge of our credentials (MS-CHAPv2, TLS); failed: the
	// server told us it refused us.
	mutual bool
	failed error
	curID  uint8 // identifier of the request being answered
}

// NewClient returns a client conversation.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Client{cfg: cfg}
}

var implemented = []Type{TypeMSCHAPv2, TypeTLS, TypeTTLS, TypeMD5}

// clientMethods are client methods registered by other files (TLS, TTLS).
var clientMethods = map[Type]func(*Client) (methodClient, error){}

func (c *Client) accepts(t Type) bool {
	if len(c.cfg.Methods) == 0 {
		if t == TypeMD5 || t == TypeMSCHAPv2 {
			return true
		}
		return clientMethods[t] != nil
	}
	for _, m := range c.cfg.Methods {
		if m == t {
			return true
		}
	}
	return false
}

// Process handles a packet from the server: a request (answered), or the final Success or
// Failure (out is nil and Result tells the outcome).
func (c *Client) Process(in []byte) (out []byte, err error) {
	if c.done {
		return nil, errors.New("eap: conversation is over")
	}
	p, err := Parse(in)
	if err != nil {
		return nil, err
	}
	switch p.Code {
	case CodeSuccess:
		c.done = true
		if c.failed != nil {
			return nil, fmt.Errorf("EAP Success after the method failed: %w", c.failed)
		}
		if c.m == nil {
			return nil, errors.New("EAP Success before any method ran")
		}
		c.result = &Result{Success: true, Identity: c.cfg.Identity, Method: c.method, MSK: c.m.key()}
		return nil, nil
	case CodeFailure:
		c.done = true
		e := c.failed
		if e == nil {
			e = fmt.Errorf("EAP server refused us (EAP-Failure after %s)", c.method)
		}
		c.result = &Result{Identity: c.cfg.Identity, Method: c.method, Err: e}
		return nil, nil
	case CodeResponse:
		return nil, errors.New("eap: response sent to the client")
	}
	c.curID = p.Identifier
	reply := func(t Type, data []byte) []byte {
		return (&Packet{Code: CodeResponse, Identifier: p.Identifier, Type: t, Data: data}).Marshal()
	}
	switch p.Type {
	case TypeIdentity:
		return reply(TypeIdentity, []byte(c.cfg.Identity)), nil
	case TypeNotify:
		return reply(TypeNotify, nil), nil
	}
	if c.m != nil && p.Type == c.method {
		data, err := c.m.process(p.Data)
		if err != nil {
			return nil, err
		}
		return reply(p.Type, data), nil
	}
	if c.m == nil && c.accepts(p.Type) {
		var m methodClient
		switch {
		case p.Type == TypeMD5:
			m = &md5Client{c: c}
		case p.Type == TypeMSCHAPv2:
			m = &mschapClient{c: c}
		case clientMethods[p.Type] != nil:
			if m, err = clientMethods[p.Type](c); err != nil {
				return nil, err
			}
		}
		if m != nil {
			c.method, c.m = p.Type, m
			data, err := m.process(p.Data)
			if err != nil {
				return nil, err
			}
			return reply(p.Type, data), nil
		}
	}
	// RFC 3748 §5.3.1: Nak with the methods we would use.
	var want []byte
	for _, t := range implemented {
		if c.accepts(t) {
			want = append(want, byte(t))
		}
	}
	if len(want) == 0 {
		want = []byte{0}
	}
	return reply(TypeNak, want), nil
}

// Result is the outcome once Process saw Success or Failure (nil before).
func (c *Client) Result() *Result { return c.result }

// Method is the method in use.
func (c *Client) Method() Type { return c.method }

// Mutual reports whether the server proved it knows our credentials.
func (c *Client) Mutual() bool { return c.mutual }

func (c *Client) password() ([]byte, error) {
	if c.cfg.Password == nil {
		return nil, fmt.Errorf("no EAP password for %q", c.cfg.Identity)
	}
	pw, ok := c.cfg.Password()
	if !ok {
		return nil, fmt.Errorf("no EAP password for %q (secrets.eap)", c.cfg.Identity)
	}
	return append([]byte(nil), pw...), nil
}

type md5Client struct{ c *Client }

// process answers MD5(Identifier | password | challenge) with an empty name (RFC 3748 §5.4).
func (m *md5Client) process(data []byte) ([]byte, error) {
	if len(data) < 1 || int(data[0]) == 0 || len(data) < 1+int(data[0]) {
		return nil, errors.New("malformed EAP-MD5 challenge")
	}
	pw, err := m.c.password()
	if err != nil {
		return nil, err
	}
	defer clear(pw)
	v := md5Value(m.c.curID, pw, data[1:1+int(data[0])])
	return append([]byte{byte(len(v))}, v...), nil
}

func (m *md5Client) key() []byte { return nil }
