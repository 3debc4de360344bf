package vaesgcm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// need skips where the hardware (or a purego build) cannot run the kernels — something CI cannot
// install — but fails where the kernel lists the instructions and Available still says no.
func need(t testing.TB) {
	t.Helper()
	if Available() {
		return
	}
	if cpuinfoHasInstructions() {
		t.Fatal("/proc/cpuinfo lists VAES, VPCLMULQDQ and AVX-512 (F, BW, VL) but Available reports false")
	}
	t.Skip("this processor (or build) lacks VAES, VPCLMULQDQ or AVX-512")
}

func stdGCM(t testing.TB, key []byte) cipher.AEAD { return stdGCMTag(t, key, TagSize) }

func stdGCMTag(t testing.TB, key []byte, tagSize int) cipher.AEAD {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCMWithTagSize(b, tagSize)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The test cases of the GCM specification (McGrew and Viega, "The Galois/Counter Mode of
// Operation", 2005, Appendix B), which NIST's GCM validation also lists.
func TestSpecVectors(t *testing.T) {
	need(t)
	for _, tc := range []struct{ name, key, nonce, plain, aad, out string }{
		{"1", "00000000000000000000000000000000", "000000000000000000000000", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
		{"2", "00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "",
			"0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf"},
		{"13", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "",
			"530f8afbc74536b9a963b4f1c4cb738b"},
		{"14", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
			"00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"},
	} {
		g, err := New(unhex(tc.key))
		if err != nil {
			t.Fatal(err)
		}
		got := g.Seal(nil, unhex(tc.nonce), unhex(tc.plain), unhex(tc.aad))
		if !bytes.Equal(got, unhex(tc.out)) {
			t.Errorf("test case %s: sealed %x, want %s", tc.name, got, tc.out)
		}
		pt, err := g.Open(nil, unhex(tc.nonce), got, unhex(tc.aad))
		if err != nil || !bytes.Equal(pt, unhex(tc.plain)) {
			t.Errorf("test case %s: opened %x, %v", tc.name, pt, err)
		}
	}
}

// TestAgainstStandardLibrary seals and opens every length from 0 to 600 bytes and some longer
// ones, with every key size and associated data of 0 to 40 bytes, and compares with crypto/cipher.
func TestAgainstStandardLibrary(t *testing.T) {
	need(t)
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{1023, 1024, 1025, 1400, 1438, 4095, 4096, 8192 + 7, 65535}
	for n := range 601 {
		lengths = append(lengths, n)
	}
	for _, keyLen := range []int{16, 24, 32} {
		tagSize := TagSize
		if keyLen == 24 {
			tagSize = 12 // ENCR_AES_GCM_12
		}
		for _, n := range lengths {
			key := make([]byte, keyLen)
			nonce := make([]byte, NonceSize)
			plain := make([]byte, n)
			aad := make([]byte, rng.IntN(41))
			for _, b := range [][]byte{key, nonce, plain, aad} {
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
			}
			ours, err := NewWithTagSize(key, tagSize)
			if err != nil {
				t.Fatal(err)
			}
			std := stdGCMTag(t, key, tagSize)
			want := std.Seal(nil, nonce, plain, aad)
			got := ours.Seal(nil, nonce, plain, aad)
			if !bytes.Equal(got, want) {
				t.Fatalf("key %d bytes, %d bytes, aad %d: sealed\n%x\nwant\n%x", keyLen, n, len(aad), got, want)
			}
			pt, err := ours.Open(nil, nonce, want, aad)
			if err != nil || !bytes.Equal(pt, plain) {
				t.Fatalf("key %d bytes, %d bytes: open: %v", keyLen, n, err)
			}
			// In place, as ESP does.
			buf := append([]byte(nil), plain...)
			buf = ours.Seal(buf[:0], nonce, buf, aad)
			if !bytes.Equal(buf, want) {
				t.Fatalf("in place, %d bytes: sealed differently", n)
			}
			if pt, err = ours.Open(buf[:0], nonce, buf, aad); err != nil || !bytes.Equal(pt, plain) {
				t.Fatalf("in place, %d bytes: open: %v", n, err)
			}
		}
	}
}

// TestPowersOfH checks the table New builds with the assembly against H^k·x^-1 computed by
// SP 800-38D's bitwise multiplication.
func TestPowersOfH(t *testing.T) {
	need(t)
	for _, key := range [][]byte{make([]byte, 16), bytes.Repeat([]byte{0xa5}, 32)} {
		g, _ := New(key)
		var h [16]byte
		block, _ := aes.NewCipher(key)
		block.Encrypt(h[:], h[:])
		hv := [2]uint64{binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:])}
		// x^-1 = x^127 + x^6 + x + 1, since x·(x^127 + x^6 + x + 1) = x^128 + x^7 + x^2 + x ≡ 1.
		xinv := [2]uint64{0xc200000000000000, 1}
		p := hv
		for k := 1; k <= tableSize; k++ {
			var want [16]byte
			q := gfMul(p, xinv)
			binary.BigEndian.PutUint64(want[:8], q[0])
			binary.BigEndian.PutUint64(want[8:], q[1])
			got := g.(*aead).htable[tableSize-k]
			for i := range 16 {
				if got[i] != want[15-i] {
					t.Fatalf("H^%d·x^-1: table %x, want (reversed) %x", k, got, want)
				}
			}
			p = gfMul(p, hv)
		}
	}
}

// gfMul returns x·y in GF(2^128) in GCM's representation ([0] holds the first eight bytes, big
// endian), by SP 800-38D §6.3 Algorithm 1, in constant time: no branch or index depends on the
// operands. The tests check the table of powers of H with it.
func gfMul(x, y [2]uint64) [2]uint64 {
	var z [2]uint64
	v := y
	for i := range 128 {
		w := x[i/64]
		bit := (w >> (63 - uint(i%64))) & 1
		mask := -bit
		z[0] ^= v[0] & mask
		z[1] ^= v[1] & mask
		lsb := v[1] & 1
		v[1] = v[1]>>1 | v[0]<<63
		v[0] = v[0]>>1 ^ 0xe100000000000000&-lsb
	}
	return z
}

// TestCounterWraps checks the counter mode against crypto/aes block by block where the 32-bit
// counter wraps (inc32 leaves the first twelve bytes alone, SP 800-38D §6.2); with 12-byte nonces
// the counter starts at 2, but the kernel should not depend on that.
func TestCounterWraps(t *testing.T) {
	need(t)
	key := bytes.Repeat([]byte{0x42}, 32)
	g, _ := New(key)
	block, _ := aes.NewCipher(key)
	for _, start := range []uint32{0xfffffff0, 0xfffffffe, 0xffffffff} {
		for _, n := range []int{1, 15, 16, 17, 63, 64, 65, 257, 40 * 16} {
			var ctr [16]byte
			copy(ctr[:], "twelve bytes")
			ctr[12], ctr[13], ctr[14], ctr[15] = byte(start>>24), byte(start>>16), byte(start>>8), byte(start)
			got := make([]byte, n)
			ctrXOR(&g.(*aead).rk, g.(*aead).rounds, &ctr, &got[0], &got[0], n, nil)
			want := make([]byte, 0, n+16)
			c := ctr
			for len(want) < n {
				var ks [16]byte
				block.Encrypt(ks[:], c[:])
				want = append(want, ks[:]...)
				c = inc32(&c, 1)
			}
			if !bytes.Equal(got, want[:n]) {
				t.Fatalf("counter from %#x, %d bytes: key stream differs", start, n)
			}
		}
	}
}

// TestOpenRefusesForgeries flips each bit of the tag, some of the ciphertext and the associated
// data, and checks that Open refuses and writes no plaintext.
func TestOpenRefusesForgeries(t *testing.T) {
	need(t)
	key := bytes.Repeat([]byte{7}, 32)
	nonce := bytes.Repeat([]byte{9}, NonceSize)
	g, _ := New(key)
	plain := bytes.Repeat([]byte("goipsec "), 40)
	aad := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	sealed := g.Seal(nil, nonce, plain, aad)
	for bit := range len(sealed) * 8 {
		if bit >= 64 && bit < len(sealed)*8-128 && bit%61 != 0 {
			continue // every tag bit, the first bytes and a spread of the rest
		}
		forged := append([]byte(nil), sealed...)
		forged[bit/8] ^= 1 << (bit % 8)
		out := make([]byte, 0, len(plain))
		if pt, err := g.Open(out, nonce, forged, aad); err == nil {
			t.Fatalf("bit %d flipped: opened %x", bit, pt)
		}
		if bytes.Contains(out[:cap(out)], plain[:16]) {
			t.Fatalf("bit %d flipped: plaintext written", bit)
		}
	}
	if _, err := g.Open(nil, nonce, sealed, []byte{1, 2, 3, 4, 5, 6, 7, 9}); err == nil {
		t.Fatal("opened with other associated data")
	}
	if _, err := g.Open(nil, nonce, sealed[:TagSize-1], aad); err == nil {
		t.Fatal("opened a message shorter than the tag")
	}
}

func TestAllocations(t *testing.T) {
	need(t)
	g, _ := New(make([]byte, 32))
	nonce := make([]byte, NonceSize)
	buf := make([]byte, 1400+TagSize)
	if n := testing.AllocsPerRun(50, func() {
		ct := g.Seal(buf[:0], nonce, buf[:1400], buf[:8])
		if _, err := g.Open(ct[:0], nonce, ct, buf[1400:1408]); err == nil {
			panic("opened with other associated data")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per Seal and Open", n)
	}
}

func TestRefusesBadKeys(t *testing.T) {
	need(t)
	for _, n := range []int{0, 15, 17, 31, 33} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte key was taken", n)
		}
	}
	for _, n := range []int{0, 4, 8, 13, 15, 17} {
		if _, err := NewWithTagSize(make([]byte, 16), n); err == nil {
			t.Errorf("a %d-byte tag was taken", n)
		}
	}
}

func FuzzAgainstStandardLibrary(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 12), []byte("plaintext"), []byte("aad"))
	f.Fuzz(func(t *testing.T, key, nonce, plain, aad []byte) {
		if !Available() {
			t.Skip("no VAES here")
		}
		if len(key) < 32 || len(nonce) < NonceSize {
			return
		}
		tagSize := 16 - 4*(int(key[1])%2)
		key = key[:16+8*(int(key[0])%3)]
		nonce = nonce[:NonceSize]
		ours, err := NewWithTagSize(key, tagSize)
		if err != nil {
			t.Fatal(err)
		}
		want := stdGCMTag(t, key, tagSize).Seal(nil, nonce, plain, aad)
		if got := ours.Seal(nil, nonce, plain, aad); !bytes.Equal(got, want) {
			t.Fatalf("sealed %x, want %x", got, want)
		}
		if pt, err := ours.Open(nil, nonce, want, aad); err != nil || !bytes.Equal(pt, plain) {
			t.Fatalf("open: %v", err)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	for _, impl := range []string{"vaes", "stdlib"} {
		for _, n := range []int{64, 1400, 8192} {
			b.Run(impl+"/"+itoa(n), func(b *testing.B) {
				key := make([]byte, 32)
				var g cipher.AEAD
				if impl == "vaes" {
					need(b)
					g, _ = New(key)
				} else {
					g = stdGCM(b, key)
				}
				nonce := make([]byte, NonceSize)
				buf := make([]byte, n+TagSize)
				aad := make([]byte, 8)
				b.SetBytes(int64(n))
				for b.Loop() {
					g.Seal(buf[:0], nonce, buf[:n], aad)
				}
			})
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
