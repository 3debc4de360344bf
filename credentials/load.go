package credentials

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/youmark/pkcs8"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"software.sslmate.com/src/go-pkcs12"
)

// ErrPassphrase: the key is encrypted and no passphrase, or a wrong one, was given.
var ErrPassphrase = errors.New("encrypted: no or wrong passphrase")

// maxFileSize bounds what a credential file may hold; certificates, keys and CRLs of real
// deployments are far smaller, and the bound keeps a wrong path from reading a huge file.
const maxFileSize = 16 << 20

// isPEM reports whether data holds a PEM block (strongSwan accepts PEM and DER in every folder).
func isPEM(data []byte) bool { return bytes.Contains(data, []byte("-----BEGIN ")) }

// ParseCertificates reads X.509 certificates from PEM (any number of CERTIFICATE blocks; other
// blocks are skipped) or DER (exactly one).
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%d bytes is too large for a certificate file", len(data))
	}
	if !isPEM(data) {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("neither PEM nor a DER certificate: %v", err)
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" && b.Type != "X509 CERTIFICATE" && b.Type != "TRUSTED CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block in the PEM data")
	}
	return out, nil
}

// ParsePrivateKey reads a private key: PEM (RSA PRIVATE KEY, EC PRIVATE KEY, PRIVATE KEY, ENCRYPTED
// PRIVATE KEY, legacy Proc-Type encryption) or DER (PKCS#8, PKCS#1, SEC 1). passphrase decrypts an
// encrypted key; ErrPassphrase says one is missing or wrong.
func ParsePrivateKey(data, passphrase []byte) (crypto.Signer, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%d bytes is too large for a key file", len(data))
	}
	der := data
	encrypted := false
	if isPEM(data) {
		var b *pem.Block
		for rest := data; ; {
			b, rest = pem.Decode(rest)
			if b == nil || b.Type != "EC PARAMETERS" {
				break
			}
		}
		if b == nil {
			return nil, errors.New("no PEM block")
		}
		der = b.Bytes
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY":
			encrypted = true
		//lint:ignore SA1019 legacy PEM encryption (DEK-Info) is still found in deployed key files
		case x509.IsEncryptedPEMBlock(b):
			if len(passphrase) == 0 {
				return nil, ErrPassphrase
			}
			//lint:ignore SA1019 legacy PEM encryption (DEK-Info) is still found in deployed key files
			d, err := x509.DecryptPEMBlock(b, passphrase)
			if err != nil {
				return nil, ErrPassphrase
			}
			der = d
		}
	}
	if !encrypted && looksEncryptedPKCS8(der) {
		encrypted = true
	}
	if encrypted {
		if len(passphrase) == 0 {
			return nil, ErrPassphrase
		}
		k, err := pkcs8.ParsePKCS8PrivateKey(der, passphrase)
		if err != nil {
			return nil, ErrPassphrase
		}
		return toSigner(k)
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return toSigner(k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a private key in PKCS#8, PKCS#1 or SEC 1 form")
}

// looksEncryptedPKCS8: EncryptedPrivateKeyInfo is SEQUENCE { SEQUENCE (algorithm), OCTET STRING },
// while PrivateKeyInfo starts with an INTEGER version.
func looksEncryptedPKCS8(der []byte) bool {
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return false
	}
	var alg, octets cryptobyte.String
	return seq.ReadASN1(&alg, cbasn1.SEQUENCE) && seq.ReadASN1(&octets, cbasn1.OCTET_STRING) && seq.Empty()
}

func toSigner(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k)
}

// ParsePublicKey reads a raw public key: PEM PUBLIC KEY (SubjectPublicKeyInfo) or RSA PUBLIC KEY
// (PKCS#1), or the DER of either.
func ParsePublicKey(data []byte) (crypto.PublicKey, []byte, error) {
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("%d bytes is too large for a key file", len(data))
	}
	der := data
	if isPEM(data) {
		b, _ := pem.Decode(data)
		if b == nil {
			return nil, nil, errors.New("no PEM block")
		}
		der = b.Bytes
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		return k, der, nil
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		spki, err := x509.MarshalPKIXPublicKey(k)
		return k, spki, err
	}
	return nil, nil, errors.New("not a public key (SubjectPublicKeyInfo or PKCS#1)")
}

// ParseCRL reads a CRL in PEM (X509 CRL) or DER.
func ParseCRL(data []byte) (*x509.RevocationList, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%d bytes is too large for a CRL", len(data))
	}
	der := data
	if isPEM(data) {
		b, _ := pem.Decode(data)
		if b == nil || (b.Type != "X509 CRL" && b.Type != "CRL") {
			return nil, errors.New("no X509 CRL PEM block")
		}
		der = b.Bytes
	}
	return x509.ParseRevocationList(der)
}

// ParsePKCS12 reads a PKCS#12 container: its private key, its certificate and any CA
// certificates.
func ParsePKCS12(data, passphrase []byte) (crypto.Signer, *x509.Certificate, []*x509.Certificate, error) {
	if len(data) > maxFileSize {
		return nil, nil, nil, fmt.Errorf("%d bytes is too large for a PKCS#12 file", len(data))
	}
	k, c, cas, err := pkcs12.DecodeChain(data, string(passphrase))
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, nil, nil, ErrPassphrase
		}
		return nil, nil, nil, err
	}
	s, err := toSigner(k)
	return s, c, cas, err
}

// subjectPublicKeyBits returns the contents of the subjectPublicKey BIT STRING of a DER
// SubjectPublicKeyInfo (nil if it is not one).
func subjectPublicKeyBits(spki []byte) []byte {
	s := cryptobyte.String(spki)
	var seq, alg cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) {
		return nil
	}
	if !seq.ReadASN1BitString(&bits) {
		return nil
	}
	return bits.Bytes
}
