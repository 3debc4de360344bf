// Package radius is goipsec's RADIUS client with strongSwan's eap-radius semantics, on
// layeh.com/radius: EAP relayed to a RADIUS server (RFC 3579, with Message-Authenticator), the
// client's virtual IP from Framed-IP-Address or Framed-Pool, Class echoed in accounting
// (RFC 2866: Start, Interim-Update, Stop with byte and packet counters), Disconnect and CoA
// requests from the server (RFC 5176), and several servers tried in order with failover.
//
// Every call blocks on the network; the IKE engine runs them outside the IKE SAs (ike.Async).
package radius

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// Server is one RADIUS server.
type Server struct {
	Name string
	// Addr is the server's address; AuthPort and AcctPort its ports (1812, 1813).
	Addr               netip.Addr
	AuthPort, AcctPort uint16
	Secret             []byte
	// Preference orders the servers (higher first; strongSwan's "preference").
	Preference int
}

// Config configures a Client.
type Config struct {
	Servers       []Server
	NASIdentifier string
	// Timeout is how long one server gets for an answer (retransmitting every Retry) before the
	// next is tried.
	Timeout, Retry time.Duration
	// DeadTime keeps a server that did not answer at the back of the list for this long.
	DeadTime time.Duration
	Log      *slog.Logger
	// Dialer binds the client's sockets (tests in namespaces, source addresses).
	Dialer net.Dialer
}

// Client talks to the configured servers.
type Client struct {
	cfg Config

	mu   sync.Mutex
	dead map[string]time.Time // server name → when it stopped answering
	// Stats
	requests, timeouts, failovers uint64
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("radius: no server configured")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.DeadTime <= 0 {
		cfg.DeadTime = 30 * time.Second
	}
	if cfg.NASIdentifier == "" {
		cfg.NASIdentifier = "goipsec"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	for _, s := range cfg.Servers {
		if len(s.Secret) == 0 {
			return nil, fmt.Errorf("radius: server %s has no secret", s.Name)
		}
	}
	return &Client{cfg: cfg, dead: map[string]time.Time{}}, nil
}

// order returns the servers to try: by preference, those that answered lately first.
func (c *Client) order() []Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var alive, dead []Server
	for _, s := range c.cfg.Servers {
		if t, ok := c.dead[s.Name]; ok && now.Sub(t) < c.cfg.DeadTime {
			dead = append(dead, s)
			continue
		}
		alive = append(alive, s)
	}
	sortByPreference(alive)
	sortByPreference(dead)
	return append(alive, dead...)
}

func sortByPreference(list []Server) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && list[j].Preference > list[j-1].Preference; j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

// ErrNoServer means no server answered.
var ErrNoServer = errors.New("radius: no server answered")

// exchange sends a packet built by build (for each server anew: the secret differs) and returns
// the server's authentic answer with the request it answers, trying the servers in order (only
// only, when set).
func (c *Client) exchange(acct bool, only *Server, build func(secret []byte) (*radius.Packet, error)) (*radius.Packet, *radius.Packet, Server, error) {
	var errs []error
	servers := c.order()
	if only != nil {
		servers = []Server{*only}
	}
	for i, s := range servers {
		pkt, err := build(s.Secret)
		if err != nil {
			return nil, nil, s, err
		}
		port := s.AuthPort
		if acct {
			port = s.AcctPort
		}
		addr := netip.AddrPortFrom(s.Addr, port).String()
		if pkt.Code == radius.CodeAccessRequest {
			if err := addMessageAuthenticator(pkt); err != nil {
				return nil, nil, s, err
			}
		}
		rc := radius.Client{Retry: c.cfg.Retry, MaxPacketErrors: 10, Dialer: c.cfg.Dialer}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		c.mu.Lock()
		c.requests++
		c.mu.Unlock()
		resp, err := rc.Exchange(ctx, pkt, addr)
		cancel()
		if err == nil && pkt.Code == radius.CodeAccessRequest {
			_, eap := pkt.Lookup(rfc2869.EAPMessage_Type)
			err = checkMessageAuthenticator(resp, pkt.Authenticator, eap)
		}
		if err == nil {
			c.mu.Lock()
			delete(c.dead, s.Name)
			if i > 0 {
				c.failovers++ // a server after the first answered
			}
			c.mu.Unlock()
			return resp, pkt, s, nil
		}
		c.mu.Lock()
		c.dead[s.Name] = time.Now()
		c.timeouts++
		c.mu.Unlock()
		c.cfg.Log.Warn("RADIUS server did not answer, trying the next", "server", s.Name, "addr", addr, "err", err)
		errs = append(errs, fmt.Errorf("%s (%s): %w", s.Name, addr, err))
	}
	return nil, nil, Server{}, fmt.Errorf("%w: %v", ErrNoServer, errors.Join(errs...))
}

// Stats are the client's counters.
type Stats struct{ Requests, Timeouts, Failovers uint64 }

// Stats returns the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{c.requests, c.timeouts, c.failovers}
}

// addMessageAuthenticator adds Message-Authenticator = HMAC-MD5(secret, packet with the attribute
// zeroed) to an Access-Request (RFC 3579 §3.2; required with EAP-Message). The Request
// Authenticator is already in the packet.
func addMessageAuthenticator(p *radius.Packet) error {
	p.Attributes.Del(rfc2869.MessageAuthenticator_Type)
	p.Add(rfc2869.MessageAuthenticator_Type, make([]byte, md5.Size))
	b, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	mac := hmac.New(md5.New, p.Secret)
	mac.Write(b)
	p.Set(rfc2869.MessageAuthenticator_Type, mac.Sum(nil))
	return nil
}

// checkMessageAuthenticator verifies a response's Message-Authenticator: HMAC-MD5 over the
// response with the Request Authenticator in place of its own and the attribute zeroed (RFC 3579
// §3.2). A response to an EAP request must carry one (required); to another Access-Request
// (PPP's PAP, CHAP, MS-CHAPv2) one is checked when present: FreeRADIUS 3.2.1 sends none there,
// and the Response Authenticator (which layeh.com/radius checks) still covers the packet.
func checkMessageAuthenticator(resp *radius.Packet, reqAuth [16]byte, required bool) error {
	got, ok := resp.Lookup(rfc2869.MessageAuthenticator_Type)
	if !ok && !required {
		return nil
	}
	if !ok || len(got) != md5.Size {
		return errors.New("response without Message-Authenticator (RFC 3579 §3.2)")
	}
	cp := *resp
	cp.Attributes = append(radius.Attributes(nil), resp.Attributes...)
	cp.Authenticator = reqAuth
	cp.Set(rfc2869.MessageAuthenticator_Type, make([]byte, md5.Size))
	b, err := cp.MarshalBinary()
	if err != nil {
		return err
	}
	mac := hmac.New(md5.New, resp.Secret)
	mac.Write(b)
	if !hmac.Equal(mac.Sum(nil), got) {
		return errors.New("response's Message-Authenticator does not verify (wrong secret?)")
	}
	return nil
}

// Session describes the IKE SA an EAP conversation or accounting record is about.
type Session struct {
	// ID is Acct-Session-Id; User the EAP (or IKE) identity.
	ID, User string
	// Local and Remote are the IKE endpoints (Called- and Calling-Station-Id, NAS-IP-Address).
	Local, Remote netip.AddrPort
	// NASPort numbers the IKE SA (strongSwan sends its unique id).
	NASPort uint32
}

func (c *Client) base(p *radius.Packet, s *Session) {
	rfc2865.NASIdentifier_SetString(p, c.cfg.NASIdentifier)
	rfc2865.NASPortType_Set(p, rfc2865.NASPortType_Value_Virtual)
	rfc2865.NASPort_Set(p, rfc2865.NASPort(s.NASPort))
	rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_FramedUser)
	if s.Local.Addr().Is4() {
		rfc2865.NASIPAddress_Set(p, s.Local.Addr().AsSlice())
	}
	// strongSwan's format: address[port]. (An L2TP session on a wildcard socket has no local one.)
	if s.Local.IsValid() {
		rfc2865.CalledStationID_SetString(p, fmt.Sprintf("%s[%d]", s.Local.Addr(), s.Local.Port()))
	}
	if s.Remote.IsValid() {
		rfc2865.CallingStationID_SetString(p, fmt.Sprintf("%s[%d]", s.Remote.Addr(), s.Remote.Port()))
	}
}
