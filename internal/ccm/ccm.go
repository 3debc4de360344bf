// Package ccm implements the CCM mode of authenticated encryption (RFC 3610, NIST SP 800-38C) over
// a 128-bit block cipher, as a cipher.AEAD. ESP uses it with an 11-byte nonce and an 8-, 12- or
// 16-byte tag (RFC 4309); the package takes every nonce (7 to 13 bytes) and tag (4 to 16 bytes,
// even) length the specification allows, so its published examples can be checked.
//
// CCM computes a CBC-MAC over a first block B0 (flags, nonce, message length), the encoded
// associated data and the message, each zero-padded to whole blocks, and encrypts the message and
// the MAC with a counter mode whose counter blocks hold the nonce. The standard library has no
// CCM; the CBC-MAC runs on crypto/cipher's CBC encrypter (vectorised for AES), the counter mode a
// block at a time. Seal and Open allocate nothing.
package ccm

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"sync"

	"github.com/goipsec/goipsec/internal/appendbuf"
)

const blockSize = 16

// ccm is one key's CCM. Per-call state comes from a pool (block buffers handed to the cipher's
// Encrypt would otherwise escape to the heap on every call), so it is safe for concurrent use.
type ccm struct {
	b         cipher.Block
	nonceSize int
	tagSize   int
	pool      sync.Pool // *scratch
}

// scratch is the state of one Seal or Open.
type scratch struct {
	mac              cbcMAC
	ctr, ks, tag, s0 [blockSize]byte
	b0               [blockSize]byte
	lenField         [10]byte
	recv             [blockSize]byte
}

// New returns CCM over b (which must have 16-byte blocks) with the given nonce and tag lengths.
func New(b cipher.Block, nonceSize, tagSize int) (cipher.AEAD, error) {
	if b.BlockSize() != blockSize {
		return nil, errors.New("ccm: the block cipher must have 16-byte blocks")
	}
	if nonceSize < 7 || nonceSize > 13 {
		return nil, errors.New("ccm: nonce must be 7 to 13 bytes")
	}
	if tagSize < 4 || tagSize > 16 || tagSize%2 != 0 {
		return nil, errors.New("ccm: tag must be an even length of 4 to 16 bytes")
	}
	c := &ccm{b: b, nonceSize: nonceSize, tagSize: tagSize}
	c.pool.New = func() any { return &scratch{mac: cbcMAC{b: b}} }
	return c, nil
}

func (c *ccm) NonceSize() int { return c.nonceSize }
func (c *ccm) Overhead() int  { return c.tagSize }

// maxLen is the longest message the length field of 15-nonceSize bytes can express.
func (c *ccm) maxLen() uint64 {
	q := 15 - c.nonceSize
	if q >= 8 {
		return 1<<63 - 1
	}
	return 1<<(8*q) - 1
}

// counter writes counter block i: flags (q-1), nonce, i in q bytes (RFC 3610 §2.3).
func (c *ccm) counter(ctr *[blockSize]byte, nonce []byte, i uint64) {
	q := 15 - c.nonceSize
	ctr[0] = byte(q - 1)
	copy(ctr[1:], nonce)
	for j := 0; j < q; j++ {
		ctr[15-j] = byte(i >> (8 * j))
	}
}

// mac computes the CBC-MAC T of RFC 3610 §2.2 over B0, the encoded additional data and the
// plaintext, into s.tag.
func (c *ccm) mac(s *scratch, nonce, plaintext, ad []byte) {
	b0 := &s.b0
	*b0 = [blockSize]byte{}
	q := 15 - c.nonceSize
	b0[0] = byte((c.tagSize-2)/2)<<3 | byte(q-1)
	if len(ad) > 0 {
		b0[0] |= 0x40
	}
	copy(b0[1:], nonce)
	n := uint64(len(plaintext))
	for j := 0; j < q; j++ {
		b0[15-j] = byte(n >> (8 * j))
	}
	cbc := &s.mac
	cbc.x = [blockSize]byte{}
	cbc.nbuf = 0
	cbc.add(b0[:])
	if len(ad) > 0 {
		// The length of the additional data in 2, 6 or 10 bytes (RFC 3610 §2.2), then the data,
		// padded with zeros to a whole block.
		l := s.lenField[:]
		var ln int
		switch a := uint64(len(ad)); {
		case a < 1<<16-1<<8:
			binary.BigEndian.PutUint16(l, uint16(a))
			ln = 2
		case a <= 1<<32-1:
			l[0], l[1] = 0xff, 0xfe
			binary.BigEndian.PutUint32(l[2:], uint32(a))
			ln = 6
		default:
			l[0], l[1] = 0xff, 0xff
			binary.BigEndian.PutUint64(l[2:], a)
			ln = 10
		}
		cbc.add(l[:ln])
		cbc.add(ad)
		cbc.pad()
	}
	cbc.add(plaintext)
	cbc.pad()
	s.tag = cbc.x
}

// cbcMAC feeds bytes through CBC in whole blocks, buffering a partial one.
type cbcMAC struct {
	b    cipher.Block
	x    [blockSize]byte
	buf  [blockSize]byte
	nbuf int
}

func (m *cbcMAC) add(p []byte) {
	if m.nbuf > 0 {
		k := copy(m.buf[m.nbuf:], p)
		m.nbuf += k
		p = p[k:]
		if m.nbuf < blockSize {
			return
		}
		m.block(m.buf[:])
		m.nbuf = 0
	}
	for len(p) >= blockSize {
		m.block(p[:blockSize])
		p = p[blockSize:]
	}
	m.nbuf = copy(m.buf[:], p)
}

// pad completes a partial block with zeros.
func (m *cbcMAC) pad() {
	if m.nbuf == 0 {
		return
	}
	clear(m.buf[m.nbuf:])
	m.block(m.buf[:])
	m.nbuf = 0
}

func (m *cbcMAC) block(b []byte) {
	subtle.XORBytes(m.x[:], m.x[:], b)
	m.b.Encrypt(m.x[:], m.x[:])
}

// ctr XORs src with the key stream from counter block 1 on into dst.
func (c *ccm) ctr(s *scratch, dst, src, nonce []byte) {
	for i := uint64(1); len(src) > 0; i++ {
		c.counter(&s.ctr, nonce, i)
		c.b.Encrypt(s.ks[:], s.ctr[:])
		n := subtle.XORBytes(dst, src, s.ks[:])
		dst, src = dst[n:], src[n:]
	}
}

// tagMask computes S0, the key stream block that masks the tag, into s.s0.
func (c *ccm) tagMask(s *scratch, nonce []byte) {
	c.counter(&s.ctr, nonce, 0)
	c.b.Encrypt(s.s0[:], s.ctr[:])
}

// Seal implements cipher.AEAD.
func (c *ccm) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != c.nonceSize {
		panic("ccm: incorrect nonce length")
	}
	if uint64(len(plaintext)) > c.maxLen() {
		panic("ccm: message too large for the nonce length")
	}
	s := c.pool.Get().(*scratch)
	defer c.pool.Put(s)
	c.mac(s, nonce, plaintext, additionalData)
	ret, out := appendbuf.Grow(dst, len(plaintext)+c.tagSize)
	c.ctr(s, out, plaintext, nonce)
	c.tagMask(s, nonce)
	subtle.XORBytes(out[len(plaintext):], s.tag[:c.tagSize], s.s0[:c.tagSize])
	return ret
}

var errOpen = errors.New("ccm: message authentication failed")

// Open implements cipher.AEAD. On failure the plaintext written so far is wiped.
func (c *ccm) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != c.nonceSize {
		panic("ccm: incorrect nonce length")
	}
	if len(ciphertext) < c.tagSize || uint64(len(ciphertext)-c.tagSize) > c.maxLen() {
		return nil, errOpen
	}
	n := len(ciphertext) - c.tagSize
	s := c.pool.Get().(*scratch)
	defer c.pool.Put(s)
	copy(s.recv[:], ciphertext[n:]) // before dst, which may overlap ciphertext, is written
	ret, out := appendbuf.Grow(dst, n)
	c.ctr(s, out, ciphertext[:n], nonce)
	c.mac(s, nonce, out, additionalData)
	c.tagMask(s, nonce)
	subtle.XORBytes(s.tag[:c.tagSize], s.tag[:c.tagSize], s.s0[:c.tagSize])
	if subtle.ConstantTimeCompare(s.tag[:c.tagSize], s.recv[:c.tagSize]) != 1 {
		clear(out)
		return nil, errOpen
	}
	return ret, nil
}
