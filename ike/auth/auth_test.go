package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike/wire"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Known answers: the AlgorithmIdentifiers as printed in RFC 7427 Appendix A (A.1 PKCS#1 1.5,
// A.3 ECDSA, A.4.3 RSASSA-PSS with SHA-256) and RFC 8420 §2 (Ed25519), transcribed from the RFC
// text, not computed.
func TestAlgorithmIdentifierKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		s   Scheme
		rfc string
	}{
		{RSAPKCS1SHA1, "30 0d 06 09 2a 86 48 86 f7 0d 01 01 05 05 00"},   // A.1.1 sha1WithRSAEncryption
		{RSAPKCS1SHA256, "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00"}, // A.1.2
		{RSAPKCS1SHA384, "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0c 05 00"}, // A.1.3
		{RSAPKCS1SHA512, "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0d 05 00"}, // A.1.4
		{ECDSASHA256, "30 0a 06 08 2a 86 48 ce 3d 04 03 02"},             // A.3.1 ecdsa-with-sha256
		{ECDSASHA384, "30 0a 06 08 2a 86 48 ce 3d 04 03 03"},             // A.3.2
		{ECDSASHA512, "30 0a 06 08 2a 86 48 ce 3d 04 03 04"},             // A.3.3
		// A.4.3: RSASSA-PSS with SHA-256, MGF1 SHA-256, salt length 32.
		{RSAPSSSHA256, `30 41 06 09 2a 86 48 86 f7 0d 01 01 0a 30 34 a0
		                0f 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00
		                a1 1c 30 1a 06 09 2a 86 48 86 f7 0d 01 01 08 30
		                0d 06 09 60 86 48 01 65 03 04 02 01 05 00 a2 03
		                02 01 20`},
		{Ed25519, "30 05 06 03 2b 65 70"}, // RFC 8420 §2 id-Ed25519
	} {
		want := unhex(t, tc.rfc)
		if got := tc.s.AlgorithmIdentifier(); !bytes.Equal(got, want) {
			t.Errorf("%s: AlgorithmIdentifier %x, RFC says %x", tc.s, got, want)
		}
		s, _, err := SchemeFromAlgorithmIdentifier(want)
		if err != nil || s != tc.s {
			t.Errorf("%s: reading the RFC's encoding gives %v, %v", tc.s, s, err)
		}
	}
	// PKCS#1 identifiers without the NULL parameters (RFC 4055 §5 allows both).
	if s, _, err := SchemeFromAlgorithmIdentifier(unhex(t, "300b06092a864886f70d01010b")); err != nil || s != RSAPKCS1SHA256 {
		t.Errorf("sha256WithRSAEncryption without NULL: %v %v", s, err)
	}
	if _, _, err := SchemeFromAlgorithmIdentifier(unhex(t, "300506032b6571")); err == nil {
		t.Error("id-Ed448 accepted")
	}
}

// Cross-check with a second implementation: crypto/x509 writes the same AlgorithmIdentifier into
// a certificate's signatureAlgorithm field for each scheme (including the PSS SHA-384/512 forms,
// which the RFC does not print).
func TestAlgorithmIdentifierMatchesCryptoX509(t *testing.T) {
	for _, tc := range []struct {
		s   Scheme
		alg x509.SignatureAlgorithm
		key crypto.Signer
	}{
		{RSAPKCS1SHA256, x509.SHA256WithRSA, testRSA(t)},
		{RSAPKCS1SHA384, x509.SHA384WithRSA, testRSA(t)},
		{RSAPKCS1SHA512, x509.SHA512WithRSA, testRSA(t)},
		{RSAPSSSHA256, x509.SHA256WithRSAPSS, testRSA(t)},
		{RSAPSSSHA384, x509.SHA384WithRSAPSS, testRSA(t)},
		{RSAPSSSHA512, x509.SHA512WithRSAPSS, testRSA(t)},
		{ECDSASHA256, x509.ECDSAWithSHA256, testEC(t, elliptic.P256())},
		{ECDSASHA384, x509.ECDSAWithSHA384, testEC(t, elliptic.P384())},
		{ECDSASHA512, x509.ECDSAWithSHA512, testEC(t, elliptic.P521())},
		{Ed25519, x509.PureEd25519, testEd(t)},
	} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1e9, 0), SignatureAlgorithm: tc.alg}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, tc.key.Public(), tc.key)
		if err != nil {
			t.Fatal(err)
		}
		// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
		var cert struct {
			TBS asn1.RawValue
			Alg asn1.RawValue
			Sig asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &cert); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cert.Alg.FullBytes, tc.s.AlgorithmIdentifier()) {
			t.Errorf("%s: crypto/x509 writes %x, we write %x", tc.s, cert.Alg.FullBytes, tc.s.AlgorithmIdentifier())
		}
	}
}

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSA(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

func testEC(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testEd(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustConstraints(t testing.TB, s string) Constraints {
	t.Helper()
	c, err := ParseConstraints(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignVerifyRoundTrips(t *testing.T) {
	octets := []byte("signed octets of an IKE_SA_INIT message, a nonce and prf(SK_p, IDx')")
	all := SupportedHashes
	for _, tc := range []struct {
		name       string
		key        crypto.Signer
		auth       string
		peerHashes []wire.HashAlgorithm
		method     wire.AuthMethod
		scheme     Scheme
	}{
		{"rsa pkcs1", testRSA(t), "pubkey", all, wire.AuthDigitalSignature, RSAPKCS1SHA256},
		{"rsa pkcs1 sha384", testRSA(t), "rsa-sha384", all, wire.AuthDigitalSignature, RSAPKCS1SHA384},
		{"rsa pss", testRSA(t), "rsa/pss", all, wire.AuthDigitalSignature, RSAPSSSHA256},
		{"rsa pss sha512", testRSA(t), "rsa/pss-sha512", all, wire.AuthDigitalSignature, RSAPSSSHA512},
		{"rsa method 1", testRSA(t), "rsa-sha1", nil, wire.AuthRSASignature, RSAPKCS1SHA1},
		{"ecdsa p256", testEC(t, elliptic.P256()), "pubkey", all, wire.AuthDigitalSignature, ECDSASHA256},
		{"ecdsa p384", testEC(t, elliptic.P384()), "pubkey", all, wire.AuthDigitalSignature, ECDSASHA384},
		{"ecdsa p384, peer only sha256", testEC(t, elliptic.P384()), "ecdsa", []wire.HashAlgorithm{wire.HashSHA2_256}, wire.AuthDigitalSignature, ECDSASHA256},
		{"ecdsa p256 method 9", testEC(t, elliptic.P256()), "pubkey", nil, wire.AuthECDSASHA256P256, ECDSASHA256},
		{"ecdsa p384 method 10", testEC(t, elliptic.P384()), "pubkey", nil, wire.AuthECDSASHA384P384, ECDSASHA384},
		{"ecdsa p521 method 11", testEC(t, elliptic.P521()), "pubkey", nil, wire.AuthECDSASHA512P521, ECDSASHA512},
		{"ed25519", testEd(t), "pubkey", all, wire.AuthDigitalSignature, Ed25519},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustConstraints(t, tc.auth)
			m, data, s, err := Sign(rand.Reader, tc.key, octets, c, tc.peerHashes)
			if err != nil {
				t.Fatal(err)
			}
			if m != tc.method || s != tc.scheme {
				t.Fatalf("signed with method %d scheme %s, want %d %s", m, s, tc.method, tc.scheme)
			}
			got, err := Verify(tc.key.Public(), m, data, octets, c)
			if err != nil || got != tc.scheme {
				t.Fatalf("Verify = %s, %v", got, err)
			}
			// A changed octet must not verify.
			bad := append([]byte(nil), octets...)
			bad[0] ^= 1
			var ae *Error
			if _, err := Verify(tc.key.Public(), m, data, bad, c); !errors.As(err, &ae) || ae.Reason != ReasonBadSignature {
				t.Fatalf("tampered octets: %v", err)
			}
		})
	}
}

func TestSignRefusals(t *testing.T) {
	octets := []byte("x")
	// No RFC 7427 at the peer and an RSA key: SHA-1 would be needed.
	if _, _, _, err := Sign(rand.Reader, testRSA(t), octets, mustConstraints(t, "pubkey"), nil); err == nil || !strings.Contains(err.Error(), "SHA-1") {
		t.Errorf("RSA without RFC 7427: %v", err)
	}
	// Ed25519 needs RFC 7427 with the Identity hash.
	if _, _, _, err := Sign(rand.Reader, testEd(t), octets, mustConstraints(t, "pubkey"), []wire.HashAlgorithm{wire.HashSHA2_256}); err == nil {
		t.Error("Ed25519 signed although the peer lacks the Identity hash")
	}
	// ECDSA key, but only RSA allowed.
	if _, _, _, err := Sign(rand.Reader, testEC(t, elliptic.P256()), octets, mustConstraints(t, "rsa"), SupportedHashes); err == nil {
		t.Error("ECDSA key signed under auth = rsa")
	}
}

func TestVerifyConstraints(t *testing.T) {
	octets := []byte("octets")
	sign := func(key crypto.Signer, auth string) (wire.AuthMethod, []byte) {
		m, d, _, err := Sign(rand.Reader, key, octets, mustConstraints(t, auth), SupportedHashes)
		if err != nil {
			t.Fatal(err)
		}
		return m, d
	}
	pss := func() (wire.AuthMethod, []byte) { return sign(testRSA(t), "rsa/pss") }
	pkcs1 := func() (wire.AuthMethod, []byte) { return sign(testRSA(t), "rsa") }
	m, d := pss()
	for remote, ok := range map[string]bool{"pubkey": true, "rsa/pss": true, "rsa": false, "pubkey-sha256": false, "rsa/pss-sha384": false, "ecdsa": false, "rsa-4096": false} {
		_, err := Verify(testRSA(t).Public(), m, d, octets, mustConstraints(t, remote))
		if (err == nil) != ok {
			t.Errorf("PSS signature under auth = %s: %v", remote, err)
		}
	}
	m, d = pkcs1()
	for remote, ok := range map[string]bool{"pubkey": true, "rsa": true, "rsa-2048-sha256": true, "rsa/pss": false, "pubkey-sha512": false, "ike:rsa/pss": false} {
		_, err := Verify(testRSA(t).Public(), m, d, octets, mustConstraints(t, remote))
		if (err == nil) != ok {
			t.Errorf("PKCS#1 signature under auth = %s: %v", remote, err)
		}
	}
	ed := testEd(t)
	m, d = sign(ed, "ed25519")
	for remote, ok := range map[string]bool{"pubkey": true, "ed25519": true, "pubkey-sha256": false, "ecdsa": false} {
		_, err := Verify(ed.Public(), m, d, octets, mustConstraints(t, remote))
		if (err == nil) != ok {
			t.Errorf("Ed25519 signature under auth = %s: %v", remote, err)
		}
	}
	// A signature made by another key type than the one presented.
	if _, err := Verify(testEC(t, elliptic.P256()).Public(), m, d, octets, mustConstraints(t, "pubkey")); err == nil {
		t.Error("Ed25519 signature accepted for an ECDSA key")
	}
}

func TestParseConstraints(t *testing.T) {
	c := mustConstraints(t, "rsa-2048-ecdsa-256-sha256-sha384")
	if len(c.Keys) != 2 || c.Keys[0] != (KeyConstraint{Type: KeyRSA, MinBits: 2048}) || c.Keys[1] != (KeyConstraint{Type: KeyECDSA, MinBits: 256}) {
		t.Errorf("keys %+v", c.Keys)
	}
	if len(c.Hashes) != 2 || c.Hashes[0] != wire.HashSHA2_256 || c.Hashes[1] != wire.HashSHA2_384 {
		t.Errorf("hashes %v", c.Hashes)
	}
	c = mustConstraints(t, "pubkey-sha256-ike:rsa/pss-sha384")
	if c.IKE == nil || !c.IKE.namesPSS() || c.IKE.Hashes[0] != wire.HashSHA2_384 {
		t.Errorf("ike part %+v", c.IKE)
	}
	for _, bad := range []string{"rsa-2048-4096", "2048", "pubkey-md5", "ed448", "rsa-pubkey"} {
		if _, err := ParseConstraints(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPSSParams(t *testing.T) {
	// Without parameters fields: RFC 4055's SHA-1 defaults.
	p, ok := parsePSSAlgID(unhex(t, "300d06092a864886f70d01010a3000"))
	if !ok || p.Hash != wire.HashSHA1 || p.SaltLength != 20 {
		t.Errorf("defaults: %+v %v", p, ok)
	}
	// MGF1 with another hash than the message hash is refused.
	mixed := RSAPSSSHA256.AlgorithmIdentifier()
	mixed = bytes.Replace(mixed, unhex(t, "a11c301a06092a864886f70d010108300d0609608648016503040201"), unhex(t, "a11c301a06092a864886f70d010108300d0609608648016503040202"), 1)
	if _, ok := parsePSSAlgID(mixed); ok {
		t.Error("MGF1-SHA384 with SHA-256 accepted")
	}
}

func TestPSK(t *testing.T) {
	prf := func(k, d []byte) []byte {
		h := crypto.SHA256.New()
		h.Write(k)
		h.Write(d)
		return h.Sum(nil)
	}
	a := PSKAuth(prf, []byte("psk"), []byte("octets"))
	if VerifyPSK(prf, []byte("psk"), []byte("octets"), a) != nil || VerifyPSK(prf, []byte("psl"), []byte("octets"), a) == nil {
		t.Fatal("PSK verification")
	}
}

// FuzzAlgorithmIdentifier: reading any AlgorithmIdentifier never panics, and an accepted one that
// is not PSS re-encodes (modulo the optional NULL) to a known constant.
func FuzzAlgorithmIdentifier(f *testing.F) {
	for _, a := range algIDs {
		f.Add(mustHex(a.der))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, p, err := SchemeFromAlgorithmIdentifier(b)
		if err != nil {
			return
		}
		if s.Padding == PSS && p.Hash != s.Hash {
			t.Fatalf("PSS hash %v in scheme %v", p.Hash, s)
		}
		if s.AlgorithmIdentifier() == nil && s.Padding != PSS {
			t.Fatalf("accepted %x as %v, which has no encoding", b, s)
		}
	})
}

// FuzzVerify: Verify never panics on arbitrary AUTH data.
func FuzzVerify(f *testing.F) {
	key := testEC(f, elliptic.P256())
	m, d, _, err := Sign(rand.Reader, key, []byte("o"), Constraints{}, SupportedHashes)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(m), d)
	f.Add(uint8(9), make([]byte, 64))
	f.Fuzz(func(t *testing.T, method uint8, data []byte) {
		Verify(key.Public(), wire.AuthMethod(method), data, []byte("o"), Constraints{})
		Verify(testRSA(t).Public(), wire.AuthMethod(method), data, []byte("o"), Constraints{})
	})
}
