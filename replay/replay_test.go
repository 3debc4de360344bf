package replay

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func mustNew(t testing.TB, size int) *Window {
	t.Helper()
	w, err := New(size)
	if err != nil {
		t.Fatalf("New(%d): %v", size, err)
	}
	return w
}

func TestNewSizes(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{0, 1024}, {1, 64}, {64, 64}, {65, 128}, {1000, 1024}, {MaxSize, MaxSize},
	} {
		if got := mustNew(t, tc.in).Size(); got != tc.want {
			t.Errorf("New(%d).Size() = %d, want %d", tc.in, got, tc.want)
		}
	}
	for _, bad := range []int{-1, MaxSize + 1} {
		if _, err := New(bad); !errors.Is(err, ErrSize) {
			t.Errorf("New(%d) error = %v, want ErrSize", bad, err)
		}
	}
}

func TestZeroNeverValid(t *testing.T) {
	w := mustNew(t, 64)
	if w.Check(0) || w.Commit(0) {
		t.Fatal("sequence number 0 accepted")
	}
}

func TestInOrder(t *testing.T) {
	w := mustNew(t, 64)
	for seq := uint64(1); seq <= 1000; seq++ {
		if !w.Check(seq) || !w.Commit(seq) {
			t.Fatalf("in-order seq %d refused", seq)
		}
		if w.Check(seq) {
			t.Fatalf("seq %d accepted twice", seq)
		}
	}
	if w.Top() != 1000 {
		t.Fatalf("Top = %d", w.Top())
	}
}

func TestCheckDoesNotChangeState(t *testing.T) {
	w := mustNew(t, 64)
	for i := 0; i < 3; i++ {
		if !w.Check(5) {
			t.Fatal("Check(5) false on empty window")
		}
	}
	if w.Top() != 0 {
		t.Fatalf("Check moved the window: top %d", w.Top())
	}
}

func TestOutOfOrderInsideWindow(t *testing.T) {
	w := mustNew(t, 64)
	if !w.Commit(100) {
		t.Fatal("Commit(100)")
	}
	// 100-63 = 37 is the left edge: 64 packets 37..100 are inside.
	for _, seq := range []uint64{99, 50, 37, 70} {
		if !w.Check(seq) || !w.Commit(seq) {
			t.Fatalf("seq %d inside the window refused", seq)
		}
	}
	for _, seq := range []uint64{99, 50, 37, 70, 100} {
		if w.Check(seq) || w.Commit(seq) {
			t.Fatalf("duplicate %d accepted", seq)
		}
	}
	for _, seq := range []uint64{36, 1} {
		if w.Check(seq) || w.Commit(seq) {
			t.Fatalf("seq %d left of the window accepted", seq)
		}
	}
}

func TestLargeJumpClearsRing(t *testing.T) {
	w := mustNew(t, 128)
	for seq := uint64(1); seq <= 200; seq++ {
		w.Commit(seq)
	}
	// Jump far beyond the ring: every block must be cleared, so only the new top is marked.
	const far = 1 << 40
	if !w.Commit(far) {
		t.Fatal("Commit(far)")
	}
	for seq := uint64(far - 127); seq < far; seq++ {
		if !w.Check(seq) {
			t.Fatalf("seq %d (behind a fresh top) refused: stale bits survived the jump", seq)
		}
	}
	if w.Check(far-128) || w.Check(far) {
		t.Fatal("left edge or duplicate accepted after jump")
	}
}

func TestBlockRotation(t *testing.T) {
	// Slide one block at a time across many ring revolutions; bits from a previous revolution
	// must never make a fresh number look like a duplicate, and recent ones must stay marked.
	w := mustNew(t, 64) // ring of 2 blocks
	for seq := uint64(2); seq < 64*50; seq += 2 {
		if !w.Commit(seq) {
			t.Fatalf("even seq %d refused", seq)
		}
		if seq > 64 {
			if !w.Check(seq - 1) {
				t.Fatalf("odd seq %d refused although never seen", seq-1)
			}
			if w.Check(seq - 2) {
				t.Fatalf("even seq %d accepted twice", seq-2)
			}
		}
	}
	// Partial jump: advance 70 (crossing one block boundary, not the whole ring).
	top := w.Top()
	if !w.Commit(top + 70) {
		t.Fatal("partial jump")
	}
	for seq := top + 7; seq < top+70; seq++ {
		if !w.Check(seq) {
			t.Fatalf("seq %d refused after partial jump", seq)
		}
	}
	if w.Check(top + 6) {
		t.Fatalf("seq %d left of the window accepted", top+6)
	}
}

func TestCommitAfterCheckRace(t *testing.T) {
	// Several workers pass Check for the same numbers; exactly one Commit per number may win.
	w := mustNew(t, 1024)
	const workers, count = 8, 2000
	var wins [count + 1]atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= count; seq++ {
				if w.Check(seq) && w.Commit(seq) {
					wins[seq].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for seq := 1; seq <= count; seq++ {
		if n := wins[seq].Load(); n > 1 {
			t.Fatalf("seq %d committed %d times", seq, n)
		}
	}
	// In-order numbers that nobody won can only be those the window slid past meanwhile.
	if wins[count].Load() != 1 {
		t.Fatal("the highest sequence number was never committed")
	}
}

func TestEstimateHighAppendixA(t *testing.T) {
	// RFC 4303 Appendix A2.2 cases, window W = 64.
	const W = 64
	for _, tc := range []struct {
		name string
		top  uint64
		low  uint32
		want uint32
	}{
		{"A: inside window", 5<<32 | 1000, 990, 5},
		{"A: right of window, same subspace", 5<<32 | 1000, 5000, 5},
		{"A: wrapped into next subspace", 5<<32 | 0xFFFFFFF0, 3, 6},
		{"A: left edge Bl stays", 5<<32 | 1000, 1000 - W + 1, 5},
		{"A: below Bl is next subspace", 5<<32 | 1000, 1000 - W, 6},
		{"B: low belongs to previous subspace", 6<<32 | 3, 0xFFFFFFF8, 5},
		{"B: low in current subspace", 6<<32 | 3, 2, 6},
		{"B: ahead in current subspace", 6<<32 | 3, 100, 6},
		{"B: fresh SA never goes below 0", 0, 0xFFFFFFF8, 0},
		{"B: fresh SA", 0, 1, 0},
	} {
		if got := estimateHigh(tc.top, W, tc.low); got != tc.want {
			t.Errorf("%s: estimateHigh(%#x, %d, %#x) = %d, want %d", tc.name, tc.top, W, tc.low, got, tc.want)
		}
	}
}

func TestESNAcrossBoundary(t *testing.T) {
	// Forward across 2^32: in order, then with reordering that reaches back across the boundary.
	w := mustNew(t, 64)
	start := uint64(0xFFFFFFF0)
	w.Commit(start - 1)
	order := []uint64{}
	for s := start; s <= 1<<32+0x10; s++ {
		order = append(order, s)
	}
	// Swap neighbours around the boundary so 2^32 arrives before 2^32-1 and 2^32-2.
	i := int(1<<32 - start)
	order[i-2], order[i] = order[i], order[i-2]
	for _, seq := range order {
		got := w.Infer(uint32(seq))
		if got != seq {
			t.Fatalf("Infer(%#x) = %#x, want %#x (top %#x)", uint32(seq), got, seq, w.Top())
		}
		if !w.Commit(got) {
			t.Fatalf("Commit(%#x) refused", got)
		}
	}
	// A late packet from just before the boundary is still placed in the old subspace.
	if got := w.Infer(0xFFFFFFF0); got != 0xFFFFFFF0 {
		t.Fatalf("late low %#x inferred as %#x", uint32(0xFFFFFFF0), got)
	}
	if w.Check(0xFFFFFFF0) {
		t.Fatal("late duplicate accepted")
	}
}

func TestInferAndCheck(t *testing.T) {
	w := mustNew(t, 64)
	w.Commit(1<<32 - 2)
	if seq, ok := w.InferAndCheck(1); seq != 1<<32+1 || !ok {
		t.Fatalf("InferAndCheck(1) = %#x, %v", seq, ok)
	}
	if seq, ok := w.InferAndCheck(0xFFFFFFFE); seq != 1<<32-2 || ok {
		t.Fatalf("InferAndCheck of the committed top = %#x, %v", seq, ok)
	}
	if w.Top() != 1<<32-2 {
		t.Fatal("InferAndCheck changed the window")
	}
}

func BenchmarkCheckCommit(b *testing.B) {
	w := mustNew(b, 1024)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		if !w.Check(seq) || !w.Commit(seq) {
			b.Fatal("refused")
		}
	}
}

// TestNewIsOneAllocation: windows up to the default size carry their ring in the same allocation
// (an inbound SA keeps its window for life); larger ones allocate the ring apart. Each window
// still accepts exactly its size behind the top.
func TestNewIsOneAllocation(t *testing.T) {
	for _, c := range []struct{ size, allocs int }{{32, 1}, {64, 1}, {256, 1}, {0, 1}, {1024, 1}, {1025, 2}, {MaxSize, 2}} {
		if n := testing.AllocsPerRun(20, func() { New(c.size) }); int(n) != c.allocs {
			t.Errorf("New(%d): %.0f allocations, want %d", c.size, n, c.allocs)
		}
		w, err := New(c.size)
		if err != nil {
			t.Fatal(err)
		}
		top := uint64(100000)
		if !w.Check(top) || !w.Commit(top) {
			t.Fatalf("New(%d): %d refused", c.size, top)
		}
		size := uint64(w.Size())
		if !w.Check(top-size+1) || w.Check(top-size) {
			t.Errorf("New(%d) (size %d): oldest accepted %v, one older %v", c.size, size, w.Check(top-size+1), w.Check(top-size))
		}
	}
}
