package ike

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/goipsec/goipsec/ike/wire"
)

// Redirect (RFC 5685). A client announces REDIRECT_SUPPORTED in IKE_SA_INIT (REDIRECTED_FROM when
// it follows a redirect). A gateway sends it elsewhere in its IKE_SA_INIT response (with the
// client's nonce, §4), in its last IKE_AUTH response (§6) or in an INFORMATIONAL request of an
// established IKE SA (§5). The client verifies what it can, reports Redirected (the daemon
// connects to the new gateway) and lets the old IKE SA go.

// GW Identity types (RFC 5685 §8).
const (
	gwIPv4 = 1
	gwIPv6 = 2
	gwFQDN = 3
)

// Redirected reports that a gateway sent a client elsewhere: the daemon initiates the connection
// to To (an address, or a name to resolve) and announces REDIRECTED_FROM From.
type Redirected struct {
	IKE  IKEInfo
	To   string
	From netip.Addr
}

func (Redirected) isEffect() {}

// encodeGW encodes a gateway identity, an address or a name, and an optional nonce.
func encodeGW(gw string, nonce []byte) ([]byte, error) {
	var t byte
	var id []byte
	if a, err := netip.ParseAddr(gw); err == nil {
		t, id = gwIPv4, a.Unmap().AsSlice()
		if a.Unmap().Is6() {
			t = gwIPv6
		}
	} else {
		if len(gw) == 0 || len(gw) > 255 {
			return nil, fmt.Errorf("gateway name of %d bytes", len(gw))
		}
		t, id = gwFQDN, []byte(gw)
	}
	b := append([]byte{t, byte(len(id))}, id...)
	return append(b, nonce...), nil
}

// decodeGW reads a GW identity and what follows it (the nonce of §4).
func decodeGW(b []byte) (string, []byte, error) {
	if len(b) < 2 || len(b) < 2+int(b[1]) {
		return "", nil, fmt.Errorf("malformed gateway identity")
	}
	id, rest := b[2:2+int(b[1])], b[2+int(b[1]):]
	switch b[0] {
	case gwIPv4, gwIPv6:
		a, ok := netip.AddrFromSlice(id)
		if !ok || (b[0] == gwIPv4) != a.Is4() {
			return "", nil, fmt.Errorf("gateway address of %d bytes", len(id))
		}
		return a.String(), rest, nil
	case gwFQDN:
		if len(id) == 0 {
			return "", nil, fmt.Errorf("empty gateway name")
		}
		return string(id), rest, nil
	}
	return "", nil, fmt.Errorf("gateway identity type %d", b[0])
}

// redirectInitPayload is what a client adds to IKE_SA_INIT.
func (sa *SA) redirectInitPayload() *wire.Notify {
	if from := sa.Config.RedirectedFrom; from.IsValid() {
		data, _ := encodeGW(from.String(), nil)
		return &wire.Notify{NotifyType: wire.RedirectedFrom, Data: data}
	}
	return &wire.Notify{NotifyType: wire.RedirectSupported}
}

// redirectInInit handles a REDIRECT in the IKE_SA_INIT response: the nonce must be ours (§4: an
// off-path attacker cannot send us elsewhere).
func (sa *SA) redirectInInit(ps []wire.Payload) (bool, error) {
	n := findNotify(ps, wire.Redirect)
	if n == nil {
		return false, nil
	}
	gw, nonce, err := decodeGW(n.Data)
	if err != nil || !bytes.Equal(nonce, sa.hs.Ni) {
		return true, errorf(0, "ignoring a REDIRECT from %s that does not carry our nonce", sa.Remote)
	}
	sa.emit(Redirected{IKE: sa.Info(), To: gw, From: sa.Remote.Addr()})
	e := errorf(0, "gateway %s redirects us to %s (RFC 5685)", sa.Remote, gw)
	e.Reason = ReasonRedirected
	return true, e
}

// redirectAfterAuth handles a REDIRECT in the last IKE_AUTH response (§6): the client is
// authenticated, goes to the new gateway and deletes this IKE SA.
func (sa *SA) redirectAfterAuth(ps []wire.Payload) {
	n := findNotify(ps, wire.Redirect)
	if n == nil {
		return
	}
	gw, _, err := decodeGW(n.Data)
	if err != nil {
		return
	}
	sa.emit(Redirected{IKE: sa.Info(), To: gw, From: sa.Remote.Addr()})
	sa.QueueDeleteIKE(ReasonRedirected)
}

// respondRedirect handles a gateway's INFORMATIONAL REDIRECT (§5) on an established IKE SA.
func (sa *SA) respondRedirect(req *Message) bool {
	n := findNotify(req.Payloads, wire.Redirect)
	if n == nil || !sa.Initiator {
		return false
	}
	gw, _, err := decodeGW(n.Data)
	if err != nil {
		return false
	}
	sa.emit(Redirected{IKE: sa.Info(), To: gw, From: sa.Remote.Addr()})
	sa.QueueDeleteIKE(ReasonRedirected)
	return true
}

// redirectRefusal answers an IKE_SA_INIT request with REDIRECT when the connection sends every
// client elsewhere (PeerConfig.RedirectTo) and the client supports it. ok false: go on.
func redirectRefusal(cfg *PeerConfig, req []wire.Payload, ni []byte, remote netip.AddrPort) (*Error, []byte, bool) {
	if cfg.RedirectTo == "" || findNotify(req, wire.RedirectSupported) == nil {
		return nil, nil, false
	}
	data, err := encodeGW(cfg.RedirectTo, ni)
	if err != nil {
		return nil, nil, false
	}
	e := errorf(wire.Redirect, "redirecting %s to %s (connection %s: redirect_to)", remote, cfg.RedirectTo, cfg.Name)
	e.Reason = ReasonNone // a normal step, not a failed negotiation
	return e, data, true
}

// QueueRedirect sends the client of an established IKE SA to another gateway (§5); false when the
// client does not support redirects or the SA is not up.
func (sa *SA) QueueRedirect(gw string) bool {
	if sa.Initiator || !sa.peerRedirect || !sa.state.Up() {
		return false
	}
	data, err := encodeGW(gw, nil)
	if err != nil {
		return false
	}
	sa.enqueue(&redirectTask{data: data})
	return true
}

// redirectTask is a gateway's INFORMATIONAL with REDIRECT.
type redirectTask struct{ data []byte }

func (*redirectTask) Kind() TaskKind              { return TaskRedirect }
func (*redirectTask) Exchange() wire.ExchangeType { return wire.ExchangeInformational }
func (*redirectTask) abort(*SA)                   {}

func (t *redirectTask) build(_ *SA, req *Message) error {
	req.add(&wire.Notify{NotifyType: wire.Redirect, Data: t.data})
	return nil
}

func (*redirectTask) process(*SA, *Message) (bool, error) { return false, nil }
