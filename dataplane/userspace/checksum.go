package userspace

import (
	"encoding/binary"
	"math/bits"
)

// The Internet checksum (RFC 1071) as the engine needs it: sums are accumulated unfolded in 64
// bits (RFC 1071 §2(C): any word size, folded at the end), so a packet's checksum can be built
// from pieces — pseudo-header, header, payload — without copying them together. Words are read
// little-endian, which costs no byte swapping on the machines this runs on; the one's complement
// sum of byte-swapped words is the byte-swapped sum (RFC 1071 §2(B)), so csumFold swaps once at
// the end.

// csumAdd adds b to the unfolded sum acc. Pieces other than the last must have even length; an odd
// last byte is padded with zero.
func csumAdd(acc uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 64 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:]), 0)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:]), carry)
		acc += carry
		b = b[64:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b), 0)
		acc += carry
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b)), 0)
		acc += carry
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b)), 0)
		acc += carry
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0]), 0)
		acc += carry
	}
	return acc
}

// copyCsum copies src to the start of dst, which must hold it and not overlap it, and returns
// acc with src added (as csumAdd does): one pass over the data instead of two. On x86-64 with
// AVX2 the whole 32-byte blocks go through copySum32.
func copyCsum(dst, src []byte, acc uint64) uint64 {
	dst = dst[:len(src)] // a shorter dst is the caller's bug: fail here, never write past it
	k := 0
	if haveCopySum32 && len(src) >= 32 {
		k = len(src) &^ 31
		var carry uint64
		acc, carry = bits.Add64(acc, copySum32(&dst[0], &src[0], k), 0)
		acc += carry
	}
	copy(dst[k:], src[k:])
	return csumAdd(acc, src[k:])
}

// csumAddSum adds the unfolded sum b to the unfolded sum a.
func csumAddSum(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	return s + carry
}

// csumAddWord adds a 16-bit value (as it would appear big-endian in the data) to acc.
func csumAddWord(acc uint64, w uint16) uint64 {
	s, carry := bits.Add64(acc, uint64(bits.ReverseBytes16(w)), 0)
	return s + carry
}

// csumFold folds an unfolded sum into the 16-bit one's complement sum (not complemented), in
// network byte order as a number.
func csumFold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return bits.ReverseBytes16(uint16(acc))
}

// pseudoSum is the unfolded sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 9293 §3.1, RFC 8200
// §8.1): both addresses (4 or 16 bytes each), the protocol and the upper-layer length.
func pseudoSum(src, dst []byte, proto uint8, length int) uint64 {
	acc := csumAdd(0, src)
	acc = csumAdd(acc, dst)
	acc = csumAddWord(acc, uint16(proto))
	if length > 0xffff {
		acc = csumAddWord(acc, uint16(length>>16))
	}
	return csumAddWord(acc, uint16(length))
}
