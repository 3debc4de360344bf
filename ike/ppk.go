package ike

import (
	"bytes"

	"github.com/goipsec/goipsec/ike/wire"
)

// Post-quantum preshared keys (RFC 8784). Both sides announce support with USE_PPK in
// IKE_SA_INIT. In IKE_AUTH the initiator names its PPK in PPK_IDENTITY and, unless a PPK is
// required, adds NO_PPK_AUTH: the AUTH it would send without a PPK. The side that uses a PPK
// replaces three keys (RFC 8784 §3):
//
//	SK_d  = prf+(PPK, SK_d')
//	SK_pi = prf+(PPK, SK_pi')
//	SK_pr = prf+(PPK, SK_pr')
//
// before AUTH is computed, so AUTH proves both hold the PPK and every Child SA key (from SK_d)
// depends on it. A responder without that PPK, when neither side requires one, verifies
// NO_PPK_AUTH instead and answers without PPK_IDENTITY.

// ppkIDFixed is the PPK_ID type of an identity both sides agreed on beforehand (RFC 8784 §5.1),
// the only type strongSwan and Libreswan send.
const ppkIDFixed = 2

// ppkState is the PPK part of the handshake.
type ppkState struct {
	// peer: the peer sent USE_PPK or USE_PPK_INT in IKE_SA_INIT.
	peer bool
	// intermediate: RFC 9867 is in use (USE_PPK_INT both ways, with IKE_INTERMEDIATE support):
	// the PPK is settled in the last IKE_INTERMEDIATE exchange and IKE_AUTH carries no PPK
	// payloads.
	intermediate bool
	// used: the PPK is mixed into the keys; plain holds the keys before that, in case the
	// responder answers without PPK and they are needed again.
	used                     bool
	plainD, plainPI, plainPR []byte
}

func (sa *SA) ppk() *ppkState {
	if sa.hs.ppk == nil {
		sa.hs.ppk = &ppkState{}
	}
	return sa.hs.ppk
}

// wantsPPK reports whether the configuration uses PPKs: it names one or requires one.
func (c *PeerConfig) wantsPPK() bool { return c != nil && (len(c.PPKID) > 0 || c.PPKRequired) }

// mixPPK replaces SK_d, SK_pi and SK_pr by prf+(PPK, key) and keeps the old ones in st.
func (sa *SA) mixPPK(st *ppkState, ppk []byte) error {
	k := sa.keys
	mix := func(key []byte) ([]byte, error) { return sa.prf.Plus(ppk, len(key), key) }
	d, err := mix(k.SKd)
	if err != nil {
		return err
	}
	pi, err := mix(k.SKpi)
	if err != nil {
		return err
	}
	pr, err := mix(k.SKpr)
	if err != nil {
		return err
	}
	st.plainD, st.plainPI, st.plainPR = bytes.Clone(k.SKd), bytes.Clone(k.SKpi), bytes.Clone(k.SKpr)
	copy(k.SKd, d)
	copy(k.SKpi, pi)
	copy(k.SKpr, pr)
	clear(d)
	clear(pi)
	clear(pr)
	st.used = true
	sa.emitKeys(sa.hs.Ni, sa.hs.Nr)
	return nil
}

// unmixPPK restores the keys without PPK.
func (sa *SA) unmixPPK(st *ppkState) {
	if !st.used {
		return
	}
	copy(sa.keys.SKd, st.plainD)
	copy(sa.keys.SKpi, st.plainPI)
	copy(sa.keys.SKpr, st.plainPR)
	st.used = false
	sa.emitKeys(sa.hs.Ni, sa.hs.Nr)
}

func (st *ppkState) zero() {
	clear(st.plainD)
	clear(st.plainPI)
	clear(st.plainPR)
}

// ppkInitiator prepares the initiator's IKE_AUTH request: with a PPK both sides support it returns
// PPK_IDENTITY and (unless required) NO_PPK_AUTH, computed by auth with the keys before the PPK,
// and mixes the PPK into the keys, so that auth called afterwards gives the AUTH payload.
func (sa *SA) ppkInitiator(auth func() []byte) ([]wire.Payload, error) {
	cfg := sa.Config
	if !cfg.wantsPPK() {
		return nil, nil
	}
	st := sa.ppk()
	if !st.peer {
		if cfg.PPKRequired {
			return nil, errorf(0, "connection %s requires a post-quantum preshared key (ppk_required), but peer %s does not support them (neither USE_PPK_INT nor USE_PPK in IKE_SA_INIT, RFC 9867/8784)", cfg.Name, sa.Remote)
		}
		return nil, nil
	}
	if st.intermediate {
		// RFC 9867: the PPK was settled in IKE_INTERMEDIATE (a refusal failed there already).
		if cfg.PPKRequired && !sa.PPK {
			return nil, errorf(0, "connection %s requires a post-quantum preshared key, but there is no ppk secret with id %q", cfg.Name, cfg.PPKID)
		}
		return nil, nil
	}
	var key []byte
	ok := false
	if len(cfg.PPKID) > 0 && cfg.PPK != nil {
		key, ok = cfg.PPK(cfg.PPKID)
	}
	if !ok {
		if cfg.PPKRequired {
			return nil, errorf(0, "connection %s requires a post-quantum preshared key, but there is no ppk secret with id %q", cfg.Name, cfg.PPKID)
		}
		return nil, nil
	}
	out := []wire.Payload{&wire.Notify{NotifyType: wire.PPKIdentity, Data: append([]byte{ppkIDFixed}, cfg.PPKID...)}}
	if !cfg.PPKRequired {
		out = append(out, &wire.Notify{NotifyType: wire.NoPPKAuth, Data: auth()})
	}
	if err := sa.mixPPK(st, key); err != nil {
		return nil, err
	}
	return out, nil
}

// ppkInitiatorResponse checks the responder's answer: PPK_IDENTITY confirms the PPK; without it
// the responder used NO_PPK_AUTH, which is refused when a PPK is required and otherwise means the
// keys without PPK are the ones in force.
func (sa *SA) ppkInitiatorResponse(ps []wire.Payload) error {
	if sa.hs.ppk == nil || !sa.hs.ppk.used || sa.hs.ppk.intermediate {
		return nil
	}
	st := sa.hs.ppk
	if findNotify(ps, wire.PPKIdentity) != nil {
		sa.PPK = true
		return nil
	}
	if sa.Config.PPKRequired {
		return errorf(wire.AuthenticationFailed, "peer %s did not use the post-quantum preshared key %q, which connection %s requires", sa.Remote, sa.Config.PPKID, sa.Config.Name)
	}
	sa.unmixPPK(st)
	return nil
}

// ppkResponder decides about the PPK for the initiator's IKE_AUTH request once cfg is chosen. It
// returns the AUTH data to verify (the AUTH payload's, or NO_PPK_AUTH's when the PPK is not used)
// and the payloads for the response; with a PPK the keys are mixed when it returns.
func (sa *SA) ppkResponder(cfg *PeerConfig, ps []wire.Payload, authData []byte) ([]byte, []wire.Payload, *Error) {
	st := sa.ppk()
	if st.intermediate {
		// RFC 9867: the PPK was settled in IKE_INTERMEDIATE, with the connection IKE_SA_INIT
		// chose; cfg, chosen by the peer's identities, may require one where that did not.
		if cfg.PPKRequired && !sa.PPK {
			return nil, nil, errorf(wire.AuthenticationFailed, "connection %s requires a post-quantum preshared key, but peer %s used none in IKE_INTERMEDIATE (RFC 9867)", cfg.Name, sa.Remote)
		}
		return authData, nil, nil
	}
	idn := findNotify(ps, wire.PPKIdentity)
	if !st.peer || idn == nil {
		if cfg.PPKRequired {
			return nil, nil, errorf(wire.AuthenticationFailed, "connection %s requires a post-quantum preshared key, but peer %s offered none (RFC 8784)", cfg.Name, sa.Remote)
		}
		return authData, nil, nil
	}
	noPPK := findNotify(ps, wire.NoPPKAuth)
	var key []byte
	ok := false
	if len(idn.Data) > 1 && idn.Data[0] == ppkIDFixed && cfg.PPK != nil {
		key, ok = cfg.PPK(idn.Data[1:])
	}
	if !ok {
		switch {
		case cfg.PPKRequired:
			return nil, nil, errorf(wire.AuthenticationFailed, "connection %s requires a post-quantum preshared key, but there is none for the peer's PPK_ID %q", cfg.Name, ppkIDString(idn.Data))
		case noPPK == nil:
			return nil, nil, errorf(wire.AuthenticationFailed, "peer %s requires its post-quantum preshared key %q, which we do not have", sa.Remote, ppkIDString(idn.Data))
		}
		return noPPK.Data, nil, nil
	}
	if err := sa.mixPPK(st, key); err != nil {
		return nil, nil, errorf(wire.AuthenticationFailed, "PPK: %v", err)
	}
	sa.PPK = true
	return authData, []wire.Payload{&wire.Notify{NotifyType: wire.PPKIdentity}}, nil
}

// ppkIDString shows a received PPK_ID for logs (the identity, not the key).
func ppkIDString(data []byte) string {
	if len(data) > 1 && data[0] == ppkIDFixed {
		return string(data[1:])
	}
	return "(unsupported PPK_ID type)"
}

// ppkMixed reports whether the PPK is mixed into the keys now.
func (sa *SA) ppkMixed() bool { return sa.hs != nil && sa.hs.ppk != nil && sa.hs.ppk.used }

// withAuthData returns the peer's payloads with the AUTH payload's data replaced by data (NO_PPK_AUTH's,
// when the PPK is not used, RFC 8784 §3), so that the authenticator verifies that instead.
func withAuthData(ps []wire.Payload, data []byte) []wire.Payload {
	out := make([]wire.Payload, len(ps))
	for i, p := range ps {
		if a, ok := p.(*wire.AUTH); ok && !bytes.Equal(a.Data, data) {
			p = &wire.AUTH{Method: a.Method, Data: data}
		}
		out[i] = p
	}
	return out
}
