//go:build amd64 && !purego

package vaesgcm

import (
	"os"
	"strings"
)

// cpuinfoHasInstructions reports whether the kernel lists every instruction set New needs for
// this machine's first processor, independently of golang.org/x/sys/cpu.
func cpuinfoHasInstructions() bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		have := map[string]bool{}
		for _, f := range strings.Fields(flags) {
			have[f] = true
		}
		for _, f := range []string{"aes", "pclmulqdq", "avx", "avx512f", "avx512bw", "avx512vl", "vaes", "vpclmulqdq"} {
			if !have[f] {
				return false
			}
		}
		return true
	}
	return false
}
