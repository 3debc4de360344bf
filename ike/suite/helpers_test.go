package suite

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes a hex constant transcribed from an RFC, ignoring the
// spaces and line breaks the RFC layout uses.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex constant: %v", err)
	}
	return b
}

func repeatByte(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// seq returns n bytes counting up from start, the pattern many test
// vectors use for keys and nonces.
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}
