package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"
	"encoding/binary"
	"math"

	"github.com/goipsec/goipsec/internal/appendbuf"
)

// Seal appends to dst the ESP packet carrying payload with sequence number seq: SPI, the low 32
// bits of seq, the IV, the encryption of payload|tfcPad zero bytes|padding|Pad Length|Next Header,
// and the ICV. Like cipher.AEAD.Seal it returns the extended slice and allocates nothing when dst
// has enough spare capacity (see Overhead). payload may lie in dst's spare capacity (in-place
// sealing) since it is moved into place before anything else is written.
//
// seq must come from NextSeq (or be otherwise unique for the SA): it is the AEAD IV.
// tfcPad zero bytes of traffic flow confidentiality padding (RFC 4303 §2.7) follow the payload
// inside the encryption; only tunnel-mode payloads, whose inner IP header carries their length,
// can be padded this way.
func (sa *SA) Seal(dst []byte, seq uint64, nextHeader byte, payload []byte, tfcPad int) ([]byte, error) {
	return sa.seal(dst, seq, nextHeader, payload, tfcPad, nil)
}

// seal is Seal with an optional explicit IV, so that published test packets, whose IVs are not
// what production would choose, can be reproduced byte for byte. Production passes nil.
func (sa *SA) seal(dst []byte, seq uint64, nextHeader byte, payload []byte, tfcPad int, iv []byte) ([]byte, error) {
	k := sa.keys.Load()
	if k == nil {
		return nil, ErrZeroed
	}
	if seq == 0 || (!sa.esn && seq > math.MaxUint32) {
		return nil, ErrSeq
	}
	if tfcPad < 0 {
		return nil, ErrTFCPad
	}
	plainLen := len(payload) + tfcPad
	ctLen := sa.ciphertextLen(plainLen)
	ctOff := headerLen + int(sa.ivLen)
	total := ctOff + ctLen + int(sa.icvLen)
	ret, out := appendbuf.Grow(dst, total)

	ct := out[ctOff : ctOff+ctLen]
	// First: payload may sit in the spare capacity being overwritten below. A caller that built
	// the payload in place costs no copy.
	if len(payload) > 0 && &ct[0] != &payload[0] {
		copy(ct, payload)
	}
	binary.BigEndian.PutUint32(out[offSPI:], sa.spi)
	binary.BigEndian.PutUint32(out[offSeq:], uint32(seq))
	clear(ct[len(payload):plainLen])
	padLen := ctLen - plainLen - trailerLen
	for i := range padLen {
		ct[plainLen+i] = byte(i + 1) // RFC 4303 §2.4 monotonic padding 1, 2, 3, ...
	}
	ct[ctLen-2] = byte(padLen)
	ct[ctLen-1] = nextHeader

	ivField := out[headerLen:ctOff]
	s := k.getScratch()
	defer k.putScratch(s)
	if k.isAEAD() {
		aead, err := k.getAEAD(sa.enc)
		if err != nil {
			return nil, err
		}
		if iv != nil {
			copy(ivField, iv)
		} else {
			binary.BigEndian.PutUint64(ivField, seq)
		}
		nonce := k.nonce(s, ivField)
		if k.gmac {
			// GMAC authenticates header, IV and the payload in the clear (RFC 4543 §3).
			aead.Seal(out[ctOff+ctLen:ctOff+ctLen], nonce, nil, sa.gmacAAD(s, out[:ctOff+ctLen], seq))
			return ret, nil
		}
		aead.Seal(ct[:0], nonce, ct, sa.aad(s, out, seq))
		return ret, nil
	}
	if k.block != nil && k.ctr {
		// RFC 3686 §3.1: the IV only has to be unique per key; the sequence number is.
		if iv != nil {
			copy(ivField, iv)
		} else {
			binary.BigEndian.PutUint64(ivField, seq)
		}
		ctrXOR(k.macKeys, s, k.salt[:], ivField, ct)
	} else if k.block != nil {
		if iv != nil {
			copy(ivField, iv)
		} else {
			// E(seq) under the IV key: the IV is one block, 16 bytes for AES, 8 for 3DES.
			clear(ivField[:len(ivField)-8])
			binary.BigEndian.PutUint64(ivField[len(ivField)-8:], seq)
			k.ivGen.Encrypt(ivField, ivField)
		}
		s.cbcEnc.SetIV(ivField)
		s.cbcEnc.CryptBlocks(ct, ct)
	}
	if s.mac != nil {
		icvOff := ctOff + ctLen
		copy(out[icvOff:], sa.icv(s, out[:icvOff], seq))
	}
	return ret, nil
}

// nonce returns the AEAD nonce for the IV iv: the salt, then the IV (RFC 4106 §4, RFC 4309 §4,
// RFC 4543 §3.1, RFC 7634 §2).
func (k *saKeys) nonce(s *scratch, iv []byte) []byte {
	n := int(k.nsalt)
	copy(s.nonce[:n], k.salt[:n])
	copy(s.nonce[n:], iv)
	return s.nonce[:n+aeadIVLen]
}

// gmacAAD returns what GMAC authenticates (RFC 4543 §3.2): SPI, sequence number (the ESN's high
// half between the two when ESN is in use), IV and the payload with its padding and trailer.
// covered is the packet up to the ICV.
func (sa *SA) gmacAAD(s *scratch, covered []byte, seq uint64) []byte {
	if !sa.esn {
		return covered
	}
	a := append(s.gmacAAD[:0], covered[:offSeq]...)
	a = binary.BigEndian.AppendUint32(a, uint32(seq>>32))
	a = append(a, covered[offSeq:]...)
	s.gmacAAD = a
	return a
}

// ctrXOR encrypts or decrypts data in place with AES-CTR as RFC 3686 §4 lays out the counter
// block: the 4-byte nonce, the 8-byte IV, and a 32-bit block counter starting at 1.
func ctrXOR(k *macKeys, s *scratch, nonce, iv, data []byte) {
	copy(s.ctr[:saltLen], nonce)
	copy(s.ctr[saltLen:saltLen+aeadIVLen], iv)
	n := len(data)
	if n < ctrGCMMin {
		ctrBlocks(k.block, s, data, 0)
		return
	}
	// The standard library offers fast AES counter mode only through cipher.NewCTR, which
	// allocates per call, and through GCM. GCM encrypts with the counter block nonce‖IV‖2, 3, ...
	// (NIST SP 800-38D §7.1 with a 12-byte IV: J0 = IV‖1, and counting starts at inc32(J0)); RFC
	// 3686 numbers the same blocks from 1. So GCM's key stream is RFC 3686's from its second block
	// on. Seal runs over bytes 16..n-16 in place and appends its 16-byte tag over the last 16
	// bytes, which are saved first; the first block and those last bytes get their key stream one
	// block at a time. The tag is overwritten and never leaves this function.
	copy(s.tail[:], data[n-aes.BlockSize:])
	mid := data[aes.BlockSize : n-aes.BlockSize]
	k.ctrGCM.Seal(mid[:0], s.ctr[:saltLen+aeadIVLen], mid, nil)
	copy(data[n-aes.BlockSize:], s.tail[:])
	ctrBlocks(k.block, s, data[:aes.BlockSize], 0)
	ctrBlocks(k.block, s, data[n-aes.BlockSize:], n-aes.BlockSize)
}

// ctrGCMMin is the payload length from which ctrXOR takes GCM's key stream; below it the three
// single blocks it still computes are most of the work anyway.
const ctrGCMMin = 64

// ctrBlocks XORs data, which starts off bytes into the payload, with the RFC 3686 key stream one
// block at a time. s.ctr holds nonce and IV.
func ctrBlocks(b cipher.Block, s *scratch, data []byte, off int) {
	for len(data) > 0 {
		binary.BigEndian.PutUint32(s.ctr[saltLen+aeadIVLen:], uint32(off/aes.BlockSize+1))
		b.Encrypt(s.ks[:], s.ctr[:])
		in := off % aes.BlockSize
		n := subtle.XORBytes(data, data, s.ks[in:])
		data, off = data[n:], off+n
	}
}

// aad returns the AEAD additional data of RFC 4106 §5 / RFC 7634 §2.1: SPI and the sequence
// number, with its high half between them when ESN is in use. Without ESN it is simply the first
// eight bytes of the packet.
func (sa *SA) aad(s *scratch, pkt []byte, seq uint64) []byte {
	if !sa.esn {
		return pkt[:headerLen]
	}
	copy(s.aad[:4], pkt[offSPI:offSPI+4])
	binary.BigEndian.PutUint64(s.aad[4:], seq)
	return s.aad[:]
}

// icv computes the truncated HMAC over covered (SPI through ciphertext) followed, with ESN, by
// the untransmitted high 32 bits of the sequence number (RFC 4303 §2.2.1, §3.3.2.1). The result
// aliases s.sum.
func (sa *SA) icv(s *scratch, covered []byte, seq uint64) []byte {
	s.mac.Reset()
	s.mac.Write(covered)
	if sa.esn {
		binary.BigEndian.PutUint32(s.seqHi[:], uint32(seq>>32))
		s.mac.Write(s.seqHi[:])
	}
	return s.mac.Sum(s.sum[:0])[:int(sa.icvLen)]
}

// Open authenticates and decrypts the ESP packet pkt (starting at the SPI) in place. It returns
// the payload (aliasing pkt), the Next Header value and the full sequence number.
//
// Order of checks: length and alignment, SPI, replay window (before any cryptography), integrity,
// padding (RFC 4303 §2.4: the pad bytes must be 1, 2, 3, ...), and only then the replay window
// is updated, so forged or broken packets never move it. Each drop reason has its own error:
// ErrTooShort, ErrMalformed, ErrSPIMismatch, ErrReplay, ErrAuth, ErrPadding. pkt may be modified
// even when Open fails.
//
// A dummy packet (RFC 4303 §2.6) is returned with nextHeader NextHeaderNone; the caller drops it
// silently. With TFC padding (RFC 4303 §2.7) the payload is everything before the ESP padding,
// padding zeros included: a tunnel-mode caller trims it to the inner IP packet's own length.
func (sa *SA) Open(pkt []byte) (payload []byte, nextHeader byte, seq uint64, err error) {
	k := sa.keys.Load()
	if k == nil {
		return nil, 0, 0, ErrZeroed
	}
	if sa.outbound {
		return nil, 0, 0, ErrOutbound
	}
	ctOff := headerLen + int(sa.ivLen)
	if len(pkt) < ctOff+trailerLen+int(sa.icvLen) {
		return nil, 0, 0, ErrTooShort
	}
	ctEnd := len(pkt) - int(sa.icvLen)
	ctLen := ctEnd - ctOff
	if ctLen%int(sa.align) != 0 {
		return nil, 0, 0, ErrMalformed
	}
	if binary.BigEndian.Uint32(pkt[offSPI:]) != sa.spi {
		return nil, 0, 0, ErrSPIMismatch
	}
	low := binary.BigEndian.Uint32(pkt[offSeq:])
	seq, fresh := uint64(low), true
	switch {
	case sa.esn:
		seq, fresh = sa.window.InferAndCheck(low)
	case sa.checkSeen:
		fresh = sa.window.Check(seq)
	}
	if sa.checkSeen && !fresh {
		return nil, 0, 0, ErrReplay
	}

	s := k.getScratch()
	defer k.putScratch(s)
	ct := pkt[ctOff:ctEnd]
	var plain []byte
	switch {
	case k.isAEAD():
		aead, err := k.getAEAD(sa.enc)
		if err != nil {
			return nil, 0, 0, err
		}
		nonce := k.nonce(s, pkt[headerLen:ctOff])
		if k.gmac {
			if _, err := aead.Open(ct[:0], nonce, pkt[ctEnd:], sa.gmacAAD(s, pkt[:ctEnd], seq)); err != nil {
				return nil, 0, 0, ErrAuth
			}
			plain = ct
		} else if plain, err = aead.Open(ct[:0], nonce, pkt[ctOff:], sa.aad(s, pkt, seq)); err != nil {
			return nil, 0, 0, ErrAuth
		}
	default:
		if s.mac != nil && !hmac.Equal(sa.icv(s, pkt[:ctEnd], seq), pkt[ctEnd:]) {
			return nil, 0, 0, ErrAuth
		}
		switch {
		case k.block != nil && k.ctr:
			ctrXOR(k.macKeys, s, k.salt[:], pkt[headerLen:ctOff], ct)
		case k.block != nil:
			s.cbcDec.SetIV(pkt[headerLen:ctOff])
			s.cbcDec.CryptBlocks(ct, ct)
		}
		plain = ct
	}

	n := len(plain)
	nextHeader = plain[n-1]
	padLen := int(plain[n-2])
	if padLen+trailerLen > n {
		return nil, 0, 0, ErrPadding
	}
	payloadLen := n - trailerLen - padLen
	for i, b := range plain[payloadLen : n-trailerLen] {
		if b != byte(i+1) {
			return nil, 0, 0, ErrPadding
		}
	}
	if sa.window != nil && !sa.window.Commit(seq) && sa.checkSeen {
		// Another worker committed the same sequence number since our Check.
		return nil, 0, 0, ErrReplay
	}
	return plain[:payloadLen], nextHeader, seq, nil
}
