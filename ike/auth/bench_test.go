package auth

import (
	"crypto/rand"
	"testing"

	"github.com/goipsec/goipsec/credentials/pki"
	"github.com/goipsec/goipsec/ike/wire"
)

// CPU per signature and verification of an IKE_AUTH (signed octets of a typical size: an
// IKE_SA_INIT message of ~300 bytes, a nonce and a PRF output), per key type. docs/performance.md
// reports these.
func BenchmarkSignVerify(b *testing.B) {
	octets := make([]byte, 300+32+32)
	rand.Read(octets)
	for _, tc := range []struct {
		name string
		kt   pki.KeyType
		auth string
	}{
		{"ecdsa-p256", pki.ECDSA256, "pubkey"},
		{"ecdsa-p384", pki.ECDSA384, "pubkey"},
		{"ed25519", pki.Ed25519, "pubkey"},
		{"rsa3072-pkcs1", pki.RSA3072, "pubkey"},
		{"rsa3072-pss", pki.RSA3072, "rsa/pss"},
	} {
		key, err := pki.GenerateKey(tc.kt, nil)
		if err != nil {
			b.Fatal(err)
		}
		c := mustConstraints(b, tc.auth)
		var m wire.AuthMethod
		var data []byte
		b.Run("sign/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				m, data, _, err = Sign(rand.Reader, key, octets, c, SupportedHashes)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("verify/"+tc.name, func(b *testing.B) {
			pub := key.Public()
			for b.Loop() {
				if _, err := Verify(pub, m, data, octets, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
