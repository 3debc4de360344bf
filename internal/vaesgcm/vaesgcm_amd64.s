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

// GHASH's reduction constant: y^63 + y^62 + y^57 (GHASH_REDUCE4).
DATA gfPoly<>+0x00(SB)/8, $0xc200000000000000
GLOBL gfPoly<>(SB), RODATA|NOPTR, $8

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

// GHASH reduction, lane by lane, of the 256-bit carry-less products in Z20 (lo), Z21 (mid) and
// Z22 (hi) (product = hi·2^128 ⊕ mid·2^64 ⊕ lo, values in rev form) into Z8. Clobbers Z20-Z23.
// As integers, rev-form values multiply like polynomials over GF(2) in y with bit k the
// coefficient of y^k, modulo GCM's polynomial reflected, Q(y) = y^128 + y^127 + y^126 + y^121 + 1;
// a rev-form product of a and b is a·b·x^-1 in GCM's terms (the product's degrees are off by one).
// The reduction is Montgomery's in y: Q ≡ 1 modulo y^64, so adding lo₀·Q (lo₀ the low 64 bits)
// clears them, and lo₀·(y^121 + y^126 + y^127) = y^64·clmul(lo₀, 0xc2000000_00000000); then the
// same for the next 64 bits. That divides by y^128, which in GCM's terms multiplies by x, undoing
// the x^-1 of the product when the table holds H^k·x^-1 (vaesgcm.go, setPower). Two
// multiplications instead of the 30-odd shifts of the bitwise reduction, on four lanes at once:
// fold 1: mid ⊕= clmul(lo₀, C) ⊕ swap(lo); fold 2: hi ⊕= clmul(mid₀, C) ⊕ swap(mid).
#define GHASH_REDUCE4 \
	VPCLMULQDQ $0x00, Z30, Z20, Z23 \
	VPSHUFD    $0x4e, Z20, Z20 \
	VPTERNLOGD $0x96, Z23, Z20, Z21 \
	VPCLMULQDQ $0x00, Z30, Z21, Z23 \
	VPSHUFD    $0x4e, Z21, Z21 \
	VPTERNLOGD $0x96, Z23, Z21, Z22 \
	VMOVDQA64  Z22, Z8

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

// func ghashSegments(htable *[WINDOW][16]byte, y *[16]byte, segs *[4]segment, nsegs int)
// Absorbs the blocks of each segment (a pointer and a number of whole blocks) in turn into the
// GHASH state *y (standard byte order); htable holds H^WINDOW·x^-1, ..., H^1·x^-1 in rev form.
// The state is kept as four lanes whose sum is Y. A window of W ≤ WINDOW blocks C1 … CW makes
// Y' = Y·H^W ⊕ C1·H^W ⊕ C2·H^(W-1) ⊕ … ⊕ CW·H: each lane of the state is multiplied by H^W
// and the blocks four lanes at a time by their powers (the last group under a mask), all summed
// unreduced and reduced once, lane by lane. Only the state's multiplication and that reduction
// are serial; the lanes are added once, at the end.
TEXT ·ghashSegments(SB), NOSPLIT, $0-32
	MOVQ htable+0(FP), AX
	MOVQ y+8(FP), BX
	MOVQ segs+16(FP), R10
	MOVQ nsegs+24(FP), R11

	VMOVDQU64 revMask<>(SB), Z31
	VPBROADCASTQ gfPoly<>(SB), Z30
	// Z8: the state's four lanes, Y in rev form in the first (the 128-bit load clears the rest).
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
	// The state's lanes times H^W start the sums.
	VBROADCASTI32X4 0(DX), Z12
	VPCLMULQDQ $0x00, Z12, Z8, Z20
	VPCLMULQDQ $0x11, Z12, Z8, Z22
	VPCLMULQDQ $0x01, Z12, Z8, Z21
	VPCLMULQDQ $0x10, Z12, Z8, Z23
	VPXORQ     Z23, Z21, Z21

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
	GHASH_MUL4(Z9, Z12)
	ADDQ  $64, SI
	ADDQ  $64, DX
	SUBQ  $4, R13
	JG    group

	GHASH_REDUCE4
	JMP   window

ghashDone:
	// Y is the sum of the lanes.
	VEXTRACTI64X4 $1, Z8, Y24
	VPXORQ        Y24, Y8, Y8
	VEXTRACTI32X4 $1, Y8, X24
	VPXORQ        X24, X8, X8
	VPSHUFB X31, X8, X8
	VMOVDQU X8, 0(BX)
	VZEROUPPER
	RET
