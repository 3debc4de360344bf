package aesmac

import (
	"bytes"
	"encoding/hex"
	"hash"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// seq returns the bytes 00 01 02 ... of length n, the messages of RFC 3566's test cases.
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestXCBCRFC3566 runs the test cases of RFC 3566 §4.6 (key 000102...0f).
func TestXCBCRFC3566(t *testing.T) {
	key := seq(16)
	for _, tc := range []struct {
		msgLen int
		mac    string
	}{
		{0, "75f0251d528ac01c4573dfd584d79f29"},
		{3, "5b376580ae2f19afe7219ceef172756f"},
		{16, "d2a246fa349b68a79998a4394ff7a263"},
		{20, "47f51b4564966215b8985c63055ed308"},
		{32, "f54f0ec8d2b9f3d36807734bd5283fd4"},
		{34, "becbb3bccdb518a30677d5481fb6b4d8"},
	} {
		m, err := NewXCBC(key)
		if err != nil {
			t.Fatal(err)
		}
		checkAllSplits(t, "XCBC", m, seq(tc.msgLen), unhex(tc.mac))
	}
}

// TestCMACRFC4493 runs the examples of RFC 4493 §4 (the NIST SP 800-38B examples); RFC 4494 §4
// takes its AES-CMAC-96 values as their first 12 bytes.
func TestCMACRFC4493(t *testing.T) {
	key := unhex("2b7e151628aed2a6abf7158809cf4f3c")
	msg := unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51" +
		"30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	for _, tc := range []struct {
		msgLen int
		mac    string
	}{
		{0, "bb1d6929e95937287fa37d129b756746"},
		{16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"},
		{64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		m, err := NewCMAC(key)
		if err != nil {
			t.Fatal(err)
		}
		checkAllSplits(t, "CMAC", m, msg[:tc.msgLen], unhex(tc.mac))
	}
}

// checkAllSplits computes the MAC of msg written in two pieces at every split point, on clones of
// one keyed template, and after Reset.
func checkAllSplits(t *testing.T, name string, m hash.Hash, msg, want []byte) {
	t.Helper()
	for split := 0; split <= len(msg); split++ {
		c, err := m.(hash.Cloner).Clone()
		if err != nil {
			t.Fatal(err)
		}
		c.Write(msg[:split])
		c.Write(msg[split:])
		if got := c.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("%s of %d bytes (split at %d) = %x, want %x", name, len(msg), split, got, want)
		}
		// Sum leaves the state as it was.
		if got := c.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("%s: a second Sum differs", name)
		}
	}
	m.Reset()
	m.Write(msg)
	if got := m.Sum(nil); !bytes.Equal(got, want) {
		t.Fatalf("%s after Reset = %x, want %x", name, got, want)
	}
	m.Reset()
}

func TestKeySize(t *testing.T) {
	for _, n := range []int{0, 15, 24, 32} {
		if _, err := NewXCBC(make([]byte, n)); err == nil {
			t.Errorf("XCBC accepted a %d-byte key", n)
		}
		if _, err := NewCMAC(make([]byte, n)); err == nil {
			t.Errorf("CMAC accepted a %d-byte key", n)
		}
	}
}
