package ike

import (
	"net/netip"
	"reflect"
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

// TestRareInUseCoversEveryField: a field added to saRare and forgotten in inUse would be dropped by
// Tidy while in use. Every field set to something makes inUse true.
func TestRareInUseCoversEveryField(t *testing.T) {
	typ := reflect.TypeOf(saRare{})
	for i := range typ.NumField() {
		var r saRare
		f := reflect.ValueOf(&r).Elem().Field(i)
		f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem() // unexported: settable through its address
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.String:
			f.SetString("x")
		case reflect.Func:
			f.Set(reflect.MakeFunc(f.Type(), func([]reflect.Value) []reflect.Value { return nil }))
		case reflect.Struct: // netip.AddrPort
			f.Set(reflect.ValueOf(netip.MustParseAddrPort("192.0.2.1:500")))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", typ.Field(i).Name, f.Kind())
		}
		if !r.inUse() {
			t.Errorf("saRare.%s set, but inUse reports nothing in use", typ.Field(i).Name)
		}
	}
}

// TestRarePartAfterIKERekey: an IKE SA rekey, started by either side, leaves neither the new IKE
// SAs nor the old ones with a rare part once the driver has taken the new SA (TakeSpawned) and
// run Tidy — the rekey's results pass through it only on their way to the driver.
func TestRarePartAfterIKERekey(t *testing.T) {
	for _, initiatorStarts := range []bool{true, false} {
		ci, cr := defaultPair().build(t)
		i, r, _, _, err := runHandshake(t, ci, cr)
		if err != nil {
			t.Fatal(err)
		}
		from, to := i, r
		if !initiatorStarts {
			from, to = r, i
		}
		if !from.QueueRekeyIKE() {
			t.Fatal("IKE rekey not queued")
		}
		req, err := from.NextRequest()
		if err != nil || req == nil {
			t.Fatalf("rekey request: %v, %v", req, err)
		}
		if _, err := from.ProcessResponse(exchange(t, from, to, req, 2)); err != nil {
			t.Fatal(err)
		}
		for _, sa := range []*SA{from, to} {
			spawned := sa.TakeSpawned()
			if len(spawned) != 1 {
				t.Fatalf("initiator starts %v: %d new IKE SAs, want 1", initiatorStarts, len(spawned))
			}
			sa.TakeHandoff()
			sa.Tidy()
			spawned[0].Tidy()
			if sa.rare != nil || spawned[0].rare != nil {
				t.Errorf("initiator starts %v: rare part left on the old (%v) or new (%v) IKE SA", initiatorStarts, sa.rare, spawned[0].rare)
			}
		}
	}
}
