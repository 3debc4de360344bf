//go:build amd64 && !purego

#include "textflag.h"

// WINDOW is the number of powers of H in the table (vaesgcm.go's tableSize): GHASH reduces once
// per WINDOW blocks.
#define WINDOW 16

// AES-GCM kernels on 512-bit vectors (VAES, VPCLMULQDQ, AVX-512F/BW/VL): four 16-byte blocks per
// register. See vaesgcm.go for the representation of GHASH values ("rev form": a block's bytes
// reversed, so that bit k of the 128-bit little-endian number is the coefficient of x^(127-k)).

// Byte reversal of each 128-bit lane (VPSHUFB mask), four lanes.
DATA revMask<>+0x00(SB)/8, $0x08090a0b0c0d0e0f
DATA revMask<>+0x08(SB)/8, $0x0001020304050607
DATA revMask<>+0x10(SB)/8, $0x08090a0b0c0d0e0f
DATA revMask<>+0x18(SB)/8, $0x0001020304050607
DATA revMask<>+0x20(SB)/8, $0x08090a0b0c0d0e0f
DATA revMask<>+0x28(SB)/8, $0x0001020304050607
DATA revMask<>+0x30(SB)/8, $0x08090a0b0c0d0e0f
DATA revMask<>+0x38(SB)/8, $0x0001020304050607
GLOBL revMask<>(SB), RODATA|NOPTR, $64

// Counter offsets 0, 1, 2, 3 in the low dword of each lane of a byte-reversed counter block
// (where the block's big-endian 32-bit counter sits, little-endian).
DATA ctrOffsets<>+0x00(SB)/8, $0
DATA ctrOffsets<>+0x08(SB)/8, $0
DATA ctrOffsets<>+0x10(SB)/8, $1
DATA ctrOffsets<>+0x18(SB)/8, $0
DATA ctrOffsets<>+0x20(SB)/8, $2
DATA ctrOffsets<>+0x28(SB)/8, $0
DATA ctrOffsets<>+0x30(SB)/8, $3
DATA ctrOffsets<>+0x38(SB)/8, $0
GLOBL ctrOffsets<>(SB), RODATA|NOPTR, $64

// 4 in the low dword of each lane.
DATA ctrFour<>+0x00(SB)/8, $4
DATA ctrFour<>+0x08(SB)/8, $0
DATA ctrFour<>+0x10(SB)/8, $4
DATA ctrFour<>+0x18(SB)/8, $0
DATA ctrFour<>+0x20(SB)/8, $4
DATA ctrFour<>+0x28(SB)/8, $0
DATA ctrFour<>+0x30(SB)/8, $4
DATA ctrFour<>+0x38(SB)/8, $0
GLOBL ctrFour<>(SB), RODATA|NOPTR, $64

// func subWord(w uint32) uint32
// The AES S-box applied to each byte of w (the key schedule's SubWord), with AESENCLAST and a
// zero round key: with all four columns equal, ShiftRows changes nothing, so the result is
// SubBytes of the state. Constant time, unlike a table.
TEXT ·subWord(SB), NOSPLIT, $0-12
	MOVL w+0(FP), AX
	MOVQ AX, X0
	PSHUFD $0, X0, X0
	PXOR X1, X1
	AESENCLAST X1, X0
	MOVQ X0, AX
	MOVL AX, ret+8(FP)
	RET

// AES rounds on Z0-Z3 (four registers of four blocks) with the round keys broadcast in
// Z16-Z30; DX holds the number of rounds (10, 12 or 14).
#define AES_ROUND4(k) \
	VAESENC k, Z0, Z0 \
	VAESENC k, Z1, Z1 \
	VAESENC k, Z2, Z2 \
	VAESENC k, Z3, Z3

#define AES_LAST4(k) \
	VAESENCLAST k, Z0, Z0 \
	VAESENCLAST k, Z1, Z1 \
	VAESENCLAST k, Z2, Z2 \
	VAESENCLAST k, Z3, Z3

// Encrypts the counter blocks in Z0 (four lanes) with the round keys in Z16-Z30; DX holds the
// number of rounds.
#define AES_ONE4 \
	VPXORQ  Z16, Z0, Z0 \
	VAESENC Z17, Z0, Z0 \
	VAESENC Z18, Z0, Z0 \
	VAESENC Z19, Z0, Z0 \
	VAESENC Z20, Z0, Z0 \
	VAESENC Z21, Z0, Z0 \
	VAESENC Z22, Z0, Z0 \
	VAESENC Z23, Z0, Z0 \
	VAESENC Z24, Z0, Z0 \
	VAESENC Z25, Z0, Z0 \
	CMPQ    DX, $10 \
	JEQ     2(PC) \
	JMP     3(PC) \
	VAESENCLAST Z26, Z0, Z0 \
	JMP     11(PC) \
	VAESENC Z26, Z0, Z0 \
	VAESENC Z27, Z0, Z0 \
	CMPQ    DX, $12 \
	JEQ     2(PC) \
	JMP     3(PC) \
	VAESENCLAST Z28, Z0, Z0 \
	JMP     4(PC) \
	VAESENC Z28, Z0, Z0 \
	VAESENC Z29, Z0, Z0 \
	VAESENCLAST Z30, Z0, Z0

// func ctrXOR(rk *[15][16]byte, rounds int, ctr *[16]byte, dst, src *byte, n int, mask *[16]byte)
// XORs n bytes of src with the AES-CTR key stream starting at the counter block *ctr (GCM's
// inc32: only the last four bytes, big-endian, count) into dst; dst may equal src. A last
// partial block is read and written under a byte mask, so nothing beyond n bytes is touched.
// If mask is not nil, *mask is replaced by its encryption (GCM's E(K, J0)).
TEXT ·ctrXOR(SB), NOSPLIT, $0-56
	MOVQ rk+0(FP), AX
	MOVQ rounds+8(FP), DX
	MOVQ ctr+16(FP), BX
	MOVQ dst+24(FP), DI
	MOVQ src+32(FP), SI
	MOVQ n+40(FP), CX

	VBROADCASTI32X4 0(AX), Z16
	VBROADCASTI32X4 16(AX), Z17
	VBROADCASTI32X4 32(AX), Z18
	VBROADCASTI32X4 48(AX), Z19
	VBROADCASTI32X4 64(AX), Z20
	VBROADCASTI32X4 80(AX), Z21
	VBROADCASTI32X4 96(AX), Z22
	VBROADCASTI32X4 112(AX), Z23
	VBROADCASTI32X4 128(AX), Z24
	VBROADCASTI32X4 144(AX), Z25
	VBROADCASTI32X4 160(AX), Z26
	VBROADCASTI32X4 176(AX), Z27
	VBROADCASTI32X4 192(AX), Z28
	VBROADCASTI32X4 208(AX), Z29
	VBROADCASTI32X4 224(AX), Z30

	VMOVDQU64 revMask<>(SB), Z31
	VMOVDQU64 ctrFour<>(SB), Z14
	// Z8: the byte-reversed counter block in every lane, plus 0, 1, 2, 3.
	VBROADCASTI32X4 0(BX), Z8
	VPSHUFB Z31, Z8, Z8
	VPADDD ctrOffsets<>(SB), Z8, Z8

loop16:
	CMPQ CX, $256
	JB   loop4
	VPADDD Z14, Z8, Z9
	VPADDD Z14, Z9, Z10
	VPADDD Z14, Z10, Z11
	VPSHUFB Z31, Z8, Z0
	VPSHUFB Z31, Z9, Z1
	VPSHUFB Z31, Z10, Z2
	VPSHUFB Z31, Z11, Z3
	VPADDD Z14, Z11, Z8
	VPXORQ Z16, Z0, Z0
	VPXORQ Z16, Z1, Z1
	VPXORQ Z16, Z2, Z2
	VPXORQ Z16, Z3, Z3
	AES_ROUND4(Z17)
	AES_ROUND4(Z18)
	AES_ROUND4(Z19)
	AES_ROUND4(Z20)
	AES_ROUND4(Z21)
	AES_ROUND4(Z22)
	AES_ROUND4(Z23)
	AES_ROUND4(Z24)
	AES_ROUND4(Z25)
	CMPQ DX, $10
	JEQ  last16_10
	AES_ROUND4(Z26)
	AES_ROUND4(Z27)
	CMPQ DX, $12
	JEQ  last16_12
	AES_ROUND4(Z28)
	AES_ROUND4(Z29)
	AES_LAST4(Z30)
	JMP  xor16
last16_10:
	AES_LAST4(Z26)
	JMP  xor16
last16_12:
	AES_LAST4(Z28)
xor16:
	VPXORQ 0(SI), Z0, Z0
	VPXORQ 64(SI), Z1, Z1
	VPXORQ 128(SI), Z2, Z2
	VPXORQ 192(SI), Z3, Z3
	VMOVDQU64 Z0, 0(DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $256, CX
	JMP  loop16

loop4:
	// Four blocks at a time; the last (up to 64 bytes) under a byte mask in K1.
	TESTQ CX, CX
	JZ    ctrMask
	VPSHUFB Z31, Z8, Z0
	VPADDD Z14, Z8, Z8
	AES_ONE4
	MOVQ  $-1, R8
	CMPQ  CX, $64
	JAE   full4
	// R8 = (1 << CX) - 1: the bytes left.
	MOVQ  $1, R8
	SHLQ  CX, R8
	DECQ  R8
full4:
	KMOVQ R8, K1
	VMOVDQU8.Z 0(SI), K1, Z1
	VPXORQ Z1, Z0, Z0
	VMOVDQU8 Z0, K1, 0(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX
	JG   loop4

ctrMask:
	MOVQ mask+48(FP), BX
	TESTQ BX, BX
	JZ    ctrDone
	VBROADCASTI32X4 0(BX), Z0
	AES_ONE4
	VMOVDQU X0, 0(BX)

ctrDone:
	VZEROUPPER
	RET

// GHASH reduction of a 256-bit carry-less product given as lo, mid, hi (product =
// hi·2^128 ⊕ mid·2^64 ⊕ lo, each in rev form) into X0. Clobbers X3-X6.
// 1. Combine into L (low 128 bits) and H (high 128 bits), and shift the 256-bit value left by
//    one: the product of two rev-form values has the coefficient of x^d at bit 254-d.
// 2. Reduce modulo x^128 + x^7 + x^2 + x + 1: the low half L holds the coefficients of x^255 down
//    to x^128; x^128 = x^7 + x^2 + x + 1, where multiplying by x is a right shift in rev form.
//    What the shifts push out below bit 0 (degrees 128 and up again) is folded in first:
//    D = (L<<127) ⊕ (L<<126) ⊕ (L<<121), E = L ⊕ D, result = H ⊕ E ⊕ E>>1 ⊕ E>>2 ⊕ E>>7.
#define GHASH_REDUCE(lo, mid, hi) \
	VPSLLDQ $8, mid, X3 \
	VPSRLDQ $8, mid, X4 \
	VPXOR   X3, lo, X0 \
	VPXOR   X4, hi, X2 \
	VPSRLQ  $63, X0, X3 \
	VPSRLQ  $63, X2, X4 \
	VPSLLQ  $1, X0, X0 \
	VPSLLQ  $1, X2, X2 \
	VPSRLDQ $8, X3, X5 \
	VPSLLDQ $8, X3, X3 \
	VPSLLDQ $8, X4, X4 \
	VPOR    X3, X0, X0 \
	VPOR    X4, X2, X2 \
	VPOR    X5, X2, X2 \
	VPSLLQ  $63, X0, X3 \
	VPSLLQ  $62, X0, X4 \
	VPSLLQ  $57, X0, X5 \
	VPXOR   X4, X3, X3 \
	VPXOR   X5, X3, X3 \
	VPSLLDQ $8, X3, X3 \
	VPXOR   X3, X0, X0 \
	VPSRLQ  $1, X0, X3 \
	VPSRLQ  $2, X0, X4 \
	VPSRLQ  $7, X0, X5 \
	VPXOR   X4, X3, X3 \
	VPXOR   X5, X3, X3 \
	VPSLLQ  $63, X0, X4 \
	VPSLLQ  $62, X0, X5 \
	VPSLLQ  $57, X0, X6 \
	VPXOR   X5, X4, X4 \
	VPXOR   X6, X4, X4 \
	VPSRLDQ $8, X4, X4 \
	VPXOR   X4, X3, X3 \
	VPXOR   X0, X2, X2 \
	VPXOR   X3, X2, X0

// Multiplies the four lanes of data by the four lanes of powers, accumulating into Z20 (lo),
// Z21 (mid) and Z22 (hi).
#define GHASH_MUL4(data, powers) \
	VPCLMULQDQ $0x00, powers, data, Z23 \
	VPXORQ     Z23, Z20, Z20 \
	VPCLMULQDQ $0x11, powers, data, Z23 \
	VPXORQ     Z23, Z22, Z22 \
	VPCLMULQDQ $0x01, powers, data, Z23 \
	VPXORQ     Z23, Z21, Z21 \
	VPCLMULQDQ $0x10, powers, data, Z23 \
	VPXORQ     Z23, Z21, Z21

// Folds the four lanes of z into the 128-bit x (through the 256-bit y).
#define FOLD4(z, y, x) \
	VEXTRACTI64X4 $1, z, Y24 \
	VPXORQ        Y24, y, y \
	VEXTRACTI32X4 $1, y, X24 \
	VPXORQ        X24, x, x

// func ghashSegments(htable *[WINDOW][16]byte, y *[16]byte, segs *[4]segment, nsegs int)
// Absorbs the blocks of each segment (a pointer and a number of whole blocks) in turn into the
// GHASH state *y (standard byte order); htable holds H^WINDOW, ..., H^1 in rev form. A window
// of W ≤ WINDOW blocks is multiplied block by block with H^W ... H^1 — Y' = (Y ⊕ C1)·H^W ⊕
// C2·H^(W-1) ⊕ ... ⊕ CW·H — four lanes at a time (the last group under a mask), summed unreduced,
// and reduced once: the reductions are the only serial part.
TEXT ·ghashSegments(SB), NOSPLIT, $0-32
	MOVQ htable+0(FP), AX
	MOVQ y+8(FP), BX
	MOVQ segs+16(FP), R10
	MOVQ nsegs+24(FP), R11

	VMOVDQU64 revMask<>(SB), Z31
	// X8 (and Z8, upper lanes zero): Y in rev form.
	VMOVDQU 0(BX), X8
	VPSHUFB X31, X8, X8

nextSeg:
	TESTQ R11, R11
	JZ    ghashDone
	MOVQ  0(R10), SI
	MOVQ  8(R10), CX
	ADDQ  $16, R10
	DECQ  R11

window:
	TESTQ CX, CX
	JZ    nextSeg
	// R13 = W = min(CX, WINDOW); DX = htable + (WINDOW-W)*16, where H^W is.
	MOVQ  CX, R13
	CMPQ  R13, $WINDOW
	JBE   windowSized
	MOVQ  $WINDOW, R13
windowSized:
	SUBQ  R13, CX
	MOVQ  $WINDOW, DX
	SUBQ  R13, DX
	SHLQ  $4, DX
	ADDQ  AX, DX
	VPXORQ Z20, Z20, Z20
	VPXORQ Z21, Z21, Z21
	VPXORQ Z22, Z22, Z22
	VMOVDQU64 Z8, Z13

group:
	// K1: a qword mask of min(R13, 4) blocks.
	MOVQ  $0xff, R8
	CMPQ  R13, $4
	JAE   groupFull
	MOVQ  CX, R12
	MOVQ  R13, CX
	SHLQ  $1, CX
	MOVQ  $1, R8
	SHLQ  CX, R8
	DECQ  R8
	MOVQ  R12, CX
groupFull:
	KMOVW R8, K1
	VMOVDQU64.Z 0(SI), K1, Z9
	VMOVDQU64.Z 0(DX), K1, Z12
	VPSHUFB Z31, Z9, Z9
	VPXORQ  Z13, Z9, Z9
	VPXORQ  Z13, Z13, Z13
	GHASH_MUL4(Z9, Z12)
	ADDQ  $64, SI
	ADDQ  $64, DX
	SUBQ  $4, R13
	JG    group

	FOLD4(Z20, Y20, X20)
	FOLD4(Z21, Y21, X21)
	FOLD4(Z22, Y22, X22)
	VMOVDQU64 X20, X9
	VMOVDQU64 X21, X10
	VMOVDQU64 X22, X11
	GHASH_REDUCE(X9, X10, X11)
	VMOVDQU X0, X8
	JMP   window

ghashDone:
	VPSHUFB X31, X8, X8
	VMOVDQU X8, 0(BX)
	VZEROUPPER
	RET
