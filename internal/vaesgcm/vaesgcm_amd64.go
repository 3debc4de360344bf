//go:build amd64 && !purego

package vaesgcm

import "golang.org/x/sys/cpu"

// available: the counter mode needs VAES on 512-bit registers (AVX512F), GHASH VPCLMULQDQ on
// them, byte shuffles of 512-bit registers AVX512BW, 128- and 256-bit EVEX forms AVX512VL.
var available = cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && cpu.X86.HasAVX && cpu.X86.HasAVX512F &&
	cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ

//go:noescape
func subWord(w uint32) uint32

//go:noescape
func ctrXOR(rk *[15][16]byte, rounds int, ctr *[16]byte, dst, src *byte, n int, mask *[16]byte)

//go:noescape
func ghashSegments(htable *[tableSize][16]byte, y *[16]byte, segs *[4]segment, nsegs int)
