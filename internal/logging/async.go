package logging

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The daemon logs while an IKE SA is held by its owner, and its output (stderr into a pipe, the
// journal) can stall; a write that blocks there would stall the SA and the worker with it. So the
// output is asynchronous: Handle queues a copy of the record and returns, one goroutine writes the
// queue out in order, and when the queue is full records are dropped and counted — the next one
// written says how many were lost. Subscribers (the VICI log event) are not affected: they
// receive records synchronously and must not block.

// asyncQueue is the queue and writer goroutine shared by an output handler and its WithAttrs and
// WithGroup derivatives (each queued record carries the handler that writes it).
type asyncQueue struct {
	ch      chan queued
	dropped atomic.Uint64
	mu      sync.RWMutex // write-held by close; read-held while sending to ch
	closed  bool         // guarded by mu
	done    chan struct{}
	// lost is told about drops; it is the root output handler.
	lost slog.Handler
}

type queued struct {
	h slog.Handler
	r slog.Record
}

// asyncHandler is an output handler whose Handle only queues.
type asyncHandler struct {
	q     *asyncQueue
	inner slog.Handler
}

func newAsync(inner slog.Handler, size int) *asyncHandler {
	q := &asyncQueue{ch: make(chan queued, size), done: make(chan struct{}), lost: inner}
	go q.run()
	return &asyncHandler{q: q, inner: inner}
}

func (q *asyncQueue) run() {
	defer close(q.done)
	for it := range q.ch {
		q.reportDrops()
		it.h.Handle(context.Background(), it.r)
	}
	q.reportDrops()
}

// reportDrops writes how many records were dropped since the last report, if any.
func (q *asyncQueue) reportDrops() {
	if n := q.dropped.Swap(0); n > 0 {
		r := slog.NewRecord(time.Now(), slog.LevelWarn, "log output too slow: records dropped", 0)
		r.AddAttrs(slog.String("subsys", "log"), slog.Uint64("dropped", n))
		q.lost.Handle(context.Background(), r)
	}
}

func (a *asyncHandler) Enabled(context.Context, slog.Level) bool { return true }

func (a *asyncHandler) Handle(ctx context.Context, r slog.Record) error {
	a.q.mu.RLock()
	defer a.q.mu.RUnlock()
	if a.q.closed {
		// Shutting down: the writer has stopped, write directly.
		return a.inner.Handle(ctx, r)
	}
	select {
	case a.q.ch <- queued{h: a.inner, r: r.Clone()}:
	default:
		a.q.dropped.Add(1)
	}
	return nil
}

func (a *asyncHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &asyncHandler{q: a.q, inner: a.inner.WithAttrs(attrs)}
}

func (a *asyncHandler) WithGroup(name string) slog.Handler {
	return &asyncHandler{q: a.q, inner: a.inner.WithGroup(name)}
}

// close stops queueing and waits, at most timeout, for the queued records to be written (an
// output that never drains must not hold up the daemon's exit).
func (q *asyncQueue) close(timeout time.Duration) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.ch)
	q.mu.Unlock()
	select {
	case <-q.done:
	case <-time.After(timeout):
	}
}
