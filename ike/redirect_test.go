package ike

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/goipsec/goipsec/ike/wire"
)

func TestGWIdentity(t *testing.T) {
	for _, gw := range []string{"192.0.2.9", "2001:db8::9", "gw2.example.org"} {
		b, err := encodeGW(gw, []byte{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		got, rest, err := decodeGW(b)
		if err != nil || got != gw || !bytes.Equal(rest, []byte{1, 2, 3}) {
			t.Fatalf("%s: %q %x %v", gw, got, rest, err)
		}
	}
	// RFC 5685 §8: GW Ident Type 1 (IPv4), length 4, the address.
	if b, _ := encodeGW("192.0.2.9", nil); !bytes.Equal(b, []byte{1, 4, 192, 0, 2, 9}) {
		t.Fatalf("IPv4 encoding %x", b)
	}
	for _, bad := range [][]byte{{1, 5, 1, 2, 3, 4, 5}, {3, 0}, {9, 1, 1}, {1}} {
		if _, _, err := decodeGW(bad); err == nil {
			t.Fatalf("accepted %x", bad)
		}
	}
}

// A REDIRECT in an IKE_SA_INIT response must carry our nonce (§4); one that does not is refused
// and reports no redirect.
func TestRedirectNonceChecked(t *testing.T) {
	sa := &SA{Config: &PeerConfig{Name: "c"}, Remote: netip.MustParseAddrPort("192.0.2.2:500"), hs: &handshake{Ni: []byte("our nonce 0123456789")}}
	data, _ := encodeGW("192.0.2.9", []byte("someone else's nonce"))
	redirected, err := sa.redirectInInit([]wire.Payload{&wire.Notify{NotifyType: wire.Redirect, Data: data}})
	if !redirected || err == nil || len(sa.TakeEffects()) != 0 {
		t.Fatalf("forged redirect: %v %v", redirected, err)
	}
	data, _ = encodeGW("192.0.2.9", sa.hs.Ni)
	if _, err := sa.redirectInInit([]wire.Payload{&wire.Notify{NotifyType: wire.Redirect, Data: data}}); ReasonOf(err) != ReasonRedirected || len(sa.TakeEffects()) != 1 {
		t.Fatalf("genuine redirect: %v", err)
	}
}

func FuzzGWIdentity(f *testing.F) {
	b, _ := encodeGW("gw.example.org", []byte{1, 2})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		gw, _, err := decodeGW(b)
		if err != nil {
			return
		}
		if _, err := encodeGW(gw, nil); err != nil {
			t.Fatalf("decoded %q does not encode: %v", gw, err)
		}
	})
}
