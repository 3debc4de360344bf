// Package enginetest is a kit for testing IKE engines without a network, in virtual time: a
// manual clock, a fake network (with loss, NAT and NAT mapping changes), hosts that record every
// event, a fake data plane fed by the engine's Child SA events that sends packets both ways and
// counts those that meet no SA, and scripted nonces that decide who wins a rekey collision.
package enginetest

import (
	"sort"
	"sync"
	"time"

	"github.com/goipsec/goipsec/ike/engine"
)

// ManualClock is virtual time: timers fire only when Advance passes their deadline, in deadline
// order, on the goroutine that calls Advance.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*manualTimer
}

type manualTimer struct {
	c       *ManualClock
	at      time.Time
	seq     uint64
	f       func()
	stopped bool
}

// NewManualClock starts at a fixed moment.
func NewManualClock() *ManualClock { return &ManualClock{now: time.Unix(1_700_000_000, 0)} }

// Now implements engine.Clock.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements engine.Clock.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) engine.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Pending is the number of timers that have not fired or been stopped.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// Advance moves time forward by d, firing due timers in deadline order (outside the clock's lock).
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		live := c.timers[:0]
		for _, t := range c.timers {
			if !t.stopped {
				live = append(live, t)
			}
		}
		c.timers = live
		sort.Slice(c.timers, func(i, j int) bool {
			if !c.timers[i].at.Equal(c.timers[j].at) {
				return c.timers[i].at.Before(c.timers[j].at)
			}
			return c.timers[i].seq < c.timers[j].seq
		})
		if len(c.timers) == 0 || c.timers[0].at.After(end) {
			c.now = end
			c.mu.Unlock()
			return
		}
		next := c.timers[0]
		c.timers = c.timers[1:]
		if next.at.After(c.now) {
			c.now = next.at
		}
		next.stopped = true
		c.mu.Unlock()
		next.f()
	}
}
