package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"

	"github.com/goipsec/goipsec/ike/wire"
)

// Reason classifies an authentication failure.
type Reason uint8

// Reasons.
const (
	// ReasonSchemeNotAccepted: the peer's signature scheme or method is refused by our
	// constraints, or we share none to sign with.
	ReasonSchemeNotAccepted Reason = iota + 1
	// ReasonBadSignature: the signature does not verify with the key.
	ReasonBadSignature
	// ReasonMalformed: AUTH data that cannot be read.
	ReasonMalformed
	// ReasonKey: the key cannot be used (unsupported type, method for another key type).
	ReasonKey
)

func (r Reason) String() string {
	switch r {
	case ReasonSchemeNotAccepted:
		return "signature scheme not accepted"
	case ReasonBadSignature:
		return "signature does not verify"
	case ReasonMalformed:
		return "malformed AUTH data"
	case ReasonKey:
		return "unusable key"
	}
	return "unknown"
}

// Error is a typed signing or verification failure.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// SupportedHashes are the hash algorithms goipsec announces in SIGNATURE_HASH_ALGORITHMS: those it
// verifies signatures with (RFC 7427 §4, RFC 8420 §3 for Identity). SHA-1 is left out, as
// strongSwan does.
var SupportedHashes = []wire.HashAlgorithm{wire.HashSHA2_256, wire.HashSHA2_384, wire.HashSHA2_512, wire.HashIdentity}

// Sign computes the AUTH payload's method and data over the signed octets with key.
// peerHashes are the hash algorithms of the peer's SIGNATURE_HASH_ALGORITHMS, nil if it sent
// none: then ECDSA keys use methods 9-11 and RSA keys method 1, which means SHA-1 and needs an
// explicit sha1 constraint.
func Sign(rand io.Reader, key crypto.Signer, octets []byte, c Constraints, peerHashes []wire.HashAlgorithm) (wire.AuthMethod, []byte, Scheme, error) {
	t, bits, err := KeyTypeOf(key.Public())
	if err != nil {
		return 0, nil, Scheme{}, errorf(ReasonKey, "private key: %v", err)
	}
	var curveHash wire.HashAlgorithm
	var ecPub *ecdsa.PublicKey
	if t == KeyECDSA {
		ecPub = key.Public().(*ecdsa.PublicKey)
		if _, s, ok := classicMethodFor(ecPub); ok {
			curveHash = s.Hash
		}
	}
	cands := c.candidates(t, curveHash, bits)
	if len(cands) == 0 {
		return 0, nil, Scheme{}, errorf(ReasonSchemeNotAccepted, "no signature scheme for our %d-bit %s key is allowed by auth = %s", bits, t, c.Text)
	}
	if peerHashes != nil {
		for _, s := range cands {
			if !slices.Contains(peerHashes, s.Hash) {
				continue
			}
			sig, err := signScheme(rand, key, s, octets, false)
			if err != nil {
				return 0, nil, Scheme{}, err
			}
			data, err := wire.AppendDigitalSignature(nil, s.AlgorithmIdentifier(), sig)
			if err != nil {
				return 0, nil, Scheme{}, errorf(ReasonKey, "%v", err)
			}
			return wire.AuthDigitalSignature, data, s, nil
		}
		return 0, nil, Scheme{}, errorf(ReasonSchemeNotAccepted, "the peer verifies signatures with hashes %v, none of which our %s key may use (we may sign with %v)", peerHashes, t, cands)
	}
	// The peer does not do RFC 7427: the classic methods.
	switch t {
	case KeyECDSA:
		m, s, ok := classicMethodFor(ecPub)
		if !ok || !slices.Contains(cands, s) {
			return 0, nil, Scheme{}, errorf(ReasonSchemeNotAccepted, "the peer does not support RFC 7427 signatures and our ECDSA key's curve has no classic method allowed by auth = %s", c.Text)
		}
		sig, err := signScheme(rand, key, s, octets, true)
		return m, sig, s, err
	case KeyRSA:
		if !c.AllowsWeak() {
			return 0, nil, Scheme{}, errorf(ReasonSchemeNotAccepted, "the peer does not support RFC 7427 signatures (no SIGNATURE_HASH_ALGORITHMS): RSA signature method 1 would need SHA-1, which is weak; configure auth = rsa-sha1 to allow it")
		}
		sig, err := signScheme(rand, key, RSAPKCS1SHA1, octets, false)
		return wire.AuthRSASignature, sig, RSAPKCS1SHA1, err
	}
	return 0, nil, Scheme{}, errorf(ReasonSchemeNotAccepted, "the peer does not support RFC 7427 signatures, which %s keys need", t)
}

// signScheme signs octets; raw gives ECDSA signatures as r||s (RFC 4754) instead of DER.
func signScheme(rand io.Reader, key crypto.Signer, s Scheme, octets []byte, raw bool) ([]byte, error) {
	var digest []byte
	var opts crypto.SignerOpts = crypto.Hash(0)
	if s.Key != KeyEd25519 {
		h := s.cryptoHash().New()
		h.Write(octets)
		digest = h.Sum(nil)
		opts = s.cryptoHash()
		if s.Padding == PSS {
			opts = &rsa.PSSOptions{SaltLength: s.cryptoHash().Size(), Hash: s.cryptoHash()}
		}
	} else {
		digest = octets
	}
	sig, err := key.Sign(rand, digest, opts)
	if err != nil {
		return nil, errorf(ReasonKey, "signing with %s: %v", s, err)
	}
	if raw && s.Key == KeyECDSA {
		return derToRaw(sig, key.Public().(*ecdsa.PublicKey))
	}
	return sig, nil
}

type ecdsaSig struct{ R, S *big.Int }

func derToRaw(der []byte, pub *ecdsa.PublicKey) ([]byte, error) {
	var v ecdsaSig
	if rest, err := asn1.Unmarshal(der, &v); err != nil || len(rest) != 0 {
		return nil, errorf(ReasonKey, "ECDSA signature: %v", err)
	}
	n := (pub.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*n)
	v.R.FillBytes(out[:n])
	v.S.FillBytes(out[n:])
	return out, nil
}

// Verify checks the peer's AUTH method and data over the signed octets with its public key and
// returns the scheme it used. bits is for the constraint check of the key's strength.
func Verify(pub crypto.PublicKey, method wire.AuthMethod, data, octets []byte, c Constraints) (Scheme, error) {
	t, bits, err := KeyTypeOf(pub)
	if err != nil {
		return Scheme{}, errorf(ReasonKey, "peer's key: %v", err)
	}
	switch method {
	case wire.AuthDigitalSignature:
		algID, sig, err := wire.DigitalSignature(data)
		if err != nil {
			return Scheme{}, errorf(ReasonMalformed, "%v", err)
		}
		s, pss, err := SchemeFromAlgorithmIdentifier(algID)
		if err != nil {
			return Scheme{}, errorf(ReasonSchemeNotAccepted, "%v", err)
		}
		if s.Key != t {
			return Scheme{}, errorf(ReasonKey, "peer signed with %s but its key is %s", s, t)
		}
		if err := c.AcceptsScheme(s, bits); err != nil {
			return s, errorf(ReasonSchemeNotAccepted, "%v", err)
		}
		return s, verifyScheme(pub, s, pss, octets, sig, false)
	case wire.AuthRSASignature:
		if t != KeyRSA {
			return Scheme{}, errorf(ReasonKey, "peer used RSA signature method 1 but its key is %s", t)
		}
		// Method 1 names no hash: the PKCS#1 DigestInfo does. Try each one we accept.
		var last error
		for _, s := range []Scheme{RSAPKCS1SHA256, RSAPKCS1SHA384, RSAPKCS1SHA512, RSAPKCS1SHA1} {
			if c.AcceptsScheme(s, bits) != nil {
				continue
			}
			if last = verifyScheme(pub, s, PSSParams{}, octets, data, false); last == nil {
				return s, nil
			}
		}
		if last == nil {
			return Scheme{}, errorf(ReasonSchemeNotAccepted, "peer used RSA signature method 1, for which auth = %s accepts no hash (SHA-1 is weak and must be configured as rsa-sha1)", c.Text)
		}
		return RSAPKCS1SHA1, errorf(ReasonBadSignature, "RSA signature (method 1) does not verify with the peer's key (tried the hashes auth = %s allows)", c.Text)
	case wire.AuthECDSASHA256P256, wire.AuthECDSASHA384P384, wire.AuthECDSASHA512P521:
		curve, s, _ := classicECDSA(method)
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != curve {
			return Scheme{}, errorf(ReasonKey, "peer used ECDSA method %d for curve %s but its key is a %d-bit %s key", method, curve.Params().Name, bits, t)
		}
		if err := c.AcceptsScheme(s, bits); err != nil {
			return s, errorf(ReasonSchemeNotAccepted, "%v", err)
		}
		return s, verifyScheme(pub, s, PSSParams{}, octets, data, true)
	}
	return Scheme{}, errorf(ReasonSchemeNotAccepted, "peer authenticates with method %d, not a signature method goipsec accepts", method)
}

func verifyScheme(pub crypto.PublicKey, s Scheme, pss PSSParams, octets, sig []byte, raw bool) error {
	bad := errorf(ReasonBadSignature, "%s signature does not verify with the peer's key", s)
	if s.Key == KeyEd25519 {
		if !ed25519.Verify(pub.(ed25519.PublicKey), octets, sig) {
			return bad
		}
		return nil
	}
	h := s.cryptoHash().New()
	h.Write(octets)
	digest := h.Sum(nil)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		var err error
		if s.Padding == PSS {
			err = rsa.VerifyPSS(k, s.cryptoHash(), digest, sig, &rsa.PSSOptions{SaltLength: pss.SaltLength, Hash: s.cryptoHash()})
		} else {
			err = rsa.VerifyPKCS1v15(k, s.cryptoHash(), digest, sig)
		}
		if err != nil {
			return bad
		}
		return nil
	case *ecdsa.PublicKey:
		if raw {
			n := (k.Curve.Params().BitSize + 7) / 8
			if len(sig) != 2*n {
				return errorf(ReasonMalformed, "ECDSA signature of %d bytes, want %d (RFC 4754 r|s)", len(sig), 2*n)
			}
			r, ss := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
			if !ecdsa.Verify(k, digest, r, ss) {
				return bad
			}
			return nil
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return bad
		}
		return nil
	}
	return errorf(ReasonKey, "unsupported key %T", pub)
}

// keyPad is the constant of the PSK AUTH computation (RFC 7296 §2.15).
var keyPad = []byte("Key Pad for IKEv2")

// PRF computes prf(key, data) of the IKE SA.
type PRF func(key, data []byte) []byte

// PSKAuth computes AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (RFC 7296
// §2.15).
func PSKAuth(prf PRF, psk, octets []byte) []byte {
	k := prf(psk, keyPad)
	defer clear(k)
	return prf(k, octets)
}

// VerifyPSK compares a received PSK AUTH in constant time.
func VerifyPSK(prf PRF, psk, octets, got []byte) error {
	if !hmac.Equal(PSKAuth(prf, psk, octets), got) {
		return errors.New("preshared key AUTH does not verify")
	}
	return nil
}
