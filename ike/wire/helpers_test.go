package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"regexp"
	"testing"
)

var (
	hexComment = regexp.MustCompile(`#[^\n]*`)
	hexSpace   = regexp.MustCompile(`\s+`)
)

// unhex decodes annotated hex: '#' comments and whitespace are ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = hexSpace.ReplaceAllString(hexComment.ReplaceAllString(s, ""), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad test hex: %v", err)
	}
	return b
}

// repeat returns n bytes counting up from start, for recognisable data.
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// errAuth is what the test openers return when the ICV does not verify.
var errAuth = errors.New("test: authentication failed")

// gcmProtector is a test Sealer/Opener with the shape of AES-GCM-16 in
// IKEv2 (RFC 5282): 8-byte explicit IV, no padding beyond the Pad Length
// octet, 16-byte tag, AAD exactly as given. It records the AAD of the last
// call so tests can check the byte ranges.
type gcmProtector struct {
	aead    cipher.AEAD
	salt    [4]byte
	counter uint64
	lastAAD []byte
}

func newGCM(t testing.TB) *gcmProtector {
	block, err := aes.NewCipher(seq(0x40, 16))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmProtector{aead: aead, salt: [4]byte{1, 2, 3, 4}}
}

func (p *gcmProtector) SealedLen(n int) int { return 8 + n + 1 + 16 }

func (p *gcmProtector) nonce(iv []byte) []byte {
	return append(append([]byte{}, p.salt[:]...), iv...)
}

func (p *gcmProtector) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	p.lastAAD = append([]byte{}, aad...)
	p.counter++
	iv := binary.BigEndian.AppendUint64(nil, p.counter)
	padded := append(append([]byte{}, plaintext...), 0) // Pad Length 0
	dst = append(dst, iv...)
	return p.aead.Seal(dst, p.nonce(iv), padded, aad), nil
}

func (p *gcmProtector) Open(dst, aad, body []byte) ([]byte, error) {
	p.lastAAD = append([]byte{}, aad...)
	if len(body) < 8+1+16 {
		return nil, errAuth
	}
	out, err := p.aead.Open(nil, p.nonce(body[:8]), body[8:], aad)
	if err != nil {
		return nil, errAuth
	}
	padLen := int(out[len(out)-1])
	if padLen+1 > len(out) {
		return nil, errAuth
	}
	return append(dst, out[:len(out)-1-padLen]...), nil
}

// blockProtector is a test Sealer/Opener with the shape of AES-CBC with
// HMAC (RFC 7296 §3.14): 16-byte IV, plaintext padded to 16-byte blocks,
// ICV over AAD | IV | ciphertext. The "cipher" is a keyed XOR stream: the
// tests check framing, not confidentiality.
type blockProtector struct {
	key     []byte
	counter byte
}

func newBlock() *blockProtector { return &blockProtector{key: seq(0x70, 32)} }

const testBlock, testICV = 16, 12

func (p *blockProtector) SealedLen(n int) int {
	return testBlock + (n+1+testBlock-1)/testBlock*testBlock + testICV
}

func (p *blockProtector) xor(iv, b []byte) {
	for i := range b {
		b[i] ^= iv[i%len(iv)] ^ p.key[i%len(p.key)]
	}
}

func (p *blockProtector) icv(aad, ivct []byte) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write(aad)
	m.Write(ivct)
	return m.Sum(nil)[:testICV]
}

func (p *blockProtector) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	p.counter++
	iv := seq(p.counter, testBlock)
	padded := append([]byte{}, plaintext...)
	padLen := (len(plaintext)+1+testBlock-1)/testBlock*testBlock - len(plaintext) - 1
	padded = append(padded, make([]byte, padLen)...)
	padded = append(padded, byte(padLen))
	p.xor(iv, padded)
	start := len(dst)
	dst = append(append(dst, iv...), padded...)
	return append(dst, p.icv(aad, dst[start:])...), nil
}

func (p *blockProtector) Open(dst, aad, body []byte) ([]byte, error) {
	if len(body) < testBlock+testBlock+testICV || (len(body)-testBlock-testICV)%testBlock != 0 {
		return nil, errAuth
	}
	macEnd := len(body) - testICV
	if !hmac.Equal(p.icv(aad, body[:macEnd]), body[macEnd:]) {
		return nil, errAuth
	}
	out := append([]byte{}, body[testBlock:macEnd]...)
	p.xor(body[:testBlock], out)
	padLen := int(out[len(out)-1])
	if padLen+1 > len(out) {
		return nil, errAuth
	}
	return append(dst, out[:len(out)-1-padLen]...), nil
}

// protector is both halves, as ike/suite's Protector is.
type protector interface {
	Sealer
	Opener
}

func protectors(t testing.TB) map[string]protector {
	return map[string]protector{"aead": newGCM(t), "cbc+hmac": newBlock()}
}
