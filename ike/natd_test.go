package ike

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

// TestNATDHash: RFC 7296 §2.23's NAT detection data, SHA-1(SPIi | SPIr | IP address | port),
// against digests computed independently (Python hashlib over the same concatenation); an
// IPv4-mapped address hashes as IPv4, as the peer sees it.
func TestNATDHash(t *testing.T) {
	for _, c := range []struct {
		spii, spir uint64
		ap         string
		want       string
	}{
		{0x0102030405060708, 0x1112131415161718, "192.0.2.1:500", "d798d986143f878f70765e0e869c80bbc375f701"},
		{0x0102030405060708, 0x1112131415161718, "[::ffff:192.0.2.1]:500", "d798d986143f878f70765e0e869c80bbc375f701"},
		{0x0102030405060708, 0, "[2001:db8::1]:4500", "98c75483db80168697635aa7844504963e87de33"},
	} {
		h := natdHash(c.spii, c.spir, netip.MustParseAddrPort(c.ap))
		if got := hex.EncodeToString(h[:]); got != c.want {
			t.Errorf("natdHash(%x, %x, %s) = %s, want %s", c.spii, c.spir, c.ap, got, c.want)
		}
		want, _ := hex.DecodeString(c.want)
		if !natdMatches(want, c.spii, c.spir, netip.MustParseAddrPort(c.ap)) || natdMatches(want[:19], c.spii, c.spir, netip.MustParseAddrPort(c.ap)) {
			t.Errorf("natdMatches(%s) is wrong", c.ap)
		}
	}
	if testing.AllocsPerRun(100, func() { natdHash(1, 2, netip.MustParseAddrPort("192.0.2.1:500")) }) != 0 {
		t.Error("natdHash allocates")
	}
}
