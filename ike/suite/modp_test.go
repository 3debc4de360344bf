package suite

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"testing"
)

// arctanRecip returns 2^prec * arctan(1/x), truncated, by the alternating
// Taylor series.
func arctanRecip(x int64, prec uint) *big.Int {
	x2 := big.NewInt(x * x)
	term := new(big.Int).Lsh(big.NewInt(1), prec)
	term.Quo(term, big.NewInt(x))
	sum := new(big.Int).Set(term)
	for n, add := int64(3), false; term.Sign() != 0; n, add = n+2, !add {
		term.Quo(term, x2)
		t := new(big.Int).Quo(term, big.NewInt(n))
		if add {
			sum.Add(sum, t)
		} else {
			sum.Sub(sum, t)
		}
	}
	return sum
}

// floorPiShifted returns [2^bits * pi] using Machin's formula
// pi = 16 arctan(1/5) - 4 arctan(1/239), with guard bits against the
// truncation of each series term.
func floorPiShifted(bits uint) *big.Int {
	const guard = 64
	pi := new(big.Int).Mul(arctanRecip(5, bits+guard), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(arctanRecip(239, bits+guard), big.NewInt(4)))
	return pi.Rsh(pi, guard)
}

// TestMODPPrimes recomputes each RFC 3526 prime from the formula the RFC
// states next to it, p = 2^N - 2^(N-64) - 1 + 2^64 * { [2^(N-130) pi] + k },
// and checks that p and q = (p-1)/2 are prime and that g = 2 generates the
// order-q subgroup (2^q = 1 mod p), as §1 of RFC 3526 says.
func TestMODPPrimes(t *testing.T) {
	for _, c := range []struct {
		group uint16
		bits  uint
		k     int64
	}{
		{MODP_1024, 1024, 129093},  // RFC 2409 §6.2 (legacy, IKEv1 only)
		{MODP_2048, 2048, 124476},  // RFC 3526 §3
		{MODP_3072, 3072, 1690314}, // RFC 3526 §4
		{MODP_4096, 4096, 240904},  // RFC 3526 §5
	} {
		n := c.bits
		want := floorPiShifted(n - 130)
		want.Add(want, big.NewInt(c.k))
		want.Lsh(want, 64)
		want.Add(want, new(big.Int).Lsh(big.NewInt(1), n))
		want.Sub(want, new(big.Int).Lsh(big.NewInt(1), n-64))
		want.Sub(want, big.NewInt(1))

		g := modpGroups[c.group]
		if c.group == MODP_1024 {
			g = modp1024
		}
		if g.prime.Cmp(want) != 0 {
			t.Errorf("group %d: transcribed prime differs from the RFC 3526 formula", c.group)
			continue
		}
		if g.size*8 != int(n) || g.prime.BitLen() != int(n) {
			t.Errorf("group %d: size %d bytes, %d bits", c.group, g.size, g.prime.BitLen())
		}
		if !g.prime.ProbablyPrime(1) {
			t.Errorf("group %d: p is not prime", c.group)
		}
		q := new(big.Int).Rsh(g.prime, 1)
		if !q.ProbablyPrime(1) {
			t.Errorf("group %d: (p-1)/2 is not prime", c.group)
		}
		if new(big.Int).Exp(big.NewInt(modpGenerator), q, g.prime).Cmp(big.NewInt(1)) != 0 {
			t.Errorf("group %d: 2 does not generate the order-q subgroup", c.group)
		}
		if n, _ := LegacyPublicValueSize(c.group); n != g.size {
			t.Errorf("group %d: PublicValueSize = %d", c.group, n)
		}
	}
}

// TestLegacyOnlyOnRequest: the weak algorithms are made only by the Legacy constructors.
func TestLegacyOnlyOnRequest(t *testing.T) {
	if _, err := NewKeyExchange(MODP_1024, nil); err == nil {
		t.Error("NewKeyExchange made MODP1024")
	}
	if _, err := NewPRF(PRF_HMAC_SHA1); err == nil {
		t.Error("NewPRF made HMAC-SHA-1")
	}
	a, err := NewLegacyKeyExchange(MODP_1024, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewLegacyKeyExchange(MODP_1024, nil)
	s1, err := a.SharedSecret(b.PublicValue())
	if err != nil {
		t.Fatal(err)
	}
	_, s2, err := b.Respond(a.PublicValue())
	if err != nil || !bytes.Equal(s1, s2) || len(s1) != 128 {
		t.Fatalf("MODP1024 secrets differ or have the wrong size (%d): %v", len(s1), err)
	}
	// RFC 2202 §3 test case 1: HMAC-SHA-1 with key 0x0b*20 and data "Hi There".
	p, err := NewLegacyPRF(PRF_HMAC_SHA1)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Compute(bytes.Repeat([]byte{0x0b}, 20), []byte("Hi There"))
	if hex.EncodeToString(got) != "b617318655057264e28bc0b6fb378c8ef146be00" {
		t.Fatalf("HMAC-SHA-1 = %x", got)
	}
}
