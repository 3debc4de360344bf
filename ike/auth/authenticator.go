package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
)

// Method is how one side authenticates.
type Method uint8

// Methods.
const (
	MethodPSK Method = iota
	MethodPubkey
)

// Local is how we authenticate (connections.<conn>.local).
type Local struct {
	Method Method
	// Constraints from the auth value (pubkey-sha384, rsa/pss, ...): which schemes we sign with.
	Constraints Constraints
	// Certs are local.certs; the first is ours. Empty: a stored certificate holding our identity.
	Certs []*x509.Certificate
	// PubKey is the first of local.pubkeys (a raw key, no certificate).
	PubKey crypto.PublicKey
}

// Remote is what we require of the peer (connections.<conn>.remote).
type Remote struct {
	Method      Method
	Constraints Constraints
	// ID is remote.id as an identity or pattern (zero: %any).
	ID credentials.Identity
	// PubKeys are remote.pubkeys: raw keys to accept instead of certificates.
	PubKeys []crypto.PublicKey
	// Policy: cacerts, pinned certs, ca_id, cert_policy, revocation.
	Policy credentials.Policy
}

// SendCert is connections.<conn>.send_cert.
type SendCert uint8

// send_cert values.
const (
	SendCertIfAsked SendCert = iota
	SendCertAlways
	SendCertNever
)

// Config configures an Authenticator for one connection.
type Config struct {
	Conn        string
	Store       *credentials.Store
	Local       Local
	Remote      Remote
	SendCert    SendCert
	SendCertReq bool
	Rand        io.Reader // default crypto/rand
	// Verified, when set, is told which certificate chain a peer authenticated with (for status).
	Verified func(peer credentials.Identity, chain []*x509.Certificate)
}

// Authenticator implements ike.Authenticator with the credential store.
type Authenticator struct {
	cfg Config

	mu       sync.Mutex
	lastUsed *x509.Certificate // our certificate in the last Build
}

// New returns an Authenticator for one connection.
func New(cfg Config) *Authenticator {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Authenticator{cfg: cfg}
}

var _ ike.Authenticator = (*Authenticator)(nil)

// usesSignatures: either side authenticates with a public key.
func (a *Authenticator) usesSignatures() bool {
	return a.cfg.Local.Method == MethodPubkey || a.cfg.Remote.Method == MethodPubkey
}

// InitPayloads implements ike.Authenticator: SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) when
// signatures are involved, and for a responder the CERTREQ of RFC 7296 §1.2.
func (a *Authenticator) InitPayloads(initiator bool) []wire.Payload {
	if !a.usesSignatures() {
		return nil
	}
	ps := []wire.Payload{&wire.Notify{NotifyType: wire.SignatureHashAlgorithms, Data: wire.AppendHashAlgorithms(nil, SupportedHashes)}}
	if !initiator {
		if cr := a.certReq(); cr != nil {
			ps = append([]wire.Payload{cr}, ps...)
		}
	}
	return ps
}

// certReq lists the CAs we trust for the peer (remote.cacerts, else every trust anchor) by the
// SHA-1 of their public key info (RFC 7296 §3.7).
func (a *Authenticator) certReq() wire.Payload {
	if a.cfg.Remote.Method != MethodPubkey || !a.cfg.SendCertReq || len(a.cfg.Remote.PubKeys) > 0 {
		return nil
	}
	cas := a.cfg.Remote.Policy.CACerts
	if len(cas) == 0 {
		cas = a.cfg.Store.TrustedCAs()
	}
	if len(cas) == 0 {
		return nil
	}
	var hashes [][wire.CAHashLen]byte
	for _, c := range cas {
		hashes = append(hashes, credentials.SPKIHash(c.RawSubjectPublicKeyInfo))
	}
	return &wire.CERTREQ{Encoding: wire.CertX509Signature, Data: wire.AppendCAHashes(nil, hashes)}
}

func toCred(id ike.Identity) credentials.Identity {
	return credentials.Identity{Type: credentials.IDType(id.Type), Data: id.Data}
}

// peerHashes returns the peer's SIGNATURE_HASH_ALGORITHMS, nil when it sent none.
func peerHashes(peer []wire.Payload) []wire.HashAlgorithm {
	for _, p := range peer {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType == wire.SignatureHashAlgorithms {
			if algs, err := wire.HashAlgorithms(n.Data); err == nil {
				return algs
			}
		}
	}
	return nil
}

func peerAskedForCerts(peer []wire.Payload) bool {
	for _, p := range peer {
		if _, ok := p.(*wire.CERTREQ); ok {
			return true
		}
	}
	return false
}

// LocalCert returns the certificate we authenticate with: the first of local.certs, else the
// newest stored certificate holding our identity.
func (a *Authenticator) LocalCert(id ike.Identity) *x509.Certificate {
	if len(a.cfg.Local.Certs) > 0 {
		return a.cfg.Local.Certs[0]
	}
	if cs := a.cfg.Store.CertsWithIdentity(toCred(id)); len(cs) > 0 {
		return cs[0]
	}
	return nil
}

// Build implements ike.Authenticator.
func (a *Authenticator) Build(in *ike.AuthInput) ([]wire.Payload, *wire.AUTH, error) {
	var out []wire.Payload
	if in.Initiator {
		if cr := a.certReq(); cr != nil {
			out = append(out, cr)
		}
	}
	if a.cfg.Local.Method == MethodPSK {
		psk, ok := in.PSK(in.LocalID, in.RemoteID)
		if !ok {
			return nil, nil, fmt.Errorf("no preshared key for %s - %s", in.LocalID, in.RemoteID)
		}
		return out, &wire.AUTH{Method: wire.AuthSharedKeyMIC, Data: PSKAuth(in.PRF, psk, in.Octets)}, nil
	}
	var pub crypto.PublicKey
	var cert *x509.Certificate
	switch {
	case a.cfg.Local.PubKey != nil:
		pub = a.cfg.Local.PubKey
	default:
		cert = a.LocalCert(in.LocalID)
		if cert == nil {
			return nil, nil, fmt.Errorf("no certificate for our identity %s (local.certs names none, and none in x509/ holds it)", in.LocalID)
		}
		pub = cert.PublicKey
	}
	key, ok := a.cfg.Store.PrivateKeyFor(pub)
	if !ok {
		what := "raw public key"
		if cert != nil {
			what = "certificate " + credentials.Describe(cert)
		}
		return nil, nil, fmt.Errorf("no private key for our %s (load it into private/, rsa/, ecdsa/, pkcs8/ or pkcs12/)", what)
	}
	method, data, _, err := Sign(a.cfg.Rand, key, in.Octets, a.cfg.Local.Constraints, peerHashes(in.Peer))
	if err != nil {
		return nil, nil, err
	}
	if cert != nil && (a.cfg.SendCert == SendCertAlways || (a.cfg.SendCert == SendCertIfAsked && peerAskedForCerts(in.Peer))) {
		certs := []wire.Payload{&wire.CERT{Encoding: wire.CertX509Signature, Data: cert.Raw}}
		for _, c := range a.cfg.Store.ChainFor(cert) {
			certs = append(certs, &wire.CERT{Encoding: wire.CertX509Signature, Data: c.Raw})
		}
		// CERT payloads precede CERTREQ (RFC 7296 §1.2).
		out = append(certs, out...)
	}
	a.mu.Lock()
	a.lastUsed = cert
	a.mu.Unlock()
	return out, &wire.AUTH{Method: method, Data: data}, nil
}

// verifyTimeout bounds certificate verification (CRL and OCSP fetches).
const verifyTimeout = 10 * time.Second

// Verify implements ike.Authenticator.
func (a *Authenticator) Verify(in *ike.AuthInput, peer []wire.Payload) error {
	var auth *wire.AUTH
	var presented [][]byte
	for _, p := range peer {
		switch p := p.(type) {
		case *wire.AUTH:
			auth = p
		case *wire.CERT:
			if p.Encoding == wire.CertX509Signature {
				presented = append(presented, p.Data)
			}
		}
	}
	if auth == nil {
		return errors.New("peer sent no AUTH payload")
	}
	remote := toCred(in.RemoteID)
	if !credentials.Matches(a.cfg.Remote.ID, remote) {
		return fmt.Errorf("peer identifies as %s, but remote.id is %s", remote, a.cfg.Remote.ID)
	}
	if a.cfg.Remote.Method == MethodPSK {
		if auth.Method != wire.AuthSharedKeyMIC {
			return fmt.Errorf("peer %s authenticates with method %d, the connection expects a PSK", remote, auth.Method)
		}
		psk, ok := in.PSK(in.LocalID, in.RemoteID)
		if !ok {
			return fmt.Errorf("no preshared key for %s - %s", in.LocalID, in.RemoteID)
		}
		if err := VerifyPSK(in.PRF, psk, in.Octets, auth.Data); err != nil {
			return fmt.Errorf("AUTH of peer %s does not verify: the preshared keys for %s - %s differ", remote, in.LocalID, remote)
		}
		return nil
	}
	if auth.Method == wire.AuthSharedKeyMIC {
		return fmt.Errorf("peer %s authenticates with a preshared key, the connection expects a signature (remote auth = %s)", remote, a.cfg.Remote.Constraints.Text)
	}
	c := a.cfg.Remote.Constraints
	if len(a.cfg.Remote.PubKeys) > 0 {
		var last error
		for _, pub := range a.cfg.Remote.PubKeys {
			if _, last = Verify(pub, auth.Method, auth.Data, in.Octets, c); last == nil {
				return nil
			}
		}
		return fmt.Errorf("AUTH of peer %s does not verify with any of the configured remote.pubkeys: %v", remote, last)
	}
	v, err := a.verifyPeerChain(remote, presented)
	if err != nil {
		return err
	}
	if _, err := Verify(v.Leaf.PublicKey, auth.Method, auth.Data, in.Octets, c); err != nil {
		return fmt.Errorf("AUTH of peer %s (certificate %s): %v", remote, credentials.Describe(v.Leaf), err)
	}
	if a.cfg.Verified != nil {
		a.cfg.Verified(remote, v.Chain)
	}
	return nil
}

// verifyPeerChain builds and checks the peer's certificate chain to the trusted CAs with the
// connection's policy (revocation, CA constraints, identity), refusing leaf keys the remote auth
// constraints do not accept. It may fetch CRLs and OCSP answers (verifyTimeout in all).
func (a *Authenticator) verifyPeerChain(id credentials.Identity, presented [][]byte) (*credentials.Verified, error) {
	policy := a.cfg.Remote.Policy
	c := a.cfg.Remote.Constraints
	policy.KeyOK = func(pub crypto.PublicKey) error {
		t, bits, err := KeyTypeOf(pub)
		if err != nil {
			return err
		}
		return c.AcceptsKey(t, bits)
	}
	ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
	defer cancel()
	return a.cfg.Store.VerifyPeer(ctx, id, presented, policy)
}

// VerifyBlocks implements ike.VerifyBlocker: checking a certificate chain may fetch CRLs and
// OCSP answers (credentials.DefaultFetchTimeout each), so the IKE SA runs Verify off its owner.
// Raw public keys and PSKs are checked in memory.
func (a *Authenticator) VerifyBlocks() bool {
	return a.cfg.Remote.Method == MethodPubkey && len(a.cfg.Remote.PubKeys) == 0
}

var _ ike.VerifyBlocker = (*Authenticator)(nil)

// RemoteMatches implements ike.Authenticator.
func (a *Authenticator) RemoteMatches(id ike.Identity) bool {
	return credentials.Matches(a.cfg.Remote.ID, toCred(id))
}

// LocalCertInUse is the certificate of the last Build (nil before, or with raw keys or PSK).
func (a *Authenticator) LocalCertInUse() *x509.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastUsed
}

// Describe says how the connection authenticates, for status lines.
func (a *Authenticator) Describe() string {
	side := func(m Method, c Constraints) string {
		if m == MethodPSK {
			return "psk"
		}
		return c.Text
	}
	return side(a.cfg.Local.Method, a.cfg.Local.Constraints) + "/" + side(a.cfg.Remote.Method, a.cfg.Remote.Constraints)
}

// SchemesFor lists the schemes we would sign with for a key (for doctor).
func SchemesFor(key crypto.PublicKey, c Constraints) []Scheme {
	t, bits, err := KeyTypeOf(key)
	if err != nil {
		return nil
	}
	return slices.Clone(c.candidates(t, 0, bits))
}
