// Package auth computes and verifies IKEv2 AUTH payload data (RFC 7296 §2.15): preshared key MICs
// and digital signatures with RSA PKCS#1 v1.5 (method 1), ECDSA (methods 9-11, RFC 4754) and the
// generic Digital Signature method 14 (RFC 7427) with RSASSA-PKCS1-v1_5, RSASSA-PSS, ECDSA and
// Ed25519 (RFC 8420). It also reads strongSwan's signature constraints (auth = pubkey-sha256,
// rsa/pss, ecdsa-384, ed25519, ...).
//
// Everything here is pure: given the signed octets, a key and the peer's announced hash
// algorithms, it returns bytes or a typed error. Certificates and trust live in package
// credentials; Authenticator (authenticator.go) joins both for package ike.
package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"

	"github.com/goipsec/goipsec/ike/wire"
)

// KeyType is the kind of a public key.
type KeyType uint8

// Key types.
const (
	KeyRSA KeyType = iota + 1
	KeyECDSA
	KeyEd25519
)

func (k KeyType) String() string {
	switch k {
	case KeyRSA:
		return "RSA"
	case KeyECDSA:
		return "ECDSA"
	case KeyEd25519:
		return "Ed25519"
	}
	return "unknown"
}

// Padding distinguishes the two RSA signature schemes.
type Padding uint8

// RSA paddings.
const (
	PKCS1v15 Padding = iota // RSASSA-PKCS1-v1_5
	PSS                     // RSASSA-PSS, salt as long as the hash (RFC 4055 §3.1, strongSwan's default)
)

// Scheme is one signature scheme: a key type, a hash and, for RSA, the padding.
type Scheme struct {
	Key     KeyType
	Hash    wire.HashAlgorithm // HashIdentity for Ed25519
	Padding Padding            // RSA only
}

// Schemes goipsec signs and verifies with. SHA-1 appears only in RSAPKCS1SHA1, which is weak and
// used only when configured explicitly (auth = rsa-sha1 or pubkey-sha1).
var (
	RSAPKCS1SHA1   = Scheme{KeyRSA, wire.HashSHA1, PKCS1v15}
	RSAPKCS1SHA256 = Scheme{KeyRSA, wire.HashSHA2_256, PKCS1v15}
	RSAPKCS1SHA384 = Scheme{KeyRSA, wire.HashSHA2_384, PKCS1v15}
	RSAPKCS1SHA512 = Scheme{KeyRSA, wire.HashSHA2_512, PKCS1v15}
	RSAPSSSHA256   = Scheme{KeyRSA, wire.HashSHA2_256, PSS}
	RSAPSSSHA384   = Scheme{KeyRSA, wire.HashSHA2_384, PSS}
	RSAPSSSHA512   = Scheme{KeyRSA, wire.HashSHA2_512, PSS}
	ECDSASHA256    = Scheme{KeyECDSA, wire.HashSHA2_256, 0}
	ECDSASHA384    = Scheme{KeyECDSA, wire.HashSHA2_384, 0}
	ECDSASHA512    = Scheme{KeyECDSA, wire.HashSHA2_512, 0}
	Ed25519        = Scheme{KeyEd25519, wire.HashIdentity, 0}
)

// Weak reports whether the scheme relies on SHA-1.
func (s Scheme) Weak() bool { return s.Hash == wire.HashSHA1 }

// String names the scheme as strongSwan's logs do (e.g. RSA_EMSA_PKCS1_SHA2_256,
// RSA_EMSA_PSS_SHA2_384, ECDSA_WITH_SHA256_DER, ED25519).
func (s Scheme) String() string {
	h := map[wire.HashAlgorithm]string{wire.HashSHA1: "SHA1", wire.HashSHA2_256: "SHA2_256", wire.HashSHA2_384: "SHA2_384", wire.HashSHA2_512: "SHA2_512"}[s.Hash]
	switch s.Key {
	case KeyRSA:
		if s.Padding == PSS {
			return "RSA_EMSA_PSS_" + h
		}
		return "RSA_EMSA_PKCS1_" + h
	case KeyECDSA:
		return "ECDSA_WITH_" + map[wire.HashAlgorithm]string{wire.HashSHA2_256: "SHA256", wire.HashSHA2_384: "SHA384", wire.HashSHA2_512: "SHA512"}[s.Hash] + "_DER"
	case KeyEd25519:
		return "ED25519"
	}
	return fmt.Sprintf("Scheme(%d,%d,%d)", s.Key, s.Hash, s.Padding)
}

func (s Scheme) cryptoHash() crypto.Hash {
	switch s.Hash {
	case wire.HashSHA1:
		return crypto.SHA1
	case wire.HashSHA2_256:
		return crypto.SHA256
	case wire.HashSHA2_384:
		return crypto.SHA384
	case wire.HashSHA2_512:
		return crypto.SHA512
	}
	return 0
}

// AlgorithmIdentifiers of RFC 7427 Appendix A (and RFC 8420 §2 for Ed25519), DER. The PSS ones
// carry RSASSA-PSS-params with the hash, MGF1 with the same hash and a salt as long as the hash
// (RFC 4055 §3.1), which is what strongSwan sends.
var algIDs = []struct {
	s   Scheme
	der string
}{
	// RFC 7427 A.1.1-A.1.4: sha*WithRSAEncryption, parameters NULL.
	{RSAPKCS1SHA1, "300d06092a864886f70d0101050500"},
	{RSAPKCS1SHA256, "300d06092a864886f70d01010b0500"},
	{RSAPKCS1SHA384, "300d06092a864886f70d01010c0500"},
	{RSAPKCS1SHA512, "300d06092a864886f70d01010d0500"},
	// RFC 7427 A.3: ecdsa-with-SHA*, no parameters.
	{ECDSASHA256, "300a06082a8648ce3d040302"},
	{ECDSASHA384, "300a06082a8648ce3d040303"},
	{ECDSASHA512, "300a06082a8648ce3d040304"},
	// RFC 7427 A.4.3 (SHA-256); the SHA-384/512 forms differ in the hash OIDs and the salt.
	{RSAPSSSHA256, "3041" + "06092a864886f70d01010a" + "3034" +
		"a00f300d0609608648016503040201" + "0500" +
		"a11c301a06092a864886f70d010108300d0609608648016503040201" + "0500" +
		"a203020120"},
	{RSAPSSSHA384, "3041" + "06092a864886f70d01010a" + "3034" +
		"a00f300d0609608648016503040202" + "0500" +
		"a11c301a06092a864886f70d010108300d0609608648016503040202" + "0500" +
		"a203020130"},
	{RSAPSSSHA512, "3041" + "06092a864886f70d01010a" + "3034" +
		"a00f300d0609608648016503040203" + "0500" +
		"a11c301a06092a864886f70d010108300d0609608648016503040203" + "0500" +
		"a203020140"},
	// RFC 8420 §2 / RFC 8410: id-Ed25519, no parameters.
	{Ed25519, "300506032b6570"},
}

// AlgorithmIdentifier returns the DER AlgorithmIdentifier of a scheme for method 14.
func (s Scheme) AlgorithmIdentifier() []byte {
	for _, a := range algIDs {
		if a.s == s {
			return mustHex(a.der)
		}
	}
	return nil
}

// pssOID is id-RSASSA-PSS (1.2.840.113549.1.1.10) with its DER tag and length.
var pssOID = mustHex("06092a864886f70d01010a")

// SchemeFromAlgorithmIdentifier maps a received AlgorithmIdentifier to a scheme. Encodings are
// compared byte for byte, with two leniencies real peers need: PKCS#1 identifiers without the
// NULL parameters, and RSASSA-PSS with any parameters (ParsePSSParams checks them).
func SchemeFromAlgorithmIdentifier(der []byte) (Scheme, PSSParams, error) {
	for _, a := range algIDs {
		if a.s.Padding == PSS {
			continue
		}
		want := mustHex(a.der)
		if bytes.Equal(der, want) {
			return a.s, PSSParams{}, nil
		}
		// RFC 4055 §5 allows absent parameters for sha*WithRSAEncryption.
		if a.s.Key == KeyRSA && len(want) == 15 && bytes.Equal(der, append([]byte{0x30, 0x0b}, want[2:13]...)) {
			return a.s, PSSParams{}, nil
		}
	}
	if p, ok := parsePSSAlgID(der); ok {
		return Scheme{KeyRSA, p.Hash, PSS}, p, nil
	}
	return Scheme{}, PSSParams{}, fmt.Errorf("unknown signature AlgorithmIdentifier %x", der)
}

func mustHex(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		b[i] = unhexDigit(s[2*i])<<4 | unhexDigit(s[2*i+1])
	}
	return b
}

func unhexDigit(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	panic("auth: bad hex in a constant table")
}

// KeyTypeOf returns the type of a public key and its size in bits (RSA modulus, ECDSA curve).
func KeyTypeOf(pub crypto.PublicKey) (KeyType, int, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeyRSA, k.N.BitLen(), nil
	case *ecdsa.PublicKey:
		return KeyECDSA, k.Curve.Params().BitSize, nil
	case ed25519.PublicKey:
		return KeyEd25519, 256, nil
	}
	return 0, 0, fmt.Errorf("unsupported public key type %T", pub)
}

// classicECDSA maps methods 9-11 to their curve and scheme (RFC 4754 §4): the hash is fixed by
// the curve.
func classicECDSA(m wire.AuthMethod) (elliptic.Curve, Scheme, bool) {
	switch m {
	case wire.AuthECDSASHA256P256:
		return elliptic.P256(), ECDSASHA256, true
	case wire.AuthECDSASHA384P384:
		return elliptic.P384(), ECDSASHA384, true
	case wire.AuthECDSASHA512P521:
		return elliptic.P521(), ECDSASHA512, true
	}
	return nil, Scheme{}, false
}

// classicMethodFor returns the method 9-11 of an ECDSA key's curve.
func classicMethodFor(pub *ecdsa.PublicKey) (wire.AuthMethod, Scheme, bool) {
	switch pub.Curve {
	case elliptic.P256():
		return wire.AuthECDSASHA256P256, ECDSASHA256, true
	case elliptic.P384():
		return wire.AuthECDSASHA384P384, ECDSASHA384, true
	case elliptic.P521():
		return wire.AuthECDSASHA512P521, ECDSASHA512, true
	}
	return 0, Scheme{}, false
}
