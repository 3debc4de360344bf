package suite

import "testing"

// BenchmarkKeyExchange measures one full side of each exchange: key
// generation plus the shared secret from a peer value.
func BenchmarkKeyExchange(b *testing.B) {
	for _, c := range []struct {
		name  string
		group uint16
	}{
		{"MODP-2048", MODP_2048}, {"MODP-3072", MODP_3072}, {"MODP-4096", MODP_4096},
		{"ECP-256", ECP_256}, {"ECP-384", ECP_384}, {"ECP-521", ECP_521},
		{"Curve25519", CURVE25519}, {"ML-KEM-768", ML_KEM_768}, {"ML-KEM-1024", ML_KEM_1024},
	} {
		b.Run(c.name, func(b *testing.B) {
			peer, err := NewKeyExchange(c.group, nil)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				ini, err := NewKeyExchange(c.group, nil)
				if err != nil {
					b.Fatal(err)
				}
				reply := peer.PublicValue()
				if IsKEM(c.group) {
					// The KEM initiator's secret needs a ciphertext made
					// for its own fresh key, so encapsulation is included.
					resp, _ := NewKeyExchange(c.group, nil)
					if reply, _, err = resp.Respond(ini.PublicValue()); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := ini.SharedSecret(reply); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealOpen seals and opens a 300-byte IKE_AUTH body.
func BenchmarkSealOpen(b *testing.B) {
	for _, c := range protectorCases(b) {
		pt, aad := ikeAuthBody(), testAAD()
		sealBuf := make([]byte, 0, 512)
		openBuf := make([]byte, 0, 512)
		body, _ := c.seal.Seal(nil, aad, pt)
		b.Run(c.name+"/Seal", func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := c.seal.Seal(sealBuf, aad, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/Open", func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := c.open.Open(openBuf, aad, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDeriveIKEKeys covers SKEYSEED and the seven-key split.
func BenchmarkDeriveIKEKeys(b *testing.B) {
	tr := IKETransforms{Encr: ENCR_AES_GCM_16, EncrKeyBits: 256, PRF: PRF_HMAC_SHA2_256}
	p, _ := NewPRF(tr.PRF)
	ni, nr, spi := seq(1, 32), seq(2, 32), seq(3, 8)
	gir := seq(4, 256)
	for b.Loop() {
		seed, _ := InitialSKEYSEED(p, ni, nr, gir)
		k, err := DeriveIKEKeys(tr, seed, ni, nr, spi, spi)
		if err != nil {
			b.Fatal(err)
		}
		k.Zero()
	}
}
