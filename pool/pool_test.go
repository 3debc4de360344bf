package pool

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

func TestLeases(t *testing.T) {
	p, err := FromPrefix("clients", netip.MustParsePrefix("10.3.0.0/29"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != 6 {
		t.Fatalf("a /29 has 6 host addresses, pool has %d", p.Size())
	}
	a, _ := p.Acquire("alice")
	b, _ := p.Acquire("bob")
	if a.String() != "10.3.0.1" || b.String() != "10.3.0.2" {
		t.Fatalf("first leases %s %s", a, b)
	}
	if again, _ := p.Acquire("alice"); again != a {
		t.Fatal("a held lease changed")
	}
	p.Release("alice")
	c, _ := p.Acquire("carol")
	if c == a {
		t.Fatal("a released address went to someone else while fresh ones were left")
	}
	if back, _ := p.Acquire("alice"); back != a {
		t.Fatalf("alice came back to %s, had %s", back, a)
	}
	for _, id := range []string{"d", "e", "f"} {
		if _, err := p.Acquire(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if _, err := p.Acquire("g"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("seventh lease of six: %v", err)
	}
	p.Release("bob")
	if g, err := p.Acquire("g"); err != nil || g != b {
		t.Fatalf("after bob left, g got %s, %v", g, err)
	}
	if len(p.Leases()) != 6 || !p.Contains(b) || p.Contains(netip.MustParseAddr("10.3.0.7")) {
		t.Fatalf("leases %v", p.Leases())
	}
}

func TestConcurrentAcquire(t *testing.T) {
	p, _ := FromPrefix("c", netip.MustParsePrefix("10.4.0.0/24"), nil)
	var wg sync.WaitGroup
	got := make([]netip.Addr, 200)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = p.Acquire(string(rune('a'+i%26)) + string(rune(i)))
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, a := range got {
		if seen[a] || !a.IsValid() {
			t.Fatalf("address %s given twice or not at all", a)
		}
		seen[a] = true
	}
}

func TestInvalid(t *testing.T) {
	if _, err := New("x", netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.1"), nil); err == nil {
		t.Fatal("reversed range accepted")
	}
	if _, err := New("x", netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1"), nil); err == nil {
		t.Fatal("mixed families accepted")
	}
}

func TestReserve(t *testing.T) {
	p, _ := FromPrefix("r", netip.MustParsePrefix("10.7.0.0/30"), nil) // .1 and .2
	if err := p.Reserve("server", netip.MustParseAddr("10.7.0.2")); err != nil {
		t.Fatal(err)
	}
	a, _ := p.Acquire("client")
	if a.String() != "10.7.0.1" {
		t.Fatalf("client got %s", a)
	}
	if _, err := p.Acquire("another"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("the reserved address was handed out: %v", err)
	}
	if err := p.Reserve("x", netip.MustParseAddr("10.7.0.1")); !errors.Is(err, ErrTaken) {
		t.Fatalf("reserving a leased address: %v", err)
	}
}
