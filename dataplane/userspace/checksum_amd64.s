//go:build amd64 && !purego

#include "textflag.h"

// func copySum32(dst, src *byte, n int) uint64
// Copies and sums 128 bytes per loop (then 32): each 64-bit lane of a load is split into its
// two 32-bit words, which are added to 64-bit accumulators, so no carry is ever lost and the
// one's complement sum (RFC 1071) is the caller's fold of the total.
TEXT ·copySum32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VPXOR    Y8, Y8, Y8
	VPXOR    Y9, Y9, Y9
	VPXOR    Y10, Y10, Y10
	VPXOR    Y11, Y11, Y11
	// Y15: the low 32 bits of each 64-bit lane.
	VPCMPEQD Y15, Y15, Y15
	VPSRLQ   $32, Y15, Y15

loop128:
	CMPQ    CX, $128
	JB      loop32
	VMOVDQU 0(SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU 64(SI), Y2
	VMOVDQU 96(SI), Y3
	VMOVDQU Y0, 0(DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VMOVDQU Y3, 96(DI)
	VPAND   Y15, Y0, Y4
	VPSRLQ  $32, Y0, Y0
	VPAND   Y15, Y1, Y5
	VPSRLQ  $32, Y1, Y1
	VPAND   Y15, Y2, Y6
	VPSRLQ  $32, Y2, Y2
	VPAND   Y15, Y3, Y7
	VPSRLQ  $32, Y3, Y3
	VPADDQ  Y4, Y8, Y8
	VPADDQ  Y0, Y9, Y9
	VPADDQ  Y5, Y10, Y10
	VPADDQ  Y1, Y11, Y11
	VPADDQ  Y6, Y8, Y8
	VPADDQ  Y2, Y9, Y9
	VPADDQ  Y7, Y10, Y10
	VPADDQ  Y3, Y11, Y11
	ADDQ    $128, SI
	ADDQ    $128, DI
	SUBQ    $128, CX
	JMP     loop128

loop32:
	CMPQ    CX, $32
	JB      done
	VMOVDQU 0(SI), Y0
	VMOVDQU Y0, 0(DI)
	VPAND   Y15, Y0, Y4
	VPSRLQ  $32, Y0, Y0
	VPADDQ  Y4, Y8, Y8
	VPADDQ  Y0, Y9, Y9
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $32, CX
	JMP     loop32

done:
	VPADDQ       Y9, Y8, Y8
	VPADDQ       Y11, Y10, Y10
	VPADDQ       Y10, Y8, Y8
	VEXTRACTI128 $1, Y8, X0
	VPADDQ       X0, X8, X8
	VPSHUFD      $0x4e, X8, X0
	VPADDQ       X0, X8, X8
	VMOVQ        X8, AX
	VZEROUPPER
	MOVQ         AX, ret+24(FP)
	RET
