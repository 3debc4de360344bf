package replay

import (
	"math"
	"testing"
)

func TestCounterNeverWraps(t *testing.T) {
	var c Counter
	if s, ok := c.Next(false); !ok || s != 1 {
		t.Fatalf("first = %d %v", s, ok)
	}
	c.Set(math.MaxUint32 - 1)
	if s, ok := c.Next(false); !ok || s != math.MaxUint32 {
		t.Fatalf("last 32-bit = %d %v", s, ok)
	}
	if _, ok := c.Next(false); ok {
		t.Fatal("32-bit counter wrapped")
	}
	if s, ok := c.Next(true); !ok || s != math.MaxUint32+1 {
		t.Fatalf("ESN continues = %d %v", s, ok)
	}
	c.Set(math.MaxUint64)
	if _, ok := c.Next(true); ok {
		t.Fatal("64-bit counter wrapped")
	}
}

// TestCounterNextN: blocks are consecutive, follow single numbers, and a block larger than what
// is left is refused without taking anything.
func TestCounterNextN(t *testing.T) {
	var c Counter
	if s, ok := c.Next(false); !ok || s != 1 {
		t.Fatalf("Next = %d %v", s, ok)
	}
	if s, ok := c.NextN(10, false); !ok || s != 2 {
		t.Fatalf("NextN(10) = %d %v, want 2", s, ok)
	}
	if s, ok := c.Next(false); !ok || s != 12 {
		t.Fatalf("Next after the block = %d %v, want 12", s, ok)
	}
	c.Set(math.MaxUint32 - 5)
	if _, ok := c.NextN(6, false); ok {
		t.Fatal("NextN took more numbers than were left")
	}
	if s, ok := c.NextN(5, false); !ok || s != math.MaxUint32-4 {
		t.Fatalf("NextN(5) at the end = %d %v", s, ok)
	}
	if _, ok := c.Next(false); ok {
		t.Fatal("the space did not end")
	}
	if _, ok := c.NextN(0, true); ok {
		t.Fatal("NextN(0) succeeded")
	}
}
