//go:build !amd64 || purego

package userspace

const haveCopySum32 = false

func copySum32(dst, src *byte, n int) uint64 { panic("unreachable") }
