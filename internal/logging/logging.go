// Package logging gives goipsec's subsystems their loggers: one log/slog output (text or JSON) with
// a level per subsystem, like strongSwan's charondebug, and a fan-out of records to subscribers
// (the VICI "log" event, `goipsec log`). Every record carries its subsystem as the "subsys" attribute.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Subsystems are the names loggers are made for.
var Subsystems = []string{"cfg", "ike", "net", "enc", "esp", "vici", "dataplane"}

// Options configure a Hub.
type Options struct {
	Out    io.Writer
	Format string                // "text" (default) or "json"
	Level  slog.Level            // default level
	Levels map[string]slog.Level // per subsystem
	// Handler, when set, receives the records instead of a text or JSON handler on Out (the
	// journal under systemd). It must let every level through: Hub decides per subsystem.
	Handler slog.Handler
	// Queue, when positive, makes the output asynchronous with room for that many records
	// (async.go): a stalled output then drops records instead of stalling the loggers. Close
	// writes out what is queued.
	Queue int
}

// Record is a log record as delivered to subscribers.
type Record struct {
	Time   time.Time
	Level  slog.Level
	Subsys string
	Msg    string
	Attrs  string // key=value pairs, as the text handler writes them
}

// Hub owns the output and the subscribers.
type Hub struct {
	out    slog.Handler
	async  *asyncQueue // nil: the output is written synchronously
	level  slog.Level
	levels map[string]slog.Level

	mu     sync.Mutex
	subs   map[int]subscriber
	nextID int
	// minSub is the lowest level any subscriber wants (math.MaxInt when none), read lock-free by
	// Enabled.
	minSub atomic.Int64
}

type subscriber struct {
	level  slog.Level
	active func() bool // nil: always
	fn     func(Record)
}

const noSubscriber = int64(1 << 30)

// New returns a hub writing to opts.Out.
func New(opts Options) *Hub {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	// The output handler lets everything through; Hub decides per subsystem.
	hopts := &slog.HandlerOptions{Level: slog.Level(-1 << 20)}
	out := opts.Handler
	switch {
	case out != nil:
	case opts.Format == "json":
		out = slog.NewJSONHandler(opts.Out, hopts)
	default:
		out = slog.NewTextHandler(opts.Out, hopts)
	}
	h := &Hub{out: out, level: opts.Level, levels: opts.Levels, subs: map[int]subscriber{}}
	if opts.Queue > 0 {
		a := newAsync(out, opts.Queue)
		h.out, h.async = a, a.q
	}
	h.minSub.Store(noSubscriber)
	return h
}

// Close writes out the records still queued (waiting at most two seconds for a stalled output);
// records logged afterwards are written synchronously. Without Options.Queue it does nothing.
func (h *Hub) Close() {
	if h.async != nil {
		h.async.close(2 * time.Second)
	}
}

// Logger returns the logger of a subsystem.
func (h *Hub) Logger(subsys string) *slog.Logger {
	return slog.New(&handler{hub: h, subsys: subsys, out: h.out.WithAttrs([]slog.Attr{slog.String("subsys", subsys)})})
}

// LevelFor is the configured level of a subsystem.
func (h *Hub) LevelFor(subsys string) slog.Level {
	if l, ok := h.levels[subsys]; ok {
		return l
	}
	return h.level
}

// Subscribe delivers every record at or above level to fn until the returned cancel is called. fn
// runs on the logging goroutine: it must not block or log.
func (h *Hub) Subscribe(level slog.Level, fn func(Record)) (cancel func()) {
	return h.SubscribeWhile(level, nil, fn)
}

// SubscribeWhile is Subscribe for a subscriber that wants records only while active reports true
// (for example while a control client listens); records below the output's level are then not even
// formatted when nobody is active.
func (h *Hub) SubscribeWhile(level slog.Level, active func() bool, fn func(Record)) (cancel func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.nextID
	h.nextID++
	h.subs[id] = subscriber{level, active, fn}
	h.recomputeLocked()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, id)
		h.recomputeLocked()
	}
}

func (h *Hub) recomputeLocked() {
	m := noSubscriber
	for _, s := range h.subs {
		m = min(m, int64(s.level))
	}
	h.minSub.Store(m)
}

// ParseLevel reads debug, info, warn or error (case-insensitive); anything else is info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

type handler struct {
	hub    *Hub
	subsys string
	out    slog.Handler
	attrs  []slog.Attr
	group  string
}

func (x *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= x.hub.LevelFor(x.subsys) || (int64(l) >= x.hub.minSub.Load() && x.hub.anyActive(l))
}

func (x *handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if r.Level >= x.hub.LevelFor(x.subsys) {
		err = x.out.Handle(ctx, r)
	}
	if int64(r.Level) >= x.hub.minSub.Load() && x.hub.anyActive(r.Level) {
		x.publish(r)
	}
	return err
}

// anyActive reports whether a subscriber wants records of level l now.
func (h *Hub) anyActive(l slog.Level) bool {
	h.mu.Lock()
	subs := make([]subscriber, 0, len(h.subs))
	for _, s := range h.subs {
		if l >= s.level {
			subs = append(subs, s)
		}
	}
	h.mu.Unlock()
	// active may take other locks: call it without ours.
	for _, s := range subs {
		if s.active == nil || s.active() {
			return true
		}
	}
	return false
}

func (x *handler) publish(r slog.Record) {
	var b strings.Builder
	write := func(a slog.Attr) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " =\"") {
			b.WriteString(`"` + strings.ReplaceAll(v, `"`, `\"`) + `"`)
		} else {
			b.WriteString(v)
		}
	}
	for _, a := range x.attrs {
		write(a)
	}
	r.Attrs(func(a slog.Attr) bool { write(a); return true })
	rec := Record{Time: r.Time, Level: r.Level, Subsys: x.subsys, Msg: r.Message, Attrs: b.String()}
	x.hub.mu.Lock()
	subs := make([]subscriber, 0, len(x.hub.subs))
	for _, s := range x.hub.subs {
		subs = append(subs, s)
	}
	x.hub.mu.Unlock()
	for _, s := range subs {
		if r.Level >= s.level && (s.active == nil || s.active()) {
			s.fn(rec)
		}
	}
}

func (x *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *x
	n.out = x.out.WithAttrs(attrs)
	n.attrs = append(append([]slog.Attr(nil), x.attrs...), attrs...)
	return &n
}

func (x *handler) WithGroup(name string) slog.Handler {
	n := *x
	n.out = x.out.WithGroup(name)
	n.group = name
	return &n
}
