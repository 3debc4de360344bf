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
