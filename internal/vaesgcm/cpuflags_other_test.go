//go:build !amd64 || purego

package vaesgcm

// cpuinfoHasInstructions: this build never uses the instructions.
func cpuinfoHasInstructions() bool { return false }
