package auth

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/goipsec/goipsec/credentials"
	"github.com/goipsec/goipsec/ike"
)

// IKEv1 signature authentication (RFC 2409 §5.1, "Authenticated With Signatures"): the signer
// signs HASH_I or HASH_R itself. For RSA keys that is a PKCS#1 v1.5 signature without an ASN.1
// DigestInfo (the hash is the PRF output, not a digest of a message), which is what IKEv1
// implementations exchange (strongSwan's SIGN_RSA_EMSA_PKCS1_NULL). Only RSA is offered: the
// ECDSA methods of RFC 4754 are rare among IKEv1 peers. The certificate checks are the IKEv2
// ones (trust anchors, identity, revocation, key constraints).

// UsesSignatures reports whether the connection authenticates with public keys (IKEv1 has one
// method for both directions).
func (a *Authenticator) UsesSignatures() bool { return a.usesSignatures() }

// SignV1 signs an IKEv1 HASH_I/HASH_R for our identity and returns the certificates to send
// (ours first, then its chain; none with send_cert = never).
func (a *Authenticator) SignV1(local ike.Identity, hash []byte) (certs [][]byte, sig []byte, err error) {
	if a.cfg.Local.Method != MethodPubkey {
		return nil, nil, errors.New("IKEv1 uses one authentication method for both sides: local auth must be pubkey too")
	}
	cert := a.LocalCert(local)
	if cert == nil {
		return nil, nil, fmt.Errorf("no certificate for our identity %s", local)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, nil, fmt.Errorf("certificate %s: IKEv1 signatures are implemented for RSA keys only", credentials.Describe(cert))
	}
	key, ok := a.cfg.Store.PrivateKeyFor(cert.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("no private key for certificate %s", credentials.Describe(cert))
	}
	// crypto.Hash(0): rsa signs the bytes as given, PKCS#1 v1.5 padded, without DigestInfo.
	if sig, err = key.Sign(a.cfg.Rand, hash, crypto.Hash(0)); err != nil {
		return nil, nil, err
	}
	if a.cfg.SendCert != SendCertNever {
		certs = append(certs, cert.Raw)
		for _, c := range a.cfg.Store.ChainFor(cert) {
			certs = append(certs, c.Raw)
		}
	}
	a.mu.Lock()
	a.lastUsed = cert
	a.mu.Unlock()
	return certs, sig, nil
}

// VerifyV1 checks a peer's IKEv1 signature over hash with its certificate (from presented or the
// store) or a configured raw public key.
func (a *Authenticator) VerifyV1(remote ike.Identity, presented [][]byte, hash, sig []byte) error {
	id := toCred(remote)
	if !credentials.Matches(a.cfg.Remote.ID, id) {
		return fmt.Errorf("peer identifies as %s, but remote.id is %s", id, a.cfg.Remote.ID)
	}
	if a.cfg.Remote.Method != MethodPubkey {
		return errors.New("IKEv1 uses one authentication method for both sides: remote auth must be pubkey too")
	}
	check := func(pub crypto.PublicKey) error {
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("IKEv1 signatures are implemented for RSA keys only")
		}
		if err := a.cfg.Remote.Constraints.AcceptsKey(KeyRSA, k.N.BitLen()); err != nil {
			return err
		}
		return rsa.VerifyPKCS1v15(k, crypto.Hash(0), hash, sig)
	}
	if len(a.cfg.Remote.PubKeys) > 0 {
		var last error
		for _, pub := range a.cfg.Remote.PubKeys {
			if last = check(pub); last == nil {
				return nil
			}
		}
		return fmt.Errorf("signature of peer %s does not verify with any of the configured remote.pubkeys: %v", id, last)
	}
	v, err := a.verifyPeerChain(id, presented)
	if err != nil {
		return err
	}
	if err := check(v.Leaf.PublicKey); err != nil {
		return fmt.Errorf("signature of peer %s (certificate %s): %v", id, credentials.Describe(v.Leaf), err)
	}
	if a.cfg.Verified != nil {
		a.cfg.Verified(id, v.Chain)
	}
	return nil
}
