package ike

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/goipsec/goipsec/ike/wire"
)

// TestSASize keeps an IKE SA within 512 bytes: the garbage collector scans larger objects one by
// one and smaller ones a span at a time, and a gateway holds 100,000 of them (rare.go).
func TestSASize(t *testing.T) {
	size := unsafe.Sizeof(SA{})
	t.Logf("SA: %d bytes, its rare part %d", size, unsafe.Sizeof(saRare{}))
	if size > 512 {
		t.Fatalf("SA takes %d bytes, more than 512", size)
	}
}

// TestRarePartOnlyWhileUsed: an established PSK IKE SA has no rare part; deferred work and the
// addresses of a MOBIKE request that moved need one, and Tidy drops it once they are done.
func TestRarePartOnlyWhileUsed(t *testing.T) {
	ci, cr := defaultPair().build(t)
	i, r, _, _, err := runHandshake(t, ci, cr)
	if err != nil {
		t.Fatal(err)
	}
	i.Tidy()
	r.Tidy()
	if i.rare != nil || r.rare != nil {
		t.Fatalf("after the handshake: rare parts %+v, %+v; want none", i.rare, r.rare)
	}

	i.deferTask(&ikeRekeyTask{}, time.Second)
	i.Tidy()
	at := i.NextDeferred()
	if i.rare == nil || at.IsZero() {
		t.Fatalf("deferred task: rare %v, next at %v", i.rare, at)
	}
	i.RequeueDue(at)
	i.Tidy()
	if i.rare != nil || len(i.queue) != 1 {
		t.Fatalf("after requeueing: rare %+v, %d queued; want none, 1", i.rare, len(i.queue))
	}

	// The addresses of a request are kept only when MOBIKE is in use and they differ.
	r.SetRequestAddresses(r.Local, netip.MustParseAddrPort("192.0.2.99:4500"))
	if r.rare != nil {
		t.Fatal("request addresses kept without MOBIKE")
	}
	r.mobike = true
	r.SetRequestAddresses(r.Local, r.Remote)
	if r.rare != nil {
		t.Fatal("request addresses equal to the SA's were kept")
	}
	moved := netip.MustParseAddrPort("192.0.2.99:4500")
	r.SetRequestAddresses(r.Local, moved)
	if _, remote := r.requestAddresses(); remote != moved {
		t.Fatalf("request came from %s, SA sees %s", moved, remote)
	}
	r.ProcessRequest(&Message{Exchange: wire.ExchangeInformational}) // nothing in it: a liveness check
	r.Tidy()
	if r.rare != nil {
		t.Fatalf("rare part after the request: %+v", r.rare)
	}
	if _, remote := r.requestAddresses(); remote != r.Remote {
		t.Fatalf("after the request: %s, want the SA's %s", remote, r.Remote)
	}
}
