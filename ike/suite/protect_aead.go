package suite

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	aeadIVSize    = 8  // explicit IV on the wire (RFC 5282, RFC 7634 §2)
	aeadNonceSize = 12 // salt | IV
	aeadTagSize   = 16 // AES-GCM with 16-octet ICV (transform 20), Poly1305
)

// aeadProtector protects SK payloads with AES-GCM-16 (RFC 5282) or
// ChaCha20-Poly1305 (RFC 7634 §3). The nonce is salt | IV; the AAD is the
// IKE header through the SK payload header (RFC 5282), without the IV.
type aeadProtector struct {
	mu   sync.Mutex // guards every field below
	aead cipher.AEAD
	salt [aeadSaltSize]byte
	// nextIV is the IV of the next message. IVs must never repeat under one
	// key, and a counter is the simplest value that cannot (RFC 5282
	// asks only for uniqueness). The all-ones value is never used, so the
	// counter cannot wrap around to a value already sent.
	nextIV uint64
	zeroed bool
	// The nonce handed to cipher.AEAD escapes through the interface call;
	// scratch space here keeps Seal and Open allocation-free.
	nonce [aeadNonceSize]byte
}

// NewAEADSealer builds a Protector for ENCR_AES_GCM_16 (key of 16, 24 or 32
// bytes plus a 4-byte salt) or ENCR_CHACHA20_POLY1305 (32 bytes plus salt).
// key is SK_ei or SK_er as DeriveIKEKeys returns it.
func NewAEADSealer(encr uint16, key []byte) (Protector, error) {
	if len(key) <= aeadSaltSize {
		return nil, fmt.Errorf("%w: AEAD key of %d bytes", ErrInvalidKeyLength, len(key))
	}
	cipherKey, salt := key[:len(key)-aeadSaltSize], key[len(key)-aeadSaltSize:]
	var aead cipher.AEAD
	switch encr {
	case ENCR_AES_GCM_16:
		block, err := aes.NewCipher(cipherKey)
		if err != nil {
			return nil, fmt.Errorf("%w: AES key of %d bytes", ErrInvalidKeyLength, len(cipherKey))
		}
		if aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("suite: AES-GCM: %w", err)
		}
	case ENCR_CHACHA20_POLY1305:
		var err error
		if aead, err = chacha20poly1305.New(cipherKey); err != nil {
			return nil, fmt.Errorf("%w: ChaCha20 key of %d bytes", ErrInvalidKeyLength, len(cipherKey))
		}
	default:
		return nil, fmt.Errorf("%w: encryption %d is not AEAD", ErrUnsupportedTransform, encr)
	}
	p := &aeadProtector{aead: aead}
	copy(p.salt[:], salt)
	return p, nil
}

// SetNextIV sets the counter the next Seal uses as IV. A caller that builds a Protector for each
// message (to keep no cipher state between messages) carries the counter across them.
func (p *aeadProtector) SetNextIV(iv uint64) {
	p.mu.Lock()
	p.nextIV = iv
	p.mu.Unlock()
}

// NextIV returns the IV the next Seal will use.
func (p *aeadProtector) NextIV() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nextIV
}

func (p *aeadProtector) IVSize() int         { return aeadIVSize }
func (p *aeadProtector) BlockSize() int      { return 1 }
func (p *aeadProtector) ICVSize() int        { return aeadTagSize }
func (p *aeadProtector) SealedLen(n int) int { return aeadIVSize + n + padLenSize + aeadTagSize }

// Seal uses the next counter value as IV and sends no padding, only the
// Pad Length byte: both AEADs are stream ciphers needing no alignment.
func (p *aeadProtector) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.zeroed {
		return nil, ErrZeroed
	}
	if p.nextIV == ^uint64(0) {
		return nil, ErrIVExhausted
	}
	var iv [aeadIVSize]byte
	binary.BigEndian.PutUint64(iv[:], p.nextIV)
	p.nextIV++
	return p.sealIVLocked(dst, aad, plaintext, iv[:]), nil
}

// sealIVLocked seals with an explicit IV; tests use it to reproduce
// published examples.
func (p *aeadProtector) sealIVLocked(dst, aad, plaintext, iv []byte) []byte {
	whole, body := grow(dst, p.SealedLen(len(plaintext)))
	copy(body, iv)
	inner := body[aeadIVSize : len(body)-aeadTagSize]
	copy(inner, plaintext)
	inner[len(inner)-1] = 0 // Pad Length: no padding
	copy(p.nonce[:aeadSaltSize], p.salt[:])
	copy(p.nonce[aeadSaltSize:], iv)
	p.aead.Seal(inner[:0], p.nonce[:], inner, aad)
	return whole
}

func (p *aeadProtector) Open(dst, aad, body []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.zeroed {
		return nil, ErrZeroed
	}
	if len(body) < aeadIVSize+padLenSize+aeadTagSize {
		return nil, fmt.Errorf("%w: body of %d bytes is shorter than IV, pad length and ICV", ErrMalformed, len(body))
	}
	copy(p.nonce[:aeadSaltSize], p.salt[:])
	copy(p.nonce[aeadSaltSize:], body[:aeadIVSize])
	start := len(dst)
	out, err := p.aead.Open(dst, p.nonce[:], body[aeadIVSize:], aad)
	if err != nil {
		return nil, ErrAuthentication
	}
	plain, err := stripPadding(out[start:])
	if err != nil {
		clear(out[start:])
		return nil, err
	}
	return out[:start+len(plain)], nil
}

func (p *aeadProtector) Zero() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.zeroed = true
	clear(p.salt[:])
	clear(p.nonce[:])
	p.aead = nil
}
