package logging

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLevelsPerSubsystem(t *testing.T) {
	var out bytes.Buffer
	h := New(Options{Out: &out, Level: slog.LevelInfo, Levels: map[string]slog.Level{"ike": slog.LevelDebug, "esp": slog.LevelError}})
	h.Logger("ike").Debug("ike detail", "spi", "abc")
	h.Logger("cfg").Debug("cfg detail")
	h.Logger("cfg").Info("cfg info")
	h.Logger("esp").Warn("esp warning")
	h.Logger("esp").Error("esp error")
	got := out.String()
	for _, want := range []string{"ike detail", "subsys=ike", "spi=abc", "cfg info", "esp error"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"cfg detail", "esp warning"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output has %q, filtered by level:\n%s", unwanted, got)
		}
	}
}

func TestJSONAndSubscribers(t *testing.T) {
	var out bytes.Buffer
	h := New(Options{Out: &out, Format: "json", Level: slog.LevelWarn})
	var got []Record
	cancel := h.Subscribe(slog.LevelDebug, func(r Record) { got = append(got, r) })
	h.Logger("ike").With("conn", "home").Debug("negotiating", "peer", "192.0.2.1")
	h.Logger("vici").Warn("client gone")
	cancel()
	h.Logger("ike").Error("after cancel")
	if len(got) != 2 || got[0].Subsys != "ike" || got[0].Msg != "negotiating" || got[0].Attrs != "conn=home peer=192.0.2.1" {
		t.Fatalf("subscriber got %+v", got)
	}
	if strings.Contains(out.String(), "negotiating") {
		t.Fatal("a debug record reached the warn-level output")
	}
	if !strings.Contains(out.String(), `"subsys":"vici"`) || !strings.Contains(out.String(), `"msg":"after cancel"`) {
		t.Fatalf("JSON output: %s", out.String())
	}
}

func TestSubscribeWhileInactiveFormatsNothing(t *testing.T) {
	h := New(Options{Level: slog.LevelError})
	listening := false
	var got []Record
	h.SubscribeWhile(slog.LevelDebug, func() bool { return listening }, func(r Record) { got = append(got, r) })
	l := h.Logger("ike")
	if l.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug enabled while the only subscriber is inactive")
	}
	l.Debug("unseen")
	listening = true
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug not enabled for an active subscriber")
	}
	l.Debug("seen")
	if len(got) != 1 || got[0].Msg != "seen" {
		t.Fatalf("got %+v", got)
	}
}

// stalledWriter blocks every Write until released, then records what was written.
type stalledWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// TestAsyncOutputNeverBlocks: with a queue, a stalled output does not stall the loggers; what
// does not fit is dropped and counted in the next line written; Close writes the rest in order.
func TestAsyncOutputNeverBlocks(t *testing.T) {
	w := &stalledWriter{release: make(chan struct{})}
	h := New(Options{Out: w, Level: slog.LevelInfo, Queue: 4})
	l := h.Logger("ike").With("conn", "home")
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			l.Info("record", "i", i)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked on a stalled output")
	}
	close(w.release)
	h.Close()
	l.Info("after close")
	out := w.buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// At most the queue plus the record the writer held when it stalled got through, then the
	// drop report, then the line logged after Close.
	if !strings.Contains(out, "log output too slow") || !strings.Contains(lines[len(lines)-1], "after close") {
		t.Fatalf("output:\n%s", out)
	}
	var kept, dropped int
	for _, ln := range lines {
		switch {
		case strings.Contains(ln, "msg=record"):
			kept++
			if !strings.Contains(ln, "subsys=ike") || !strings.Contains(ln, "conn=home") {
				t.Errorf("record lost its attributes: %s", ln)
			}
		case strings.Contains(ln, "log output too slow"):
			var n int
			if _, err := fmt.Sscanf(ln[strings.Index(ln, "dropped="):], "dropped=%d", &n); err != nil {
				t.Fatalf("drop report: %s", ln)
			}
			dropped += n
		}
	}
	if kept+dropped != 100 || kept > 6 {
		t.Fatalf("%d records written and %d reported dropped, want 100 in all and at most 6 written", kept, dropped)
	}
}
