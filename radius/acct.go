package radius

import (
	"net/netip"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

// Usage are a session's counters (the sum of its Child SAs').
type Usage struct {
	InOctets, OutOctets, InPackets, OutPackets uint64
}

// Record is one accounting record (RFC 2866).
type Record struct {
	Status  rfc2866.AcctStatusType
	Session Session
	// Start is when the session began (Acct-Session-Time); VIPs the client's addresses; Class
	// the values of the Access-Accept, echoed (RFC 2865 §5.25).
	Start time.Time
	VIPs  []netip.Addr
	Class [][]byte
	Usage Usage
	// Cause is Acct-Terminate-Cause of a Stop.
	Cause rfc2866.AcctTerminateCause
}

// TerminateCause maps why an IKE SA went to RFC 2866 §5.10: the client left, the peer is gone, an
// administrator or the server ended it, the daemon stopped.
func TerminateCause(peerDeleted, deadPeer, admin, shutdown bool) rfc2866.AcctTerminateCause {
	switch {
	case peerDeleted:
		return rfc2866.AcctTerminateCause_Value_UserRequest
	case deadPeer:
		return rfc2866.AcctTerminateCause_Value_LostService
	case shutdown:
		return rfc2866.AcctTerminateCause_Value_NASReboot
	case admin:
		return rfc2866.AcctTerminateCause_Value_AdminReset
	}
	return rfc2866.AcctTerminateCause_Value_NASError
}

// Account sends an Accounting-Request and waits for the Accounting-Response (it blocks: callers
// run it on a goroutine of their own).
func (c *Client) Account(r Record) error {
	now := time.Now()
	_, _, _, err := c.exchange(true, nil, func(secret []byte) (*radius.Packet, error) {
		p := radius.New(radius.CodeAccountingRequest, secret)
		rfc2866.AcctStatusType_Set(p, r.Status)
		rfc2866.AcctSessionID_SetString(p, r.Session.ID)
		rfc2865.UserName_SetString(p, r.Session.User)
		c.base(p, &r.Session)
		for _, a := range r.VIPs {
			if a.Is4() {
				rfc2865.FramedIPAddress_Set(p, a.AsSlice())
			}
		}
		for _, cl := range r.Class {
			rfc2865.Class_Add(p, cl)
		}
		rfc2869.EventTimestamp_Set(p, now)
		if r.Status != rfc2866.AcctStatusType_Value_Start {
			rfc2866.AcctSessionTime_Set(p, rfc2866.AcctSessionTime(now.Sub(r.Start)/time.Second))
			// Octets beyond 32 bits go into the Gigawords attributes (RFC 2869 §5.1).
			rfc2866.AcctInputOctets_Set(p, rfc2866.AcctInputOctets(uint32(r.Usage.InOctets)))
			rfc2866.AcctOutputOctets_Set(p, rfc2866.AcctOutputOctets(uint32(r.Usage.OutOctets)))
			rfc2869.AcctInputGigawords_Set(p, rfc2869.AcctInputGigawords(r.Usage.InOctets>>32))
			rfc2869.AcctOutputGigawords_Set(p, rfc2869.AcctOutputGigawords(r.Usage.OutOctets>>32))
			rfc2866.AcctInputPackets_Set(p, rfc2866.AcctInputPackets(uint32(r.Usage.InPackets)))
			rfc2866.AcctOutputPackets_Set(p, rfc2866.AcctOutputPackets(uint32(r.Usage.OutPackets)))
		}
		if r.Status == rfc2866.AcctStatusType_Value_Stop {
			rfc2866.AcctTerminateCause_Set(p, r.Cause)
		}
		return p, nil
	})
	return err
}
