package ike

import (
	"crypto/hmac"

	"github.com/goipsec/goipsec/credentials/dn"
	"github.com/goipsec/goipsec/ike/wire"
)

// Authenticator builds and checks the authentication payloads of IKE_AUTH (AUTH, CERT, CERTREQ)
// and adds what authentication needs to IKE_SA_INIT (SIGNATURE_HASH_ALGORITHMS, the responder's
// CERTREQ). PeerConfig.Authenticator carries one; without it a connection authenticates both ways
// with the preshared key from PeerConfig.PSK. The implementation is ike/auth.Authenticator; the
// exchange code only calls the four helpers below (initAuthPayloads, buildAuth, verifyAuth,
// remoteIDMatches), so that the call sites carry no authentication logic.
type Authenticator interface {
	// InitPayloads are added to our IKE_SA_INIT request (initiator) or response.
	InitPayloads(initiator bool) []wire.Payload
	// Build returns our CERT and CERTREQ payloads (placed after our ID payload) and our AUTH.
	Build(in *AuthInput) (certs []wire.Payload, auth *wire.AUTH, err error)
	// Verify checks the peer's AUTH (and certificates) in its IKE_AUTH payloads.
	Verify(in *AuthInput, peer []wire.Payload) error
	// RemoteMatches reports whether a peer claiming id may use this connection (remote.id with
	// strongSwan's patterns: %any, "CN=*, O=Example", "*.example.com").
	RemoteMatches(id Identity) bool
}

// AuthInput is what an Authenticator needs from the IKE SA.
type AuthInput struct {
	Conn      string
	Initiator bool // we are the original initiator
	// LocalID and RemoteID are our identity and the one the peer claims (IDi/IDr).
	LocalID, RemoteID Identity
	// Octets are the signed octets (RFC 7296 §2.15) of the side whose AUTH is built or verified.
	Octets []byte
	// Peer are the peer's payloads so far: its IKE_SA_INIT message and, for a responder, the
	// IKE_AUTH request (SIGNATURE_HASH_ALGORITHMS, CERTREQ).
	Peer []wire.Payload
	// PRF is prf(key, data) of the IKE SA, for PSK AUTH.
	PRF func(key, data []byte) []byte
	// PSK looks up a preshared key (PeerConfig.PSK).
	PSK func(local, remote Identity) ([]byte, bool)
}

// initAuthPayloads are the authentication payloads of our IKE_SA_INIT message: those of the first
// candidate connection that has an Authenticator (a responder's final choice comes later).
func initAuthPayloads(initiator bool, cfgs ...*PeerConfig) []wire.Payload {
	for _, c := range cfgs {
		if c != nil && c.Authenticator != nil {
			return c.Authenticator.InitPayloads(initiator)
		}
	}
	return nil
}

// authInput describes the SA to an Authenticator; signer is the side whose AUTH is concerned
// (true: the initiator's).
func (sa *SA) authInput(cfg *PeerConfig, signer bool, remote Identity, peer []wire.Payload) *AuthInput {
	id := sa.LocalID
	if signer != sa.Initiator {
		id = remote
	}
	var peerInit []byte
	if sa.Initiator {
		peerInit = sa.hs.initResp
	} else {
		peerInit = sa.hs.initReq
	}
	var all []wire.Payload
	if m, err := wire.Decode(peerInit); err == nil {
		all = append(all, m.Payloads...)
	}
	all = append(all, peer...)
	return &AuthInput{
		Conn: cfg.Name, Initiator: sa.Initiator, LocalID: sa.LocalID, RemoteID: remote,
		Octets: sa.signedOctets(signer, idRest(id)), Peer: all,
		PRF: func(k, d []byte) []byte { return sa.prf.Compute(k, d) }, PSK: cfg.PSK,
	}
}

// buildAuth returns our CERT/CERTREQ payloads and AUTH for cfg. peer are the peer's IKE_AUTH
// payloads (responder) or nil.
func (sa *SA) buildAuth(cfg *PeerConfig, remote Identity, peer []wire.Payload) ([]wire.Payload, *wire.AUTH, *Error) {
	if cfg.Authenticator != nil {
		certs, auth, err := cfg.Authenticator.Build(sa.authInput(cfg, sa.Initiator, remote, peer))
		if err != nil {
			return nil, nil, errorf(wire.AuthenticationFailed, "connection %s: %v", cfg.Name, err)
		}
		return certs, auth, nil
	}
	psk, ok := cfg.PSK(sa.LocalID, remote)
	if !ok {
		return nil, nil, errorf(wire.AuthenticationFailed, "connection %s: no preshared key for %s - %s", cfg.Name, sa.LocalID, remote)
	}
	return nil, &wire.AUTH{Method: wire.AuthSharedKeyMIC, Data: sa.pskAUTH(psk, sa.Initiator, idRest(sa.LocalID))}, nil
}

// verifyAuth checks the peer's authentication in its IKE_AUTH payloads for cfg.
func (sa *SA) verifyAuth(cfg *PeerConfig, remote Identity, peer []wire.Payload) *Error {
	if r := sa.rare; r != nil && r.verdict != nil && r.verdict.cfg == cfg && sameIdentity(r.verdict.remote, remote) {
		// Verified off the SA while the response was held (verify.go).
		v := r.verdict
		r.verdict = nil
		return sa.verifyFailure(cfg, verifyResult{err: v.err})
	}
	if cfg.Authenticator != nil {
		if err := cfg.Authenticator.Verify(sa.authInput(cfg, !sa.Initiator, remote, peer), peer); err != nil {
			return errorf(wire.AuthenticationFailed, "connection %s: %v", cfg.Name, err)
		}
		return nil
	}
	auth := find[*wire.AUTH](peer)
	if auth.Method != wire.AuthSharedKeyMIC {
		return errorf(wire.AuthenticationFailed, "peer %s authenticated with %s, connection %s expects a PSK", remote, authMethodName(auth.Method), cfg.Name)
	}
	psk, ok := cfg.PSK(sa.LocalID, remote)
	if !ok {
		return errorf(wire.AuthenticationFailed, "connection %s: no preshared key for %s - %s", cfg.Name, sa.LocalID, remote)
	}
	if !hmacEqual(sa.pskAUTH(psk, !sa.Initiator, idRest(remote)), auth.Data) {
		return errorf(wire.AuthenticationFailed, "AUTH of peer %s does not verify: the preshared keys for %s - %s differ", remote, sa.LocalID, remote)
	}
	return nil
}

// remoteIDMatches reports whether a peer's identity fits cfg's remote identity.
func (c *PeerConfig) remoteIDMatches(id Identity) bool {
	if c.Authenticator != nil {
		return c.Authenticator.RemoteMatches(id)
	}
	return c.RemoteID.Matches(id)
}

// sameIdentity compares identities, distinguished names by their attributes (a peer may spell a
// DN with other ASN.1 string types than our certificate does).
func sameIdentity(a, b Identity) bool {
	if a.Type == wire.IDDERASN1DN && b.Type == wire.IDDERASN1DN {
		return dn.Equal(a.Data, b.Data)
	}
	return a.Equal(b)
}

func hmacEqual(a, b []byte) bool { return hmac.Equal(a, b) }
