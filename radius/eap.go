package radius

import (
	"errors"
	"fmt"
	"net/netip"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc6911"
	"layeh.com/radius/vendors/microsoft"

	"github.com/goipsec/goipsec/ike/eap"
)

// EAPRelay is the gateway's side of an EAP conversation whose method runs on a RADIUS server
// (RFC 3579): the client's EAP packets go to the server in Access-Requests, the server's come
// back in Access-Challenges, and the Access-Accept carries the EAP Success, the MSK (MS-MPPE-Recv-Key
// and -Send-Key, RFC 2548) and the client's address. It implements ike.EAPServer; every step blocks.
type EAPRelay struct {
	c       *Client
	s       Session
	state   []byte // State of the last Access-Challenge, echoed (RFC 2865 §5.24)
	server  *Server
	lastID  uint8 // Identifier of the client's last response
	started bool
}

// NewEAPRelay starts a relay for one client; s.User is its identity, sent as the EAP-Identity
// response that opens the conversation (strongSwan's eap_start = no).
func (c *Client) NewEAPRelay(s Session) *EAPRelay { return &EAPRelay{c: c, s: s} }

// Start opens the conversation with the client's identity and returns the server's first request.
func (r *EAPRelay) Start() ([]byte, error) {
	r.started = true
	ident := (&eap.Packet{Code: eap.CodeResponse, Identifier: 0, Type: eap.TypeIdentity, Data: []byte(r.s.User)}).Marshal()
	out, res, err := r.Process(ident)
	if err != nil {
		return nil, err
	}
	if res != nil {
		return nil, fmt.Errorf("RADIUS server ended the conversation before any method ran (%v)", res.Err)
	}
	return out, nil
}

// Process relays the client's response and returns the server's next packet; at the end (Accept
// or Reject) the Result too.
func (r *EAPRelay) Process(resp []byte) ([]byte, *eap.Result, error) {
	build := func(secret []byte) (*radius.Packet, error) {
		p := radius.New(radius.CodeAccessRequest, secret)
		rfc2865.UserName_SetString(p, r.s.User)
		r.c.base(p, &r.s)
		// Split into attributes of at most 253 bytes (RFC 3579 §3.1).
		rfc2869.EAPMessage_Set(p, resp)
		if r.state != nil {
			rfc2865.State_Set(p, r.state)
		}
		return p, nil
	}
	// A conversation stays with the server that holds its State (another would not know it).
	var only *Server
	if r.state != nil {
		only = r.server
	}
	// A Success or Failure made up for a server that sent none answers this response: its
	// Identifier must match the response's (RFC 3748 §4.2).
	if len(resp) >= 2 {
		r.lastID = resp[1]
	}
	ans, req, srv, err := r.c.exchange(false, only, build)
	if err != nil {
		return nil, nil, err
	}
	r.server = &srv
	msg := joinEAP(ans)
	switch ans.Code {
	case radius.CodeAccessChallenge:
		if len(msg) == 0 {
			return nil, nil, errors.New("Access-Challenge without EAP-Message")
		}
		r.state = rfc2865.State_Get(ans)
		return msg, nil, nil
	case radius.CodeAccessAccept:
		res := &eap.Result{Success: true, Identity: r.s.User}
		if p, err := eap.Parse(msg); err == nil && p.Code != eap.CodeSuccess {
			return nil, nil, fmt.Errorf("Access-Accept carries EAP code %d, not Success", p.Code)
		}
		if len(msg) == 0 {
			msg = (&eap.Packet{Code: eap.CodeSuccess, Identifier: r.lastID}).Marshal()
		}
		// MSK = MS-MPPE-Recv-Key | MS-MPPE-Send-Key (RFC 3748 §7.10 via RFC 2548, as strongSwan
		// and FreeRADIUS split it); methods without a key leave both out.
		recv := microsoft.MSMPPERecvKey_Get(ans, req)
		send := microsoft.MSMPPESendKey_Get(ans, req)
		if len(recv) > 0 && len(send) > 0 {
			res.MSK = append(append([]byte(nil), recv...), send...)
		}
		if ip := rfc2865.FramedIPAddress_Get(ans); ip != nil {
			if a, ok := netip.AddrFromSlice(ip); ok {
				res.FramedIPs = append(res.FramedIPs, a.Unmap())
			}
		}
		if ip := rfc6911.FramedIPv6Address_Get(ans); ip != nil {
			if a, ok := netip.AddrFromSlice(ip); ok {
				res.FramedIPs = append(res.FramedIPs, a)
			}
		}
		res.FramedPool = rfc2869.FramedPool_GetString(ans)
		for _, c := range ans.Attributes {
			if c.Type == rfc2865.Class_Type {
				res.Class = append(res.Class, append([]byte(nil), c.Attribute...))
			}
		}
		return msg, res, nil
	case radius.CodeAccessReject:
		if len(msg) == 0 {
			msg = (&eap.Packet{Code: eap.CodeFailure, Identifier: r.lastID}).Marshal()
		}
		reason := rfc2865.ReplyMessage_GetString(ans)
		if reason == "" {
			reason = "Access-Reject"
		}
		return msg, &eap.Result{Identity: r.s.User, Err: fmt.Errorf("RADIUS server %s: %s", srv.Name, reason)}, nil
	}
	return nil, nil, fmt.Errorf("unexpected RADIUS code %v", ans.Code)
}

// Blocking marks the relay's steps as blocking (ike.EAPServerSpec.Blocking).
func (r *EAPRelay) Blocking() bool { return true }

// joinEAP concatenates the EAP-Message attributes (RFC 3579 §3.1).
func joinEAP(p *radius.Packet) []byte { return rfc2869.EAPMessage_Get(p) }
