package ike

import "github.com/goipsec/goipsec/ike/wire"

// Verification off the SA. Checking a certificate chain may fetch CRLs and OCSP answers over
// HTTP (credentials: up to 5 s per fetch), which must not hold the SA's owner (a worker every
// other SA needs too). An Authenticator that says so (VerifyBlocker) has its Verify run as Async
// work: a responder holds the IKE_AUTH request (async.go) and answers when the verdict is in; an
// initiator holds the IKE_AUTH response and processes it once the responder's AUTH is verified,
// with the verdict standing in for the check (verifyAuth). The verdict is enforced exactly as a
// synchronous one: a failure refuses or fails the IKE SA.

// VerifyBlocker is implemented by an Authenticator whose Verify may block on the network.
type VerifyBlocker interface {
	VerifyBlocks() bool
}

// verifyResult carries Verify's error through Async (an interface holding a nil error is
// still non-nil).
type verifyResult struct{ err error }

// authVerdict is a verification done off the SA, for the configuration and identity it checked.
type authVerdict struct {
	cfg    *PeerConfig
	remote Identity
	err    error
}

// verifyBlocks reports whether checking the peer's AUTH for cfg runs off the SA. Not with a
// post-quantum preshared key in play: the keys the AUTH is checked with change while the
// response is processed.
func (sa *SA) verifyBlocks(cfg *PeerConfig) bool {
	b, ok := cfg.Authenticator.(VerifyBlocker)
	if !ok || !b.VerifyBlocks() {
		return false
	}
	if sa.hs != nil && sa.hs.ppk != nil && sa.hs.ppk.used {
		return false
	}
	return true
}

// verifyFailure turns an off-SA verification's result into the error verifyAuth would return.
func (sa *SA) verifyFailure(cfg *PeerConfig, result any) *Error {
	r, ok := result.(verifyResult)
	if !ok {
		return errorf(wire.AuthenticationFailed, "connection %s: certificate verification ended without a verdict", cfg.Name)
	}
	if r.err != nil {
		return errorf(wire.AuthenticationFailed, "connection %s: %v", cfg.Name, r.err)
	}
	return nil
}

// holdForVerification holds the responder's first IKE_AUTH answer (IDr and AUTH) while its AUTH
// is verified off the SA; ResumeResponse goes on with it. It reports whether it held resp.
func (sa *SA) holdForVerification(resp *Message) bool {
	if !sa.Initiator || resp.Exchange != wire.ExchangeIKEAuth || (sa.rare != nil && (sa.rare.verdict != nil || sa.rare.heldResp != nil)) ||
		sa.state != StateAuthSent || sa.Config == nil || !sa.verifyBlocks(sa.Config) || len(sa.active) == 0 {
		return false
	}
	if t, ok := sa.active[0].(*authTask); !ok || t.eap.phase != phaseFirst {
		return false // later EAP rounds check an MSK-based AUTH: nothing blocks
	}
	idr, auth := find[*wire.IDr](resp.Payloads), find[*wire.AUTH](resp.Payloads)
	if idr == nil || auth == nil {
		return false // an error answer: processed at once
	}
	remote := Identity{Type: idr.IDType, Data: append([]byte(nil), idr.Data...)}
	cfg := sa.Config
	if !cfg.remoteIDMatches(remote) {
		return false // refused at once by the auth task
	}
	in, a, peer := sa.authInput(cfg, !sa.Initiator, remote, resp.Payloads), cfg.Authenticator, resp.Payloads
	sa.rareState().heldResp = resp
	sa.emit(Async{Run: func() any { return authVerdict{cfg: cfg, remote: remote, err: a.Verify(in, peer)} }})
	return true
}

// HoldsResponse reports whether a response waits for verification off the SA.
func (sa *SA) HoldsResponse() bool { return sa.rare != nil && sa.rare.heldResp != nil }

// ResumeResponse processes the held response with the verdict (the result of the Async work),
// as ProcessResponse would have: it returns the next request of the exchange, if any.
func (sa *SA) ResumeResponse(result any) (*Message, error) {
	if sa.rare == nil || sa.rare.heldResp == nil || sa.state == StateDead {
		return nil, nil
	}
	resp := sa.rare.heldResp
	sa.rare.heldResp = nil
	v, ok := result.(authVerdict)
	if !ok {
		v = authVerdict{cfg: sa.Config, err: errNoVerdict}
		if idr := find[*wire.IDr](resp.Payloads); idr != nil {
			v.remote = Identity{Type: idr.IDType, Data: idr.Data}
		}
	}
	sa.rare.verdict = &v
	defer func() {
		if sa.rare != nil {
			sa.rare.verdict = nil
		}
	}()
	return sa.ProcessResponse(resp)
}

var errNoVerdict = errorf(wire.AuthenticationFailed, "certificate verification ended without a verdict")
