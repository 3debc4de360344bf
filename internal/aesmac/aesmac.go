// Package aesmac implements the two AES-based MACs IPsec uses for integrity: AES-XCBC-MAC (RFC
// 3566; AUTH_AES_XCBC_96 truncates it to 96 bits) and AES-CMAC (RFC 4493, NIST SP 800-38B;
// AUTH_AES_CMAC_96 truncates it to 96 bits, RFC 4494). Both are CBC-MACs over AES-128 whose last
// block is masked with a subkey chosen by whether it is complete; they differ in how the subkeys
// are made. Both are hash.Hash values that can be cloned, so that concurrent users start from
// one keyed template.
//
// The standard library has neither; the block cipher is crypto/aes.
package aesmac

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"hash"
)

// Size is the full MAC length; IPsec sends the first 12 bytes.
const Size = aes.BlockSize

// KeySize is the key length of both MACs as IPsec uses them (RFC 3566 §2.1, RFC 4494 §2.1).
const KeySize = 16

// ErrKeySize reports a key that is not 16 bytes.
var ErrKeySize = errors.New("aesmac: key must be 16 bytes")

// mac is the CBC-MAC state shared by XCBC and CMAC.
type mac struct {
	block  cipher.Block // the key CBC runs under
	k2, k3 [aes.BlockSize]byte
	// x is the chaining value; buf holds up to one block not yet processed (the last block must
	// wait for Sum, which masks it).
	x    [aes.BlockSize]byte
	buf  [aes.BlockSize]byte
	nbuf int
	// last is Sum's work block, kept here: a local array handed to the block cipher would be
	// allocated on every call.
	last [aes.BlockSize]byte
}

// NewXCBC returns AES-XCBC-MAC keyed with key (RFC 3566 §4): K1 = E(K, 0x01^16) keys the CBC,
// K2 = E(K, 0x02^16) masks a complete last block and K3 = E(K, 0x03^16) a padded one.
func NewXCBC(key []byte) (hash.Hash, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	k, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	var k1, c [aes.BlockSize]byte
	m := &mac{}
	for i, dst := range [][]byte{k1[:], m.k2[:], m.k3[:]} {
		for j := range c {
			c[j] = byte(i + 1)
		}
		k.Encrypt(dst, c[:])
	}
	if m.block, err = aes.NewCipher(k1[:]); err != nil {
		return nil, err
	}
	clear(k1[:])
	return m, nil
}

// NewCMAC returns AES-CMAC keyed with key (RFC 4493 §2.3): L = E(K, 0^128), K1 = dbl(L) masks a
// complete last block, K2 = dbl(K1) a padded one, where dbl is doubling in GF(2^128).
func NewCMAC(key []byte) (hash.Hash, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	k, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	m := &mac{block: k}
	var l [aes.BlockSize]byte
	k.Encrypt(l[:], l[:])
	dbl(m.k2[:], l[:])
	dbl(m.k3[:], m.k2[:])
	clear(l[:])
	return m, nil
}

// dbl doubles in GF(2^128) with the polynomial x^128 + x^7 + x^2 + x + 1 (RFC 4493 §2.3: shift
// left one bit, and XOR 0x87 into the last byte if a bit fell off).
func dbl(dst, src []byte) {
	carry := src[0] >> 7
	for i := 0; i < len(src)-1; i++ {
		dst[i] = src[i]<<1 | src[i+1]>>7
	}
	dst[len(src)-1] = src[len(src)-1] << 1
	dst[len(src)-1] ^= 0x87 & -carry
}

func (m *mac) Size() int      { return Size }
func (m *mac) BlockSize() int { return aes.BlockSize }

func (m *mac) Reset() {
	clear(m.x[:])
	m.nbuf = 0
}

// Write absorbs p. It always keeps the last (possibly complete) block back for Sum.
func (m *mac) Write(p []byte) (int, error) {
	n := len(p)
	if m.nbuf > 0 || len(p) <= aes.BlockSize {
		k := copy(m.buf[m.nbuf:], p)
		m.nbuf += k
		p = p[k:]
		if len(p) == 0 {
			return n, nil
		}
		m.chain(m.buf[:])
		m.nbuf = 0
	}
	for len(p) > aes.BlockSize {
		m.chain(p[:aes.BlockSize])
		p = p[aes.BlockSize:]
	}
	m.nbuf = copy(m.buf[:], p)
	return n, nil
}

// chain processes one complete block that is not the last.
func (m *mac) chain(b []byte) {
	subtle.XORBytes(m.x[:], m.x[:], b)
	m.block.Encrypt(m.x[:], m.x[:])
}

// Sum appends the MAC of what was written to b, leaving the state unchanged.
func (m *mac) Sum(b []byte) []byte {
	last := &m.last
	*last = [aes.BlockSize]byte{}
	copy(last[:], m.buf[:m.nbuf])
	if m.nbuf == aes.BlockSize {
		subtle.XORBytes(last[:], last[:], m.k2[:])
	} else {
		last[m.nbuf] = 0x80 // 10* padding (RFC 3566 §4 (3)(b), RFC 4493 §2.4 step 4)
		subtle.XORBytes(last[:], last[:], m.k3[:])
	}
	subtle.XORBytes(last[:], last[:], m.x[:])
	m.block.Encrypt(last[:], last[:])
	return append(b, last[:]...)
}

// Clone returns an independent copy of the state (hash.Cloner); the keys are shared, read only.
func (m *mac) Clone() (hash.Cloner, error) {
	c := *m
	return &c, nil
}
