// Package pki makes keys, certificates and CRLs for IKE: a self-signed CA, intermediate CAs,
// gateway and client certificates with subjectAltNames and the extended key usages native clients
// want, and CRLs. `goipsec pki` is built on it; so are the tests.
//
// Defaults follow what Windows, macOS and iOS accept for a gateway certificate: the dialled name
// (and address) in subjectAltName and as CN, the serverAuth extended key usage plus
// ikeIntermediate (1.3.6.1.5.5.8.2.2, which older macOS and Windows releases look for), key usage
// digitalSignature (and keyEncipherment for RSA), SHA-256 or stronger signatures, validity of at
// most 825 days (Apple's limit for server certificates).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/goipsec/goipsec/credentials/dn"
)

// KeyType names a key to generate: ed25519, ecdsa (P-256), ecdsa384, rsa (3072), rsa4096; also
// ecdsa256, ecdsa521, rsa2048, rsa3072.
type KeyType string

// Key types.
const (
	Ed25519  KeyType = "ed25519"
	ECDSA256 KeyType = "ecdsa256"
	ECDSA384 KeyType = "ecdsa384"
	ECDSA521 KeyType = "ecdsa521"
	RSA2048  KeyType = "rsa2048"
	RSA3072  KeyType = "rsa3072"
	RSA4096  KeyType = "rsa4096"
)

// ParseKeyType reads a key type, with aliases ecdsa = ecdsa256, rsa = rsa3072.
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(s) {
	case "ed25519":
		return Ed25519, nil
	case "ecdsa", "ecdsa256", "p256":
		return ECDSA256, nil
	case "ecdsa384", "p384":
		return ECDSA384, nil
	case "ecdsa521", "p521":
		return ECDSA521, nil
	case "rsa", "rsa3072":
		return RSA3072, nil
	case "rsa4096":
		return RSA4096, nil
	case "rsa2048":
		return RSA2048, nil
	}
	return "", fmt.Errorf("unknown key type %q (expected ed25519, ecdsa, ecdsa384, ecdsa521, rsa (3072 bits), rsa4096 or rsa2048)", s)
}

// GenerateKey makes a private key.
func GenerateKey(t KeyType, rnd io.Reader) (crypto.Signer, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	switch t {
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rnd)
		return k, err
	case ECDSA256:
		return ecdsa.GenerateKey(elliptic.P256(), rnd)
	case ECDSA384:
		return ecdsa.GenerateKey(elliptic.P384(), rnd)
	case ECDSA521:
		return ecdsa.GenerateKey(elliptic.P521(), rnd)
	case RSA2048:
		return rsa.GenerateKey(rnd, 2048)
	case RSA3072:
		return rsa.GenerateKey(rnd, 3072)
	case RSA4096:
		return rsa.GenerateKey(rnd, 4096)
	}
	return nil, fmt.Errorf("unknown key type %q", t)
}

// Extended key usages by name.
var (
	// OIDIKEIntermediate is iKEIntermediate (1.3.6.1.5.5.8.2.2), which older Windows and macOS
	// releases want on IKE gateway certificates.
	OIDIKEIntermediate = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 8, 2, 2}
	// OIDIPsecIKE is id-kp-ipsecIKE (RFC 4945).
	OIDIPsecIKE = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 17}
)

// Request describes a certificate to issue.
type Request struct {
	// Subject is a DN in strongSwan's text form ("C=CH, O=Example, CN=vpn.example.com"); empty:
	// CN = the first SAN.
	Subject string
	// SANs: DNS names, IP addresses and e-mail addresses (with '@').
	SANs []string
	// CA makes a CA certificate; PathLen limits the CAs below it (-1: no limit).
	CA      bool
	PathLen int
	// Flags are extended key usages: serverAuth, clientAuth, ikeIntermediate, ipsecIKE, ocspSigning.
	// Empty for an end entity: serverAuth and ikeIntermediate (a gateway).
	Flags []string
	// CRLURIs are CRL distribution points; OCSPURIs authorityInfoAccess OCSP URIs.
	CRLURIs, OCSPURIs []string
	// Lifetime is the validity (default 825 days for end entities, 10 years for CAs); NotBefore
	// defaults to now - 1 minute (clock skew).
	Lifetime  time.Duration
	NotBefore time.Time
	// Serial (default: 16 random bytes).
	Serial *big.Int
	// Policies are certificatePolicies OIDs.
	Policies []asn1.ObjectIdentifier
}

// Issue creates a certificate for pub, signed by signer with issuerCert (nil: self-signed).
func Issue(req Request, pub crypto.PublicKey, issuerCert *x509.Certificate, signer crypto.Signer, now time.Time) (*x509.Certificate, error) {
	if len(req.SANs) == 0 && req.Subject == "" {
		return nil, errors.New("a certificate needs a subject or a subjectAltName")
	}
	subject := req.Subject
	if subject == "" {
		subject = "CN=" + req.SANs[0]
	}
	rawSubject, err := dn.Parse(subject)
	if err != nil {
		return nil, err
	}
	serial := req.Serial
	if serial == nil {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		b[0] &= 0x7f
		serial = new(big.Int).SetBytes(b)
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = now.Add(-time.Minute)
	}
	life := req.Lifetime
	if life == 0 {
		life = 825 * 24 * time.Hour
		if req.CA {
			life = 10 * 365 * 24 * time.Hour
		}
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, RawSubject: rawSubject,
		NotBefore: notBefore, NotAfter: notBefore.Add(life),
		SubjectKeyId:          keyID(spki),
		BasicConstraintsValid: true, IsCA: req.CA,
		CRLDistributionPoints: req.CRLURIs, OCSPServer: req.OCSPURIs,
	}
	for _, oid := range req.Policies {
		// crypto/x509 writes the Policies field (GODEBUG x509usepolicies, the default since Go 1.24).
		o, err := x509.OIDFromInts(toUint64s(oid))
		if err != nil {
			return nil, err
		}
		tmpl.Policies = append(tmpl.Policies, o)
	}
	for _, san := range req.SANs {
		switch ip := net.ParseIP(san); {
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		case strings.Contains(san, "@"):
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, san)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, san)
		}
	}
	if req.CA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
		if req.PathLen >= 0 {
			tmpl.MaxPathLen, tmpl.MaxPathLenZero = req.PathLen, req.PathLen == 0
		}
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, ok := pub.(*rsa.PublicKey); ok {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		flags := req.Flags
		if len(flags) == 0 {
			flags = []string{"serverAuth", "ikeIntermediate"}
		}
		for _, f := range flags {
			switch strings.ToLower(f) {
			case "serverauth":
				tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
			case "clientauth":
				tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
			case "ikeintermediate":
				tmpl.UnknownExtKeyUsage = append(tmpl.UnknownExtKeyUsage, OIDIKEIntermediate)
			case "ipsecike":
				tmpl.UnknownExtKeyUsage = append(tmpl.UnknownExtKeyUsage, OIDIPsecIKE)
			case "ocspsigning":
				tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning)
			default:
				return nil, fmt.Errorf("unknown flag %q (expected serverAuth, clientAuth, ikeIntermediate, ipsecIKE or ocspSigning)", f)
			}
		}
	}
	parent := tmpl
	if issuerCert != nil {
		parent = issuerCert
		tmpl.AuthorityKeyId = issuerCert.SubjectKeyId
	}
	tmpl.SignatureAlgorithm = signatureAlgorithm(signer.Public())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// signatureAlgorithm picks SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521.
func signatureAlgorithm(pub crypto.PublicKey) x509.SignatureAlgorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P384():
			return x509.ECDSAWithSHA384
		case elliptic.P521():
			return x509.ECDSAWithSHA512
		}
		return x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		return x509.SHA256WithRSA
	}
	return x509.UnknownSignatureAlgorithm // Ed25519: crypto/x509 picks PureEd25519
}

func keyID(spki []byte) []byte {
	var info struct {
		Alg asn1.RawValue
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil
	}
	sum := sha1.Sum(info.Key.Bytes)
	return sum[:]
}

// Revoked is one entry of a CRL.
type Revoked struct {
	Serial *big.Int
	At     time.Time
	Reason int // RFC 5280 §5.3.1 CRLReason; 0 unspecified
}

// CRL makes a CRL signed by the CA, valid from now for lifetime (default 15 days).
func CRL(ca *x509.Certificate, key crypto.Signer, revoked []Revoked, number int64, now time.Time, lifetime time.Duration) ([]byte, error) {
	if lifetime == 0 {
		lifetime = 15 * 24 * time.Hour
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(lifetime)}
	for _, r := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At, ReasonCode: r.Reason})
	}
	return x509.CreateRevocationList(rand.Reader, tmpl, ca, key)
}

// PEM encodings.

// CertPEM encodes a certificate.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM encodes a private key as PKCS#8 (PRIVATE KEY), which strongSwan's pkcs8 and openssl
// plugins and goipsec read.
func KeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// PublicKeyPEM encodes a public key as SubjectPublicKeyInfo (PUBLIC KEY).
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// CRLPEM encodes a CRL.
func CRLPEM(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}) }

func toUint64s(oid asn1.ObjectIdentifier) []uint64 {
	out := make([]uint64, len(oid))
	for i, n := range oid {
		out[i] = uint64(n)
	}
	return out
}
