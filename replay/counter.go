package replay

import (
	"math"
	"sync/atomic"
)

// Counter hands out outbound sequence numbers, 1, 2, 3, ... up to 2^32-1 (or 2^64-1 with
// extended sequence numbers), and never wraps (RFC 4303 §3.3.3, RFC 4302 §3.3.2): the SA must be
// replaced before. It is safe for concurrent use.
type Counter struct {
	last atomic.Uint64 // the last number handed out
}

// Next takes the next number; ok is false once the space is used up.
func (c *Counter) Next(esn bool) (seq uint64, ok bool) {
	limit := uint64(math.MaxUint32)
	if esn {
		limit = math.MaxUint64
	}
	for {
		cur := c.last.Load()
		if cur >= limit {
			return 0, false
		}
		if c.last.CompareAndSwap(cur, cur+1) {
			return cur + 1, true
		}
	}
}

// NextN takes n consecutive numbers and returns the first; ok is false, and nothing is taken,
// when fewer than n are left. A sender that seals a batch of packets in parallel with others
// takes the batch's numbers at once, so that they are consecutive.
func (c *Counter) NextN(n uint64, esn bool) (first uint64, ok bool) {
	limit := uint64(math.MaxUint32)
	if esn {
		limit = math.MaxUint64
	}
	if n == 0 {
		return 0, false
	}
	for {
		cur := c.last.Load()
		if cur >= limit || limit-cur < n {
			return 0, false
		}
		if c.last.CompareAndSwap(cur, cur+n) {
			return cur + 1, true
		}
	}
}

// Set makes last the last number handed out (tests of exhaustion).
func (c *Counter) Set(last uint64) { c.last.Store(last) }
