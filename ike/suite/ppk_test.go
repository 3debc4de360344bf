package suite

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"testing"
)

// hmacPlus is prf+ of RFC 7296 §2.13 written out with crypto/hmac, independent of PRF.Plus:
// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
func hmacPlus(h func() hash.Hash, key, s []byte, n int) []byte {
	var out, t []byte
	for i := byte(1); len(out) < n; i++ {
		m := hmac.New(h, key)
		m.Write(t)
		m.Write(s)
		m.Write([]byte{i})
		t = m.Sum(nil)
		out = append(out, t...)
	}
	return out[:n]
}

// TestPPKIntermediate checks RFC 9867's two computations against crypto/hmac directly, for
// HMAC-SHA-256 and HMAC-SHA-384: the PPK Confirmation is the first 8 octets of prf(PPK, Ni | Nr |
// SPIi | SPIr), and the keys after the PPK are prf+(SKEYSEED', Ni | Nr | SPIi | SPIr) split as
// in RFC 7296 §2.14 with SKEYSEED' = prf+(PPK, SK_d) as long as the PRF's output. Every key
// changes; a different PPK gives other keys and another confirmation.
func TestPPKIntermediate(t *testing.T) {
	ni, nr := seq(0x10, 32), seq(0x50, 32)
	spii, spir := seq(0xa0, 8), seq(0xb0, 8)
	ppk := []byte("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		prf uint16
		h   func() hash.Hash
	}{{PRF_HMAC_SHA2_256, sha256.New}, {PRF_HMAC_SHA2_384, sha512.New384}} {
		tr := IKETransforms{Encr: ENCR_AES_GCM_16, EncrKeyBits: 256, PRF: tc.prf, Integ: AUTH_NONE}
		p, err := NewPRF(tc.prf)
		if err != nil {
			t.Fatal(err)
		}
		prev, err := DeriveIKEKeys(tr, seq(0x01, p.Size()), ni, nr, spii, spir)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := PPKConfirmation(p, ppk, ni, nr, spii, spir)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(tc.h, ppk)
		for _, b := range [][]byte{ni, nr, spii, spir} {
			m.Write(b)
		}
		if want := m.Sum(nil)[:8]; !bytes.Equal(conf, want) {
			t.Errorf("prf %d: PPK Confirmation %x, want %x", tc.prf, conf, want)
		}
		next, err := PPKIntermediateKeys(tr, prev, ppk, ni, nr, spii, spir)
		if err != nil {
			t.Fatal(err)
		}
		seed := hmacPlus(tc.h, ppk, prev.SKd, p.Size())
		s := append(append(append(append([]byte(nil), ni...), nr...), spii...), spir...)
		n := p.Size()
		km := hmacPlus(tc.h, seed, s, 3*n+2*36) // AES-256-GCM: 32-byte key and 4-byte salt
		want := map[string][2][]byte{
			"SK_d": {next.SKd, km[:n]}, "SK_ei": {next.SKei, km[n : n+36]}, "SK_er": {next.SKer, km[n+36 : n+72]},
			"SK_pi": {next.SKpi, km[n+72 : 2*n+72]}, "SK_pr": {next.SKpr, km[2*n+72:]},
		}
		for name, kv := range want {
			if !bytes.Equal(kv[0], kv[1]) {
				t.Errorf("prf %d: %s = %x, want %x", tc.prf, name, kv[0], kv[1])
			}
		}
		for name, pair := range map[string][2][]byte{"SK_d": {prev.SKd, next.SKd}, "SK_ei": {prev.SKei, next.SKei}, "SK_pi": {prev.SKpi, next.SKpi}, "SK_pr": {prev.SKpr, next.SKpr}} {
			if bytes.Equal(pair[0], pair[1]) {
				t.Errorf("prf %d: %s unchanged by the PPK", tc.prf, name)
			}
		}
		other, _ := PPKIntermediateKeys(tr, prev, []byte("another key"), ni, nr, spii, spir)
		otherConf, _ := PPKConfirmation(p, []byte("another key"), ni, nr, spii, spir)
		if bytes.Equal(other.SKd, next.SKd) || bytes.Equal(otherConf, conf) {
			t.Errorf("prf %d: another PPK gives the same keys or confirmation", tc.prf)
		}
	}
}

func TestPPKIntermediateBadInput(t *testing.T) {
	p, _ := NewPRF(PRF_HMAC_SHA2_256)
	tr := IKETransforms{Encr: ENCR_AES_GCM_16, EncrKeyBits: 128, PRF: PRF_HMAC_SHA2_256, Integ: AUTH_NONE}
	ni, nr, spi := seq(1, 32), seq(2, 32), seq(3, 8)
	prev, _ := DeriveIKEKeys(tr, seq(4, 32), ni, nr, spi, spi)
	if _, err := PPKConfirmation(p, []byte("k"), ni, nr, spi[:7], spi); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("7-byte SPI: %v", err)
	}
	if _, err := PPKConfirmation(p, []byte("k"), ni[:8], nr, spi, spi); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("8-byte nonce: %v", err)
	}
	if _, err := PPKIntermediateKeys(tr, prev, nil, ni, nr, spi, spi); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("empty PPK: %v", err)
	}
}
