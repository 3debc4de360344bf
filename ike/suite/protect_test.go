package suite

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
)

// TestRFC7634AppendixB reproduces the IKEv2 example of RFC 7634 Appendix
// B: an INFORMATIONAL request carrying a SET_WINDOW_SIZE notification,
// protected with ChaCha20-Poly1305, byte for byte.
func TestRFC7634AppendixB(t *testing.T) {
	key := unhex(t, "80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f"+
		"90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f")
	salt := unhex(t, "a0 a1 a2 a3")
	iv := unhex(t, "10 11 12 13 14 15 16 17")
	// Notify payload: no next payload, length 12, protocol 0, SPI size 0,
	// type SET_WINDOW_SIZE (16385), window size 10.
	plaintext := unhex(t, "00 00 00 0c 00 00 40 01 00 00 00 0a")
	message := unhex(t, "c0 c1 c2 c3 c4 c5 c6 c7 d0 d1 d2 d3 d4 d5 d6 d7"+
		"2e 20 25 00 00 00 00 09 00 00 00 45 29 00 00 29"+
		"10 11 12 13 14 15 16 17 61 03 94 70 1f 8d 01 7f"+
		"7c 12 92 48 89 6b 71 bf e2 52 36 ef d7 cd c6 70"+
		"66 90 63 15 b2")
	// AAD: IKE header and SK payload header (RFC 7634 §3, RFC 5282).
	aad, body := message[:32], message[32:]

	p, err := NewAEADSealer(ENCR_CHACHA20_POLY1305, append(bytes.Clone(key), salt...))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.SealedLen(len(plaintext)); got != len(body) {
		t.Errorf("SealedLen = %d, want %d", got, len(body))
	}
	ap := p.(*aeadProtector)
	ap.mu.Lock()
	got := ap.sealIVLocked(nil, aad, plaintext, iv)
	ap.mu.Unlock()
	if !bytes.Equal(got, body) {
		t.Errorf("sealed body\n got %x\nwant %x", got, body)
	}
	opened, err := p.Open(nil, aad, body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(opened, plaintext) {
		t.Errorf("opened %x, want %x", opened, plaintext)
	}
}

// protectorCases returns one protector pair (sender, receiver with the same
// keys) per supported encryption/integrity combination.
func protectorCases(t testing.TB) []struct {
	name     string
	seal     Protector
	open     Protector
	encrKey  []byte
	integKey []byte
} {
	var out []struct {
		name     string
		seal     Protector
		open     Protector
		encrKey  []byte
		integKey []byte
	}
	for _, c := range []struct {
		name  string
		encr  uint16
		bits  int
		integ uint16
	}{
		{"AES-GCM-128", ENCR_AES_GCM_16, 128, AUTH_NONE},
		{"AES-GCM-256", ENCR_AES_GCM_16, 256, AUTH_NONE},
		{"ChaCha20-Poly1305", ENCR_CHACHA20_POLY1305, 0, AUTH_NONE},
		{"AES-CBC-128/SHA2-256-128", ENCR_AES_CBC, 128, AUTH_HMAC_SHA2_256_128},
		{"AES-CBC-192/SHA2-384-192", ENCR_AES_CBC, 192, AUTH_HMAC_SHA2_384_192},
		{"AES-CBC-256/SHA2-512-256", ENCR_AES_CBC, 256, AUTH_HMAC_SHA2_512_256},
	} {
		el, il, err := cipherKeyLens(c.encr, c.bits, c.integ)
		if err != nil {
			t.Fatal(err)
		}
		ek, ik := seq(0x30, el), seq(0x70, il)
		s, err := NewProtector(c.encr, c.bits, c.integ, ek, ik, nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := NewProtector(c.encr, c.bits, c.integ, ek, ik, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct {
			name     string
			seal     Protector
			open     Protector
			encrKey  []byte
			integKey []byte
		}{c.name, s, o, ek, ik})
	}
	return out
}

// ikeAuthBody is a stand-in for a 300-byte IKE_AUTH inner payload chain.
func ikeAuthBody() []byte { return seq(0x05, 300) }

func testAAD() []byte { return seq(0xe0, 32) }

func TestProtectorRoundTrip(t *testing.T) {
	for _, c := range protectorCases(t) {
		for _, n := range []int{0, 1, 14, 15, 16, 17, 31, 300, 1000} {
			pt := seq(byte(n), n)
			prefix := []byte("hdr")
			sealed, err := c.seal.Seal(prefix, testAAD(), pt)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !bytes.Equal(sealed[:3], prefix) || len(sealed)-3 != c.seal.SealedLen(n) {
				t.Fatalf("%s n=%d: body %d bytes, SealedLen %d", c.name, n, len(sealed)-3, c.seal.SealedLen(n))
			}
			inner := len(sealed) - 3 - c.seal.IVSize() - c.seal.ICVSize()
			if inner%c.seal.BlockSize() != 0 || inner < n+1 {
				t.Errorf("%s n=%d: %d encrypted bytes not aligned to %d", c.name, n, inner, c.seal.BlockSize())
			}
			opened, err := c.open.Open([]byte("x"), testAAD(), sealed[3:])
			if err != nil {
				t.Fatalf("%s n=%d: Open: %v", c.name, n, err)
			}
			if !bytes.Equal(opened, append([]byte("x"), pt...)) {
				t.Fatalf("%s n=%d: round trip mismatch", c.name, n)
			}
		}
	}
}

// Flipping any single bit of the IV, ciphertext, ICV or AAD must make Open fail.
func TestProtectorTamper(t *testing.T) {
	for _, c := range protectorCases(t) {
		aad := testAAD()
		body, err := c.seal.Seal(nil, aad, ikeAuthBody())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(body)*8; i++ {
			body[i/8] ^= 1 << (i % 8)
			if _, err := c.open.Open(nil, aad, body); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("%s: body bit %d flipped: error = %v, want ErrAuthentication", c.name, i, err)
			}
			body[i/8] ^= 1 << (i % 8)
		}
		for i := 0; i < len(aad)*8; i++ {
			aad[i/8] ^= 1 << (i % 8)
			if _, err := c.open.Open(nil, aad, body); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("%s: AAD bit %d flipped: error = %v, want ErrAuthentication", c.name, i, err)
			}
			aad[i/8] ^= 1 << (i % 8)
		}
		if _, err := c.open.Open(nil, aad, body); err != nil {
			t.Fatalf("%s: untouched body refused: %v", c.name, err)
		}
	}
}

func TestProtectorMalformed(t *testing.T) {
	for _, c := range protectorCases(t) {
		minLen := c.seal.IVSize() + c.seal.ICVSize() + 1
		if c.seal.BlockSize() > 1 {
			minLen = c.seal.IVSize() + c.seal.BlockSize() + c.seal.ICVSize()
		}
		for _, n := range []int{0, 1, minLen - 1} {
			if _, err := c.open.Open(nil, testAAD(), make([]byte, n)); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %d-byte body: error = %v, want ErrMalformed", c.name, n, err)
			}
		}
		if c.seal.BlockSize() > 1 {
			if _, err := c.open.Open(nil, testAAD(), make([]byte, minLen+1)); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: misaligned body: error = %v, want ErrMalformed", c.name, err)
			}
		}
	}
}

// refAEAD seals like RFC 5282 with crypto/cipher directly: nonce = salt | IV.
func refAEAD(t *testing.T, aead cipher.AEAD, salt, iv, aad, paddedPlaintext []byte) []byte {
	t.Helper()
	nonce := append(bytes.Clone(salt), iv...)
	return append(bytes.Clone(iv), aead.Seal(nil, nonce, paddedPlaintext, aad)...)
}

func TestAESGCMMatchesReference(t *testing.T) {
	key := seq(0x11, 32)
	salt := seq(0xa0, 4)
	p, err := NewAEADSealer(ENCR_AES_GCM_16, append(bytes.Clone(key), salt...))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	pt := ikeAuthBody()
	got, err := p.Seal(nil, testAAD(), pt)
	if err != nil {
		t.Fatal(err)
	}
	// The first IV of a fresh SA is counter value 0.
	want := refAEAD(t, gcm, salt, make([]byte, 8), testAAD(), append(bytes.Clone(pt), 0))
	if !bytes.Equal(got, want) {
		t.Errorf("AES-GCM body differs from reference")
	}
	got2, _ := p.Seal(nil, testAAD(), pt)
	want2 := refAEAD(t, gcm, salt, []byte{0, 0, 0, 0, 0, 0, 0, 1}, testAAD(), append(bytes.Clone(pt), 0))
	if !bytes.Equal(got2, want2) {
		t.Errorf("second AES-GCM body does not use IV 1")
	}
}

func TestAEADAcceptsAnyPaddingAndRejectsOverlongPadLength(t *testing.T) {
	key := seq(0x11, 16)
	salt := seq(0xa0, 4)
	p, _ := NewAEADSealer(ENCR_AES_GCM_16, append(bytes.Clone(key), salt...))
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	iv := seq(0x01, 8)
	pt := seq(0x40, 20)
	padded := append(append(bytes.Clone(pt), 0xde, 0xad, 0xbe), 3)
	got, err := p.Open(nil, testAAD(), refAEAD(t, gcm, salt, iv, testAAD(), padded))
	if err != nil || !bytes.Equal(got, pt) {
		t.Errorf("3 bytes of padding: %x, %v", got, err)
	}
	overlong := append(bytes.Clone(pt), 21) // pad length 21 + 1 > 21 bytes
	if _, err := p.Open(nil, testAAD(), refAEAD(t, gcm, salt, iv, testAAD(), overlong)); !errors.Is(err, ErrMalformed) {
		t.Errorf("overlong pad length: error = %v, want ErrMalformed", err)
	}
}

// fixedReader always yields the same bytes, to pin CBC IVs in tests.
type fixedReader []byte

func (f fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = f[i%len(f)]
	}
	return len(p), nil
}

// refCBC builds an RFC 7296 §3.14 body with crypto primitives directly.
func refCBC(t *testing.T, encKey, integKey, iv, aad, padded []byte, icvLen int) []byte {
	t.Helper()
	block, _ := aes.NewCipher(encKey)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	body := append(bytes.Clone(iv), ct...)
	m := hmac.New(sha256.New, integKey)
	m.Write(aad)
	m.Write(body)
	return append(body, m.Sum(nil)[:icvLen]...)
}

func TestAESCBCMatchesReference(t *testing.T) {
	encKey, integKey := seq(0x20, 16), seq(0x60, 32)
	iv := seq(0x90, 16)
	p, err := NewCBCHMAC(AUTH_HMAC_SHA2_256_128, encKey, integKey, fixedReader(iv))
	if err != nil {
		t.Fatal(err)
	}
	pt := ikeAuthBody() // 300 bytes: 300 + 1 pad length -> 4 bytes of padding to 304
	padded := append(append(bytes.Clone(pt), 0, 0, 0), 3)
	want := refCBC(t, encKey, integKey, iv, testAAD(), padded, 16)
	got, err := p.Seal(nil, testAAD(), pt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("AES-CBC body differs from reference")
	}

	// Any padding content and length that keeps alignment is accepted.
	extra := append(append(bytes.Clone(pt), seq(0x77, 19)...), 19)
	opened, err := p.Open(nil, testAAD(), refCBC(t, encKey, integKey, iv, testAAD(), extra, 16))
	if err != nil || !bytes.Equal(opened, pt) {
		t.Errorf("19 bytes of padding: %v", err)
	}
	// A pad length pointing before the plaintext start, with a valid ICV.
	bad := append(repeatByte(0, 15), 16)
	if _, err := p.Open(nil, testAAD(), refCBC(t, encKey, integKey, iv, testAAD(), bad, 16)); !errors.Is(err, ErrMalformed) {
		t.Errorf("overlong pad length: error = %v, want ErrMalformed", err)
	}
}

func TestAEADIVCounter(t *testing.T) {
	p, _ := NewAEADSealer(ENCR_CHACHA20_POLY1305, seq(0, 36))
	a, _ := p.Seal(nil, nil, []byte("a"))
	b, _ := p.Seal(nil, nil, []byte("a"))
	if !bytes.Equal(a[:8], make([]byte, 8)) || !bytes.Equal(b[:8], []byte{0, 0, 0, 0, 0, 0, 0, 1}) {
		t.Errorf("IVs %x, %x: want counter 0 then 1", a[:8], b[:8])
	}
	ap := p.(*aeadProtector)
	ap.nextIV = ^uint64(0) - 1
	last, err := p.Seal(nil, nil, []byte("a"))
	if err != nil || !bytes.Equal(last[:8], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}) {
		t.Fatalf("last IV: %x, %v", last[:8], err)
	}
	if _, err := p.Seal(nil, nil, []byte("a")); !errors.Is(err, ErrIVExhausted) {
		t.Errorf("after the last IV: error = %v, want ErrIVExhausted", err)
	}
}

func TestNewProtectorRejects(t *testing.T) {
	cases := []struct {
		name         string
		encr         uint16
		bits         int
		integ        uint16
		ekLen, ikLen int
		want         error
	}{
		{"GCM key too short", ENCR_AES_GCM_16, 128, AUTH_NONE, 16, 0, ErrInvalidKeyLength},
		{"GCM with integrity key", ENCR_AES_GCM_16, 128, AUTH_NONE, 20, 32, ErrInvalidKeyLength},
		{"GCM with integrity", ENCR_AES_GCM_16, 128, AUTH_HMAC_SHA2_256_128, 20, 32, ErrUnsupportedTransform},
		{"CBC integrity key short", ENCR_AES_CBC, 128, AUTH_HMAC_SHA2_256_128, 16, 31, ErrInvalidKeyLength},
		{"CBC key long", ENCR_AES_CBC, 128, AUTH_HMAC_SHA2_256_128, 17, 32, ErrInvalidKeyLength},
		{"ChaCha key short", ENCR_CHACHA20_POLY1305, 0, AUTH_NONE, 35, 0, ErrInvalidKeyLength},
		{"3DES", 3, 192, AUTH_HMAC_SHA2_256_128, 24, 32, ErrUnsupportedTransform},
	}
	for _, c := range cases {
		if _, err := NewProtector(c.encr, c.bits, c.integ, make([]byte, c.ekLen), make([]byte, c.ikLen), nil); !errors.Is(err, c.want) {
			t.Errorf("%s: error = %v, want %v", c.name, err, c.want)
		}
	}
	for _, n := range []int{0, 4, 19, 21} {
		if _, err := NewAEADSealer(ENCR_AES_GCM_16, make([]byte, n)); !errors.Is(err, ErrInvalidKeyLength) {
			t.Errorf("NewAEADSealer with %d bytes: error = %v", n, err)
		}
	}
	if _, err := NewAEADSealer(ENCR_AES_CBC, make([]byte, 20)); !errors.Is(err, ErrUnsupportedTransform) {
		t.Errorf("NewAEADSealer(CBC): error = %v", err)
	}
	if _, err := NewCBCHMAC(AUTH_NONE, make([]byte, 16), nil, nil); !errors.Is(err, ErrUnsupportedTransform) {
		t.Errorf("NewCBCHMAC(NONE): error = %v", err)
	}
}

func TestProtectorZero(t *testing.T) {
	for _, c := range protectorCases(t) {
		body, _ := c.seal.Seal(nil, nil, []byte("x"))
		c.seal.Zero()
		if _, err := c.seal.Seal(nil, nil, []byte("x")); !errors.Is(err, ErrZeroed) {
			t.Errorf("%s: Seal after Zero: error = %v", c.name, err)
		}
		c.open.Zero()
		if _, err := c.open.Open(nil, nil, body); !errors.Is(err, ErrZeroed) {
			t.Errorf("%s: Open after Zero: error = %v", c.name, err)
		}
	}
}

// The initiator's outbound protector talks to the responder's inbound one
// and the other way round, with keys straight from DeriveIKEKeys.
func TestKeysProtectors(t *testing.T) {
	for _, c := range ikeTransformCases {
		p, _ := NewPRF(c.tr.PRF)
		ni, nr := seq(1, 32), seq(2, 32)
		seed, _ := InitialSKEYSEED(p, ni, nr, seq(3, 32))
		k, err := DeriveIKEKeys(c.tr, seed, ni, nr, seq(4, 8), seq(5, 8))
		if err != nil {
			t.Fatal(err)
		}
		iOut, iIn, err := k.Protectors(c.tr, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		rOut, rIn, err := k.Protectors(c.tr, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]Protector{{iOut, rIn}, {rOut, iIn}} {
			body, _ := pair[0].Seal(nil, testAAD(), ikeAuthBody())
			if got, err := pair[1].Open(nil, testAAD(), body); err != nil || !bytes.Equal(got, ikeAuthBody()) {
				t.Errorf("%+v: direction mismatch: %v", c.tr, err)
			}
		}
		// The two directions use different keys.
		body, _ := iOut.Seal(nil, testAAD(), ikeAuthBody())
		if _, err := iIn.Open(nil, testAAD(), body); !errors.Is(err, ErrAuthentication) {
			t.Errorf("%+v: initiator opened its own message: %v", c.tr, err)
		}
	}
}

// With room in dst, the AEAD paths allocate nothing per message.
func TestAEADSealOpenDoNotAllocate(t *testing.T) {
	for _, encr := range []uint16{ENCR_AES_GCM_16, ENCR_CHACHA20_POLY1305} {
		p, _ := NewAEADSealer(encr, seq(0, 36))
		pt := ikeAuthBody()
		aad := testAAD()
		sealBuf := make([]byte, 0, 512)
		openBuf := make([]byte, 0, 512)
		body, _ := p.Seal(sealBuf, aad, pt)
		allocs := testing.AllocsPerRun(50, func() {
			b, err := p.Seal(sealBuf, aad, pt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Open(openBuf, aad, b); err != nil {
				t.Fatal(err)
			}
		})
		_ = body
		if allocs != 0 {
			t.Errorf("encryption %d: %v allocations per Seal+Open", encr, allocs)
		}
	}
}

// TestKeysFitAgreesWithProtector: Keys.Fit accepts exactly the transforms and keys for which both
// directions' Protectors can be built.
func TestKeysFitAgreesWithProtector(t *testing.T) {
	encrs := []struct {
		id   uint16
		bits []int
	}{
		{ENCR_AES_CBC, []int{0, 64, 128, 192, 256}},
		{ENCR_AES_GCM_16, []int{0, 128, 192, 256, 512}},
		{ENCR_CHACHA20_POLY1305, []int{0, 128, 256}},
		{3 /* 3DES */, []int{0}},
	}
	integs := []uint16{AUTH_NONE, AUTH_HMAC_SHA2_256_128, AUTH_HMAC_SHA2_384_192, AUTH_HMAC_SHA2_512_256, 2 /* HMAC-SHA1-96 */}
	for _, e := range encrs {
		for _, bits := range e.bits {
			for _, integ := range integs {
				tr := IKETransforms{Encr: e.id, EncrKeyBits: bits, PRF: PRF_HMAC_SHA2_256, Integ: integ}
				for _, short := range []bool{false, true} {
					encrLen, integLen, _ := cipherKeyLens(e.id, bits, integ)
					k := &Keys{SKei: make([]byte, encrLen), SKer: make([]byte, encrLen), SKai: make([]byte, integLen), SKar: make([]byte, integLen)}
					if short {
						k.SKer = make([]byte, max(encrLen-1, 0))
					}
					_, errOut := k.Protector(tr, true, true, nil)
					_, errIn := k.Protector(tr, true, false, nil)
					builds := errOut == nil && errIn == nil
					if fit := k.Fit(tr) == nil; fit != builds {
						t.Errorf("%+v short=%v: Fit %v, Protectors build %v (%v, %v)", tr, short, fit, builds, errOut, errIn)
					}
				}
			}
		}
	}
}
