package ike

import (
	"bytes"
	"crypto/subtle"
	"strings"

	"github.com/goipsec/goipsec/ike/suite"
	"github.com/goipsec/goipsec/ike/wire"
)

// PPKs in IKE_INTERMEDIATE (RFC 9867). RFC 8784 mixes the PPK into SK_d, SK_pi and SK_pr only
// for IKE_AUTH, so the IKE SA that carries IKE_AUTH (and the identities in it) is protected by
// Diffie-Hellman alone. RFC 9867 moves the PPK into IKE_INTERMEDIATE, before IKE_AUTH:
//
//	IKE_SA_INIT     HDR, SAi1, KEi, Ni, N(INTERMEDIATE_EXCHANGE_SUPPORTED), N(USE_PPK_INT), N(USE_PPK) -->
//	                <-- HDR, SAr1, KEr, Nr, N(INTERMEDIATE_EXCHANGE_SUPPORTED), N(USE_PPK_INT)
//	IKE_INTERMEDIATE HDR, SK {[KEi(n),] N(PPK_IDENTITY_KEY, PPK_ID | PPK Confirmation)} -->
//	                <-- HDR, SK {[KEr(n),] N(PPK_IDENTITY, PPK_ID)}
//
// The initiator announces both USE_PPK_INT (16445) and USE_PPK (16435); a responder that knows
// RFC 9867 answers USE_PPK_INT alone, one that knows only RFC 8784 (strongSwan 6.0.1) answers
// USE_PPK, and goipsec then uses RFC 8784 in IKE_AUTH as before. The PPK rides in the last
// IKE_INTERMEDIATE exchange, after any additional key exchanges (RFC 9370), or in one of its own
// when there are none. PPK_IDENTITY_KEY (16446) carries a PPK_ID (type PPK_ID_FIXED, as in RFC
// 8784 §5.1) and the PPK Confirmation, the first 8 octets of prf(PPK, Ni | Nr | SPIi | SPIr):
// a responder holding a different key under that PPK_ID sees the mismatch there, before any key
// depends on it. A responder that finds the PPK answers PPK_IDENTITY with its PPK_ID, and both
// derive every IKE SA key anew (suite.PPKIntermediateKeys):
//
//	SKEYSEED' = prf+(PPK, SK_d)
//	{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED', Ni | Nr | SPIi | SPIr)
//
// A responder without a matching PPK answers without PPK_IDENTITY when it does not require one
// (the IKE SA then goes on without PPK), or with AUTHENTICATION_FAILED when it does. IKE_AUTH is
// plain: the IntAuth chain of RFC 9242 already covers PPK_IDENTITY_KEY and PPK_IDENTITY, and
// AUTH is computed with the keys that contain the PPK.
//
// The message flow, the notify numbers and PPK_IDENTITY_KEY's layout follow Libreswan's
// implementation of draft-ietf-ipsecme-ikev2-qr-alt-04, the draft that became RFC 9867 (the only
// other implementation known here); the RFC text itself could not be consulted (see
// docs/post-quantum-and-tcp.md).

// offersPPKIntermediate reports whether the configuration announces RFC 9867.
func (c *PeerConfig) offersPPKIntermediate() bool { return c.wantsPPK() && !c.PPKNoIntermediate }

// initiatorPPKMode records what the responder's IKE_SA_INIT answered about PPKs.
func (sa *SA) initiatorPPKMode(ps []wire.Payload) {
	if !sa.Config.wantsPPK() {
		return
	}
	st := sa.ppk()
	st.intermediate = sa.Config.offersPPKIntermediate() && findNotify(ps, wire.UsePPKInt) != nil &&
		findNotify(ps, wire.IntermediateExchangeSupported) != nil
	st.peer = st.intermediate || findNotify(ps, wire.UsePPK) != nil
}

// responderPPKNotify decides what the responder answers in IKE_SA_INIT about PPKs: USE_PPK_INT
// when the initiator announced it with IKE_INTERMEDIATE support, USE_PPK when it announced only
// RFC 8784, never both (as Libreswan does, and as public notes quote RFC 9867 §3.1 to require);
// nothing when cfg cannot look PPKs up.
func (sa *SA) responderPPKNotify(cfg *PeerConfig, req []wire.Payload) wire.Payload {
	if cfg.PPK == nil {
		return nil
	}
	if !cfg.PPKNoIntermediate && findNotify(req, wire.UsePPKInt) != nil && findNotify(req, wire.IntermediateExchangeSupported) != nil {
		st := sa.ppk()
		st.peer, st.intermediate = true, true
		return &wire.Notify{NotifyType: wire.UsePPKInt}
	}
	if findNotify(req, wire.UsePPK) != nil {
		// RFC 8784 §3: we can look PPKs up; whether one is used is decided in IKE_AUTH.
		sa.ppk().peer = true
		return &wire.Notify{NotifyType: wire.UsePPK}
	}
	return nil
}

// initiatorPPKKey returns the PPK the initiator offers in IKE_INTERMEDIATE, or nil when RFC 9867
// is not in use or it has no PPK secret of its ppk_id (ppk_required then fails before IKE_AUTH).
func (sa *SA) initiatorPPKKey() []byte {
	cfg := sa.Config
	if sa.hs == nil || sa.hs.ppk == nil || !sa.hs.ppk.intermediate || len(cfg.PPKID) == 0 || cfg.PPK == nil {
		return nil
	}
	key, ok := cfg.PPK(cfg.PPKID)
	if !ok || len(key) == 0 {
		return nil
	}
	return key
}

// parsePPKIdentityKey splits PPK_IDENTITY_KEY's data (RFC 9867) into the PPK_ID's identity and
// the PPK Confirmation: PPK_ID type (1 octet, only PPK_ID_FIXED is known), the identity (at least
// one octet) and the confirmation (the last 8 octets). The results alias data.
func parsePPKIdentityKey(data []byte) (id, conf []byte, ok bool) {
	if len(data) < 2+suite.PPKConfirmationSize || data[0] != ppkIDFixed {
		return nil, nil, false
	}
	n := len(data) - suite.PPKConfirmationSize
	return data[1:n], data[n:], true
}

// ppkIdentityKey builds the initiator's PPK_IDENTITY_KEY notification for key.
func (sa *SA) ppkIdentityKey(key []byte) (*wire.Notify, error) {
	conf, err := suite.PPKConfirmation(sa.prf, key, sa.hs.Ni, sa.hs.Nr, ikeSPIBytes(sa.SPIi), ikeSPIBytes(sa.SPIr))
	if err != nil {
		return nil, err
	}
	data := make([]byte, 0, 1+len(sa.Config.PPKID)+len(conf))
	data = append(append(append(data, ppkIDFixed), sa.Config.PPKID...), conf...)
	return &wire.Notify{NotifyType: wire.PPKIdentityKey, Data: data}, nil
}

// mixPPKIntermediate derives the keys with the PPK from base (RFC 9867), checking once that they
// fit the transforms as deriveAddKE does.
func (sa *SA) mixPPKIntermediate(base *suite.Keys, key []byte) (*keySet, error) {
	keys, err := suite.PPKIntermediateKeys(sa.transforms, base, key, sa.hs.Ni, sa.hs.Nr, ikeSPIBytes(sa.SPIi), ikeSPIBytes(sa.SPIr))
	if err != nil {
		return nil, err
	}
	if err := keys.Fit(sa.transforms); err != nil {
		keys.Zero()
		return nil, err
	}
	return &keySet{keys: keys}, nil
}

// initiatorPPKResponse handles the responder's answer to our PPK_IDENTITY_KEY, after the keys of
// any additional key exchange of the same exchange are in force.
func (sa *SA) initiatorPPKResponse(key []byte, ps []wire.Payload) error {
	cfg := sa.Config
	idn := findNotify(ps, wire.PPKIdentity)
	if idn == nil {
		if cfg.PPKRequired {
			return errorf(0, "peer %s does not accept our post-quantum preshared key %q (no PPK_IDENTITY in the IKE_INTERMEDIATE response, RFC 9867): it has no key with that id, or a different one", sa.Remote, cfg.PPKID)
		}
		sa.emit(Failed{Conn: sa.name(), Retry: true, Err: errorf(0, "peer %s does not accept our post-quantum preshared key %q (RFC 9867): continuing without it, the IKE SA is not quantum-safe", sa.Remote, cfg.PPKID)})
		return nil
	}
	if len(idn.Data) < 2 || idn.Data[0] != ppkIDFixed || !bytes.Equal(idn.Data[1:], cfg.PPKID) {
		return errorf(0, "peer %s answered PPK_IDENTITY %q, but we offered %q (RFC 9867)", sa.Remote, ppkIDString(idn.Data), cfg.PPKID)
	}
	ks, err := sa.mixPPKIntermediate(sa.keys, key)
	if err != nil {
		return err
	}
	sa.useKeys(ks)
	sa.PPK = true
	return nil
}

// responderPPKIntermediate handles the initiator's PPK_IDENTITY_KEY notifications in an
// IKE_INTERMEDIATE request. last tells whether this is the last IKE_INTERMEDIATE exchange (no
// additional key exchange is pending), the only one that may carry them. It returns the payloads
// to add to the response, or the error to refuse the request with.
func (sa *SA) responderPPKIntermediate(ns []*wire.Notify, last bool) ([]wire.Payload, *Error) {
	cfg := sa.Config
	st := sa.hs.ppk
	switch {
	case st == nil || !st.intermediate:
		return nil, errorf(wire.InvalidSyntax, "peer %s sent PPK_IDENTITY_KEY without USE_PPK_INT in IKE_SA_INIT (RFC 9867)", sa.Remote)
	case !last:
		return nil, errorf(wire.InvalidSyntax, "peer %s sent PPK_IDENTITY_KEY before the last additional key exchange (RFC 9867)", sa.Remote)
	case sa.PPK:
		return nil, errorf(wire.InvalidSyntax, "peer %s sent PPK_IDENTITY_KEY twice (RFC 9867)", sa.Remote)
	}
	var offered, wrongKey []string
	for _, n := range ns {
		id, conf, ok := parsePPKIdentityKey(n.Data)
		if !ok {
			return nil, errorf(wire.InvalidSyntax, "peer %s sent a malformed PPK_IDENTITY_KEY (%d bytes; want PPK_ID_FIXED, an id and an %d-byte confirmation, RFC 9867)", sa.Remote, len(n.Data), suite.PPKConfirmationSize)
		}
		offered = append(offered, string(id))
		if cfg.PPK == nil {
			continue
		}
		key, ok := cfg.PPK(id)
		if !ok || len(key) == 0 {
			continue
		}
		want, err := suite.PPKConfirmation(sa.prf, key, sa.hs.Ni, sa.hs.Nr, ikeSPIBytes(sa.SPIi), ikeSPIBytes(sa.SPIr))
		if err != nil {
			return nil, errorf(wire.AuthenticationFailed, "PPK: %v", err)
		}
		if subtle.ConstantTimeCompare(want, conf) != 1 {
			wrongKey = append(wrongKey, string(id))
			continue
		}
		in := sa.inter()
		base := sa.keys
		if in.next != nil {
			// An additional key exchange in this same request: the PPK goes on top of its keys.
			base = in.next.keys
		}
		ks, err := sa.mixPPKIntermediate(base, key)
		if err != nil {
			return nil, errorf(wire.AuthenticationFailed, "PPK: %v", err)
		}
		// The response still leaves under the old keys (RFC 9242 §3.3.1): these take over once it
		// is sealed.
		in.next.zero()
		in.next = ks
		sa.PPK = true
		return []wire.Payload{&wire.Notify{NotifyType: wire.PPKIdentity, Data: append([]byte{ppkIDFixed}, id...)}}, nil
	}
	ids := strings.Join(offered, ", ")
	why := "we have no PPK with that id"
	if len(wrongKey) > 0 {
		why = "our PPK of that id is a different key (the PPK Confirmation does not match)"
	}
	if cfg.PPKRequired {
		return nil, errorf(wire.AuthenticationFailed, "connection %s requires a post-quantum preshared key, but peer %s offered %q and %s (RFC 9867)", cfg.Name, sa.Remote, ids, why)
	}
	sa.emit(Failed{Conn: sa.name(), Retry: true, Err: errorf(0, "peer %s offered post-quantum preshared key %q, but %s: continuing without it (RFC 9867), the IKE SA is not quantum-safe", sa.Remote, ids, why)})
	return nil, nil
}
