package radius

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/vendors/microsoft"
)

// PPPMethod is a PPP authentication protocol the L2TP server relays to RADIUS.
type PPPMethod uint8

// PPP authentication protocols.
const (
	PPPPAP PPPMethod = iota + 1
	PPPCHAP
	PPPMSCHAPv2
)

// PPPAuth is one PPP authentication to check with a RADIUS server, as pppd's radius plugin sends
// it: PAP as User-Password (RFC 2865 §5.2), CHAP-MD5 as CHAP-Password and CHAP-Challenge
// (RFC 2865 §5.3, §5.40), MS-CHAPv2 as MS-CHAP-Challenge and MS-CHAP2-Response (RFC 2548
// §2.3.2, §2.3.4). The server recomputes the response from the user's password; goipsec never
// sees it.
type PPPAuth struct {
	Method   PPPMethod
	User     string
	Password string // PAP
	// ID is the CHAP Identifier; Challenge the authenticator challenge we sent; PeerChallenge
	// MS-CHAPv2's (16 bytes); Response CHAP-MD5's 16 bytes or MS-CHAPv2's NT-Response (24).
	ID            byte
	Challenge     []byte
	PeerChallenge []byte
	Response      []byte
}

// PPPResult is the server's answer.
type PPPResult struct {
	OK bool
	// Reason is the Reply-Message of a reject (or "Access-Reject").
	Reason string
	// AuthenticatorResponse is MS-CHAPv2's "S=<40 hex digits>" from MS-CHAP2-Success (RFC 2548
	// §2.3.3), for the client to check the server knew its password.
	AuthenticatorResponse string
	// FramedIP is Framed-IP-Address when the server gave one; Class the Class attributes.
	FramedIP netip.Addr
	Class    [][]byte
}

// pppAttributes adds a PPP authentication's attributes to an Access-Request (p carries the
// Request Authenticator User-Password is hidden with).
func pppAttributes(p *radius.Packet, a PPPAuth) error {
	if err := rfc2865.UserName_SetString(p, a.User); err != nil {
		return err
	}
	rfc2865.FramedProtocol_Set(p, rfc2865.FramedProtocol_Value_PPP)
	switch a.Method {
	case PPPPAP:
		// RFC 2865 §5.2: at most 128 octets.
		if len(a.Password) > 128 {
			return errors.New("PAP password longer than 128 bytes")
		}
		return rfc2865.UserPassword_SetString(p, a.Password)
	case PPPCHAP:
		// RFC 2865 §5.3: CHAP Ident (1) then the 16-byte response; §5.40: the challenge.
		if len(a.Response) != 16 || len(a.Challenge) == 0 {
			return errors.New("CHAP response must be 16 bytes, with a challenge")
		}
		if err := rfc2865.CHAPPassword_Set(p, append([]byte{a.ID}, a.Response...)); err != nil {
			return err
		}
		return rfc2865.CHAPChallenge_Set(p, a.Challenge)
	case PPPMSCHAPv2:
		// RFC 2548 §2.3.2: Ident (1), Flags (1, zero), Peer-Challenge (16), Reserved (8, zero),
		// Response (24); §2.3.4: MS-CHAP-Challenge is the authenticator challenge (16).
		if len(a.Challenge) != 16 || len(a.PeerChallenge) != 16 || len(a.Response) != 24 {
			return errors.New("MS-CHAPv2 needs 16-byte challenges and a 24-byte NT-Response")
		}
		v := make([]byte, 0, 50)
		v = append(v, a.ID, 0)
		v = append(v, a.PeerChallenge...)
		v = append(v, make([]byte, 8)...)
		v = append(v, a.Response...)
		if err := microsoft.MSCHAPChallenge_Set(p, a.Challenge); err != nil {
			return err
		}
		return microsoft.MSCHAP2Response_Set(p, v)
	}
	return fmt.Errorf("unknown PPP authentication method %d", a.Method)
}

// AuthenticatePPP asks the servers (in order, with failover) whether a PPP user's credentials
// are good. It blocks for up to the configured timeout per server: callers run it outside the
// session owner. An error means no verdict (no server answered, or a malformed answer).
func (c *Client) AuthenticatePPP(s Session, a PPPAuth) (PPPResult, error) {
	build := func(secret []byte) (*radius.Packet, error) {
		p := radius.New(radius.CodeAccessRequest, secret)
		c.base(p, &s)
		return p, pppAttributes(p, a)
	}
	ans, _, srv, err := c.exchange(false, nil, build)
	if err != nil {
		return PPPResult{}, err
	}
	switch ans.Code {
	case radius.CodeAccessAccept:
		res := PPPResult{OK: true}
		if a.Method == PPPMSCHAPv2 {
			// RFC 2548 §2.3.3: Ident (1) then "S=" and 40 hex digits (RFC 2759 §5).
			v := microsoft.MSCHAP2Success_Get(ans)
			if len(v) != 43 || v[0] != a.ID || !strings.HasPrefix(string(v[1:]), "S=") {
				return PPPResult{}, fmt.Errorf("RADIUS server %s: Access-Accept without a valid MS-CHAP2-Success", srv.Name)
			}
			res.AuthenticatorResponse = string(v[1:])
		}
		if ip := rfc2865.FramedIPAddress_Get(ans); ip != nil {
			if a, ok := netip.AddrFromSlice(ip); ok {
				res.FramedIP = a.Unmap()
			}
		}
		for _, x := range ans.Attributes {
			if x.Type == rfc2865.Class_Type {
				res.Class = append(res.Class, append([]byte(nil), x.Attribute...))
			}
		}
		return res, nil
	case radius.CodeAccessReject:
		reason := rfc2865.ReplyMessage_GetString(ans)
		if reason == "" {
			reason = "Access-Reject"
		}
		return PPPResult{Reason: fmt.Sprintf("RADIUS server %s: %s", srv.Name, reason)}, nil
	}
	// An Access-Challenge would need a second round PPP cannot carry.
	return PPPResult{}, fmt.Errorf("RADIUS server %s: unexpected %v to a PPP authentication", srv.Name, ans.Code)
}
