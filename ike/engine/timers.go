package engine

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler wakes IKE SAs at their deadlines. Each SA has at most one deadline registered — the
// earliest of its retransmission, rekey, liveness, keepalive and Child SA timers — so that 100,000
// SAs cost 100,000 small heap entries and one clock timer, not a runtime timer and closure per
// timer. Timers refer to SAs by entry; a fired SA works out itself what is due.
type scheduler struct {
	clock Clock
	ep    epoch
	fire  func(*entry)

	mu     sync.Mutex
	h      wakeHeap
	timer  Timer
	armed  instant // deadline the clock timer is set for (zero: none)
	closed bool
}

// wake is a heap item; seq tells a stale item (the SA registered another deadline since) apart.
type wake struct {
	at  instant
	en  *entry
	seq uint64
}

// instant is a time on the engine's clock in 8 bytes: the time since the engine's epoch, zero
// for none. Every held IKE SA carries ten deadlines and times; as time.Time (24 bytes each) they
// kept its record above 512 bytes, the size above which the garbage collector scans objects one
// by one instead of span by span (docs/performance.md, "IKE with tunnels held").
type instant int64

func (i instant) IsZero() bool                { return i == 0 }
func (i instant) Before(j instant) bool       { return i < j }
func (i instant) Add(d time.Duration) instant { return i + instant(d) }
func (i instant) Sub(j instant) time.Duration { return time.Duration(i - j) }

// epoch converts between time.Time and instant. It lies a day before the engine started, so
// every time an engine meets is after it; Sub uses the monotonic clock readings when both times
// have them (the real clock), so a stepped wall clock moves no deadline.
type epoch struct{ t time.Time }

func newEpoch(now time.Time) epoch { return epoch{now.Add(-24 * time.Hour)} }

// at is t as an instant (zero for the zero time).
func (ep epoch) at(t time.Time) instant {
	if t.IsZero() {
		return 0
	}
	return instant(max(1, t.Sub(ep.t)))
}

// time is i as a time.Time (the zero time for zero).
func (ep epoch) time(i instant) time.Time {
	if i == 0 {
		return time.Time{}
	}
	return ep.t.Add(time.Duration(i))
}

type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = wake{}
	*h = old[:n-1]
	return x
}

// set registers at as en's next deadline (zero: none). A later deadline than the registered one
// is not pushed: the earlier wake-up comes first and the SA registers again then.
func (s *scheduler) set(en *entry, at instant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if at.IsZero() {
		en.wakeSeq++
		en.wakeAt = 0
		return
	}
	if !en.wakeAt.IsZero() && !at.Before(en.wakeAt) {
		return
	}
	en.wakeSeq++
	en.wakeAt = at
	heap.Push(&s.h, wake{at: at, en: en, seq: en.wakeSeq})
	s.armLocked()
}

// armLocked points the clock timer at the earliest live deadline.
func (s *scheduler) armLocked() {
	for s.h.Len() > 0 && s.h[0].seq != s.h[0].en.wakeSeq {
		heap.Pop(&s.h)
	}
	if s.h.Len() == 0 {
		return
	}
	at := s.h[0].at
	if !s.armed.IsZero() && !at.Before(s.armed) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.armed = at
	s.timer = s.clock.AfterFunc(max(0, s.ep.time(at).Sub(s.clock.Now())), s.onFire)
}

// onFire wakes every SA whose deadline has come.
func (s *scheduler) onFire() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	now := s.ep.at(s.clock.Now())
	s.armed = 0
	var due []*entry
	for s.h.Len() > 0 && s.h[0].at <= now {
		w := heap.Pop(&s.h).(wake)
		if w.seq == w.en.wakeSeq {
			w.en.wakeAt = 0
			due = append(due, w.en)
		}
	}
	s.armLocked()
	s.mu.Unlock()
	for _, en := range due {
		s.fire(en)
	}
}

func (s *scheduler) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.h = nil
}

// size is the number of heap items (for tests of the memory bound).
func (s *scheduler) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h.Len()
}
