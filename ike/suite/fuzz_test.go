package suite

import (
	"bytes"
	"errors"
	"testing"
)

// Open reads untrusted bytes from the network. Whatever arrives, it must
// return an error or a plaintext no longer than the body, and never panic;
// anything it accepts must be what the peer sealed.
func fuzzOpen(f *testing.F, newPair func() (Protector, Protector)) {
	seal, _ := newPair()
	for _, n := range []int{0, 1, 15, 16, 300} {
		body, err := seal.Seal(nil, testAAD(), seq(byte(n), n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(testAAD(), body)
	}
	f.Add([]byte{}, []byte{})
	f.Add(testAAD(), make([]byte, 40))
	f.Fuzz(func(t *testing.T, aad, body []byte) {
		_, open := newPair()
		pt, err := open.Open(nil, aad, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAuthentication) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(pt) >= len(body) {
			t.Fatalf("plaintext of %d bytes from a %d-byte body", len(pt), len(body))
		}
	})
}

func FuzzOpenAESGCM(f *testing.F) {
	fuzzOpen(f, func() (Protector, Protector) {
		a, _ := NewAEADSealer(ENCR_AES_GCM_16, seq(1, 20))
		b, _ := NewAEADSealer(ENCR_AES_GCM_16, seq(1, 20))
		return a, b
	})
}

func FuzzOpenChaCha20Poly1305(f *testing.F) {
	fuzzOpen(f, func() (Protector, Protector) {
		a, _ := NewAEADSealer(ENCR_CHACHA20_POLY1305, seq(1, 36))
		b, _ := NewAEADSealer(ENCR_CHACHA20_POLY1305, seq(1, 36))
		return a, b
	})
}

func FuzzOpenAESCBC(f *testing.F) {
	fuzzOpen(f, func() (Protector, Protector) {
		a, _ := NewCBCHMAC(AUTH_HMAC_SHA2_256_128, seq(1, 16), seq(2, 32), nil)
		b, _ := NewCBCHMAC(AUTH_HMAC_SHA2_256_128, seq(1, 16), seq(2, 32), nil)
		return a, b
	})
}

// The peer's KE data is untrusted. For each group, SharedSecret and
// Respond must either refuse it with ErrInvalidPublicValue or return a
// secret of the group's fixed length.
func FuzzKeyExchangePeerValue(f *testing.F) {
	groups := []uint16{MODP_2048, ECP_256, ECP_384, ECP_521, CURVE25519, ML_KEM_768, ML_KEM_1024, ML_KEM_512}
	for i, g := range groups {
		a, _ := NewKeyExchange(g, nil)
		b, _ := NewKeyExchange(g, nil)
		f.Add(uint8(i), true, a.PublicValue())
		if pub, _, err := b.Respond(a.PublicValue()); err == nil {
			f.Add(uint8(i), false, pub)
		}
		f.Add(uint8(i), false, []byte{})
	}
	secretSize := map[uint16]int{MODP_2048: 256, ECP_256: 32, ECP_384: 48, ECP_521: 66, CURVE25519: 32, ML_KEM_768: 32, ML_KEM_1024: 32, ML_KEM_512: 32}
	f.Fuzz(func(t *testing.T, which uint8, asResponder bool, peer []byte) {
		group := groups[int(which)%len(groups)]
		ke, err := NewKeyExchange(group, nil)
		if err != nil {
			t.Fatal(err)
		}
		var secret []byte
		if asResponder {
			var pub []byte
			pub, secret, err = ke.Respond(peer)
			if err == nil {
				if n, _ := PublicValueSize(group, false); len(pub) != n {
					t.Fatalf("group %d: responder KE data of %d bytes, want %d", group, len(pub), n)
				}
			}
		} else {
			secret, err = ke.SharedSecret(peer)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPublicValue) {
				t.Fatalf("group %d: unexpected error kind: %v", group, err)
			}
			return
		}
		if len(secret) != secretSize[group] {
			t.Fatalf("group %d: secret of %d bytes, want %d", group, len(secret), secretSize[group])
		}
		if group == CURVE25519 && bytes.Equal(secret, make([]byte, len(secret))) {
			t.Fatal("X25519 accepted a peer value giving the all-zero secret")
		}
	})
}
