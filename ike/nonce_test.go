package ike

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestLowerNonceValue: the nonce a Child SA keeps for collisions is the lower one of the exchange,
// exactly, whether it fits in place (≤ 32 bytes) or not (up to 256, RFC 7296 §3.9).
func TestLowerNonceValue(t *testing.T) {
	for _, n := range []int{16, 31, 32, 33, 64, 256} {
		a, b := bytes.Repeat([]byte{0x11}, n), bytes.Repeat([]byte{0x11}, n)
		b[n-1] = 0x10 // b is lower, in its last byte
		for _, pair := range [][2][]byte{{a, b}, {b, a}} {
			v := lowerNonceValue(pair[0], pair[1])
			if got := v.bytes(); !bytes.Equal(got, b) {
				t.Fatalf("%d-byte nonces: kept %x, want %x", n, got, b)
			}
		}
	}
	// Nonces of different lengths compare as byte strings (a prefix is lower).
	short, long := []byte{1, 2, 3}, []byte{1, 2, 3, 0}
	if v := lowerNonceValue(long, short); !bytes.Equal(v.bytes(), short) {
		t.Fatalf("kept %x, want %x", v.bytes(), short)
	}
}

// TestAddrIdentitiesShared: IKE SAs without a configured local id share one identity per local
// address, equal to AddrIdentity; a nil cache still answers.
func TestAddrIdentitiesShared(t *testing.T) {
	d := Deps{}.WithDefaults()
	a4, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, a := range []netip.Addr{a4, a6} {
		x, y := d.addrIDs.get(a), d.addrIDs.get(a)
		want := AddrIdentity(a)
		if x.Type != want.Type || !bytes.Equal(x.Data, want.Data) || &x.Data[0] != &y.Data[0] {
			t.Fatalf("%s: got %v and %v (shared %v), want %v", a, x, y, &x.Data[0] == &y.Data[0], want)
		}
	}
	var none *addrIdentities
	if got := none.get(a4); !bytes.Equal(got.Data, a4.AsSlice()) {
		t.Fatalf("nil cache: %v", got)
	}
}
