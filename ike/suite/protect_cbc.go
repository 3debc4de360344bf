package suite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"sync"
)

// cbcProtector protects SK payloads with AES-CBC (RFC 3602) and an
// HMAC-SHA2 ICV truncated per RFC 4868. The ICV covers the IKE
// header through the end of the ciphertext (RFC 7296 §3.14): aad | IV |
// ciphertext.
type cbcProtector struct {
	block   cipher.Block
	rand    io.Reader
	icvSize int

	mu      sync.Mutex // guards mac and scratch
	mac     hash.Hash
	scratch [sha512.Size]byte
	zeroed  bool
}

// NewCBCHMAC builds a Protector for ENCR_AES_CBC with the given integrity
// transform. encrKey is 16, 24 or 32 bytes (SK_ei/SK_er); integKey is the
// HMAC key (SK_ai/SK_ar) of the hash's output length. rand supplies a fresh
// random IV per message (crypto/rand.Reader when nil); RFC 7296 §3.14 needs
// IVs the attacker cannot predict.
func NewCBCHMAC(integ uint16, encrKey, integKey []byte, rand io.Reader) (Protector, error) {
	var newHash func() hash.Hash
	var icvSize int
	switch integ {
	case AUTH_HMAC_SHA2_256_128:
		newHash, icvSize = sha256.New, 16
	case AUTH_HMAC_SHA2_384_192:
		newHash, icvSize = sha512.New384, 24
	case AUTH_HMAC_SHA2_512_256:
		newHash, icvSize = sha512.New, 32
	default:
		return nil, fmt.Errorf("%w: integrity %d", ErrUnsupportedTransform, integ)
	}
	if want, _ := integKeyLen(integ); len(integKey) != want {
		return nil, fmt.Errorf("%w: integrity key of %d bytes, want %d", ErrInvalidKeyLength, len(integKey), want)
	}
	block, err := aes.NewCipher(encrKey)
	if err != nil {
		return nil, fmt.Errorf("%w: AES key of %d bytes", ErrInvalidKeyLength, len(encrKey))
	}
	return &cbcProtector{block: block, rand: orDefaultRand(rand), icvSize: icvSize, mac: hmac.New(newHash, integKey)}, nil
}

func (p *cbcProtector) IVSize() int    { return aes.BlockSize }
func (p *cbcProtector) BlockSize() int { return aes.BlockSize }
func (p *cbcProtector) ICVSize() int   { return p.icvSize }

// SealedLen pads to the next block boundary with the minimum padding, as
// RFC 7296 §3.14 asks of senders.
func (p *cbcProtector) SealedLen(n int) int {
	padded := (n + padLenSize + aes.BlockSize - 1) / aes.BlockSize * aes.BlockSize
	return aes.BlockSize + padded + p.icvSize
}

func (p *cbcProtector) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.zeroed {
		return nil, ErrZeroed
	}
	whole, body := grow(dst, p.SealedLen(len(plaintext)))
	iv := body[:aes.BlockSize]
	if _, err := io.ReadFull(p.rand, iv); err != nil {
		return nil, fmt.Errorf("suite: reading CBC IV: %w", err)
	}
	inner := body[aes.BlockSize : len(body)-p.icvSize]
	copy(inner, plaintext)
	padLen := len(inner) - len(plaintext) - padLenSize
	// Padding content is free (RFC 7296 §3.14); zeros leak nothing.
	clear(inner[len(plaintext) : len(plaintext)+padLen])
	inner[len(inner)-1] = byte(padLen)
	cipher.NewCBCEncrypter(p.block, iv).CryptBlocks(inner, inner)
	copy(body[len(body)-p.icvSize:], p.icvLocked(aad, body[:len(body)-p.icvSize]))
	return whole, nil
}

// icvLocked returns the truncated HMAC over aad | ivAndCiphertext; the
// result aliases p.scratch.
func (p *cbcProtector) icvLocked(aad, ivAndCiphertext []byte) []byte {
	p.mac.Reset()
	p.mac.Write(aad)
	p.mac.Write(ivAndCiphertext)
	return p.mac.Sum(p.scratch[:0])[:p.icvSize]
}

// Open checks the ICV before decrypting anything, so unauthenticated
// ciphertext never reaches the CBC decryption or padding logic.
func (p *cbcProtector) Open(dst, aad, body []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.zeroed {
		return nil, ErrZeroed
	}
	ctLen := len(body) - aes.BlockSize - p.icvSize
	if ctLen < aes.BlockSize || ctLen%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: body of %d bytes does not hold IV, whole blocks and ICV", ErrMalformed, len(body))
	}
	macEnd := len(body) - p.icvSize
	if !hmac.Equal(p.icvLocked(aad, body[:macEnd]), body[macEnd:]) {
		return nil, ErrAuthentication
	}
	whole, out := grow(dst, ctLen)
	cipher.NewCBCDecrypter(p.block, body[:aes.BlockSize]).CryptBlocks(out, body[aes.BlockSize:macEnd])
	plain, err := stripPadding(out)
	if err != nil {
		clear(out)
		return nil, err
	}
	return whole[:len(dst)+len(plain)], nil
}

func (p *cbcProtector) Zero() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.zeroed = true
	clear(p.scratch[:])
	p.block, p.mac = nil, nil
}
