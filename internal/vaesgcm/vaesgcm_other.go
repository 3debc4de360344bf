//go:build !amd64 || purego

package vaesgcm

const available = false

func subWord(uint32) uint32 { panic("vaesgcm: unsupported") }
func ctrXOR(*[15][16]byte, int, *[16]byte, *byte, *byte, int, *[16]byte) {
	panic("vaesgcm: unsupported")
}
func ghashSegments(*[tableSize][16]byte, *[16]byte, *[4]segment, int) { panic("vaesgcm: unsupported") }
