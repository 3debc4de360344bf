package ccm

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The known answers: RFC 3610 §8 packet vectors #1-#3 (13-byte nonce, 8-byte tag) and NIST SP
// 800-38C Appendix C examples C.1-C.3 (nonces of 7, 8 and 12 bytes, tags of 4, 6 and 8 bytes).
var vectors = []struct {
	name                      string
	key, nonce, ad, pt, ctTag string
	tagSize                   int
}{
	{"RFC 3610 #1", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", "00000003020100a0a1a2a3a4a5", "0001020304050607",
		"08090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
		"588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0", 8},
	{"RFC 3610 #2", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", "00000004030201a0a1a2a3a4a5", "0001020304050607",
		"08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"72c91a36e135f8cf291ca894085c87e3cc15c439c9e43a3ba091d56e10400916", 8},
	{"RFC 3610 #3", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", "00000005040302a0a1a2a3a4a5", "0001020304050607",
		"08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
		"51b1e5f44a197d1da46b0f8e2d282ae871e838bb64da8596574adaa76fbd9fb0c5", 8},
	{"SP 800-38C C.1", "404142434445464748494a4b4c4d4e4f", "10111213141516", "0001020304050607",
		"20212223", "7162015b4dac255d", 4},
	{"SP 800-38C C.2", "404142434445464748494a4b4c4d4e4f", "1011121314151617", "000102030405060708090a0b0c0d0e0f",
		"202122232425262728292a2b2c2d2e2f", "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd", 6},
	{"SP 800-38C C.3", "404142434445464748494a4b4c4d4e4f", "101112131415161718191a1b", "000102030405060708090a0b0c0d0e0f10111213",
		"202122232425262728292a2b2c2d2e2f3031323334353637",
		"e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951", 8},
}

func TestKnownAnswers(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			b, _ := aes.NewCipher(unhex(v.key))
			nonce := unhex(v.nonce)
			c, err := New(b, len(nonce), v.tagSize)
			if err != nil {
				t.Fatal(err)
			}
			want := unhex(v.ctTag)
			got := c.Seal(nil, nonce, unhex(v.pt), unhex(v.ad))
			if !bytes.Equal(got, want) {
				t.Fatalf("Seal = %x, want %x", got, want)
			}
			pt, err := c.Open(nil, nonce, want, unhex(v.ad))
			if err != nil || !bytes.Equal(pt, unhex(v.pt)) {
				t.Fatalf("Open = %x, %v", pt, err)
			}
			// In place, as ESP opens.
			buf := append([]byte(nil), want...)
			if pt, err := c.Open(buf[:0], nonce, buf, unhex(v.ad)); err != nil || !bytes.Equal(pt, unhex(v.pt)) {
				t.Fatalf("Open in place = %x, %v", pt, err)
			}
			for i := range want {
				bad := append([]byte(nil), want...)
				bad[i] ^= 0x01
				if _, err := c.Open(nil, nonce, bad, unhex(v.ad)); err == nil {
					t.Fatalf("a flipped bit in byte %d was accepted", i)
				}
			}
			if _, err := c.Open(nil, nonce, want, append(unhex(v.ad), 0)); err == nil {
				t.Fatal("other additional data was accepted")
			}
		})
	}
}

// TestRoundTrip: ESP's parameters (11-byte nonce, tags of 8, 12, 16) with every message length
// around the block boundaries.
func TestRoundTrip(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 32))
	for _, tag := range []int{8, 12, 16} {
		c, err := New(b, 11, tag)
		if err != nil {
			t.Fatal(err)
		}
		nonce := make([]byte, 11)
		for n := 0; n < 70; n++ {
			pt := bytes.Repeat([]byte{byte(n)}, n)
			ad := bytes.Repeat([]byte{0xad}, n%13)
			ct := c.Seal(nil, nonce, pt, ad)
			if len(ct) != n+tag {
				t.Fatalf("sealed %d bytes, want %d", len(ct), n+tag)
			}
			got, err := c.Open(nil, nonce, ct, ad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("tag %d, %d bytes: %v", tag, n, err)
			}
		}
	}
}

func TestParameters(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 16))
	for _, p := range [][2]int{{6, 8}, {14, 8}, {11, 3}, {11, 18}, {11, 7}} {
		if _, err := New(b, p[0], p[1]); err == nil {
			t.Errorf("nonce %d, tag %d accepted", p[0], p[1])
		}
	}
}

// FuzzOpen feeds arbitrary ciphertexts and tampered seals to Open: it must not panic, must refuse
// anything it did not seal, and must return exactly the plaintext of what it did.
func FuzzOpen(f *testing.F) {
	b, _ := aes.NewCipher(make([]byte, 16))
	c, err := New(b, 11, 12)
	if err != nil {
		f.Fatal(err)
	}
	nonce := make([]byte, 11)
	f.Add([]byte("some plaintext"), []byte("ad"), -1)
	f.Add([]byte{}, []byte{}, 0)
	f.Add(bytes.Repeat([]byte{7}, 40), []byte{}, 39)
	f.Fuzz(func(t *testing.T, pt, ad []byte, flip int) {
		ct := c.Seal(nil, nonce, pt, ad)
		if flip >= 0 && flip < len(ct) {
			ct[flip] ^= 1
		}
		got, err := c.Open(nil, nonce, ct, ad)
		tampered := flip >= 0 && flip < len(ct)
		if tampered && err == nil {
			t.Fatalf("opened a ciphertext with bit %d flipped", flip)
		}
		if !tampered && (err != nil || !bytes.Equal(got, pt)) {
			t.Fatalf("round trip: %v", err)
		}
		// Arbitrary bytes as a ciphertext: refused (a forgery would take 2^96 tries).
		if _, err := c.Open(nil, nonce, pt, ad); err == nil && len(pt) >= 12 {
			t.Fatalf("opened arbitrary bytes %x", pt)
		}
	})
}
