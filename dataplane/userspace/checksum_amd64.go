//go:build amd64 && !purego

package userspace

import "golang.org/x/sys/cpu"

// haveCopySum32: copySum32 needs AVX2.
var haveCopySum32 = cpu.X86.HasAVX2

// copySum32 copies n bytes (a multiple of 32) from src to dst, which must not overlap, and
// returns the exact sum of src's little-endian 32-bit words (at most 2^46 for 64 KiB, so it
// cannot overflow).
//
//go:noescape
func copySum32(dst, src *byte, n int) uint64
