package ikev1

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/netip"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ikev1/wire"
)

// XAuth (draft-ietf-ipsec-isakmp-xauth-06) and Mode Config (draft-ietf-ipsec-isakmp-mode-cfg-05),
// the server side that Cisco-style "IPsec" clients need: after Main or Aggressive Mode with the
// XAUTHInitPreShared method, the server asks for a user name and password (REQUEST/REPLY) and
// reports the result (SET/ACK); the client then asks for its address (REQUEST/REPLY, "pull"),
// which comes from a pool. Each of these is a Transaction exchange (type 6) of its own message
// ID, protected like an informational exchange: HASH = prf(SKEYID_a, M-ID | ATTR).

// Mode Config and XAuth attribute types.
const (
	cfgInternalIP4Address = 1
	cfgInternalIP4Netmask = 2
	cfgInternalIP4DNS     = 3
	xauthType             = 16520
	xauthUserName         = 16521
	xauthUserPassword     = 16522
	xauthStatus           = 16527
	xauthTypeGeneric      = 0
)

// Addresses leases virtual IPs (pool.Pool implements it). A lease ends by identity and address:
// one identity may hold several addresses (a second device, an IKEv2 SA of the same user).
type Addresses interface {
	Acquire(id string) (netip.Addr, error)
	ReleaseAddr(id string, a netip.Addr) bool
}

// txn is a Transaction exchange in progress.
type txn struct {
	msgID uint32
	iv    []byte
	kind  uint8
}

const (
	txnXAuthRequest = iota + 1 // we asked for credentials
	txnXAuthSet                // we sent the result
)

// VirtualIP is the address Mode Config gave the peer (invalid: none).
func (sa *SA) VirtualIP() netip.Addr { return sa.vip }

// User is the XAuth user name (empty: no XAuth).
func (sa *SA) User() string { return sa.xauthUser }

// xauthPending reports whether phase 1 is done but the peer still has to pass XAuth: the SA is
// not up for IKEUp, Quick Mode or status until it has.
func (sa *SA) xauthPending() bool {
	return sa.cfg != nil && sa.cfg.XAuth && !sa.Initiator && !sa.xauthDone
}

// startXAuth asks the client for its credentials.
func (sa *SA) startXAuth() {
	sa.sendTransaction(txnXAuthRequest, wire.CfgRequest, []wire.Attr{
		wire.BasicAttr(xauthType, xauthTypeGeneric), {Type: xauthUserName}, {Type: xauthUserPassword}})
}

func (sa *SA) sendTransaction(kind uint8, t wire.CfgType, attrs []wire.Attr) {
	msgID, err := sa.newMsgID()
	if err != nil {
		return
	}
	iv := exchangeIV(sa.keys.prf, sa.keys.enc, sa.iv, msgID)
	b, next, err := sa.sealHashed(wire.ExchangeTransaction, msgID, iv, nil, 0, &wire.Attributes{CfgType: t, Attrs: attrs})
	if err != nil {
		return
	}
	sa.txns[msgID] = &txn{msgID: msgID, iv: next, kind: kind}
	sa.send(b, msgID, true, func() {
		delete(sa.txns, msgID)
		sa.fail(errorf(0, "peer %s did not answer the XAuth exchange", sa.Remote))
	})
}

// handleTransaction processes a Transaction message.
func (sa *SA) handleTransaction(b []byte, h wire.Header) error {
	if sa.state != StateEstablished || sa.keys == nil {
		return nil
	}
	t := sa.txns[h.MessageID]
	iv := exchangeIV(sa.keys.prf, sa.keys.enc, sa.iv, h.MessageID)
	if t != nil {
		iv = t.iv
	}
	ps, next, err := sa.open(b, h, iv)
	if err != nil || len(ps) < 2 {
		return nil
	}
	hash, ok := ps[0].(*wire.Hash)
	if !ok || !hmac.Equal(hash.Data, sa.quickHash(h.MessageID, nil, rawAfter(ps))) {
		return nil
	}
	attrs := find[*wire.Attributes](ps)
	if attrs == nil {
		return nil
	}
	sa.seen()
	if t != nil {
		delete(sa.txns, t.msgID)
		delete(sa.out, t.msgID)
		sa.answered(b, h.MessageID, nil)
		switch {
		case t.kind == txnXAuthRequest && attrs.CfgType == wire.CfgReply:
			return sa.xauthReply(attrs)
		case t.kind == txnXAuthSet && attrs.CfgType == wire.CfgAck:
			if sa.xauthOK {
				sa.xauthDone = true
				sa.up()
			} else {
				return &Error{Msg: fmt.Sprintf("XAuth of user %q failed", sa.xauthUser), Reason: ike.ReasonAuthFailed}
			}
		}
		return nil
	}
	// A request of the peer: Mode Config (pull).
	if attrs.CfgType != wire.CfgRequest || sa.Initiator {
		sa.answered(b, h.MessageID, nil)
		return nil
	}
	if sa.xauthPending() {
		return nil // no address before the user is known
	}
	reply, err := sa.modeConfigReply(attrs)
	if err != nil {
		sa.answered(b, h.MessageID, nil)
		return err
	}
	out, _, err := sa.sealed(sa.header(wire.ExchangeTransaction, h.MessageID, 0), next, sa.hashed(h.MessageID, reply)...)
	if err != nil {
		return err
	}
	sa.answered(b, h.MessageID, out)
	sa.send(out, h.MessageID, false, nil)
	return nil
}

// hashed prefixes a payload with its HASH = prf(SKEYID_a, M-ID | payload).
func (sa *SA) hashed(msgID uint32, p wire.Payload) []wire.Payload {
	raw, _ := wire.EncodePayloads([]wire.Payload{p})
	return []wire.Payload{&wire.Hash{Data: sa.quickHash(msgID, nil, raw)}, p}
}

// xauthReply checks the client's credentials and sends the verdict.
func (sa *SA) xauthReply(a *wire.Attributes) error {
	var user, pass string
	for _, x := range a.Attrs {
		switch x.Type {
		case xauthUserName:
			user = string(x.Data)
		case xauthUserPassword:
			pass = string(x.Data)
		}
	}
	sa.xauthUser = user
	want, ok := "", false
	if sa.cfg.Users != nil {
		want, ok = sa.cfg.Users(user)
	}
	sa.xauthOK = ok && hmac.Equal([]byte(want), []byte(pass))
	status := uint16(0)
	if sa.xauthOK {
		status = 1
	}
	sa.sendTransaction(txnXAuthSet, wire.CfgSet, []wire.Attr{wire.BasicAttr(xauthStatus, status)})
	if !sa.xauthOK {
		sa.emit(ike.Failed{Conn: sa.Name(), Err: fmt.Errorf("XAuth: user %q from %s gave a wrong password or is unknown", user, sa.Remote)})
	}
	return nil
}

var errNoPool = errors.New("the connection has no pool for Mode Config")

// modeConfigReply leases an address and answers what the client asked for.
func (sa *SA) modeConfigReply(req *wire.Attributes) (*wire.Attributes, error) {
	if sa.cfg.Pool == nil {
		return nil, errorf(0, "Mode Config request from %s: %v", sa.Remote, errNoPool)
	}
	if !sa.vip.IsValid() {
		id := sa.xauthUser
		if id == "" {
			id = sa.RemoteID.String()
		}
		a, err := sa.cfg.Pool.Acquire(id)
		if err != nil {
			return nil, errorf(0, "Mode Config: no address for %s: %v", id, err)
		}
		sa.vip, sa.vipLease = a, id
	}
	reply := &wire.Attributes{CfgType: wire.CfgReply, Identifier: req.Identifier}
	for _, x := range req.Attrs {
		switch x.Type {
		case cfgInternalIP4Address:
			reply.Attrs = append(reply.Attrs, wire.Attr{Type: cfgInternalIP4Address, Data: sa.vip.AsSlice()})
		case cfgInternalIP4Netmask:
			reply.Attrs = append(reply.Attrs, wire.Attr{Type: cfgInternalIP4Netmask, Data: []byte{255, 255, 255, 255}})
		case cfgInternalIP4DNS:
			for _, d := range sa.cfg.DNS {
				if d.Is4() {
					reply.Attrs = append(reply.Attrs, wire.Attr{Type: cfgInternalIP4DNS, Data: d.AsSlice()})
				}
			}
		}
	}
	if len(reply.Attrs) == 0 {
		reply.Attrs = append(reply.Attrs, wire.Attr{Type: cfgInternalIP4Address, Data: sa.vip.AsSlice()})
	}
	return reply, nil
}

// releaseVIP returns the virtual IP to the pool.
func (sa *SA) releaseVIP() {
	if sa.vipLease != "" && sa.cfg != nil && sa.cfg.Pool != nil {
		sa.cfg.Pool.ReleaseAddr(sa.vipLease, sa.vip)
	}
	sa.vipLease = ""
}
