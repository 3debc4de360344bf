// Package replay implements the IPsec anti-replay window of RFC 4303 §3.4.3 (ESP) and RFC 4302
// §3.4.3 (AH), with the 64-bit extended sequence number (ESN) estimate of RFC 4303 Appendix A.
//
// The bitmap follows RFC 6479: a ring of 64-bit blocks in which a sequence number's block is
// found by index arithmetic, so sliding the window forward clears whole blocks instead of shifting
// every bit. The ring holds one block more than the window needs, so the block holding the highest
// sequence number can be partly filled while the full window stays represented behind it.
//
// A receiver asks Check before it spends work on decryption and calls Commit only after the packet
// authenticated (the libipsec split between verify_seqno and set_authenticated_seqno): forged
// packets therefore never move the window. Several decryption workers may hold the same sequence
// number between Check and Commit; Commit reports the loser so it can be dropped as a replay.
package replay

import (
	"errors"
	"fmt"
	"sync"
)

// Window sizes in packets.
const (
	DefaultSize = 1024  // used when New is given 0
	MaxSize     = 65536 // largest window New accepts
	blockBits   = 64
)

// ErrSize reports a window size outside [0, MaxSize].
var ErrSize = errors.New("replay: window size out of range")

// Window is an anti-replay window over 64-bit sequence numbers (the full ESN value, or the 32-bit
// value when ESN is not in use). It is safe for concurrent use.
type Window struct {
	size uint64 // packets accepted behind top, a multiple of 64

	mu     sync.Mutex
	top    uint64   // highest committed sequence number; 0 means none yet
	blocks []uint64 // ring of size/64+1 bitmap blocks; bit (seq % 64) of block (seq/64) % len
}

// New returns a window accepting size packets behind the highest one seen. size is rounded up to a
// multiple of 64; 0 selects DefaultSize.
func New(size int) (*Window, error) {
	if size < 0 || size > MaxSize {
		return nil, fmt.Errorf("%w: %d (want 0..%d)", ErrSize, size, MaxSize)
	}
	if size == 0 {
		size = DefaultSize
	}
	size = (size + blockBits - 1) / blockBits * blockBits
	// The ring and the window are one allocation for the common sizes (an inbound SA keeps its
	// window for life, and a gateway's garbage collector marks every live object at every
	// cycle); the window is a field of a struct sized for its ring.
	var w *Window
	switch n := size/blockBits + 1; {
	case n <= 2: // up to 64 packets
		x := &struct {
			Window
			ring [2]uint64
		}{}
		w = &x.Window
		w.blocks = x.ring[:n]
	case n <= 5: // up to 256
		x := &struct {
			Window
			ring [5]uint64
		}{}
		w = &x.Window
		w.blocks = x.ring[:n]
	case n <= DefaultSize/blockBits+1:
		x := &struct {
			Window
			ring [DefaultSize/blockBits + 1]uint64
		}{}
		w = &x.Window
		w.blocks = x.ring[:n]
	default:
		w = &Window{blocks: make([]uint64, n)}
	}
	w.size = uint64(size)
	return w, nil
}

// Size returns the window size in packets (after rounding).
func (w *Window) Size() int { return int(w.size) }

// Top returns the highest committed sequence number, 0 before the first Commit.
func (w *Window) Top() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.top
}

// Check reports whether seq would be accepted now: not 0, not left of the window, not already
// committed. It does not change the window.
func (w *Window) Check(seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkLocked(seq)
}

func (w *Window) checkLocked(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq > w.top {
		return true
	}
	if w.top-seq >= w.size {
		return false
	}
	block, bit := w.position(seq)
	return w.blocks[block]&bit == 0
}

// Commit marks seq as received. It returns false, leaving the window unchanged, when seq is no
// longer acceptable: another worker committed it first, or the window moved past it meanwhile.
func (w *Window) Commit(seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.checkLocked(seq) {
		return false
	}
	if seq > w.top {
		w.slideLocked(seq)
	}
	block, bit := w.position(seq)
	w.blocks[block] |= bit
	return true
}

// slideLocked makes seq the new top, clearing the ring blocks that the window skips over. A jump
// of a whole ring or more clears every block.
func (w *Window) slideLocked(seq uint64) {
	n := uint64(len(w.blocks))
	oldIndex, newIndex := w.top/blockBits, seq/blockBits
	steps := newIndex - oldIndex
	if steps > n {
		steps = n
	}
	for i := uint64(1); i <= steps; i++ {
		w.blocks[(oldIndex+i)%n] = 0
	}
	w.top = seq
}

func (w *Window) position(seq uint64) (block int, bit uint64) {
	return int((seq / blockBits) % uint64(len(w.blocks))), 1 << (seq % blockBits)
}

// EstimateHigh returns the receiver's guess of the high-order 32 bits of an extended sequence
// number whose low-order 32 bits arrived on the wire (RFC 4303 Appendix A2.2, "Seqh"). The guess
// places the packet inside or just right of the window; a wrong guess makes the ICV fail, which is
// how RFC 4303 intends a wildly displaced packet to be dropped.
func (w *Window) EstimateHigh(low uint32) uint32 {
	w.mu.Lock()
	top := w.top
	w.mu.Unlock()
	return estimateHigh(top, w.size, low)
}

// Infer returns the full 64-bit sequence number for received low-order bits: EstimateHigh joined
// with low.
func (w *Window) Infer(low uint32) uint64 {
	return uint64(w.EstimateHigh(low))<<32 | uint64(low)
}

// InferAndCheck is Infer followed by Check under one lock acquisition, for the receive path of
// an ESN SA: it returns the full sequence number and whether it would be accepted.
func (w *Window) InferAndCheck(low uint32) (seq uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seq = uint64(estimateHigh(w.top, w.size, low))<<32 | uint64(low)
	return seq, w.checkLocked(seq)
}

// estimateHigh is RFC 4303 Appendix A2.2 with Tl, Th the halves of the window top and Bl the low
// half of the window bottom.
func estimateHigh(top, size uint64, low uint32) uint32 {
	th, tl := uint32(top>>32), uint32(top)
	w := uint32(size)
	bl := tl - w + 1 // wraps modulo 2^32 in case B, as the appendix intends
	if tl >= w-1 {
		// Case A: the window lies within one subspace of 2^32.
		if low >= bl {
			return th
		}
		return th + 1 // the packet is right of the window, in the next subspace
	}
	// Case B: the window spans two subspaces; low values at or above Bl belong to the previous one.
	if low >= bl {
		if th == 0 {
			// No previous subspace exists before the first 2^32 packets: the only authentic
			// reading is a jump forward within subspace 0.
			return 0
		}
		return th - 1
	}
	return th
}
